import Foundation

/// What prune found and did.
public struct PruneReport: Sendable, Codable {
    public var dryRun = false
    public var snapshots = 0
    public var packs = 0
    public var blobsUsed = 0
    public var blobsUnused = 0
    /// Stored bytes of the blobs snapshots use, and of those they do not (duplicates included).
    public var usedBytes: UInt64 = 0
    public var unusedBytes: UInt64 = 0
    /// Packs no snapshot uses any blob of: deleted.
    public var packsDeleted = 0
    /// Packs whose used blobs were copied into new packs, then deleted.
    public var packsRepacked = 0
    public var packsWritten = 0
    /// Packs left by interrupted writers that no index names: deleted once past the grace period.
    public var unindexedPacksDeleted = 0
    /// Such packs kept because they are younger than the grace period (or their age is unknown).
    public var unindexedPacksKept = 0
    public var indexFilesReplaced = 0
    public var bytesDeleted: UInt64 = 0
    public var bytesWritten: UInt64 = 0
    /// Used blob bytes copied out of repacked packs (a dry run's estimate of what it would write).
    public var bytesRepacked: UInt64 = 0
    /// Unused bytes that stay in packs below the `max_unused` threshold.
    public var unusedBytesRemaining: UInt64 = 0
    public var temporaryFilesRemoved = 0
    /// Packs the storage said it deleted that are still there: not counted as deleted or freed
    /// (a later prune tries again). Their ids.
    public var packsNotDeleted: [String] = []
    /// The bytes of ``packsNotDeleted``.
    public var bytesNotFreed: UInt64 = 0
    /// Packs and index files prune dropped but did not delete because their object lock has not
    /// ended; their bytes are in neither ``bytesDeleted`` nor ``bytesFreed``.
    public var objectsKeptByLock = 0
    public var bytesKeptByLock: UInt64 = 0
    /// When the last of those locks ends: a prune after it deletes them.
    public var keptByLockUntil: Date?
    /// Objects still in use whose retention prune extended.
    public var locksExtended = 0
    /// Archived WAL files no kept base backup and no point of the PITR window needs, removed
    /// (in a dry run: that would be). Set by the service layer, which knows the sources.
    public var walFilesRemoved = 0

    /// Bytes of storage given back: deleted minus written (a dry run's estimate counts the used
    /// bytes it would copy as written).
    public var bytesFreed: Int64 = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case snapshots, packs
        case dryRun = "dry_run"
        case blobsUsed = "blobs_used"
        case blobsUnused = "blobs_unused"
        case usedBytes = "used_bytes"
        case unusedBytes = "unused_bytes"
        case packsDeleted = "packs_deleted"
        case packsRepacked = "packs_repacked"
        case packsWritten = "packs_written"
        case unindexedPacksDeleted = "unindexed_packs_deleted"
        case unindexedPacksKept = "unindexed_packs_kept"
        case indexFilesReplaced = "index_files_replaced"
        case bytesDeleted = "bytes_deleted"
        case bytesWritten = "bytes_written"
        case bytesRepacked = "bytes_repacked"
        case unusedBytesRemaining = "unused_bytes_remaining"
        case temporaryFilesRemoved = "temporary_files_removed"
        case bytesFreed = "bytes_freed"
        case packsNotDeleted = "packs_not_deleted"
        case bytesNotFreed = "bytes_not_freed"
        case objectsKeptByLock = "objects_kept_by_lock"
        case bytesKeptByLock = "bytes_kept_by_lock"
        case keptByLockUntil = "kept_by_lock_until"
        case locksExtended = "locks_extended"
        case walFilesRemoved = "wal_files_removed"
    }
}
