import BunkerCore
import Foundation
import GRDB

extension Catalog {
    /// Backup metadata, newest first.
    public func backups(limit: Int = 50) throws -> [BackupRecord] {
        try queue.read { try BackupRecord.order(Column("created_at").desc).limit(limit).fetchAll($0) }
    }

    /// The metadata of one snapshot.
    public func backup(id: String) throws -> BackupRecord? {
        try queue.read { try BackupRecord.fetchOne($0, key: id) }
    }

    /// Records the SHA-256 of the export ZIP of a snapshot, written in `format`; a snapshot the
    /// catalog has no row for is left alone.
    public func recordArchive(snapshotID: String, sha256: String, format: String) throws {
        try queue.write { db in
            try db.execute(
                sql: "UPDATE backups SET archive_sha256 = ?, archive_format = ? WHERE snapshot_id = ?",
                arguments: [sha256, format, snapshotID])
        }
    }

    /// Re-creates the rows of snapshots the catalog does not know (a lost or older catalog), as
    /// made by `unknown (rebuilt)` unless the snapshot names its user; rows already there keep
    /// what they say. Audited as `catalog.rebuild`; returns the number of rows added.
    @discardableResult
    public func rebuildBackups(from snapshots: [(id: ID, snapshot: Snapshot)], by actor: AuditActor) throws -> Int {
        try write { db in
            var added = 0
            for (id, snapshot) in snapshots where try !BackupRecord.exists(db, key: id.hex) {
                let creator = snapshot.username.isEmpty ? "unknown (rebuilt)" : "\(snapshot.username) (rebuilt)"
                try BackupRecord(id: id, snapshot: snapshot, createdBy: creator, userID: nil).insert(db)
                added += 1
            }
            try append(AuditEntry(action: "catalog.rebuild", target: "backups", outcome: .success,
                                  details: ["snapshots": String(snapshots.count), "added": String(added)]),
                       by: actor, in: db)
            return added
        }
    }
}
