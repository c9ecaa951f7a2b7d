/// Removes data that no snapshot references.
///
/// ## Algorithm
/// Under the repository's exclusive lock, in two parts: ``plan()`` reads and decides (steps 1–3;
/// a dry run reports its plan and stops there), ``apply(_:)`` writes and deletes (step 4).
/// 1. Read every index file (a damaged one stops prune: it cannot tell what is used) and walk
///    every snapshot's trees to collect the blobs in use (a damaged snapshot or a missing tree
///    stops prune too: its blobs would look unused). Each used blob gets one home, its first
///    copy in a pack that exists; other copies are duplicates and count as unused. A used blob
///    with no existing copy stops prune, and so does finding no snapshot at all while the index
///    names packs (unless `--allow-empty`): that is more often a listing that failed than an
///    empty repository.
/// 2. Sort the indexed packs: wholly used (kept), wholly unused (deleted), partly used. Partly
///    used packs are repacked, emptiest first, until the unused bytes left are within
///    `max_unused` (and at most `max_repack_size` bytes are rewritten).
/// 3. Packs in the storage listing that no index names (left by a writer that died) are deleted
///    when older than the grace period; a listing is never trusted further than that. A listing
///    that lacks a pack the index names stops prune before anything is deleted: it may have
///    lost others too (an eventually consistent store, a page cut short).
/// 4. Write, in this order, each step durable before the next:
///    new packs (used blobs of repacked packs, copied sealed and authenticated on the way) →
///    one new index file listing every kept and new pack and **superseding** every index file
///    read → deletion of the superseded index files → deletion of the dropped packs →
///    deletion of `.tmp-*` leftovers. Every deletion is confirmed by asking for the object
///    again: a superseded index file that stays stops prune before any pack is deleted, and a
///    pack that stays is reported and not counted as freed.
///
/// Killed at any point, the repository stays whole: until the new index exists, the old ones
/// still name every pack and nothing was deleted; once it exists, it names every pack a snapshot
/// needs, so deleting the old index files and then the dropped packs removes nothing in use.
/// The next prune sees leftovers as unused (still indexed) or unindexed packs and removes them.
public struct Pruner: Sendable {
    let repository: Repository
    let options: PruneOptions
    let progress: OperationProgress?

    /// `progress` counts snapshots walked, then packs and bytes repacked.
    public init(repository: Repository, options: PruneOptions = PruneOptions(), progress: OperationProgress? = nil) {
        self.repository = repository
        self.options = options
        self.progress = progress
    }

    /// Prunes under the exclusive lock; pass `lockHeld` only from inside
    /// ``Repository/withLock(exclusive:_:)`` with `exclusive`.
    /// A dry run takes a shared lock: it only reads.
    public func run(lockHeld: Bool = false) async throws -> PruneReport {
        try options.validate()
        if lockHeld { return try await pruneKeepingIndex() }
        return try await repository.withLock(exclusive: !options.dryRun) { try await self.pruneKeepingIndex() }
    }

    /// Plans, then applies the plan unless this is a dry run (whose report is the plan's).
    ///
    /// If a real prune stops half-way, the in-memory index is read again in full, so that a
    /// long-lived process (the server) goes on with a complete index. A dry run never touches
    /// the repository's in-memory index: it runs under a shared lock, beside backups of the same
    /// process whose packs are not indexed yet.
    private func pruneKeepingIndex() async throws -> PruneReport {
        do {
            let plan = try await plan()
            if options.dryRun { return try await reportWithLocks(plan) }
            return try await apply(plan)
        } catch {
            if !options.dryRun {
                repository.index.removeAll()
                try? await repository.loadIndex()
            }
            throw error
        }
    }

    /// The error for a repository prune cannot safely judge; thrown before anything is deleted.
    func refuse(_ what: String, cause: (any Error & Sendable)? = nil) -> BunkerError {
        BunkerError(.corruptObject, "Prune stopped before changing anything: \(what). Run `bunker verify` to see what is damaged; prune only runs on a repository whose snapshots can all be read.", cause: cause)
    }
}
