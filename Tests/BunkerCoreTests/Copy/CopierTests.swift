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

    /// Under keys of its own, files are copied several at once and a large file a few batches at
    /// once (one read at a time, a copy waited for each read with nothing to seal), and the copy
    /// still restores byte for byte with every chunk in its place.
    @Test func aCopyUnderOtherKeysReadsSeveralFilesAtOnce() async throws {
        try await withTemporaryDirectory { dir in
            let source = dir + "/src"
            try FileManager.default.createDirectory(atPath: source + "/deep", withIntermediateDirectories: true)
            for n in 0..<4 { try TreeGenerator.writeRandomFile(source + "/scan-\(n).dcm", size: 300 << 10, seed: UInt64(n)) }
            try TreeGenerator.writeRandomFile(source + "/deep/volume.nii", size: 12 << 20, seed: 9)
            let repo = try await TestRepository.create(at: dir + "/repo")
            let snapshot = try await TestRepository.backup(repo, [source]).snapshotID

            let counting = LoadCountingStorage(try StorageLocation.storage(for: dir + "/repo"), delay: .milliseconds(30))
            let from = try await Repository.open(storage: counting, password: TestRepository.password)
            let to = try await TestRepository.create(at: dir + "/copy")
            let report = try await Copier(from: from, to: to).copy([snapshot])
            #expect(!report.sharedKeys && report.copied.count == 1)
            #expect(counting.mostReadsAtOnce >= 2, "at most \(counting.mostReadsAtOnce) read at once")

            let copied = try #require(ID(hex: report.copied[0].destination))
            let check = try await Checker(repository: try await TestRepository.open(at: dir + "/copy")).check(readData: true)
            #expect(check.errors.isEmpty, "\(check.errors)")
            let restored = try await Restorer(loader: to).restore(tree: try await to.loadSnapshot(copied).tree, to: dir + "/out")
            #expect(restored.failures.isEmpty && restored.filesRestored == 5)
            #expect(compareTrees(source, dir + "/out/src").isEmpty)
        }
    }

    /// A copy under keys of its own whose read fails stops there: the files still waiting for
    /// their turn are not read (40 files, of which at most 4 are copied at once), the destination
    /// gets no snapshot, and the next copy completes it.
    @Test func aCopyUnderOtherKeysThatFailsReadsNoMoreFiles() async throws {
        try await withTemporaryDirectory { dir in
            let source = dir + "/src"
            try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
            // Each file one chunk (smaller than the least chunk), too large for a bundle: each
            // file the copy starts is one read of more than 100 KiB.
            for n in 0..<40 { try TreeGenerator.writeRandomFile(source + "/scan-\(n).dcm", size: 200 << 10, seed: UInt64(n)) }
            let wholeFiles = ChunkerParameters(minSize: 256 << 10, averageSize: 512 << 10, maxSize: 1 << 20, seed: 0x5EED)
            let repo = try await TestRepository.create(at: dir + "/repo", chunker: wholeFiles)
            let snapshot = try await TestRepository.backup(repo, [source]).snapshotID

            // The first read of a file's chunk fails (listings are read in ranges of a few KiB).
            let failing = LoadCountingStorage(try StorageLocation.storage(for: dir + "/repo"), delay: .milliseconds(20), failFirst: 1, largerThan: 100 << 10)
            let from = try await Repository.open(storage: failing, password: TestRepository.password)
            let to = try await TestRepository.create(at: dir + "/copy")
            await #expect(throws: BunkerError.self) { try await Copier(from: from, to: to).copy([snapshot]) }
            // The files copied at once when the read failed, and the few a permit they let go of
            // may start before the failure reaches the walk: not the 16 it had under way.
            let filesRead = failing.packRanges.filter { ($0.range?.count ?? Int.max) > 100 << 10 }.count
            #expect(filesRead >= 1 && filesRead <= 2 * TreeReencoder.parallelFiles, "\(filesRead) files read by a copy whose first read failed")
            #expect(try await TestRepository.open(at: dir + "/copy").snapshots().isEmpty)

            let report = try await Copier(from: repo, to: try await TestRepository.open(at: dir + "/copy")).copy([snapshot])
            let first = try #require(report.copied.first)
            let copied = try #require(ID(hex: first.destination))
            let again = try await TestRepository.open(at: dir + "/copy")
            #expect(try await Checker(repository: again).check(readData: true).errors.isEmpty)
            let restored = try await Restorer(loader: again).restore(tree: try await again.loadSnapshot(copied).tree, to: dir + "/out")
            #expect(restored.failures.isEmpty && restored.filesRestored == 40)
            #expect(compareTrees(source, dir + "/out/src").isEmpty)
        }
    }

    /// Under keys of its own, a copy is guided by the destination's copy of the snapshot's
    /// parent: only the folders on the paths that changed and the changed files' chunks are read
    /// from the source (without the guide, every listing and bundle was read on every copy), and
    /// the copy is whole: it verifies and restores byte for byte. A snapshot that changed nothing
    /// reads no pack at all.
    @Test(arguments: [false, true])
    func aCopyUnderOtherKeysReadsOnlyWhatChangedSinceAnEarlierCopy(fromObjectStore: Bool) async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeFolderTree(at: dir + "/src", groups: 4, folders: 10, files: 3)
            try TreeGenerator.writeRandomFile(dir + "/src/g0/f0/scan.dcm", size: 600 << 10, seed: 5)
            let repo = try await TestRepository.create(at: dir + "/repo")
            let first = try await TestRepository.backup(repo, [dir + "/src"]).snapshotID
            let listings = TestRepository.listingPacks(of: repo).listings
            _ = try await Copier(from: repo, to: try await TestRepository.create(at: dir + "/copy")).copy([first])

            try "changed\n".write(toFile: dir + "/src/g1/f3/doc-0.txt", atomically: false, encoding: .utf8)
            try "new\n".write(toFile: dir + "/src/g2/f7/doc-9.txt", atomically: false, encoding: .utf8)
            // The scan grows at its end: its first chunks are the earlier copy's.
            let scan = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/src/g0/f0/scan.dcm"))
            try scan.seekToEnd()
            try scan.write(contentsOf: Data(repeating: 7, count: 4096))
            try scan.close()
            let second = try await TestRepository.backup(repo, [dir + "/src"]).snapshotID
            let unchanged = try await TestRepository.backup(repo, [dir + "/src"]).snapshotID

            let counting = LoadCountingStorage(try StorageLocation.storage(for: dir + "/repo"))
            let storage: any Storage = fromObjectStore ? ConcurrencyLimitedStorage(counting, limit: 8) : counting
            let from = try await Repository.open(storage: storage, password: TestRepository.password)
            let to = try await TestRepository.open(at: dir + "/copy")
            let report = try await Copier(from: from, to: to).copy([second])
            #expect(!report.sharedKeys && report.copied.count == 1 && report.blobsReused > 0, "\(report.blobsReused) blobs reused")
            // Eight listings changed (the root, src, three groups, three folders): with the
            // earlier copy's listings of the same places, at most one read each, and one for
            // each changed file's data. Without the guide: every one of the 46 listings.
            let reads = counting.packRanges.count
            #expect(reads <= 16 + 3 && reads < listings / 2, "\(reads) pack reads, \(listings) listings: \(counting.packLoads)")

            let before = counting.packRanges.count
            let again = try await Copier(from: from, to: to).copy([unchanged])
            #expect(again.copied.count == 1 && again.blobsCopied == 0)
            #expect(counting.packRanges.count == before, "an unchanged snapshot read \(counting.packLoads.dropFirst(before))")

            let check = try await Checker(repository: try await TestRepository.open(at: dir + "/copy")).check(readData: true)
            #expect(check.errors.isEmpty && check.snapshots == 3, "\(check.errors)")
            for (index, copied) in (report.copied + again.copied).enumerated() {
                let id = try #require(ID(hex: copied.destination))
                let restored = try await Restorer(loader: to).restore(tree: try await to.loadSnapshot(id).tree, to: dir + "/out\(index)")
                #expect(restored.failures.isEmpty && restored.filesRestored == 122)
                #expect(compareTrees(dir + "/src", dir + "/out\(index)/src").isEmpty)
            }
        }
    }

    /// A copy of a copy (a local repository copied to a NAS, the NAS to a bucket, each with keys
    /// of its own) is guided too, although the middle repository's snapshots have no parents:
    /// by the destination's copy of the same host's and paths' snapshot nearest in time.
    @Test func aCopyOfACopyIsGuidedByAnEarlierCopy() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeFolderTree(at: dir + "/src", groups: 3, folders: 6, files: 3)
            let first = try await TestRepository.create(at: dir + "/a")
            let nas = try await TestRepository.create(at: dir + "/b")
            let cloud = try await TestRepository.create(at: dir + "/c")
            _ = try await TestRepository.backup(first, [dir + "/src"])
            _ = try await Copier(from: first, to: nas).copy(try await first.snapshots().map(\.id))
            _ = try await Copier(from: nas, to: cloud).copy(try await nas.snapshots().map(\.id))

            try "changed\n".write(toFile: dir + "/src/g1/f2/doc-0.txt", atomically: false, encoding: .utf8)
            let second = try await TestRepository.backup(first, [dir + "/src"]).snapshotID
            let middle = try #require(ID(hex: try await Copier(from: first, to: nas).copy([second]).copied[0].destination))
            #expect(try await nas.loadSnapshot(middle).parent == nil)

            let counting = LoadCountingStorage(try StorageLocation.storage(for: dir + "/b"))
            let from = try await Repository.open(storage: counting, password: TestRepository.password)
            let report = try await Copier(from: from, to: cloud).copy([middle])
            #expect(report.copied.count == 1 && report.blobsReused > 0, "\(report.blobsReused) reused")
            #expect(counting.packLoads.count < TestRepository.listingPacks(of: nas).listings / 2, "\(counting.packLoads)")

            let copied = try #require(ID(hex: report.copied[0].destination))
            let restored = try await Restorer(loader: cloud).restore(tree: try await cloud.loadSnapshot(copied).tree, to: dir + "/out")
            #expect(restored.failures.isEmpty && restored.filesRestored == 54)
            #expect(compareTrees(dir + "/src", dir + "/out/src").isEmpty)
        }
    }

    /// An earlier copy guides only where its listing and the source's correspond entry for
    /// entry; anywhere else the folder is copied from the source.
    @Test func aListingThatDoesNotCorrespondToItsCopyGuidesNothing() throws {
        func file(_ name: String, _ chunks: [ID], sha256: String) -> Node {
            var node = Node(name: name, type: .file, mode: 0o644, mtimeNanoseconds: 0, uid: 0, gid: 0)
            node.content = chunks
            node.size = UInt64(chunks.count)
            node.sha256 = sha256
            return node
        }
        let (a, b, c) = (ID.sha256(of: Data("a".utf8)), ID.sha256(of: Data("b".utf8)), ID.sha256(of: Data("c".utf8)))
        let before = Tree(nodes: [file("one", [a, b], sha256: "11"), file("two", [c], sha256: "22")])
        let copy = Tree(nodes: [file("one", [c, a], sha256: "11"), file("two", [b], sha256: "22")])
        let pairs = try #require(Copier.pairs(before, copy))
        #expect(pairs[Array("one".utf8)]?.copy.content == [c, a])
        #expect(Copier.pairs(before, Tree(nodes: [copy.nodes[0]])) == nil, "a missing entry")
        #expect(Copier.pairs(before, Tree(nodes: [copy.nodes[0], file("three", [b], sha256: "22")])) == nil, "another name")
        #expect(Copier.pairs(before, Tree(nodes: [copy.nodes[0], file("two", [b], sha256: "23")])) == nil, "another SHA-256")
        #expect(Copier.pairs(before, Tree(nodes: [copy.nodes[0], file("two", [b, c], sha256: "22")])) == nil, "another number of chunks")
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
