@testable import BunkerCore
import BunkerTesting
import Foundation
import Testing

@Suite struct CopierTests {
    /// A copy between repositories that share key material keeps several packs on their way at
    /// once (one at a time, a copy between object stores waited for each download, then for each
    /// upload), and what arrives is whole: the destination verifies and restores every byte.
    @Test func packsTravelSeveralAtOnceAndArriveWhole() async throws {
        try await withTemporaryDirectory { dir in
            let source = dir + "/src"
            try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
            for n in 0..<6 { try TreeGenerator.writeRandomFile(source + "/scan-\(n).dcm", size: 700 << 10, seed: UInt64(n)) }
            let repo = try await TestRepository.create(at: dir + "/repo")
            let snapshot = try await TestRepository.backup(repo, [source]).snapshotID
            let dataPacks = repo.index.blobsByPack().filter { $0.value.contains { $0.type == .data } }.count
            #expect(dataPacks >= 4, "\(dataPacks) data packs")

            let counting = LoadCountingStorage(try StorageLocation.storage(for: dir + "/repo"), delay: .milliseconds(50))
            let from = try await Repository.open(storage: counting, password: TestRepository.password)
            let to = try await Repository.create(
                storage: try StorageLocation.storage(for: dir + "/copy", create: true), password: TestRepository.password,
                config: .new(compressionLevel: 3, chunker: from.config.chunker, packSize: from.config.packSize), kdf: .testing, sharing: from.key)
            let report = try await Copier(from: from, to: to).copy([snapshot])
            #expect(report.copied.count == 1 && report.packsUnchanged == counting.packRanges.filter { $0.range == nil }.count, "\(report.packsUnchanged) packs unchanged, \(counting.packLoads)")
            #expect(counting.mostReadsAtOnce >= 2, "at most \(counting.mostReadsAtOnce) pack read at once")

            let check = try await Checker(repository: try await Repository.open(storage: StorageLocation.storage(for: dir + "/copy"), password: TestRepository.password)).check(readData: true)
            #expect(check.errors.isEmpty && check.snapshots == 1, "\(check.errors)")
            let copied = try #require(ID(hex: report.copied[0].destination))
            let restored = try await Restorer(loader: to).restore(tree: try await to.loadSnapshot(copied).tree, to: dir + "/out")
            #expect(restored.failures.isEmpty)
            #expect(compareTrees(source, dir + "/out/src").isEmpty)
        }
    }

    /// Between repositories with keys of their own every blob is read and sealed again. The
    /// small files a backup bundled together are read with one request per bundle, not one per
    /// file (which, from an object store, made a copy of the benchmark's 1 GiB snapshot take
    /// 284 s), whether read directly (a local source) or read ahead (an object store).
    @Test(arguments: [false, true])
    func aCopyUnderOtherKeysReadsEachBundleOnce(fromObjectStore: Bool) async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeFolderTree(at: dir + "/src", groups: 4, folders: 10, files: 3)
            let repo = try await TestRepository.create(at: dir + "/repo")
            let snapshot = try await TestRepository.backup(repo, [dir + "/src"]).snapshotID
            let listings = TestRepository.listingPacks(of: repo).listings

            let counting = LoadCountingStorage(try StorageLocation.storage(for: dir + "/repo"))
            let storage: any Storage = fromObjectStore ? ConcurrencyLimitedStorage(counting, limit: 8) : counting
            let from = try await Repository.open(storage: storage, password: TestRepository.password)
            #expect(from.readsAhead == fromObjectStore)
            let to = try await TestRepository.create(at: dir + "/copy")
            let report = try await Copier(from: from, to: to).copy([snapshot])
            #expect(!report.sharedKeys && report.copied.count == 1)
            // At most one read per listing (read ahead: a few for them all) and a few for the
            // bundles; one per file would be 120 more.
            let reads = counting.packRanges.count
            #expect(reads <= listings + 4, "\(reads) pack reads for \(listings) listings and 120 files")
            if fromObjectStore { #expect(reads <= 10, "\(reads) pack reads read ahead") }

            let copied = try #require(ID(hex: report.copied[0].destination))
            let check = try await Checker(repository: try await TestRepository.open(at: dir + "/copy")).check(readData: true)
            #expect(check.errors.isEmpty, "\(check.errors)")
            let restored = try await Restorer(loader: to).restore(tree: try await to.loadSnapshot(copied).tree, to: dir + "/out")
            #expect(restored.failures.isEmpty && restored.filesRestored == 120)
            #expect(compareTrees(dir + "/src", dir + "/out/src").isEmpty)
        }
    }

    /// Two hosts that back up the same new file at the same moment both store its chunks: the
    /// repository then indexes a blob in two packs. A copy ships it from the pack the index
    /// names, and does not take the other pack for damaged. (Each host's pack here also holds a
    /// file of its own, so both packs are shipped, whichever of the two the index names.)
    @Test func aBlobStoredInTwoPacksIsCopiedOnce() async throws {
        try await withTemporaryDirectory { dir in
            for (host, own) in [("a", "alpha.dcm"), ("b", "beta.dcm")] {
                try FileManager.default.createDirectory(atPath: dir + "/" + host, withIntermediateDirectories: true)
                try TreeGenerator.writeRandomFile(dir + "/\(host)/\(own)", size: 100 << 10, seed: host == "a" ? 1 : 2)
                try TreeGenerator.writeRandomFile(dir + "/\(host)/scan.dcm", size: 200 << 10, seed: 7)
            }
            _ = try await TestRepository.create(at: dir + "/repo")
            let one = try await TestRepository.backup(try await TestRepository.open(at: dir + "/repo"), [dir + "/a"]).snapshotID
            // The second host does not see the first one's index yet: it stores the scan again.
            let firstIndex = Set(try await StorageLocation.storage(for: dir + "/repo").list(.index).map(\.handle.name))
            let unaware = InterceptingStorage(try StorageLocation.storage(for: dir + "/repo"), hiding: { $0.kind == .index && firstIndex.contains($0.name) })
            let two = try await TestRepository.backup(try await Repository.open(storage: unaware, password: TestRepository.password), [dir + "/b"]).snapshotID

            let source = try await TestRepository.open(at: dir + "/repo")
            // The index files name the scan's chunks in two packs (the index in memory keeps one).
            var homes: [ID: Int] = [:]
            for info in try await source.storage.list(.index) {
                let file = try IndexFile(decoding: try await source.loadSealed(.index, try #require(ID(hex: info.handle.name))), name: try #require(ID(hex: info.handle.name)))
                for pack in file.packs { for id in Set(pack.blobs.filter { $0.type == .data }.map(\.id)) { homes[id, default: 0] += 1 } }
            }
            #expect(homes.values.contains(2), "the scan's chunks should be in two packs: \(homes.values)")

            let destination = try await Repository.create(
                storage: try StorageLocation.storage(for: dir + "/copy", create: true), password: TestRepository.password,
                config: .new(compressionLevel: 3, chunker: source.config.chunker, packSize: source.config.packSize), kdf: .testing, sharing: source.key)
            let report = try await Copier(from: source, to: destination).copy([one, two])
            #expect(report.copied.count == 2)
            let check = try await Checker(repository: try await Repository.open(storage: StorageLocation.storage(for: dir + "/copy"), password: TestRepository.password)).check(readData: true)
            #expect(check.errors.isEmpty && check.snapshots == 2, "\(check.errors)")
            for (index, copied) in report.copied.enumerated() {
                let id = try #require(ID(hex: copied.destination))
                let restored = try await Restorer(loader: destination).restore(tree: try await destination.loadSnapshot(id).tree, to: dir + "/out\(index)")
                #expect(restored.failures.isEmpty, "\(restored.failures)")
            }
            #expect(compareTrees(dir + "/a", dir + "/out0/a").isEmpty)
            #expect(compareTrees(dir + "/b", dir + "/out1/b").isEmpty)
        }
    }
}
