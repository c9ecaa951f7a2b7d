import Foundation
import Synchronization

/// Copies a snapshot's tree into a repository with keys of its own: every chunk is read from the
/// source (checked against its id there) and saved under the destination's key, and every
/// listing is rewritten with the destination's ids, except what an earlier copy says the
/// destination holds (``CopyTranslation``, counted in ``reused``).
///
/// As a restore walks a tree, up to ``entriesAtOnce`` entries of each folder are on their way at
/// once, subfolders and files alike, taken in the order of the listing (at most
/// ``foldersAtOnce`` folders in tasks of their own); up to ``parallelFiles`` files in all are
/// copied at once, and a large file's chunks ``parallelBatches`` batches at
/// once, each batch read with one ``BlobLoader/loadBlobs(_:decompressor:)``. One file and one
/// batch at a time, a copy of the benchmark's 1 GiB snapshot kept one core busy: 6.8 s between
/// two local directories, 15 s from SeaweedFS, where each read waited while nothing was sealed.
/// Copying a folder's subfolders one after another, the database's folder came alone, and a
/// loader reading ahead held each range it read for the documents that shared it, until its
/// window was full and the rest of the database went as 2,500 small requests.
final class TreeReencoder: Sendable {
    private let source: Repository
    private let loader: any BlobLoader
    private let blobs: BlobSaver
    private let trees: TreeSaver
    private let translation: CopyTranslation
    private let progress: OperationProgress?
    private let reusedCount = Atomic<Int>(0)
    private let files = AsyncLimiter(limit: TreeReencoder.parallelFiles)
    private let foldersOpen = Atomic<Int>(0)

    /// Entries of one folder on their way at once (a subfolder's own count apart), files whose
    /// content is copied at once, and batches of one file's chunks at once.
    static let entriesAtOnce = 16
    /// Folders copied in tasks of their own at once, over the whole tree.
    static let foldersAtOnce = 32
    static let parallelFiles = 4
    static let parallelBatches = 2
    /// How many chunks a batch holds at most, and how many bytes of plaintext (a batch of one
    /// chunk may hold more: chunks may be up to 64 MiB each). With the files and batches at
    /// once, that keeps the plaintext in flight to about 64 MiB, unless the chunks are larger
    /// than 8 MiB (up to 512 MiB with eight chunks of 64 MiB).
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

    /// The order in which ``copy(_:)`` takes the blobs under `root`, given its listings (the
    /// entries it has on their way at once ask in about that order): what a loader reading ahead
    /// is told to expect.
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
        try await withThrowingTaskGroup(of: (Int, ID?, [ID]?).self) { group in
            var running = 0
            func settle(_ index: Int, _ subtree: ID?, _ content: [ID]?) {
                if let subtree { tree.nodes[index].subtree = subtree }
                if let content {
                    tree.nodes[index].content = content
                    progress?.update { $0.currentPath = nodes[index].name }
                }
                running -= 1
            }
            for (index, node) in nodes.enumerated() where node.subtree != nil || node.content != nil {
                try Task.checkCancellation()
                if running >= Self.entriesAtOnce, let (done, subtree, content) = try await group.next() { settle(done, subtree, content) }
                if let subtree = node.subtree {
                    // A folder the earlier copy holds whole is taken as it is, without a task.
                    if let known = translation.trees[subtree] {
                        reusedCount.add(1, ordering: .relaxed)
                        tree.nodes[index].subtree = known
                        continue
                    }
                    // At most ``foldersAtOnce`` folders copied in tasks of their own, over the
                    // whole tree: past that a subfolder is copied here, before the next entry,
                    // so that a deep tree does not open sixteen folders at every level.
                    guard foldersOpen.add(1, ordering: .relaxed).newValue <= Self.foldersAtOnce else {
                        foldersOpen.subtract(1, ordering: .relaxed)
                        tree.nodes[index].subtree = try await copy(subtree)
                        continue
                    }
                    group.addTask {
                        defer { self.foldersOpen.subtract(1, ordering: .relaxed) }
                        return (index, try await self.copy(subtree), nil)
                    }
                    running += 1
                    continue
                }
                group.addTask {
                    (index, nil, try await self.files.withPermit {
                        // A copy that failed elsewhere, or was stopped, ends here rather than
                        // copying every file still waiting for a permit.
                        try Task.checkCancellation()
                        return try await self.copyContent(of: node)
                    })
                }
                running += 1
            }
            while let (done, subtree, content) = try await group.next() { settle(done, subtree, content) }
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
        try Task.checkCancellation()
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
