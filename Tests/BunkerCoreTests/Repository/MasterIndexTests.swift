@testable import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// The master index keeps a million blobs in a sorted table (``BlobTable``): loaded index files,
/// blobs a backup adds one pack at a time, repeats and dropped packs must all read back as a
/// dictionary would.
@Suite struct MasterIndexTests {
    struct Model {
        var known: [ID: (pack: ID, blob: PackedBlob)] = [:]
    }

    static func randomID(_ rng: inout SeededGenerator) -> ID {
        ID(bytes: (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })
    }

    static func blobs(_ count: Int, _ rng: inout SeededGenerator, bundled: Bool = false) -> [PackedBlob] {
        var result: [PackedBlob] = []
        for i in 0..<count {
            let type: BlobType = i % 7 == 0 ? .tree : .data
            if bundled && i % 5 != 0 {
                // Four members share each bundle: its place in the pack, their own in its plaintext.
                let bundle = UInt32(i / 5)
                let member = BundleMember(offset: UInt32(i % 5) * 10, length: 10)
                result.append(PackedBlob(type: type, id: randomID(&rng), offset: 1_000_000 + bundle * 300, length: 250,
                                         rawLength: bundle % 3 == 0 ? 0 : 40 + bundle, member: member))
                continue
            }
            let rawLength = UInt32(i % 3 == 0 ? 0 : 200 + i)
            result.append(PackedBlob(type: type, id: randomID(&rng), offset: UInt32(i * 100), length: 90, rawLength: rawLength))
        }
        return result
    }

    static func expectAgrees(_ index: MasterIndex, _ model: Model, absent: [ID]) {
        #expect(index.count == model.known.count)
        for (id, expected) in model.known {
            let found = index.lookup(id)
            #expect(found?.pack == expected.pack && found?.blob == expected.blob, "blob \(id.short)")
        }
        for id in absent { #expect(index.lookup(id) == nil && !index.contains(id)) }
        var seen = 0
        index.forEachBlob { pack, blob in
            seen += 1
            #expect(model.known[blob.id]?.pack == pack)
        }
        #expect(seen == model.known.count)
    }

    @Test func indexFilesLoadedWholeReadBackWithRepeatsDropped() throws {
        var rng = SeededGenerator(seed: 7)
        var model = Model()
        var loading = MasterIndex.Loading()
        var repeated: (id: ID, packs: [ID: PackedBlob])?
        for _ in 0..<20 {
            var file = IndexFile()
            for _ in 0..<5 {
                let pack = Self.randomID(&rng)
                var packBlobs = Self.blobs(400, &rng, bundled: true)
                // One blob stored in every pack after the first: the index knows it once, in any
                // of them.
                if let id = repeated?.id {
                    let copy = PackedBlob(type: .data, id: id, offset: 1, length: 2, rawLength: 0)
                    packBlobs.append(copy)
                    repeated?.packs[pack] = copy
                } else {
                    repeated = (packBlobs[0].id, [pack: packBlobs[0]])
                }
                for blob in packBlobs where model.known[blob.id] == nil { model.known[blob.id] = (pack, blob) }
                file.packs.append((pack, packBlobs))
            }
            loading.add(file, name: Self.randomID(&rng))
        }
        let index = MasterIndex()
        index.replaceLoaded(with: loading)
        #expect(index.indexFileIDs.count == 20)
        let copy = try #require(repeated)
        let kept = try #require(index.lookup(copy.id))
        #expect(copy.packs[kept.pack] == kept.blob, "the repeated blob is found in one of its packs")
        model.known[copy.id] = (kept.pack, kept.blob)
        Self.expectAgrees(index, model, absent: (0..<50).map { _ in Self.randomID(&rng) })
    }

    @Test func blobsAddedPackByPackAreFoundBeforeAndAfterTheyAreSortedIn() {
        var rng = SeededGenerator(seed: 11)
        var model = Model()
        let index = MasterIndex()
        var file = IndexFile()
        let first = Self.randomID(&rng)
        let loaded = Self.blobs(3_000, &rng, bundled: true)
        file.packs.append((first, loaded))
        index.add(file, name: Self.randomID(&rng))
        for blob in loaded { model.known[blob.id] = (first, blob) }
        // More than BlobTable.recentLimit blobs one pack at a time: the recent ones are merged
        // into the sorted table on the way, and a blob already known keeps its first pack.
        var packs: [ID] = []
        while model.known.count < 3_000 + BlobTable.recentLimit + 5_000 {
            let pack = Self.randomID(&rng)
            packs.append(pack)
            var packBlobs = Self.blobs(500, &rng, bundled: packs.count % 2 == 0)
            packBlobs.append(loaded[packs.count % loaded.count])
            for blob in packBlobs where model.known[blob.id] == nil { model.known[blob.id] = (pack, blob) }
            index.addPending(pack: pack, blobs: packBlobs)
            if packs.count % 40 == 0 { Self.expectAgrees(index, model, absent: [Self.randomID(&rng)]) }
        }
        Self.expectAgrees(index, model, absent: (0..<50).map { _ in Self.randomID(&rng) })
        #expect(index.unsavedPackCount == packs.count)

        // A failed backup's packs that no index file names are forgotten, wherever they lie.
        let dropped = Set(packs.suffix(60))
        _ = index.takeUnsaved()
        index.returnUnsaved(packs.map { pack in (pack, [PackedBlob]()) })
        index.dropUnsaved(dropped)
        let gone = model.known.filter { dropped.contains($0.value.pack) }.map(\.key)
        #expect(!gone.isEmpty)
        for id in gone { model.known[id] = nil }
        Self.expectAgrees(index, model, absent: gone)
    }

    /// The lookup starts where a uniform id would sit in its bucket; ids that are not uniform
    /// (a crowded bucket, ids alike in the bits that place them) must be found all the same.
    @Test func idsCrowdedIntoOneBucketAreFoundAndTheirNeighboursAreNot() {
        var rng = SeededGenerator(seed: 23)
        // The bucket is the top 16 bits of the first word, bytes 6 and 7 as it is loaded here;
        // the starting guess comes from bytes 2 to 5.
        func id(_ kind: Int) -> ID {
            var bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let fixed = kind == 0 ? 2..<8 : kind == 1 ? 6..<8 : 0..<0
            for i in fixed { bytes[i] = 7 }
            return ID(bytes: bytes)
        }
        var blobs: [PackedBlob] = []
        for i in 0..<6_000 {
            blobs.append(PackedBlob(type: .data, id: id(i % 3), offset: UInt32(i * 100), length: 90, rawLength: 0))
        }
        // A third share one bucket and one starting guess, a third one bucket, a third are spread.
        #expect(Set(blobs.enumerated().filter { $0.offset % 3 == 0 }.map { $0.element.id.w0 >> 16 }).count == 1)
        #expect(Set(blobs.enumerated().filter { $0.offset % 3 == 1 }.map { $0.element.id.w0 >> 48 }).count == 1)
        let pack = Self.randomID(&rng)
        let index = MasterIndex()
        index.add(IndexFile(packs: [(pack, blobs)]), name: Self.randomID(&rng))
        var model = Model()
        for blob in blobs { model.known[blob.id] = (pack, blob) }
        let absent = (0..<300).map { id($0 % 3) }
        Self.expectAgrees(index, model, absent: absent + [ID(bytes: [UInt8](repeating: 0, count: 32)), ID(bytes: [UInt8](repeating: 255, count: 32))])
    }

    @Test func aBlobWrittenHereAndNamedByAnotherIndexFileIsCountedOnce() {
        var rng = SeededGenerator(seed: 13)
        let index = MasterIndex()
        let mine = Self.randomID(&rng)
        let written = Self.blobs(10, &rng)
        index.addPending(pack: mine, blobs: written)
        #expect(index.count == 10)
        // Another host stored two of the same blobs, and more: its index file is read later.
        var file = IndexFile()
        let theirs = Self.randomID(&rng)
        file.packs.append((theirs, Array(written.prefix(2)) + Self.blobs(5, &rng)))
        index.add(file, name: Self.randomID(&rng))
        #expect(index.count == 15)
        var seen = 0
        index.forEachBlob { _, _ in seen += 1 }
        #expect(seen == 15)
        for blob in written { #expect([mine, theirs].contains(index.lookup(blob.id)?.pack)) }
    }

    @Test func membersNamingOnePlaceWithOtherLengthsReadBackAsGiven() {
        // Only a damaged index file says this; each entry must still read back as it was given.
        var rng = SeededGenerator(seed: 17)
        let pack = Self.randomID(&rng)
        let blobs = [
            PackedBlob(type: .data, id: Self.randomID(&rng), offset: 500, length: 100, rawLength: 300, member: BundleMember(offset: 0, length: 10)),
            PackedBlob(type: .data, id: Self.randomID(&rng), offset: 500, length: 120, rawLength: 300, member: BundleMember(offset: 10, length: 10)),
            PackedBlob(type: .tree, id: Self.randomID(&rng), offset: 500, length: 120, rawLength: 0, member: BundleMember(offset: 20, length: 10)),
            PackedBlob(type: .data, id: Self.randomID(&rng), offset: 500, length: 120, rawLength: 0, member: BundleMember(offset: 30, length: 10)),
        ]
        var file = IndexFile()
        file.packs.append((pack, blobs))
        let loaded = MasterIndex()
        loaded.add(file, name: Self.randomID(&rng))
        let added = MasterIndex()
        added.addPending(pack: pack, blobs: blobs)
        for index in [loaded, added] {
            for blob in blobs { #expect(index.lookup(blob.id)?.blob == blob) }
        }
    }

    @Test func aRepositoryReopenedKnowsWhatItsBackupAdded() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/src")
            let repo = try await TestRepository.create(at: dir + "/repo")
            try await TestRepository.backup(repo, [dir + "/src"])
            let reopened = try await TestRepository.open(at: dir + "/repo")
            #expect(reopened.index.count == repo.index.count && repo.index.count > 0)
            repo.index.forEachBlob { pack, blob in
                #expect(reopened.index.lookup(blob.id)?.pack == pack)
            }
        }
    }
}
