@testable import BunkerCore
import BunkerTesting
import Foundation
import Synchronization
import Testing

/// A restore from an object store plans its reads and reads ahead (``ReadAheadLoader``): few,
/// large requests, each byte of a pack read once while the window has room (past it, the asks of
/// a batch are read on their own and some bytes may be read again), with the same result and the
/// same failures as a restore that asks file by file.
@Suite struct ReadAheadTests {
    /// A sample tree plus a few hundred small documents in many folders and a 6 MiB file.
    private func makeSource(in dir: String) throws -> String {
        let source = dir + "/src"
        try TreeGenerator.makeSampleTree(at: source)
        var rng = SeededGenerator(seed: 7)
        for folder in 0..<30 {
            let path = source + "/patients/p-\(folder)"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            for file in 0..<12 {
                try rng.text(Int(rng.next() % 20_000) + 200).write(to: URL(fileURLWithPath: path + "/doc-\(file).json"))
            }
        }
        try TreeGenerator.writeRandomFile(source + "/patients/scan.dcm", size: 6 << 20, seed: 9)
        return source
    }

    /// The repository at `path` as an object store's would be opened: behind a concurrency limit,
    /// each pack read counted.
    private func openRemote(_ path: String, failFirst: Int = 0, largerThan: Int = 0) async throws -> (Repository, LoadCountingStorage) {
        let counting = LoadCountingStorage(try StorageLocation.storage(for: path), failFirst: failFirst, largerThan: largerThan)
        let repository = try await Repository.open(storage: ConcurrencyLimitedStorage(counting, limit: 8), password: TestRepository.password)
        return (repository, counting)
    }

    @Test func aRestoreFromAnObjectStoreReadsEachPartOfAPackOnceInFewRequests() async throws {
        try await withTemporaryDirectory { dir in
            let source = try makeSource(in: dir)
            let repo = try await TestRepository.create(at: dir + "/repo")
            let snapshot = try await TestRepository.backup(repo, [source]).snapshot

            // File by file (a local directory): one request per listing, bundle or batch.
            let local = LoadCountingStorage(try StorageLocation.storage(for: dir + "/repo"))
            let direct = try await Repository.open(storage: local, password: TestRepository.password)
            #expect(!direct.readsAhead)
            let plain = try await Restorer(loader: direct).restore(tree: snapshot.tree, to: dir + "/plain")
            #expect(plain.failures.isEmpty, "\(plain.failures)")

            let (remote, counting) = try await openRemote(dir + "/repo")
            #expect(remote.readsAhead)
            let report = try await Restorer(loader: remote).restore(tree: snapshot.tree, to: dir + "/ahead")
            #expect(report.failures.isEmpty, "\(report.failures)")
            #expect(report.filesRestored == plain.filesRestored)
            #expect(compareTrees(source, dir + "/ahead/src").isEmpty, "\(compareTrees(source, dir + "/ahead/src"))")

            // Listings are read while planning, then each part of a pack the restore needs is read
            // once: no byte of a data pack twice, and far fewer requests than file by file.
            let packs = repo.index.blobsByPack()
            let dataPacks = Set(packs.filter { $0.value.contains { $0.type == .data } }.keys.map(\.hex))
            let listings = Set(packs.flatMap { pack, blobs in blobs.filter { $0.type == .tree }.map { "\(pack.hex)@\($0.offset)" } })
            func dataReads(_ storage: LoadCountingStorage) -> [(pack: String, range: Range<Int>?)] {
                storage.packRanges.filter { !listings.contains("\($0.pack)@\($0.range?.lowerBound ?? -1)") }
            }
            let aheadReads = dataReads(counting)
            for (pack, reads) in Dictionary(grouping: aheadReads, by: \.pack) {
                let ranges = reads.compactMap(\.range).sorted { $0.lowerBound < $1.lowerBound }
                for (a, b) in zip(ranges, ranges.dropFirst()) {
                    #expect(a.upperBound <= b.lowerBound, "pack \(pack) read twice at \(b.lowerBound)")
                }
            }
            let plainReads = dataReads(local).count
            #expect(aheadReads.count <= 2 * dataPacks.count, "\(aheadReads.count) reads ahead for \(dataPacks.count) packs")
            #expect(aheadReads.count < plainReads, "\(aheadReads.count) reads ahead against \(plainReads) file by file")
        }
    }

    /// 256 KiB keeps few if any bundles (half a MiB of plaintext) for later members; 4 MiB keeps
    /// them.
    @Test(arguments: [256 << 10, 4 << 20])
    func aFullWindowIsNeverExceededAndWhatDoesNotFitIsReadForItsAsksAlone(window: Int) async throws {
        try await withTemporaryDirectory { dir in
            let source = try makeSource(in: dir)
            let repo = try await TestRepository.create(at: dir + "/repo")
            let snapshot = try await TestRepository.backup(repo, [source]).snapshot
            let (remote, counting) = try await openRemote(dir + "/repo")

            // A window smaller than the 6 MiB scan's segments and than the small files' bundles
            // together: the restore still completes, checked; what reading ahead holds (segments
            // and bundles kept for later members) never exceeds the window, and all of it is let
            // go of by the end.
            let loader = SmallWindowLoader(remote, window: window)
            let report = try await Restorer(loader: loader).restore(tree: snapshot.tree, to: dir + "/out")
            #expect(report.failures.isEmpty, "\(report.failures)")
            #expect(compareTrees(source, dir + "/out/src").isEmpty, "\(compareTrees(source, dir + "/out/src"))")
            let planned = try #require(loader.planned.withLock { $0 })
            #expect(planned.peakHeld > 0, "nothing was read ahead")
            #expect(planned.peakHeld <= window, "\(planned.peakHeld) bytes held by reading ahead with a window of \(window)")
            #expect(planned.held == 0, "\(planned.held) bytes still held after the restore")
            #expect(planned.directReads > 0, "no ask was read directly")
            if window >= 4 << 20 {
                #expect(planned.bundlesKept > 0, "no bundle was kept for later members")
            }
            // No read is longer than the window lets a segment be, or than the span of one batch
            // (2 MiB of content) read for its asks alone.
            let largest = counting.packRanges.compactMap(\.range?.count).max() ?? 0
            #expect(largest <= max(window, 3 << 20), "a read of \(largest) bytes")
        }
    }

    @Test func aPartialRestoreReadsAheadOnlyWhatItRestores() async throws {
        try await withTemporaryDirectory { dir in
            let source = try makeSource(in: dir)
            let repo = try await TestRepository.create(at: dir + "/repo")
            let snapshot = try await TestRepository.backup(repo, [source]).snapshot
            let (remote, counting) = try await openRemote(dir + "/repo")
            let report = try await Restorer(loader: remote, includes: ["src/patients/p-3"]).restore(tree: snapshot.tree, to: dir + "/out")
            #expect(report.failures.isEmpty, "\(report.failures)")
            #expect(report.filesRestored == 12)
            #expect(compareTrees(source + "/patients/p-3", dir + "/out/src/patients/p-3").isEmpty)
            #expect(!FileManager.default.fileExists(atPath: dir + "/out/src/patients/scan.dcm"))
            // The 6 MiB scan is not read: everything read is far less than it.
            let bytes = counting.packRanges.compactMap(\.range).reduce(0) { $0 + $1.count }
            #expect(bytes < 2 << 20, "\(bytes) bytes read for 12 small files")
        }
    }

    @Test func aReadThatFailsIsTriedAgainBlobByBlob() async throws {
        try await withTemporaryDirectory { dir in
            let source = try makeSource(in: dir)
            let repo = try await TestRepository.create(at: dir + "/repo")
            let snapshot = try await TestRepository.backup(repo, [source]).snapshot
            // The first read of more than 300 KiB (a segment: listings and single chunks are
            // smaller) fails: its blobs are read one by one, and every file comes back, checked.
            let (remote, counting) = try await openRemote(dir + "/repo", failFirst: 1, largerThan: 300 << 10)
            let report = try await Restorer(loader: remote).restore(tree: snapshot.tree, to: dir + "/out")
            #expect(report.failures.isEmpty, "\(report.failures)")
            #expect(compareTrees(source, dir + "/out/src").isEmpty, "\(compareTrees(source, dir + "/out/src"))")
            #expect(counting.packRanges.contains { ($0.range?.count ?? 0) > 300 << 10 })
        }
    }

    @Test func aDamagedPackFailsOnlyItsFilesAndLeavesNoWrongFile() async throws {
        try await withTemporaryDirectory { dir in
            let source = try makeSource(in: dir)
            let repo = try await TestRepository.create(at: dir + "/repo")
            let snapshot = try await TestRepository.backup(repo, [source]).snapshot
            // Flip a bit in the 6 MiB scan's first chunk.
            let tree = try await repo.loadTree(snapshot.tree)
            let src = try #require(tree.nodes.first { $0.name == "src" }?.subtree)
            let patients = try #require(try await repo.loadTree(src).nodes.first { $0.name == "patients" }?.subtree)
            let scan = try #require(try await repo.loadTree(patients).nodes.first { $0.name == "scan.dcm" })
            let victim = try #require(scan.content?.first)
            let location = try #require(repo.index.lookup(victim))
            try damageBlob(victim, of: repo, at: dir + "/repo")

            // The same files fail as file by file (every file with a blob in the damaged unit,
            // which may be a bundle shared with small files), each naming the pack; none of them
            // is left in the target, and the rest are restored.
            let plain = try await Restorer(loader: try await TestRepository.open(at: dir + "/repo")).restore(tree: snapshot.tree, to: dir + "/plain")
            let (remote, _) = try await openRemote(dir + "/repo")
            let report = try await Restorer(loader: remote).restore(tree: snapshot.tree, to: dir + "/out")
            let failed = Set(report.failures.map(\.path))
            #expect(failed.contains("src/patients/scan.dcm"))
            #expect(failed == Set(plain.failures.map(\.path)))
            #expect(report.failures.allSatisfy { $0.message.contains(location.pack.hex) }, "\(report.failures.map(\.message))")
            for path in failed {
                #expect(!FileManager.default.fileExists(atPath: dir + "/out/" + path), "\(path)")
            }
            #expect(report.filesRestored == plain.filesRestored && report.filesRestored > 300)
        }
    }
}

/// A repository's loader whose restores read ahead within a small window, the planned loader
/// kept for the test to look at.
private final class SmallWindowLoader: BlobLoader {
    let repository: Repository
    let window: Int
    let planned = Mutex<ReadAheadLoader?>(nil)

    init(_ repository: Repository, window: Int) {
        self.repository = repository
        self.window = window
    }

    func loadBlob(_ id: ID, decompressor: ZstdDecompressor?) async throws -> Data {
        try await repository.loadBlob(id, decompressor: decompressor)
    }

    func loadTree(_ id: ID) async throws -> Tree {
        try await repository.loadTree(id)
    }

    var parallelReads: Int { repository.parallelReads }
    var readsAhead: Bool { true }

    func readingAhead(_ plan: RestorePlan) -> any BlobLoader {
        let loader = ReadAheadLoader(repository: repository, plan: plan, window: window, ahead: window / 2)
        planned.withLock { $0 = loader }
        return loader
    }
}
