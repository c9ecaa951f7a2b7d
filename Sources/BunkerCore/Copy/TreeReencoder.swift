import Foundation
import Synchronization

/// Copies a snapshot's tree into a repository with keys of its own: every chunk is read from the
/// source (checked against its id there) and saved under the destination's key, and every
/// listing is rewritten with the destination's ids, except what an earlier copy says the
/// destination holds (``CopyTranslation``, counted in ``reused``).
///
/// Entries are taken in the order of their listing, as a backup wrote them (so that the small
/// files a backup bundled together are asked for together, and a loader reading ahead holds
/// little): a subfolder is copied whole before the next entry, while up to ``parallelFiles``
/// files, of this folder and of the ones below it, are copied at once, and a large file's
/// chunks ``parallelBatches`` batches at once, each batch read with one
/// ``BlobLoader/loadBlobs(_:decompressor:)``. One file and one batch at a time, a copy of the
/// benchmark's 1 GiB snapshot kept one core busy: 6.8 s between two local directories, 15 s
/// from SeaweedFS, where each read waited while nothing was sealed.
final class TreeReencoder: Sendable {
    private let source: Repository
    private let loader: any BlobLoader
    private let blobs: BlobSaver
    private let trees: TreeSaver
    private let translation: CopyTranslation
    private let progress: OperationProgress?
    private let reusedCount = Atomic<Int>(0)
    private let files = AsyncLimiter(limit: TreeReencoder.parallelFiles)

    /// Files whose content is copied at once, and batches of one file's chunks at once.
    static let parallelFiles = 4
    static let parallelBatches = 2
    /// How many chunks a batch holds at most, and how many bytes of plaintext (chunks may be up
    /// to 64 MiB each; a batch's one chunk may be larger). With the files and batches at once,
    /// that bounds the plaintext in flight to about 64 MiB.
    static let chunksPerBatch = 16
    static let bytesPerBatch = 8 << 20

    init(source: Repository, loader: any BlobLoader, blobs: BlobSaver, translation: CopyTranslation, progress: OperationProgress?) {
        self.source = source
        self.loader = loader
        self.blobs = blobs
        self.trees = TreeSaver(blobs: blobs)
        self.translation = translation
        self.progress = progress
    }

    /// Listings and chunks taken from the earlier copy without reading them.
    var reused: Int { reusedCount.load(ordering: .relaxed) }

    /// The order in which ``copy(_:)`` asks for the blobs under `root`, given its listings: what
    /// a loader reading ahead is told to expect.
    static func plan(under root: ID, trees: [ID: Tree], translation: CopyTranslation?) -> [ID] {
        var blobs: [ID] = []
        func collect(_ id: ID) {
            guard let tree = trees[id] else { return }
            for node in tree.nodes {
                if let subtree = node.subtree, translation?.trees[subtree] == nil { collect(subtree) }
                blobs.append(contentsOf: (node.content ?? []).filter { translation?.chunks[$0] == nil })
            }
        }
        collect(root)
        return blobs
    }

    /// Copies the tree `id` and everything it names; returns its id in the destination.
    func copy(_ id: ID) async throws -> ID {
        if let known = translation.trees[id] {
            reusedCount.add(1, ordering: .relaxed)
            return known
        }
        var tree: Tree
        if let read = translation.changed[id] { tree = read } else { tree = try await loader.loadTree(id) }
        let nodes = tree.nodes
        try await withThrowingTaskGroup(of: (Int, [ID]).self) { group in
            var waiting = 0
            func copied(_ index: Int, _ content: [ID]) {
                tree.nodes[index].content = content
                progress?.update { $0.currentPath = nodes[index].name }
                waiting -= 1
            }
            for (index, node) in nodes.enumerated() {
                try Task.checkCancellation()
                if let subtree = node.subtree { tree.nodes[index].subtree = try await copy(subtree) }
                guard node.content != nil else { continue }
                // A file waits for a permit in a task of its own; a few wait at most, so that a
                // folder of a hundred thousand files does not hold as many tasks.
                if waiting >= 2 * Self.parallelFiles, let (done, content) = try await group.next() { copied(done, content) }
                group.addTask { (index, try await self.files.withPermit { try await self.copyContent(of: node) }) }
                waiting += 1
            }
            while let (done, content) = try await group.next() { copied(done, content) }
        }
        return try await trees.save(tree)
    }

    /// A file's chunks, each saved under the destination's key (or taken as the earlier copy
    /// has it); returns their ids there, in order.
    private func copyContent(of node: Node) async throws -> [ID] {
        let content = node.content ?? []
        var copied = [ID?](repeating: nil, count: content.count)
        var batches: [Range<Int>] = []
        var start = 0
        while start < content.count {
            if let known = translation.chunks[content[start]] {
                copied[start] = known
                reusedCount.add(1, ordering: .relaxed)
                start += 1
                continue
            }
            var end = start + 1
            var bytes = source.index.lookup(content[start])?.blob.plaintextLength ?? 0
            while end < content.count, end - start < Self.chunksPerBatch, translation.chunks[content[end]] == nil,
                  let next = source.index.lookup(content[end])?.blob.plaintextLength, bytes + next <= Self.bytesPerBatch {
                bytes += next
                end += 1
            }
            batches.append(start..<end)
            start = end
        }
        try await withThrowingTaskGroup(of: (Range<Int>, [ID]).self) { group in
            var next = 0
            func launch() {
                let batch = batches[next]
                next += 1
                group.addTask { (batch, try await self.copyBatch(Array(content[batch]))) }
            }
            while next < min(Self.parallelBatches, batches.count) { launch() }
            while let (batch, ids) = try await group.next() {
                copied.replaceSubrange(batch, with: ids.map(Optional.some))
                if next < batches.count { launch() }
            }
        }
        return copied.map { $0! }
    }

    /// Reads one batch of chunks through ``BlobLoader/loadBlobs(_:decompressor:)`` (which opens a
    /// bundle of small files once for all of its members: asked blob by blob, a copy of the
    /// benchmark's snapshot between two local repositories decompressed each bundle for every
    /// member and took 40 s) and saves each under the destination's key; returns their ids there.
    private func copyBatch(_ ids: [ID]) async throws -> [ID] {
        let plaintexts: [Data]
        do {
            plaintexts = try await loader.loadBlobs(ids, decompressor: nil)
        } catch let error as BunkerError where error.code == .corruptObject {
            throw BunkerError(.integrity, "\(error.message) It is in the source repository: run `bunker verify --read-data` on the source; the destination got no snapshot.", cause: error)
        }
        var copied: [ID] = []
        copied.reserveCapacity(ids.count)
        for plaintext in plaintexts {
            progress?.update { $0.bytesDone += UInt64(plaintext.count) }
            copied.append(try await blobs.save(.data, plaintext))
        }
        return copied
    }
}
