import Foundation

/// A snapshot's tree in the source and the tree of its copy in the destination: the same
/// plaintext, entry for entry, each under its own repository's ids.
struct EarlierCopy: Sendable, Equatable {
    var source: ID
    var destination: ID
}

/// What a copy under keys of its own takes from an earlier copy instead of reading it again:
/// source ids of listings and chunks whose copies the destination holds, with their ids there,
/// and the source listings that still have to be copied, as read while finding that out.
struct CopyTranslation: Sendable {
    var trees: [ID: ID] = [:]
    var chunks: [ID: ID] = [:]
    var changed: [ID: Tree] = [:]
}

/// Between repositories with keys of their own a blob's id differs on the two sides (it is keyed
/// by each side's master key), so the destination cannot tell from a source id whether it holds
/// that blob: only the plaintext says, and without a guide every blob of a snapshot is read and
/// decrypted on every copy, even when the destination holds all of it (a nightly copy of an
/// unchanged snapshot to a cloud bucket downloaded it whole each night).
///
/// An earlier copy is that guide. Its source tree and its copy correspond entry for entry, so
/// walking the new snapshot beside both, folder by folder along the paths that changed, gives
/// the destination's id of every listing and chunk the two snapshots share: an unchanged folder
/// is taken whole (its listing's id in the earlier copy) and an unchanged chunk of a changed
/// file by its place in the earlier copy's content. Only what changed is read from the source.
///
/// Taking a destination id unread is safe because the earlier copy is a snapshot of the
/// destination, so everything under its trees is there (a prune never removes what a snapshot
/// uses, and a copy or backup killed midway leaves no snapshot). Each chunk and each folder's
/// own listing taken is also looked up in the destination's index; what lies under a folder
/// taken whole is not, and rests on that. A folder whose listing and copy do not correspond
/// entry for entry (names, kinds, sizes, SHA-256 and number of chunks) is copied without a
/// guide.
extension Copier {
    /// The earlier copy that guides copying `snapshot`: its parent's copy when the destination
    /// holds one, else the copy nearest in time of a snapshot of the same host and paths that
    /// the source also holds: first among the three nearest by their original's id, then among
    /// all of the source's snapshots by their original (`sources`, read at most once per run
    /// of `bunker copy`), since a source that is itself a copy holds them under other ids and
    /// has no parents. None is an answer (every blob is then read), also when the source's
    /// snapshots cannot be read: the guide only spares reads.
    func earlierCopy(of snapshot: Snapshot, among copied: [ID: (id: ID, snapshot: Snapshot)], sources: inout [ID: Snapshot]?) async throws -> EarlierCopy? {
        if let parent = snapshot.parent, let found = try? await source.loadSnapshot(parent), let copy = copied[found.original ?? parent]?.snapshot {
            return EarlierCopy(source: found.tree, destination: copy.tree)
        }
        try Task.checkCancellation()
        let copies = copied.mapValues(\.snapshot)
        let alike = copies.filter { $0.value.hostname == snapshot.hostname && $0.value.paths == snapshot.paths }
            .sorted { abs($0.value.time.timeIntervalSince(snapshot.time)) < abs($1.value.time.timeIntervalSince(snapshot.time)) }
        for (original, copy) in alike.prefix(3) {
            if let found = try? await source.loadSnapshot(original) { return EarlierCopy(source: found.tree, destination: copy.tree) }
        }
        guard alike.count > 0 else { return nil }
        if sources == nil {
            do {
                var byOriginal: [ID: Snapshot] = [:]
                for (id, held) in try await source.snapshots() { byOriginal[held.original ?? id] = held }
                sources = byOriginal
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                sources = [:]
            }
        }
        for (original, copy) in alike {
            if let found = sources?[original] { return EarlierCopy(source: found.tree, destination: copy.tree) }
        }
        return nil
    }

    /// Walks the source tree `root` beside `earlier`, level by level (each level's listings read
    /// together from both repositories, as ``Repository/loadTrees(_:in:)`` reads them), and
    /// returns what the destination already holds of it and the listings that must be copied.
    func translate(_ root: ID, guidedBy earlier: EarlierCopy) async throws -> CopyTranslation {
        var translation = CopyTranslation()
        if root == earlier.source, destination.index.lookup(earlier.destination) != nil {
            translation.trees[root] = earlier.destination
            return translation
        }
        var level: [(tree: ID, guide: EarlierCopy?)] = [(root, earlier)]
        var queued: Set<ID> = [root]
        while !level.isEmpty {
            var next: [(tree: ID, guide: EarlierCopy?)] = []
            for start in stride(from: 0, to: level.count, by: Repository.listingBatch) {
                try Task.checkCancellation()
                let batch = level[start..<min(level.count, start + Repository.listingBatch)]
                async let copied = destination.loadTrees(batch.compactMap(\.guide?.destination), in: destination.index)
                let read = await source.loadTrees(batch.map(\.tree) + batch.compactMap(\.guide?.source), in: source.index)
                let copies = await copied
                for (id, guide) in batch {
                    guard let loaded = read[id] else { throw BunkerError(.objectNotFound, "Listing \(id.short) of the source repository could not be read.") }
                    let tree = try loaded.get()
                    translation.changed[id] = tree
                    var pairs: [[UInt8]: (before: Node, copy: Node)] = [:]
                    if let guide, let before = try? read[guide.source]?.get(), let copy = try? copies[guide.destination]?.get() {
                        pairs = Self.pairs(before, copy) ?? [:]
                    }
                    for node in tree.nodes {
                        let pair = pairs[node.nameBytes]
                        if let subtree = node.subtree {
                            if let pair, pair.before.subtree == subtree, let there = pair.copy.subtree, destination.index.lookup(there) != nil {
                                translation.trees[subtree] = there
                            } else if queued.insert(subtree).inserted {
                                var guide: EarlierCopy?
                                if let pair, let before = pair.before.subtree, let copy = pair.copy.subtree { guide = EarlierCopy(source: before, destination: copy) }
                                next.append((subtree, guide))
                            }
                        }
                        if node.content != nil, let pair, let before = pair.before.content, let copy = pair.copy.content {
                            for (from, to) in zip(before, copy) where destination.index.lookup(to) != nil { translation.chunks[from] = to }
                        }
                    }
                }
            }
            level = next
        }
        return translation
    }

    /// The entries of a source listing and of its copy, by name, when the two correspond entry
    /// for entry as every copy's do; nil when they do not.
    static func pairs(_ before: Tree, _ copy: Tree) -> [[UInt8]: (before: Node, copy: Node)]? {
        guard before.nodes.count == copy.nodes.count else { return nil }
        var pairs: [[UInt8]: (before: Node, copy: Node)] = [:]
        for (a, b) in zip(before.nodes, copy.nodes) {
            guard a.nameBytes == b.nameBytes, a.type == b.type, a.size == b.size, a.sha256 == b.sha256,
                  (a.subtree == nil) == (b.subtree == nil), a.content?.count == b.content?.count else { return nil }
            pairs[a.nameBytes] = (a, b)
        }
        return pairs
    }
}
