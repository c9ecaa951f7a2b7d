/// Stores directory listings: encodes a ``Tree`` in the repository format and saves it as a tree
/// blob, deduplicated like any other (an unchanged directory costs nothing).
///
/// A tree may reach a pack before data it names (small chunks wait for their bundle): nothing
/// relies on the order of packs, only on every pack being indexed before the snapshot is written.
struct TreeSaver: Sendable {
    let blobs: BlobSaver
    /// Called before a listing is streamed, to give back memory held for other work (the
    /// backup's idle read buffers): sealing one takes three times its compressed size at once.
    var beforeStreaming: @Sendable () -> Void = {}

    /// Listings expected to be at least this long are hashed and compressed as they are encoded
    /// (``BlobSaver/saveStreamed(_:expectedLength:_:)``) rather than encoded whole first. The
    /// folder holding a 4 GiB database lists half a million chunks: 38 MB of JSON, which was the
    /// memory peak of a 10 GiB backup.
    static let streamedListing = 4 << 20

    /// Stores `tree` unless the repository has it; returns its id. The tree is let go of once
    /// encoded, before its JSON is compressed and sealed.
    func save(_ tree: consuming Tree) async throws -> ID {
        let estimate = TreeCoding.estimatedSize(of: tree)
        if estimate >= TreeSaver.streamedListing {
            let held = HeldTree(tree)
            beforeStreaming()
            return try await blobs.saveStreamed(.tree, expectedLength: estimate) { sink in
                TreeCoding.encode(held.take(), streamingTo: sink)
            }
        }
        let plaintext = TreeCoding.encode(tree)
        _ = consume tree
        return try await blobs.save(.tree, consume plaintext)
    }
}

/// A tree handed once to a closure, so that nothing else keeps it alive while it is encoded and
/// after (its chunk ids are 18 MB for a 4 GiB database).
private final class HeldTree {
    private var tree: Tree?

    init(_ tree: consuming Tree) {
        self.tree = tree
    }

    func take() -> Tree {
        guard let tree = tree.take() else { preconditionFailure("A directory listing was encoded twice.") }
        return tree
    }
}
