import Synchronization

/// One backup's claims in the repository's shared in-memory index, from its first new blob to its
/// last index file: the only place that reserves blobs, records written packs, and settles both
/// after a failure.
///
/// The ``MasterIndex`` is shared by every operation of the process (the server runs several
/// backups beside each other); this session remembers which of its facts are this backup's own,
/// so that it settles those and nothing else.
///
/// ## Invariants
/// - **A claim** is a *reserved blob* (this session will store it; it is in no written pack yet)
///   or a *written pack* (on storage and known to the shared index, but named by no index file
///   yet). Every reserved blob ends in a written pack or is released; every written pack ends
///   named by an index file or forgotten.
/// - **Claiming** (``claim(_:)``) decides whether a blob is stored: not if the index knows it or
///   this session already claimed it; yes if nobody has it. A blob another session of the process
///   has reserved is claimed and stored here too, for that one may yet fail and never write it:
///   a duplicate costs space until the next prune, a missing blob costs the snapshot.
/// - **Settling as packs are written** (``packWritten(_:blobs:)``, the ``Packer``'s callback): the
///   pack's blobs stop being reserved and become known, so later backups deduplicate against
///   them; every ``packsPerIndex`` packs an index file names them, so that a backup interrupted
///   later loses at most that much work. ``finish()`` writes the last index file. Order on
///   storage: packs, then the index that names them, then (the caller's part) the snapshot.
/// - **Settling after a failure or a cancellation** (``settleAfterFailure()``, called by whoever
///   ran the session, before it rethrows): the packs already written are indexed if at all
///   possible, and every blob still reserved is released. The repository is then as a killed
///   process would leave it (it verifies; the next backup completes), and the shared index is
///   true for the next operation of this process.
final class WriteSession: Sendable {
    private let repository: Repository
    private let claims = Mutex<(packs: Set<ID>, reserved: Set<ID>)>(([], []))

    /// Packs written between two index files.
    static let packsPerIndex = 8

    init(repository: Repository) {
        self.repository = repository
    }

    /// Claims blob `id` for this session: true if the caller must store it, false if the
    /// repository or this session already has it (see the invariants above).
    func claim(_ id: ID) -> Bool {
        if !repository.index.reserve(id) {
            if repository.index.contains(id) || claims.withLock({ $0.reserved.contains(id) }) { return false }
        }
        claims.withLock { _ = $0.reserved.insert(id) }
        return true
    }

    /// Records a pack just written to storage: its blobs become known to the shared index, and
    /// every few packs an index file names them.
    func packWritten(_ id: ID, blobs: [PackedBlob]) async throws {
        repository.index.addPending(pack: id, blobs: blobs)
        claims.withLock { claims in
            claims.packs.insert(id)
            for blob in blobs { claims.reserved.remove(blob.id) }
        }
        FaultPoints.hit("backup-after-pack")
        if repository.index.unsavedPackCount >= WriteSession.packsPerIndex {
            try await repository.flushIndex()
        }
    }

    /// Writes the index file naming the packs not yet indexed; call after the last pack is
    /// written and before the snapshot that needs them.
    func finish() async throws {
        try await repository.flushIndex()
    }

    /// Leaves the shared index true after the backup failed or was cancelled.
    ///
    /// The packs already written are indexed, so they are safe from prune and the next backup
    /// may reuse them; if even that index file cannot be written (a full disk), they are dropped
    /// from memory instead, since prune will delete them as leftovers once they are past its
    /// grace period and nothing may deduplicate against them. Blobs reserved but never written
    /// are released, or no later backup of this process would ever store them.
    func settleAfterFailure() async {
        do {
            try await repository.flushIndex()
        } catch {
            repository.index.dropUnsaved(claims.withLock { $0.packs })
        }
        repository.index.release(claims.withLock { $0.reserved })
        claims.withLock { $0 = ([], []) }
    }
}
