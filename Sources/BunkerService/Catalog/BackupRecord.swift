import BunkerCore
import Foundation
import GRDB

/// What the catalog knows about one snapshot (table `backups`): who made it and why, which the
/// repository does not record, and its sizes for listing without opening the repository.
///
/// The repository stays the source of truth for what exists: ``Catalog/rebuildBackups(from:by:)``
/// re-creates these rows from the snapshots.
public struct BackupRecord: Codable, Sendable, Equatable {
    /// The snapshot id (64 hex digits).
    public var snapshotID: String
    /// The actor's name; `unknown (rebuilt)` when recovered from a snapshot made before the catalog.
    public var createdBy: String
    /// The catalog user, when the backup was made through the API.
    public var createdByUserID: Int64?
    public var description: String?
    /// `full`, `database` or `files`; nil for a backup of plain paths.
    public var backupType: String?
    /// Bytes of the data backed up.
    public var sizeBytes: Int64
    /// Bytes the backup added to the repository's storage.
    public var storedBytes: Int64
    public var fileCount: Int64
    /// The snapshot's content address: the id of its root tree, which changes when any byte of
    /// the backed-up data does.
    public var checksum: String
    public var createdAt: Date
    public var hostname: String
    /// JSON list.
    public var tags: String
    /// JSON list of the source names, or of the paths for a plain backup.
    public var sources: String
    /// The SHA-256 of the snapshot's export ZIP, recorded by its last complete export; nil
    /// before one.
    public var archiveSHA256: String?
    /// The ``BunkerService/exportFormat`` that ZIP was written in: the checksum holds for it only.
    public var archiveFormat: String?

    enum CodingKeys: String, CodingKey {
        case description, checksum, hostname, tags, sources
        case snapshotID = "snapshot_id"
        case createdBy = "created_by"
        case createdByUserID = "created_by_user_id"
        case backupType = "backup_type"
        case sizeBytes = "size_bytes"
        case storedBytes = "stored_bytes"
        case fileCount = "file_count"
        case createdAt = "created_at"
        case archiveSHA256 = "archive_sha256"
        case archiveFormat = "archive_format"
    }

    /// The row for a snapshot made by `createdBy`.
    public init(id: ID, snapshot: Snapshot, createdBy: String, userID: Int64?) {
        snapshotID = id.hex
        self.createdBy = createdBy
        createdByUserID = userID
        description = snapshot.description
        backupType = snapshot.backupType
        sizeBytes = Int64(snapshot.summary?.totalBytes ?? 0)
        storedBytes = Int64(snapshot.summary?.dataAddedStored ?? 0)
        fileCount = Int64(snapshot.summary?.totalFiles ?? 0)
        checksum = snapshot.tree.hex
        createdAt = snapshot.time
        hostname = snapshot.hostname
        tags = Self.jsonList(snapshot.tags)
        sources = Self.jsonList(snapshot.sources?.map(\.name) ?? snapshot.paths)
    }

    static func jsonList(_ values: [String]) -> String {
        (try? JSONEncoder().encode(values)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
    }
}

extension BackupRecord: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "backups"
    /// Dates as GRDB writes them, without its `DateFormatter` (see ``CatalogDate``).
    public static func databaseDateEncodingStrategy(for column: String) -> DatabaseDateEncodingStrategy { CatalogDate.encoding }
}
