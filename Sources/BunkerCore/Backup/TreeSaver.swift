/// Stores directory listings: encodes a ``Tree`` in the repository format and saves it as a tree
/// blob, deduplicated like any other (an unchanged directory costs nothing).
///
/// A tree may reach a pack before data it names (small chunks wait for their bundle): nothing
/// relies on the order of packs, only on every pack being indexed before the snapshot is written.
struct TreeSaver: Sendable {
    let blobs: BlobSaver

    /// Stores `tree` unless the repository has it; returns its id. The tree is let go of once
    /// encoded, before its JSON is compressed and sealed.
    func save(_ tree: consuming Tree) async throws -> ID {
        let plaintext = TreeCoding.encode(tree)
        _ = consume tree
        return try await blobs.save(.tree, consume plaintext)
    }
}
