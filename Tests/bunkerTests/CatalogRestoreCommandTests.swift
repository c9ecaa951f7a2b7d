import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// The repository alone brings the catalog back on a new machine: every operation ships the
/// audit trail (rows, signed anchors, key) and the users into it, and `bunker catalog restore`
/// rebuilds them in an empty data directory, where `bunker audit verify` passes.
@Suite(.serialized) struct CatalogRestoreCommandTests {
    func run(_ arguments: [String], _ environment: [String: String]) throws -> BunkerProcess.Outcome {
        try BunkerProcess.run(arguments, environment: environment)
    }

    @Test func aNewDataDirectoryGetsTheTrailTheUsersAndTheBackupsBackAndItVerifies() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 1 << 20)
            _ = try await TestRepository.create(at: dir + "/repo")
            let old = ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password, "BUNKER_DATA_DIR": dir + "/old"]
            #expect(try run(["backup", dir + "/src"], old).status == 0)
            try "alice-password\n".write(toFile: dir + "/pw", atomically: true, encoding: .utf8)
            let added = try run(["user", "add", "alice", "--full-name", "Alice Admin", "--role", "SYSTEM_ADMIN", "--password-file", dir + "/pw"], old)
            #expect(added.status == 0, "\(added.stderr)")
            #expect(try run(["backup", dir + "/src"], old).status == 0)
            let verified = try run(["verify"], old)
            #expect(verified.status == 0, "\(verified.stderr)")
            let oldTrail = try run(["audit", "export", "--format", "jsonl"], old).stdout.split(separator: "\n")
            #expect(oldTrail.count == 7, "two backups, a user and a verify: \(oldTrail)")

            // The machine is lost: only the repository and its password are left.
            try FileManager.default.removeItem(atPath: dir + "/old")
            let new = ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password, "BUNKER_DATA_DIR": dir + "/new"]
            let restored = try run(["catalog", "restore", "--json"], new)
            #expect(restored.status == 0, "\(restored.stderr)")
            let result = try #require(try JSONSerialization.jsonObject(with: Data(restored.stdout.utf8)) as? [String: Any], "\(restored.stdout)")
            #expect(result["audit_rows"] as? Int == oldTrail.count, "\(result)")
            #expect(result["backups"] as? Int == 2 && result["users"] as? Int == 1, "\(result)")

            let check = try run(["audit", "verify"], new)
            #expect(check.status == 0, "\(check.stderr)\(check.stdout)")
            let newTrail = try run(["audit", "export", "--format", "jsonl"], new).stdout.split(separator: "\n")
            #expect(Array(newTrail.prefix(oldTrail.count)) == oldTrail, "the restored rows differ from those written")
            #expect(newTrail.dropFirst(oldTrail.count).contains { $0.contains("\"catalog.restore\"") })
            let users = try run(["user", "list", "--json"], new)
            #expect(users.stdout.contains("\"alice\""), "\(users.stdout)")

            // Life goes on in the new directory, and its trail keeps shipping and verifying.
            #expect(try run(["backup", dir + "/src"], new).status == 0)
            #expect(try run(["audit", "verify"], new).status == 0)
            let again = try run(["catalog", "restore"], new)
            #expect(again.status == 64, "a second restore over a catalog: \(again.stderr)")
            // The new directory carries the trail on under an id of its own; a third machine
            // takes that trail, which holds the old one whole, without being asked to choose.
            let continuing = try String(contentsOfFile: dir + "/new/installation", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(result["new_installation"] as? String == continuing && result["installation"] as? String != continuing, "\(result)")
            let newer = ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password, "BUNKER_DATA_DIR": dir + "/newer"]
            let third = try run(["catalog", "restore", "--json"], newer)
            #expect(third.status == 0, "\(third.stderr)")
            let thirdResult = try JSONSerialization.jsonObject(with: Data(third.stdout.utf8)) as? [String: Any]
            #expect(thirdResult?["installation"] as? String == continuing, "\(third.stdout)")
            let last = try run(["audit", "verify"], newer)
            #expect(last.status == 0, "\(last.stderr)")
        }
    }

    /// A recovery drill: a second machine restores the catalog from the repository while the
    /// first one lives on. Both go on writing their trails into the same repository, each under
    /// its own id, so neither's rows are taken for the other's; a third machine is asked whose
    /// trail to restore, and gets all of the one it names.
    @Test func aDrillMachineAndTheLiveOneShipTrailsThatDoNotCollide() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 1 << 20)
            _ = try await TestRepository.create(at: dir + "/repo")
            func machine(_ name: String) -> [String: String] {
                ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password, "BUNKER_DATA_DIR": dir + "/" + name]
            }
            #expect(try run(["backup", dir + "/src"], machine("live")).status == 0)
            let drill = try run(["catalog", "restore"], machine("drill"))
            #expect(drill.status == 0, "\(drill.stderr)")
            #expect(try run(["verify"], machine("drill")).status == 0)
            #expect(try run(["backup", dir + "/src", "--tag", "after-the-drill"], machine("live")).status == 0)
            #expect(try run(["verify"], machine("drill")).status == 0)

            let live = try String(contentsOfFile: dir + "/live/installation", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            let liveRows = try run(["audit", "export", "--format", "jsonl"], machine("live")).stdout.split(separator: "\n")
            let ambiguous = try run(["catalog", "restore"], machine("third"))
            #expect(ambiguous.status == 64 && ambiguous.stderr.contains(live) && ambiguous.stderr.contains("--installation"), "\(ambiguous.stderr)")
            let third = try run(["catalog", "restore", "--installation", live], machine("third"))
            #expect(third.status == 0, "\(third.stderr)")
            let thirdRows = try run(["audit", "export", "--format", "jsonl"], machine("third")).stdout.split(separator: "\n")
            #expect(Array(thirdRows.prefix(liveRows.count)) == liveRows, "every row the live machine wrote, the backup after the drill included")
            #expect(try run(["audit", "verify"], machine("third")).status == 0)
        }
    }

    @Test func aMissingSegmentIsRefusedAsTampering() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 1 << 20)
            _ = try await TestRepository.create(at: dir + "/repo")
            let old = ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password, "BUNKER_DATA_DIR": dir + "/old"]
            for _ in 0..<3 { #expect(try run(["backup", dir + "/src"], old).status == 0) }
            let segments = try FileManager.default.contentsOfDirectory(atPath: dir + "/repo/catalog").sorted()
            #expect(segments.count == 3, "\(segments)")
            try FileManager.default.removeItem(atPath: dir + "/repo/catalog/" + segments[1])

            let new = ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password, "BUNKER_DATA_DIR": dir + "/new"]
            let restored = try run(["catalog", "restore"], new)
            #expect(restored.status == 9, "\(restored.stderr)")
            #expect(restored.stderr.contains("not contiguous"), "\(restored.stderr)")
        }
    }
}
