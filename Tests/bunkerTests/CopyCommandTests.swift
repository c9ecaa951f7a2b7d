import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// `bunker copy` ships snapshots into another repository with only the data it lacks, survives a
/// kill, and what it copies restores to the same tree.
@Suite(.serialized) struct CopyCommandTests {
    struct Setup {
        let dir: String
        let source: [String: String]
        var destination: [String: String]

        func run(_ arguments: [String], _ environment: [String: String]) throws -> BunkerProcess.Outcome {
            try BunkerProcess.run(arguments, environment: environment)
        }

        /// `bunker copy --json` from the source into the destination, decoded.
        func copy(_ extra: [String] = [], fault: String? = nil) throws -> (status: Int32, report: [String: Any]) {
            var environment = source
            environment["BUNKER_TO_PASSWORD"] = "destination-password"
            if let fault { environment["BUNKER_FAULT_KILL"] = fault }
            let outcome = try run(["copy", "--to", dir + "/dst", "--json"] + extra, environment)
            let report = (try? JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any]) ?? ["stderr": outcome.stderr]
            return (outcome.killed ? 128 + outcome.status : outcome.status, report ?? [:])
        }
    }

    func setUp(_ dir: String, sharedKeys: Bool) async throws -> Setup {
        try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 2 << 20)
        _ = try await TestRepository.create(at: dir + "/repo")
        let source = ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password, "BUNKER_DATA_DIR": dir + "/data"]
        let destination = ["BUNKER_REPOSITORY": dir + "/dst", "BUNKER_PASSWORD": "destination-password", "BUNKER_DATA_DIR": dir + "/data-dst"]
        var initEnvironment = destination
        initEnvironment["BUNKER_FROM_PASSWORD"] = TestRepository.password
        let made = try BunkerProcess.run(["init"] + (sharedKeys ? ["--copy-params-from", dir + "/repo"] : []), environment: initEnvironment)
        #expect(made.status == 0, "\(made.stderr)")
        return Setup(dir: dir, source: source, destination: destination)
    }

    /// The names of a local repository's packs.
    func packNames(in repository: String) throws -> [String] {
        let root = repository + "/data"
        return try FileManager.default.subpathsOfDirectory(atPath: root).filter { !$0.hasSuffix("/") && $0.count > 40 }.map { ($0 as NSString).lastPathComponent }
    }

    @Test(arguments: [true, false])
    func aCopyIsIncrementalAndRestoresTheSameTree(sharedKeys: Bool) async throws {
        try await withTemporaryDirectory { dir in
            let setup = try await setUp(dir, sharedKeys: sharedKeys)
            for _ in 0..<2 { #expect(try setup.run(["backup", dir + "/src"], setup.source).status == 0) }

            let first = try setup.copy()
            #expect(first.status == 0, "\(first.report)")
            #expect((first.report["copied"] as? [Any])?.count == 2, "\(first.report)")
            #expect(first.report["shared_keys"] as? Bool == sharedKeys)
            let firstBlobs = try #require(first.report["blobs_copied"] as? Int)
            #expect(firstBlobs > 0)
            let sourcePacks = Set(try packNames(in: dir + "/repo"))
            let shippedPacks = Set(try packNames(in: dir + "/dst"))
            if sharedKeys {
                // The encrypted packs travelled as they were: the destination holds them under
                // the same names (the name is the SHA-256 of the bytes).
                #expect((first.report["packs_unchanged"] as? Int ?? 0) > 0, "\(first.report)")
                #expect(sourcePacks.isSuperset(of: shippedPacks) && !shippedPacks.isEmpty)
            } else {
                #expect(first.report["packs_unchanged"] as? Int == 0, "\(first.report)")
                #expect(sourcePacks.isDisjoint(with: shippedPacks))
            }

            // Again: nothing new to copy, nothing shipped.
            let again = try setup.copy()
            #expect(again.status == 0 && (again.report["already_there"] as? [Any])?.count == 2, "\(again.report)")
            #expect(again.report["blobs_copied"] as? Int == 0, "\(again.report)")

            // One changed file: the next copy ships far less than the first.
            try Data(repeating: 7, count: 300_000).write(to: URL(fileURLWithPath: dir + "/src/changed.bin"))
            #expect(try setup.run(["backup", dir + "/src"], setup.source).status == 0)
            let incremental = try setup.copy(["--latest"])
            #expect((incremental.report["copied"] as? [Any])?.count == 1, "\(incremental.report)")
            let shipped = try #require(incremental.report["blobs_copied"] as? Int)
            #expect(shipped > 0 && shipped < firstBlobs / 2, "shipped \(shipped) blobs for one changed file (first copy: \(firstBlobs))")
            // Under keys of its own, the copy of the parent guided it: what did not change was
            // taken from the destination unread. With shared keys nothing held is read anyway.
            let reused = incremental.report["blobs_reused"] as? Int ?? -1
            #expect(sharedKeys ? reused == 0 : reused > 0, "\(incremental.report)")

            var intoItself = setup.source
            intoItself["BUNKER_TO_PASSWORD"] = TestRepository.password
            let itself = try setup.run(["copy", "--to", dir + "/repo"], intoItself)
            #expect(itself.status == 64 && itself.stderr.contains("same repository"), "\(itself.stderr)")

            let verify = try setup.run(["verify", "--read-data"], setup.destination)
            #expect(verify.status == 0, "\(verify.stderr)")
            // The source's audit trail came along: the destination alone rebuilds the catalog.
            #expect((first.report["catalog_objects_copied"] as? Int ?? 0) > 0, "\(first.report)")
            var lost = setup.destination
            lost["BUNKER_DATA_DIR"] = dir + "/rebuilt"
            // The destination also holds the trail of the data directory that verified it: name
            // the source's.
            let ambiguous = try setup.run(["catalog", "restore"], lost)
            #expect(ambiguous.status == 64 && ambiguous.stderr.contains("--installation"), "\(ambiguous.stderr)")
            let installation = try String(contentsOfFile: dir + "/data/installation", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            let rebuilt = try setup.run(["catalog", "restore", "--installation", installation], lost)
            #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
            #expect(try setup.run(["audit", "verify"], lost).status == 0)
            let restored = try setup.run(["restore", "latest", "--target", dir + "/back"], setup.destination)
            #expect(restored.status == 0, "\(restored.stderr)")
            let differences = compareTrees(dir + "/src", dir + "/back/src", checkDirectoryTimes: false)
            #expect(differences.isEmpty, "\(differences.prefix(5))")
        }
    }

    /// A snapshot that needs only some of the blobs in the source's packs: the wanted sealed
    /// units move into new packs (never decrypted), and the destination holds exactly a
    /// restorable copy of that snapshot.
    @Test func aCopyOfSharedKeysMovesSomeUnitsOfAPackIntoNewPacks() async throws {
        try await withTemporaryDirectory { dir in
            let setup = try await setUp(dir, sharedKeys: true)
            #expect(try setup.run(["backup", dir + "/src"], setup.source).status == 0)
            // The second snapshot lacks most of the first's notes, whose blobs share its packs.
            for i in 0..<30 { try FileManager.default.removeItem(atPath: dir + "/src/studies/2024/patient-001/note-\(i).txt") }
            try Data(repeating: 3, count: 200_000).write(to: URL(fileURLWithPath: dir + "/src/new.bin"))
            #expect(try setup.run(["backup", dir + "/src"], setup.source).status == 0)

            let copied = try setup.copy(["--latest"])
            #expect(copied.status == 0 && (copied.report["copied"] as? [Any])?.count == 1, "\(copied.report)")
            let sourcePacks = Set(try packNames(in: dir + "/repo"))
            let shippedPacks = Set(try packNames(in: dir + "/dst"))
            #expect(!shippedPacks.isSubset(of: sourcePacks), "no pack was made of some units of another")
            let verify = try setup.run(["verify", "--read-data"], setup.destination)
            #expect(verify.status == 0, "\(verify.stderr)")
            let restored = try setup.run(["restore", "latest", "--target", dir + "/back"], setup.destination)
            #expect(restored.status == 0, "\(restored.stderr)")
            let differences = compareTrees(dir + "/src", dir + "/back/src", checkDirectoryTimes: false)
            #expect(differences.isEmpty, "\(differences.prefix(5))")
        }
    }

    /// A copy killed after its data arrived and before its snapshot: the destination verifies,
    /// and the next copy completes it without shipping anything twice. Under keys of its own the
    /// next copy is still guided by the copy before the killed one, and what it makes restores
    /// byte for byte.
    @Test(arguments: [true, false])
    func aCopyKilledBeforeItsSnapshotIsCompletedByTheNextAndTheDestinationVerifies(sharedKeys: Bool) async throws {
        try await withTemporaryDirectory { dir in
            let setup = try await setUp(dir, sharedKeys: sharedKeys)
            #expect(try setup.run(["backup", dir + "/src"], setup.source).status == 0)
            #expect(try setup.copy().status == 0)
            try Data(repeating: 3, count: 200_000).write(to: URL(fileURLWithPath: dir + "/src/new-scan.bin"))
            #expect(try setup.run(["backup", dir + "/src"], setup.source).status == 0)
            let killed = try setup.copy(["--latest"], fault: "copy-before-snapshot")
            #expect(killed.status == 137, "\(killed.report)")
            let between = try setup.run(["verify"], setup.destination)
            #expect(between.status == 0, "\(between.stderr)")

            let resumed = try setup.copy(["--latest"])
            #expect(resumed.status == 0 && (resumed.report["copied"] as? [Any])?.count == 1, "\(resumed.report)")
            // Every blob reached the destination before the kill: nothing is shipped twice.
            #expect(resumed.report["blobs_copied"] as? Int == 0, "\(resumed.report)")
            if !sharedKeys { #expect((resumed.report["blobs_reused"] as? Int ?? 0) > 0, "\(resumed.report)") }
            let verify = try setup.run(["verify", "--read-data"], setup.destination)
            #expect(verify.status == 0, "\(verify.stderr)")
            let restored = try setup.run(["restore", "latest", "--target", dir + "/back"], setup.destination)
            #expect(restored.status == 0, "\(restored.stderr)")
            let differences = compareTrees(dir + "/src", dir + "/back/src", checkDirectoryTimes: false)
            #expect(differences.isEmpty, "\(differences.prefix(5))")
        }
    }
}
