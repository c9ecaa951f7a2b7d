@testable import BunkerCore
import BunkerTesting
import Foundation
import Synchronization
import Testing

/// Bundles: small data blobs (database pages) compressed and sealed together, each member still
/// deduplicated, restored, verified and pruned on its own.
@Suite struct BundleTests {
    /// A 4 KiB-page database of about 6 MiB in `dir/db`.
    private func makeDatabase(in dir: String) throws -> String {
        try FileManager.default.createDirectory(atPath: dir + "/db", withIntermediateDirectories: true)
        let db = dir + "/db/app.db"
        try runSQLite(db, """
            PRAGMA page_size=4096;
            CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 40000)
            INSERT INTO notes SELECT i, printf('note %d %s', i, hex(randomblob(60))) FROM n;
            """)
        return db
    }

    private func members(_ repo: Repository) -> [PackedBlob] {
        repo.index.blobsByPack().values.joined().filter { $0.member != nil }
    }

    private func bundleCount(_ repo: Repository) -> Int {
        Set(repo.index.blobsByPack().flatMap { pack, blobs in blobs.filter { $0.member != nil }.map { "\(pack.hex)/\($0.offset)" } }).count
    }

    @Test func databasePagesAreBundledAndRestoreVerifyAndPruneFollowTheBundles() async throws {
        try await withTemporaryDirectory { dir in
            let db = try makeDatabase(in: dir)
            // 8 KiB chunks: two 4 KiB pages each (the repository's default page-aligned chunk size).
            let chunks = try #require(try FileManager.default.attributesOfItem(atPath: db)[.size] as? Int) / 8192
            let repo = try await TestRepository.create(at: dir + "/repo")
            let first = try await TestRepository.backup(repo, [dir + "/db"])
            let bundled = members(repo)
            // Every chunk but a few duplicates (empty pages) is a bundle member, about 64 a bundle.
            #expect(bundled.count > chunks * 9 / 10, "\(bundled.count) of \(chunks) chunks bundled")
            #expect(bundleCount(repo) * 32 < bundled.count, "\(bundleCount(repo)) bundles")

            // A new process reads the bundles back from the index files; restore and verify work.
            let reopened = try await TestRepository.open(at: dir + "/repo")
            #expect(members(reopened).count == bundled.count)
            let report = try await Restorer(loader: reopened).restore(tree: first.snapshot.tree, to: dir + "/out1")
            #expect(report.failures.isEmpty, "\(report.failures)")
            #expect(FileManager.default.contents(atPath: dir + "/out1/db/app.db") == FileManager.default.contents(atPath: db))
            let check = try await Checker(repository: reopened).check(readData: true)
            #expect(check.ok, "\(check.errors.map(\.message))")

            // Scattered row changes: only the changed pages are new, and they are bundled together.
            try runSQLite(db, "UPDATE notes SET body = 'changed' WHERE id IN (5, 4000, 8000, 12000, 16000, 20000, 24000, 28000, 32000, 39000);")
            let expected = FileManager.default.contents(atPath: db)
            let second = try await TestRepository.backup(reopened, [dir + "/db"])
            let summary = try #require(second.snapshot.summary)
            // Ten chunks, the header page's (its change counter), maybe one interior page's, two listings.
            #expect(summary.blobsAdded <= 14, "added \(summary.blobsAdded) blobs")

            // Forget the first snapshot: its old page versions sit in bundles beside pages still in
            // use, so prune must make those bundles again without the unused members.
            var policy = RetentionPolicy()
            policy.keepLast = 1
            policy.minimumAge = RetentionDuration()
            _ = try await reopened.forget(policy: policy)
            var options = PruneOptions()
            options.maxUnused = .percent(0)
            let pruned = try await Pruner(repository: reopened, options: options).run()
            #expect(pruned.packsRepacked > 0)
            #expect(pruned.unusedBytesRemaining == 0)

            let fresh = try await TestRepository.open(at: dir + "/repo")
            let after = try await Checker(repository: fresh).check(readData: true)
            #expect(after.ok, "\(after.errors.map(\.message))")
            let again = try await Pruner(repository: fresh, options: options).run()
            #expect(again.blobsUnused == 0 && again.packsRepacked == 0, "the old page versions are gone")
            let restored = try await Restorer(loader: fresh).restore(tree: second.snapshot.tree, to: dir + "/out2")
            #expect(restored.failures.isEmpty, "\(restored.failures)")
            #expect(FileManager.default.contents(atPath: dir + "/out2/db/app.db") == expected)
        }
    }

    @Test func smallFilesShareBundlesAndEachRestoresOnItsOwn() async throws {
        try await withTemporaryDirectory { dir in
            var generator = SystemRandomNumberGenerator()
            for d in 0..<4 {
                try FileManager.default.createDirectory(atPath: "\(dir)/src/d\(d)", withIntermediateDirectories: true)
                for f in 0..<150 {
                    let body = "{\"patient\": \(d * 1000 + f), \"note\": \"\(UInt64.random(in: 0...UInt64.max, using: &generator))\"}\n"
                    try Data(String(repeating: body, count: 1 + f % 40).utf8).write(to: URL(fileURLWithPath: "\(dir)/src/d\(d)/f\(f).json"))
                }
            }
            // A large file's chunks stay alone, beside the bundles.
            try Data((0..<(300 << 10)).map { _ in UInt8.random(in: 0...255, using: &generator) }).write(to: URL(fileURLWithPath: dir + "/src/big.bin"))
            let repo = try await TestRepository.create(at: dir + "/repo")
            let result = try await TestRepository.backup(repo, [dir + "/src"])
            // Every small file, and the large file's chunks below 64 KiB.
            #expect(members(repo).count >= 600, "every small file is a bundle member")
            #expect(bundleCount(repo) < 20, "\(bundleCount(repo)) bundles for 600 files")
            #expect(repo.index.blobsByPack().values.joined().contains { $0.member == nil && $0.type == .data }, "the large file's larger chunks are not bundled")

            let fresh = try await TestRepository.open(at: dir + "/repo")
            let check = try await Checker(repository: fresh).check(readData: true)
            #expect(check.ok, "\(check.errors.map(\.message))")
            let report = try await Restorer(loader: fresh).restore(tree: result.snapshot.tree, to: dir + "/out")
            #expect(report.failures.isEmpty && report.filesRestored == 601, "\(report.failures)")
            #expect(compareTrees(dir + "/src", dir + "/out/src", checkDirectoryTimes: false) == [])
            // One file alone, by a process that has opened no bundle yet.
            let single = try await TestRepository.open(at: dir + "/repo")
            let one = try await Restorer(loader: single, includes: ["src/d2/f77.json"]).restore(tree: result.snapshot.tree, to: dir + "/one")
            #expect(one.filesRestored == 1 && one.failures.isEmpty)
            #expect(FileManager.default.contents(atPath: dir + "/one/src/d2/f77.json") == FileManager.default.contents(atPath: dir + "/src/d2/f77.json"))
        }
    }

    /// Files restored at once that share a bundle: the bundle is read from storage once, not once
    /// per file. Loads are slowed down so that the files' requests overlap.
    @Test func filesRestoredAtOnceReadTheirSharedBundleOnce() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/src", withIntermediateDirectories: true)
            for f in 0..<60 {
                try Data(String(repeating: "{\"patient\": \(f), \"note\": \"\(UUID())\"}\n", count: 20 + f).utf8).write(to: URL(fileURLWithPath: "\(dir)/src/f\(f).json"))
            }
            let repo = try await TestRepository.create(at: dir + "/repo")
            let result = try await TestRepository.backup(repo, [dir + "/src"])
            let bundles = bundleCount(repo)
            #expect(members(repo).count == 60 && bundles >= 1)

            let counting = LoadCountingStorage(try StorageLocation.storage(for: dir + "/repo"), delay: .milliseconds(20))
            let fresh = try await Repository.open(storage: counting, password: TestRepository.password)
            let before = counting.packLoads.count
            let report = try await Restorer(loader: fresh).restore(tree: result.snapshot.tree, to: dir + "/out")
            #expect(report.failures.isEmpty && report.filesRestored == 60, "\(report.failures)")
            #expect(compareTrees(dir + "/src", dir + "/out/src", checkDirectoryTimes: false) == [])
            let bundleUnits = Set(repo.index.blobsByPack().flatMap { pack, blobs in blobs.filter { $0.member != nil }.map { "\(pack.hex)@\($0.offset)" } })
            let loads = counting.packLoads.dropFirst(before).filter { bundleUnits.contains($0) }
            #expect(loads.count == bundles, "\(loads.count) reads of \(bundles) bundles: \(loads)")
        }
    }

    /// From an object store (a storage with a concurrency limit), units of a pack a little apart
    /// are read with one request; from a local directory, each run of adjacent units with its own.
    @Test func unitsALittleApartAreReadTogetherFromAnObjectStore() async throws {
        try await withTemporaryDirectory { dir in
            var generator = SystemRandomNumberGenerator()
            try FileManager.default.createDirectory(atPath: dir + "/src", withIntermediateDirectories: true)
            try Data((0..<(2 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }).write(to: URL(fileURLWithPath: dir + "/src/big.bin"))
            let repo = try await TestRepository.create(at: dir + "/repo")
            try await TestRepository.backup(repo, [dir + "/src"])
            // Three whole blobs of one pack, in pack order; ask for the first and the third.
            let pack = try #require(repo.index.blobsByPack().first { $0.value.filter { $0.member == nil && $0.type == .data }.count >= 3 })
            let units = pack.value.filter { $0.member == nil && $0.type == .data }.sorted { $0.offset < $1.offset }
            let wanted = [units[0].id, units[2].id]

            for remote in [false, true] {
                let local = try StorageLocation.storage(for: dir + "/repo")
                let counting = LoadCountingStorage(local, delay: .zero)
                let storage: any Storage = remote ? ConcurrencyLimitedStorage(counting, limit: 8) : counting
                let fresh = try await Repository.open(storage: storage, password: TestRepository.password)
                let before = counting.packLoads.count
                let blobs = try await fresh.loadBlobs(wanted)
                #expect(blobs.map { fresh.key.blobID(of: $0) } == wanted)
                #expect(counting.packLoads.count - before == (remote ? 1 : 2), "remote: \(remote)")
            }
        }
    }

    @Test func aFlippedBitInABundleIsFoundAndNoWrongFileIsRestored() async throws {
        try await withTemporaryDirectory { dir in
            let db = try makeDatabase(in: dir)
            let repo = try await TestRepository.create(at: dir + "/repo")
            let result = try await TestRepository.backup(repo, [dir + "/db"])
            let victim = try #require(members(repo).first)
            let location = try #require(repo.index.lookup(victim.id))
            let path = dir + "/repo/data/" + String(location.pack.hex.prefix(2)) + "/" + location.pack.hex
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            bytes[Int(victim.offset) + Int(victim.length) / 2] ^= 0x10
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
            try bytes.write(to: URL(fileURLWithPath: path))

            let check = try await Checker(repository: repo).check(readData: true)
            #expect(!check.ok)
            #expect(check.errors.contains { $0.kind == "damaged_pack" && $0.message.contains("fail authentication") }, "\(check.errors.map(\.message))")

            let report = try await Restorer(loader: repo).restore(tree: result.snapshot.tree, to: dir + "/out")
            #expect(report.failures.map(\.path) == ["db/app.db"])
            #expect(!FileManager.default.fileExists(atPath: dir + "/out/db/app.db"))
            #expect(FileManager.default.fileExists(atPath: db))
        }
    }

    @Test func aVersionOneRepositoryGetsNoBundles() async throws {
        try await withTemporaryDirectory { dir in
            _ = try makeDatabase(in: dir)
            var config = RepositoryConfig.new(compressionLevel: 3, chunker: TestRepository.smallChunks, packSize: 512 << 10)
            config.version = 1
            let storage = try StorageLocation.storage(for: dir + "/repo", create: true)
            let repo = try await Repository.create(storage: storage, password: TestRepository.password, config: config, kdf: .testing)
            try await TestRepository.backup(repo, [dir + "/db"])
            #expect(members(repo).isEmpty)
            for info in try await storage.list(.index) {
                let plain = try await repo.loadSealed(.index, try #require(ID(hex: info.handle.name)))
                #expect(plain[plain.startIndex + 4] == 1, "index files stay version 1")
            }
        }
    }

    @Test func headersAndIndexFilesRoundTripBundlesAndRefuseMalformedOnes() throws {
        let ids = (0..<5).map { i in ID.sha256(of: Array("blob \(i)".utf8)) }
        let pack = ID.sha256(of: Array("pack".utf8))
        let blobs = [
            PackedBlob(type: .tree, id: ids[0], offset: 0, length: 100, rawLength: 0),
            PackedBlob(type: .data, id: ids[1], offset: 100, length: 228, rawLength: 700, member: BundleMember(offset: 0, length: 300)),
            PackedBlob(type: .data, id: ids[2], offset: 100, length: 228, rawLength: 700, member: BundleMember(offset: 300, length: 400)),
            PackedBlob(type: .data, id: ids[3], offset: 328, length: 50, rawLength: 90),
            PackedBlob(type: .data, id: ids[4], offset: 378, length: 128, rawLength: 0, member: BundleMember(offset: 0, length: 100)),
        ]
        let header = PackFormat.encodeHeader(blobs)
        #expect(header.count == PackFormat.headerLength(blobs))
        #expect(header.count == 2 * 41 + 2 * 13 + 3 * 36)
        #expect(try PackFormat.decodeHeader(header, pack: pack) == blobs)
        #expect(PackFormat.packSize(blobs) == 506 + header.count + 28 + 4)

        let file = IndexFile(supersedes: [ids[0]], packs: [(pack, blobs)])
        let encoded = file.encoded()
        #expect(encoded[4] == 2)
        let decoded = try IndexFile(decoding: encoded, name: pack)
        #expect(decoded.packs.count == 1 && decoded.packs[0].blobs == blobs && decoded.supersedes == [ids[0]])
        // Without bundles, version 1: what older readers understand.
        #expect(IndexFile(packs: [(pack, [blobs[0], blobs[3]])]).encoded()[4] == 1)

        // Members that do not fill their bundle, and a bundle in a version 1 index, are damage.
        var short = blobs
        short[2].member = BundleMember(offset: 300, length: 399)
        #expect(throws: BunkerError.self) { try PackFormat.decodeHeader(PackFormat.encodeHeader(short), pack: pack) }
        #expect(throws: BunkerError.self) { try IndexFile(decoding: IndexFile(packs: [(pack, short)]).encoded(), name: pack) }
        var versionOne = encoded
        versionOne[4] = 1
        #expect(throws: BunkerError.self) { try IndexFile(decoding: versionOne, name: pack) }
        #expect(throws: BunkerError.self) { try IndexFile(decoding: encoded.dropLast(3), name: pack) }
    }
}

/// A storage whose index listings name files a prune has just deleted: the first `ghostly`
/// listings carry one index file that is gone by the time it is read.
private final class VanishingIndexStorage: Storage {
    private let base: any Storage
    private let ghostly: Mutex<Int>

    init(_ base: any Storage, ghostlyListings: Int) {
        self.base = base
        self.ghostly = Mutex(ghostlyListings)
    }

    func save(_ handle: ObjectHandle, data: Data) async throws { try await base.save(handle, data: data) }
    func load(_ handle: ObjectHandle, range: Range<Int>?) async throws -> Data { try await base.load(handle, range: range) }
    func stat(_ handle: ObjectHandle) async throws -> ObjectInfo { try await base.stat(handle) }
    func remove(_ handle: ObjectHandle) async throws { try await base.remove(handle) }

    func list(_ kind: ObjectKind) async throws -> [ObjectInfo] {
        let listed = try await base.list(kind)
        let ghost = kind == .index && ghostly.withLock { left in
            defer { left -= 1 }
            return left > 0
        }
        guard ghost else { return listed }
        return [ObjectInfo(handle: ObjectHandle(.index, ID.sha256(of: Array("superseded".utf8))), size: 100)] + listed
    }
}

@Suite struct IndexReadingTests {
    @Test func openingWhileAPruneReplacesIndexFilesReadsTheWholeIndexOrSaysBusy() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/src", withIntermediateDirectories: true)
            try TreeGenerator.writeRandomFile(dir + "/src/a.bin", size: 300 << 10, seed: 3)
            let repo = try await TestRepository.create(at: dir + "/repo")
            try await TestRepository.backup(repo, [dir + "/src"])
            let base = try StorageLocation.storage(for: dir + "/repo")

            // Listed, then gone: read again, and the index is whole.
            let reopened = try await Repository.open(storage: VanishingIndexStorage(base, ghostlyListings: 2), password: TestRepository.password)
            #expect(reopened.index.count == repo.index.count && reopened.index.count > 0)

            // Gone at every listing: a "busy" answer, not a damaged repository.
            do {
                _ = try await Repository.open(storage: VanishingIndexStorage(base, ghostlyListings: 100), password: TestRepository.password)
                Issue.record("opened a repository whose index never held still")
            } catch let error as BunkerError {
                #expect(error.code == .repositoryLocked && error.message.contains("busy"), "\(error.message)")
            }
        }
    }
}
