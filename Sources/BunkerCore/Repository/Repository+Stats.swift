import Foundation

/// When a source (or a backed-up path) was last backed up.
public struct SourceLastBackup: Sendable, Codable, Equatable {
    /// The source's name, or the path for a backup of plain paths.
    public var name: String
    /// `files`, `sqlite`, `postgres`, or `path`.
    public var kind: String
    public var lastBackup: Date
    public var snapshot: String

    public init(name: String, kind: String, lastBackup: Date, snapshot: String) {
        self.name = name
        self.kind = kind
        self.lastBackup = lastBackup
        self.snapshot = snapshot
    }

    enum CodingKeys: String, CodingKey {
        case name, kind, snapshot
        case lastBackup = "last_backup"
    }
}

/// Sizes and ratios of a repository.
public struct RepositoryStats: Sendable, Codable {
    public var snapshots = 0
    public var snapshotsByTag: [String: Int] = [:]
    /// Snapshots per backup type (`full`, `database`, `files`; `paths` for a backup of plain paths).
    public var snapshotsByKind: [String: Int] = [:]
    /// Every source's newest snapshot, safety snapshots aside (they are not scheduled backups).
    public var sources: [SourceLastBackup] = []
    /// Snapshots under a hold.
    public var heldSnapshots = 0
    /// Configured sources that no snapshot holds yet (filled in by the service layer, which
    /// knows the configuration).
    public var sourcesNeverBackedUp: [String] = []
    public var packs = 0
    public var blobs = 0
    /// Sum over snapshots of the bytes they hold (what restoring all of them would write).
    public var logicalBytes: UInt64 = 0
    /// Plaintext bytes of distinct blobs (after deduplication, before compression).
    public var uniqueBytes: UInt64 = 0
    /// Bytes the repository occupies in storage (all objects).
    public var storedBytes: UInt64 = 0
    /// logical / unique.
    public var deduplicationRatio: Double = 0
    /// unique / stored pack bytes.
    public var compressionRatio: Double = 0
    public var oldest: Date?
    public var newest: Date?
    /// Free space on the repository's filesystem, when the storage can tell.
    public var freeBytes: UInt64?
    public var totalBytes: UInt64?
    /// The repository's object lock, when it has one.
    public var objectLock: ObjectLockStatus?
    /// Each postgres source's archived WAL (range, gaps, archive lag); nil when none is archived.
    public var wal: [WalArchiveSummary]?

    enum CodingKeys: String, CodingKey {
        case snapshots, packs, blobs, oldest, newest, sources, wal
        case objectLock = "object_lock"
        case snapshotsByTag = "snapshots_by_tag"
        case snapshotsByKind = "snapshots_by_kind"
        case heldSnapshots = "held_snapshots"
        case sourcesNeverBackedUp = "sources_never_backed_up"
        case logicalBytes = "logical_bytes"
        case uniqueBytes = "unique_bytes"
        case storedBytes = "stored_bytes"
        case deduplicationRatio = "deduplication_ratio"
        case compressionRatio = "compression_ratio"
        case freeBytes = "free_bytes"
        case totalBytes = "filesystem_bytes"
    }
}

/// What `bunker stats` says about a repository's object lock.
public struct ObjectLockStatus: Sendable, Codable, Equatable {
    public var mode: ObjectLockMode
    public var days: Int
    /// Whether the bucket refused to delete a retained version when probed at `init`.
    public var enforced: Bool
    /// Whether Bunker calls the repository immutable: a lock is configured and the bucket was
    /// seen to enforce it. `bunker verify` probes again.
    public var immutable: Bool

    public init(_ settings: ObjectLockSettings) {
        mode = settings.mode
        days = settings.days
        enforced = settings.enforced
        immutable = settings.enforced
    }
}

extension Repository {
    /// Counts snapshots, blobs and bytes.
    public func stats() async throws -> RepositoryStats {
        var stats = RepositoryStats()
        stats.objectLock = config.objectLock.map(ObjectLockStatus.init)
        let snapshots = try await snapshots()
        stats.snapshots = snapshots.count
        var last: [String: SourceLastBackup] = [:]
        for (id, snapshot) in snapshots {
            stats.logicalBytes += snapshot.summary?.totalBytes ?? 0
            for tag in snapshot.tags { stats.snapshotsByTag[tag, default: 0] += 1 }
            stats.snapshotsByKind[snapshot.backupType ?? "paths", default: 0] += 1
            guard !snapshot.tags.contains(RetentionPolicy.safetyTag) else { continue }
            let covered = snapshot.sources?.map { ($0.name, $0.kind) } ?? snapshot.paths.map { ($0, "path") }
            for (name, kind) in covered {
                // Snapshots come oldest first: the last one seen is the newest.
                last[name + "\u{0}" + kind] = SourceLastBackup(name: name, kind: kind, lastBackup: snapshot.time, snapshot: id.hex)
            }
        }
        stats.sources = last.values.sorted { ($0.name, $0.kind) < ($1.name, $1.kind) }
        // A damaged hold stops a forget, not a report.
        let holds = (try? await holds()) ?? []
        stats.heldSnapshots = Set(holds.map(\.hold.snapshot)).intersection(snapshots.map(\.id)).count
        stats.oldest = snapshots.first?.snapshot.time
        stats.newest = snapshots.last?.snapshot.time
        var packBytes: UInt64 = 0
        for kind in ObjectKind.allCases {
            for info in try await storage.list(kind) {
                stats.storedBytes += UInt64(info.size)
                if kind == .pack {
                    stats.packs += 1
                    packBytes += UInt64(info.size)
                }
            }
        }
        // Counted in place: grouping a million blobs by pack first cost 80 MB at 10 GiB.
        index.forEachBlob { _, blob in
            stats.blobs += 1
            stats.uniqueBytes += UInt64(blob.plaintextLength)
        }
        if stats.uniqueBytes > 0 { stats.deduplicationRatio = Double(stats.logicalBytes) / Double(stats.uniqueBytes) }
        if packBytes > 0 { stats.compressionRatio = Double(stats.uniqueBytes) / Double(packBytes) }
        let wal = try await WalArchive.summaries(of: self)
        stats.wal = wal.isEmpty ? nil : wal
        if let reporting = storage.capability((any SpaceReporting).self), let space = reporting.space() {
            stats.freeBytes = space.free
            stats.totalBytes = space.total
        }
        return stats
    }
}
