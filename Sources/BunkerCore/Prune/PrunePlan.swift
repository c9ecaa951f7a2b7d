/// What a prune will do, decided from what it read under the lock (index files, snapshots, the
/// pack listing) before it changes anything.
///
/// A dry run reports ``report`` and stops; a real prune hands the plan to
/// ``Pruner/apply(_:)``, which does exactly this and adds to the report what only doing can tell
/// (packs and bytes written, files removed). There is no other place that decides what to delete.
struct PrunePlan: Sendable {
    /// Every index file read: the new index supersedes them all.
    var indexFiles: [ID]
    /// The blobs of every indexed pack, as the first index file naming the pack lists them.
    var packBlobs: [ID: [PackedBlob]]
    /// Every blob a snapshot uses, trees included.
    var used: Set<ID>
    /// Where each used blob is kept: its first copy in a pack that exists. Other copies are
    /// duplicates and count as unused.
    var home: [ID: ID]
    /// Indexed packs holding no used blob: deleted.
    var deleteIndexed: [ID] = []
    /// Packs holding used and unused blobs whose used blobs are copied into new packs, and which
    /// are then deleted; the emptiest first, within `max_unused` and `max_repack_size`.
    var repack: [ID] = []
    /// Packs no index names that are older than the grace period: deleted.
    var deleteUnindexed: [ID] = []
    /// The stored size of each pack in ``deleteUnindexed``.
    var unindexedSizes: [ID: UInt64] = [:]
    /// What was found and what would be done; as it stands, a dry run's report (bytes freed is
    /// then an estimate, counting the used bytes to copy as written).
    var report = PruneReport()

    /// Whether a new index file is written: something indexed is dropped, or several index files
    /// are merged into one.
    var changesIndex: Bool { !deleteIndexed.isEmpty || !repack.isEmpty || indexFiles.count > 1 }

    /// The indexed packs that stay, in id order: neither deleted nor repacked.
    var keptPacks: [(id: ID, blobs: [PackedBlob])] {
        let dropped = Set(deleteIndexed).union(repack)
        return packBlobs.filter { !dropped.contains($0.key) }.sorted { $0.key < $1.key }.map { (id: $0.key, blobs: $0.value) }
    }

    /// The bytes deleting `pack` gives back.
    func size(of pack: ID) -> UInt64 {
        if let blobs = packBlobs[pack] { return UInt64(PackFormat.packSize(blobs)) }
        return unindexedSizes[pack] ?? 0
    }

    /// Every pack to delete, in the order apply deletes them: the indexed ones (unused or
    /// repacked) by id, then the unindexed ones by id.
    var packsToDelete: [ID] { (deleteIndexed + repack).sorted() + deleteUnindexed.sorted() }
}
