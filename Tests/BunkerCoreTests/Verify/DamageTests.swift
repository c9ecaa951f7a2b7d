@testable import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// A repository with one file big enough to span packs, and a small one in a pack of its own.
private func makeRepository(in dir: String) async throws -> (Repository, BackupResult) {
    try FileManager.default.createDirectory(atPath: dir + "/src/sub", withIntermediateDirectories: true)
    try TreeGenerator.writeRandomFile(dir + "/src/large.bin", size: 3 << 20, seed: 21)
    try TreeGenerator.writeRandomFile(dir + "/src/sub/small.bin", size: 2000, seed: 22)
    let repo = try await TestRepository.create(at: dir + "/repo")
    let result = try await TestRepository.backup(repo, [dir + "/src"])
    return (repo, result)
}

/// The pack holding the first chunk of `path` inside the snapshot.
private func packOfFile(_ repo: Repository, _ result: BackupResult, _ components: [String]) async throws -> ID {
    try await locationOfFile(repo, result, components).pack
}

/// Where the file's first chunk is stored.
private func locationOfFile(_ repo: Repository, _ result: BackupResult, _ components: [String]) async throws -> BlobLocation {
    var tree = try await repo.loadTree(result.snapshot.tree)
    var node = tree.node(named: "src")!
    for name in components {
        tree = try await repo.loadTree(node.subtree!)
        node = tree.node(named: name)!
    }
    return repo.index.lookup(node.content![0])!
}

private func packPath(_ dir: String, _ pack: ID) -> String {
    dir + "/repo/data/\(pack.hex.prefix(2))/\(pack.hex)"
}

@Suite struct DamageTests {
    @Test func flippedBitIsNamedByVerifyAndRefusedByRestore() async throws {
        try await withTemporaryDirectory { dir in
            let (repo, result) = try await makeRepository(in: dir)
            // A bit inside large.bin's first chunk (blobs of several files share a pack, in an
            // order that depends on which file was read first).
            let location = try await locationOfFile(repo, result, ["large.bin"])
            let pack = location.pack
            let path = packPath(dir, pack)
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            bytes[Int(location.blob.offset) + 20] ^= 0x04
            chmod(path, 0o600)
            try bytes.write(to: URL(fileURLWithPath: path))

            let fresh = try await TestRepository.open(at: dir + "/repo")
            let structural = try await Checker(repository: fresh).check(readData: false)
            #expect(structural.ok, "a flipped bit keeps the size: only reading data finds it")
            let report = try await Checker(repository: fresh).check(readData: true)
            #expect(!report.ok)
            let issue = try #require(report.errors.first { $0.object == "data/\(pack.hex)" })
            #expect(issue.kind == "damaged_pack")
            #expect(issue.affected.contains(AffectedFile(snapshot: result.snapshotID.hex, path: "/src/large.bin")))
            #expect(!issue.affected.contains { $0.path.hasSuffix("small.bin") })

            let restore = try await Restorer(loader: fresh).restore(tree: result.snapshot.tree, to: dir + "/out")
            let failure = try #require(restore.failures.first)
            #expect(restore.failures.count == 1)
            #expect(failure.path == "src/large.bin")
            #expect(failure.message.contains(pack.hex), "the message names the pack: \(failure.message)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/out/src/large.bin"))
            #expect(FileManager.default.contents(atPath: dir + "/out/src/sub/small.bin") == FileManager.default.contents(atPath: dir + "/src/sub/small.bin"))
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir + "/out/src").filter { $0.hasPrefix(".bunker-restore") }
            #expect(leftovers.isEmpty)
        }
    }

    /// A changed byte anywhere in a pack, in a unit, in the sealed header or in its length, is
    /// found by `verify --read-data`, which checks a local pack in runs (never whole).
    @Test func aChangedByteAnywhereInAPackIsFoundByReadingData() async throws {
        try await withTemporaryDirectory { dir in
            let (repo, result) = try await makeRepository(in: dir)
            let pack = try await packOfFile(repo, result, ["large.bin"])
            let path = packPath(dir, pack)
            chmod(path, 0o600)
            let original = try Data(contentsOf: URL(fileURLWithPath: path))
            let size = original.count
            let headerLength = Int(original[(size - 4)...].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }.littleEndian)
            let places = [0, size / 3, size - 4 - headerLength, size - 4 - headerLength / 2, size - 5, size - 4, size - 1]
            for place in places {
                var bytes = original
                bytes[place] ^= 0x01
                try bytes.write(to: URL(fileURLWithPath: path))
                let report = try await Checker(repository: try await TestRepository.open(at: dir + "/repo")).check(readData: true)
                let issue = report.errors.first { $0.object == "data/\(pack.hex)" }
                #expect(issue?.kind == "damaged_pack", "a bit changed at byte \(place) of \(size) went unseen")
            }
            try original.write(to: URL(fileURLWithPath: path))
            let whole = try await Checker(repository: try await TestRepository.open(at: dir + "/repo")).check(readData: true)
            #expect(whole.ok, "the pack restored, nothing is damaged: \(whole.errors)")
        }
    }

    /// A unit sealed again with its own plaintext (another nonce) authenticates and holds the
    /// right blob, but the pack is no longer the one its name says, which a restore's check and
    /// `bunker copy` refuse: verify must say so too, locally (in runs) and from an object store.
    @Test func aPackNoLongerMatchingItsNameIsDamagedThoughEveryUnitAuthenticates() async throws {
        try await withTemporaryDirectory { dir in
            let (repo, result) = try await makeRepository(in: dir)
            let location = try await locationOfFile(repo, result, ["large.bin"])
            let path = packPath(dir, location.pack)
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            let range = Int(location.blob.offset)..<(Int(location.blob.offset) + Int(location.blob.length))
            let resealed = try repo.key.seal(try repo.key.open(Data(bytes[range])))
            try #require(resealed.count == range.count && resealed != Data(bytes[range]))
            bytes.replaceSubrange(range, with: resealed)
            chmod(path, 0o600)
            try bytes.write(to: URL(fileURLWithPath: path))

            let local = try await TestRepository.open(at: dir + "/repo")
            let (remote, _) = try await TestRepository.openCounting(at: dir + "/repo")
            for (name, repository) in [("local", local), ("remote", remote)] {
                let report = try await Checker(repository: repository).check(readData: true)
                let issue = report.errors.first { $0.object == "data/\(location.pack.hex)" }
                #expect(issue?.kind == "damaged_pack", "\(name)")
                #expect(issue?.message.contains("SHA-256 does not match its name") == true, "\(name): \(issue?.message ?? "no issue")")
            }
        }
    }

    /// A bundle member that authenticates but is not what its id says, in a pack named by its
    /// SHA-256: only the check of each blob against its id finds it (a local verify computes the
    /// pack's hash and the blobs' ids together). Verify must name the pack and that blob alone,
    /// locally (in runs) and from an object store.
    /// With the SHA extensions (ids and the pack's hash in one pass) and without them.
    @Test(arguments: [true, false])
    func aBlobNotMatchingItsIDIsFoundThoughItsPackMatchesItsName(extensions: Bool) async throws {
        try await SHA256Stream.$disabledForTesting.withValue(!extensions) {
            try await withTemporaryDirectory { dir in
                let repo = try await TestRepository.create(at: dir + "/repo")
                let forge = SnapshotForge(repo)
                var rng = SeededGenerator(seed: 5)
                func text(_ count: Int) -> String {
                    String((0..<count).map { _ in "abcdefghijklmnopqrstuvwxyz .,\n".randomElement(using: &rng)! })
                }
                let nodes = try await forge.bundledFiles([
                    (Array("a.txt".utf8), text(5000), nil),
                    (Array("b.txt".utf8), text(7001), text(7001)),
                    (Array("c.txt".utf8), text(300), nil),
                ])
                try await forge.snapshot(nodes)
                let wrong = nodes[1].content![0]
                let pack = try #require(repo.index.lookup(wrong)?.pack)

                let local = try await TestRepository.open(at: dir + "/repo")
                let (remote, _) = try await TestRepository.openCounting(at: dir + "/repo")
                for (name, repository) in [("local", local), ("remote", remote)] {
                    let report = try await Checker(repository: repository).check(readData: true)
                    #expect(report.errors.map(\.object) == ["data/\(pack.hex)"], "\(name): \(report.errors.map(\.message))")
                    let message = report.errors.first?.message ?? ""
                    #expect(message.contains("1 of its") && message.contains(wrong.short), "\(name): \(message)")
                    #expect(!message.contains("SHA-256 does not match"), "\(name): the pack is what its name says: \(message)")
                }
                #expect((local.key.pairedIDs != nil) == (extensions && SHA256Stream.isAvailable))
            }
        }
    }

    /// From a local directory, `verify --read-data` checks a pack in runs of about a MiB, never
    /// holding a whole pack, yet reads every byte of it; from an object store it loads each pack
    /// whole, once (a request per run would multiply the requests).
    @Test func aLocalVerifyReadsEveryByteOfAPackButNeverTheWholePackAtOnce() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/src", withIntermediateDirectories: true)
            try TreeGenerator.writeRandomFile(dir + "/src/large.bin", size: 10 << 20, seed: 31)
            try Data(repeating: 0x41, count: 3 << 20).write(to: URL(fileURLWithPath: dir + "/src/text.txt"))
            let repo = try await TestRepository.create(at: dir + "/repo", packSize: 4 << 20)
            _ = try await TestRepository.backup(repo, [dir + "/src"])

            let counting = LoadCountingStorage(try StorageLocation.storage(for: dir + "/repo"))
            let local = try await Repository.open(storage: counting, password: TestRepository.password)
            let report = try await Checker(repository: local).check(readData: true)
            #expect(report.ok, "\(report.errors)")
            let sizes = Dictionary(uniqueKeysWithValues: try await local.storage.list(.pack).map { ($0.handle.name, $0.size) })
            #expect(sizes.values.contains { $0 > 2 * Checker.runBytes }, "the test needs packs of several runs: \(sizes)")
            let ranges = Dictionary(grouping: counting.packRanges, by: \.pack)
            #expect(Set(ranges.keys) == Set(sizes.keys), "every pack is read")
            for (pack, loads) in ranges {
                let size = try #require(sizes[pack])
                #expect(loads.allSatisfy { $0.range != nil && $0.range!.count < size }, "pack \(pack) of \(size) bytes was loaded whole")
                #expect(loads.allSatisfy { $0.range!.count <= Checker.runBytes }, "a run is about a MiB: \(loads.map { $0.range!.count })")
                var covered = IndexSet()
                for load in loads { covered.insert(integersIn: load.range!) }
                #expect(covered == IndexSet(integersIn: 0..<size), "every byte of pack \(pack) is read")
            }

            let (remote, remoteCounting) = try await TestRepository.openCounting(at: dir + "/repo")
            let remoteReport = try await Checker(repository: remote).check(readData: true)
            #expect(remoteReport.ok)
            // (The walk of the snapshot's trees reads listings by range on its own.)
            let whole = remoteCounting.packRanges.filter { $0.range == nil }.map(\.pack)
            #expect(whole.sorted() == sizes.keys.sorted(), "each pack is loaded whole once: \(remoteCounting.packLoads)")
        }
    }

    /// A blob that decrypts but is not the one its id names (another plaintext sealed with the
    /// repository's key: what a bug or a forged pack would give) passes authentication. A
    /// restore reads file content without checking each blob against its id and checks the
    /// file's SHA-256 instead: the file must still fail, named with the blob and its pack, and be
    /// absent, from a local directory and through the read-ahead of an object store alike.
    @Test func aValidlySealedWrongBlobIsNamedAndNoFileIsLeft() async throws {
        try await withTemporaryDirectory { dir in
            let (repo, result) = try await makeRepository(in: dir)
            let location = try await locationOfFile(repo, result, ["large.bin"])
            try #require(location.blob.rawLength == 0 && location.blob.member == nil, "random data is stored uncompressed, alone")
            var rng = SeededGenerator(seed: 99)
            let other = Data((0..<(Int(location.blob.length) - MasterKey.sealOverhead)).map { _ in UInt8.random(in: 0...255, using: &rng) })
            let forged = try repo.key.seal(other)
            try #require(forged.count == Int(location.blob.length))
            let path = packPath(dir, location.pack)
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            bytes.replaceSubrange(Int(location.blob.offset)..<(Int(location.blob.offset) + forged.count), with: forged)
            chmod(path, 0o600)
            try bytes.write(to: URL(fileURLWithPath: path))

            let local = try await TestRepository.open(at: dir + "/repo")
            let remote = try await Repository.open(
                storage: ConcurrencyLimitedStorage(try StorageLocation.storage(for: dir + "/repo"), limit: 8), password: TestRepository.password)
            #expect(remote.readsAhead, "a concurrency-limited storage restores through the read-ahead")
            for (name, loader) in [("local", local), ("remote", remote)] {
                let restore = try await Restorer(loader: loader).restore(tree: result.snapshot.tree, to: dir + "/out-" + name)
                #expect(restore.failures.map(\.path) == ["src/large.bin"], "\(name)")
                let message = restore.failures.first?.message ?? ""
                #expect(message.contains(location.blob.id.short) && message.contains(location.pack.hex), "\(name): the message names the blob and its pack: \(message)")
                #expect(!FileManager.default.fileExists(atPath: dir + "/out-\(name)/src/large.bin"), "\(name)")
                #expect(FileManager.default.contents(atPath: dir + "/out-\(name)/src/sub/small.bin") == FileManager.default.contents(atPath: dir + "/src/sub/small.bin"), "\(name)")
            }
            let report = try await Checker(repository: local).check(readData: true)
            #expect(report.errors.contains { $0.object == "data/\(location.pack.hex)" }, "verify finds it too")
        }
    }

    @Test func truncatedPackIsFoundWithoutReadingData() async throws {
        try await withTemporaryDirectory { dir in
            let (repo, result) = try await makeRepository(in: dir)
            let pack = try await packOfFile(repo, result, ["large.bin"])
            let path = packPath(dir, pack)
            chmod(path, 0o600)
            truncate(path, 1000)
            let fresh = try await TestRepository.open(at: dir + "/repo")
            let report = try await Checker(repository: fresh).check(readData: false)
            let issue = try #require(report.errors.first { $0.object == "data/\(pack.hex)" })
            #expect(issue.message.contains("truncated"))
            #expect(issue.affected.map(\.path).contains("/src/large.bin"))
            let restore = try await Restorer(loader: fresh).restore(tree: result.snapshot.tree, to: dir + "/out")
            // The pack may also hold the listing of src/sub, written last: then that directory
            // is reported too. Nothing else is.
            #expect(restore.failures.map(\.path).contains("src/large.bin"))
            #expect(Set(restore.failures.map(\.path)).isSubset(of: ["src/large.bin", "src/sub"]))
        }
    }

    @Test func deletedPackIsNamedWithTheFilesItHeld() async throws {
        try await withTemporaryDirectory { dir in
            let (repo, result) = try await makeRepository(in: dir)
            let pack = try await packOfFile(repo, result, ["sub", "small.bin"])
            unlink(packPath(dir, pack))
            let fresh = try await TestRepository.open(at: dir + "/repo")
            let report = try await Checker(repository: fresh).check(readData: true)
            let issue = try #require(report.errors.first { $0.kind == "missing_pack" })
            #expect(issue.object == "data/\(pack.hex)")
            // The file, or (when a listing above it shared the pack: small files are bundled and
            // the last bundle is written with the root listing) the directory holding it.
            let paths = issue.affected.map(\.path)
            #expect(paths.contains { ["/src/sub/small.bin", "/src/sub", "/src", "/"].contains($0) }, "\(paths)")
        }
    }

    @Test func dataSubsetsPartitionThePacks() async throws {
        try await withTemporaryDirectory { dir in
            let (repo, _) = try await makeRepository(in: dir)
            var total = 0
            for n in 1...3 {
                total += try await Checker(repository: repo).check(readData: true, subset: .part(n, of: 3)).packsRead
            }
            #expect(total == (try await repo.storage.list(.pack).count))
            #expect(throws: BunkerError.self) { try DataSubset(parsing: "4/3") }
            #expect(try DataSubset(parsing: "10%") == .percent(10))
        }
    }

    @Test func damagedSnapshotIsReported() async throws {
        try await withTemporaryDirectory { dir in
            let (_, result) = try await makeRepository(in: dir)
            let path = dir + "/repo/snapshots/\(result.snapshotID.hex)"
            chmod(path, 0o600)
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            bytes[bytes.count - 1] ^= 1
            try bytes.write(to: URL(fileURLWithPath: path))
            let fresh = try await TestRepository.open(at: dir + "/repo")
            let report = try await Checker(repository: fresh).check(readData: false)
            #expect(report.errors.contains { $0.kind == "damaged_snapshot" && $0.object.hasSuffix(result.snapshotID.hex) })
            // Listing leaves the damaged snapshot out instead of failing, so others stay usable.
            #expect(try await fresh.snapshots().isEmpty)
        }
    }
}

@Suite struct DamagedIndexTests {
    @Test func damagedIndexIsReportedByVerifyAndRefusedOnOpen() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 100_000)
            let repo = try await TestRepository.create(at: dir + "/repo")
            try await TestRepository.backup(repo, [dir + "/src"])
            let name = try #require(try FileManager.default.contentsOfDirectory(atPath: dir + "/repo/index").first)
            let path = dir + "/repo/index/" + name
            chmod(path, 0o600)
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            bytes[20] ^= 0x80
            try bytes.write(to: URL(fileURLWithPath: path))
            await #expect {
                _ = try await TestRepository.open(at: dir + "/repo")
            } throws: { error in
                (error as? BunkerError)?.message.contains("index/\(name)") == true
            }
            let unindexed = try await Repository.open(storage: StorageLocation.storage(for: dir + "/repo"), password: TestRepository.password, loadIndex: false)
            let report = try await Checker(repository: unindexed).check(readData: false)
            #expect(report.errors.contains { $0.kind == "damaged_index" && $0.object == "index/\(name)" })
        }
    }
}
