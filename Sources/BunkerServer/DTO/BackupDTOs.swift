import BunkerCore
import BunkerService
import BunkerSources
import Foundation
import Hummingbird

/// The wire forms of backups, field for field as the Clinical Dashboard API has them.
enum WireTime {
    /// ISO 8601 in UTC, whole seconds: `2026-12-02T12:38:23Z`.
    static func string(_ date: Date) -> String {
        ISO8601DateFormatter().string(from: date)
    }

    /// A backup's file name in the Clinical Dashboard API: `backup_YYYYMMDD_HHMMSS.zip`, from its UTC time.
    static func backupFilename(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: "backup_%04d%02d%02d_%02d%02d%02d.zip", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
    }

    /// Bytes as the Clinical Dashboard API's `size_mb`: MiB with two decimals.
    static func megabytes(_ bytes: Int64) -> Double {
        (Double(bytes) / 1_048_576 * 100).rounded() / 100
    }
}

/// `POST /backup`'s body.
struct BackupRequestBody: Decodable {
    var description: String?
    var backupType: BackupType?
    /// Answer 202 with a job id at once instead of waiting.
    var async: Bool?

    enum CodingKeys: String, CodingKey {
        case description, async
        case backupType = "backup_type"
    }
}

/// `POST /backup`'s answer once the backup is done.
struct BackupCreated: ResponseEncodable {
    var success = true
    var backupID: String
    var filename: String
    var sizeMB: Double
    /// The SHA-256 of the backup's download (``BackupItemDTO/checksum``): null until its first
    /// export, so null for a backup just made.
    var checksum: String?
    var createdAt: String

    enum CodingKeys: String, CodingKey {
        case success, filename, checksum
        case backupID = "backup_id"
        case sizeMB = "size_mb"
        case createdAt = "created_at"
    }

    /// Every key, null or not: Clinical Dashboard clients read them all.
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(success, forKey: .success)
        try c.encode(backupID, forKey: .backupID)
        try c.encode(filename, forKey: .filename)
        try c.encode(sizeMB, forKey: .sizeMB)
        try c.encode(checksum, forKey: .checksum)
        try c.encode(createdAt, forKey: .createdAt)
    }
}

/// `POST /backup`'s (and `POST /restore`'s) answer with `"async": true`: 202 and the job to poll.
struct JobAccepted: ResponseEncodable {
    var success = true
    var jobID: String
    var status = "running"

    enum CodingKeys: String, CodingKey {
        case success, status
        case jobID = "job_id"
    }
}

/// One backup in `GET /backups` and `GET /backup/{id}`.
struct BackupItemDTO: ResponseEncodable {
    struct Metadata: Encodable {
        var backupType: String?
        var hostname: String
        var tags: [String]
        var sources: [String]
        var fileCount: Int64
        var sizeBytes: Int64
        var storedBytes: Int64

        enum CodingKeys: String, CodingKey {
            case hostname, tags, sources
            case backupType = "backup_type"
            case fileCount = "file_count"
            case sizeBytes = "size_bytes"
            case storedBytes = "stored_bytes"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(backupType, forKey: .backupType)
            try c.encode(hostname, forKey: .hostname)
            try c.encode(tags, forKey: .tags)
            try c.encode(sources, forKey: .sources)
            try c.encode(fileCount, forKey: .fileCount)
            try c.encode(sizeBytes, forKey: .sizeBytes)
            try c.encode(storedBytes, forKey: .storedBytes)
        }
    }

    var id: String
    var filename: String
    var sizeMB: Double
    /// The SHA-256 of the ZIP `GET /backup/{id}/download` sends, in hex, as `sha256sum` prints
    /// it: recorded by the backup's first complete export (a download or `bunker export`), null
    /// before one (or after an upgrade of Bunker or zlib, or a change of the compression level,
    /// until the next: those change the ZIP's bytes).
    var checksum: String?
    var description: String?
    /// The creating user's id; null for a backup from the command line.
    var createdBy: Int64?
    var createdByName: String
    var createdByEmail: String?
    var createdAt: String
    var metadata: Metadata
    /// Whether a legal hold keeps the backup from retention (`bunker hold`).
    var held = false
    /// The earliest time the retention policy could remove the backup; null while it is held
    /// or the policy keeps it for good (the DermAI backup strategy's manifest field).
    var retentionUntil: Date?

    enum CodingKeys: String, CodingKey {
        case id, filename, checksum, description, metadata, held
        case retentionUntil = "retention_until"
        case sizeMB = "size_mb"
        case createdBy = "created_by"
        case createdByName = "created_by_name"
        case createdByEmail = "created_by_email"
        case createdAt = "created_at"
    }

    init(_ record: BackupRecord, user: UserRecord?, checksum: String?) {
        id = record.snapshotID
        filename = WireTime.backupFilename(record.createdAt)
        sizeMB = WireTime.megabytes(record.sizeBytes)
        self.checksum = checksum
        description = record.description
        createdBy = record.createdByUserID
        createdByName = user?.fullName ?? record.createdBy
        createdByEmail = user?.email
        createdAt = WireTime.string(record.createdAt)
        let list = { (text: String) in (try? JSONDecoder().decode([String].self, from: Data(text.utf8))) ?? [] }
        metadata = Metadata(
            backupType: record.backupType, hostname: record.hostname, tags: list(record.tags), sources: list(record.sources),
            fileCount: record.fileCount, sizeBytes: record.sizeBytes, storedBytes: record.storedBytes)
    }

    /// Every key, null or not: Clinical Dashboard clients read them all.
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(filename, forKey: .filename)
        try c.encode(sizeMB, forKey: .sizeMB)
        try c.encode(checksum, forKey: .checksum)
        try c.encode(description, forKey: .description)
        try c.encode(createdBy, forKey: .createdBy)
        try c.encode(createdByName, forKey: .createdByName)
        try c.encode(createdByEmail, forKey: .createdByEmail)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(metadata, forKey: .metadata)
        try c.encode(held, forKey: .held)
        try c.encode(retentionUntil.map(WireTime.string), forKey: .retentionUntil)
    }
}

/// `POST /restore/{id}`'s body: the restore's options and its electronic signature.
struct RestoreRequestBody: Decodable {
    var createSafetyBackup: Bool?
    /// The caller's password, re-entered to sign the restore.
    var password: String?
    var reason: String?
    /// Point-in-time recovery of a physical PostgreSQL base backup: the moment to recover to.
    var targetTime: String?
    /// The new (empty or absent) data directory on the server a physical base backup goes into.
    var pgdata: String?
    /// Which source of the backup, when it holds more than one physical base backup.
    var source: String?

    enum CodingKeys: String, CodingKey {
        case password, reason, pgdata, source
        case createSafetyBackup = "create_safety_backup"
        case targetTime = "target_time"
    }
}

/// `POST /restore/{id}`'s answer.
struct RestoreDone: ResponseEncodable {
    var success = true
    var backupID: String
    var backupFilename: String
    var safetyBackupID: String?
    var restoredAt: String
    /// For a physical base backup: the data directory it went into, and the command that starts it.
    var pgdata: String?
    var startCommand: String?

    enum CodingKeys: String, CodingKey {
        case success
        case backupID = "backup_id"
        case backupFilename = "backup_filename"
        case safetyBackupID = "safety_backup_id"
        case restoredAt = "restored_at"
        case pgdata
        case startCommand = "start_command"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(success, forKey: .success)
        try c.encode(backupID, forKey: .backupID)
        try c.encode(backupFilename, forKey: .backupFilename)
        try c.encode(safetyBackupID, forKey: .safetyBackupID)
        try c.encode(restoredAt, forKey: .restoredAt)
        try c.encodeIfPresent(pgdata, forKey: .pgdata)
        try c.encodeIfPresent(startCommand, forKey: .startCommand)
    }
}

/// `POST /backup/{id}/verify`'s answer.
struct VerifyResult: ResponseEncodable {
    var backupID: String
    var valid: Bool
    var message: String

    enum CodingKeys: String, CodingKey {
        case valid, message
        case backupID = "backup_id"
    }
}

/// `GET /jobs/{id}`'s answer: the job's state from the catalog and, while this server runs it,
/// its progress.
struct JobStatus: ResponseEncodable {
    struct Progress: Encodable {
        var filesDone: Int
        var filesTotal: Int
        var bytesDone: UInt64
        var bytesTotal: UInt64
        var totalsKnown: Bool
        var current: String

        enum CodingKeys: String, CodingKey {
            case current
            case filesDone = "files_done"
            case filesTotal = "files_total"
            case bytesDone = "bytes_done"
            case bytesTotal = "bytes_total"
            case totalsKnown = "totals_known"
        }
    }

    var id: String
    var kind: String
    var state: String
    var target: String?
    var startedAt: String
    var finishedAt: String?
    var message: String?
    var backupID: String?
    var progress: Progress?

    enum CodingKeys: String, CodingKey {
        case id, kind, state, target, message, progress
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case backupID = "backup_id"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(kind, forKey: .kind)
        try c.encode(state, forKey: .state)
        try c.encode(target, forKey: .target)
        try c.encode(startedAt, forKey: .startedAt)
        try c.encode(finishedAt, forKey: .finishedAt)
        try c.encode(message, forKey: .message)
        try c.encode(backupID, forKey: .backupID)
        try c.encode(progress, forKey: .progress)
    }
}

/// `POST /backup/{id}/drill`'s answer: what the drill checked and how long it took (the measured
/// RTO), without the report's path on the server.
struct DrillResult: ResponseEncodable {
    struct Check: Encodable {
        var name: String
        var passed: Bool
        var detail: String
    }

    struct SourceResult: Encodable {
        var name: String
        var kind: String
        var passed: Bool
        var durationSeconds: Double
        var checks: [Check]

        enum CodingKeys: String, CodingKey {
            case name, kind, passed, checks
            case durationSeconds = "duration_seconds"
        }
    }

    var backupID: String
    var passed: Bool
    var durationSeconds: Double
    var startedAt: String
    var dataCheck: Check
    var sources: [SourceResult]

    init(_ report: DrillReport) {
        let check = { (c: DrillCheck) in Check(name: c.name, passed: c.passed, detail: APIError.withoutPaths(c.detail)) }
        backupID = report.snapshotID
        passed = report.passed
        durationSeconds = report.durationSeconds
        startedAt = WireTime.string(report.startedAt)
        dataCheck = check(report.dataCheck)
        sources = report.sources.map { SourceResult(name: $0.name, kind: $0.kind, passed: $0.passed, durationSeconds: $0.durationSeconds, checks: $0.checks.map(check)) }
    }

    enum CodingKeys: String, CodingKey {
        case passed, sources
        case backupID = "backup_id"
        case durationSeconds = "duration_seconds"
        case startedAt = "started_at"
        case dataCheck = "data_check"
    }
}

/// `POST /backup/{id}/restore-files`: which files and folders, where to, and the signature.
struct RestoreFilesBody: Decodable {
    var paths: [String]
    var target: String
    var password: String?
    var reason: String?
}

/// What `POST /backup/{id}/restore-files` restored.
struct FilesRestored: ResponseEncodable {
    var backupID: String
    /// The directory on the server, as asked: the client chose it.
    var target: String
    var files: Int
    var directories: Int
    var bytes: UInt64
    /// Entries that could not be restored (a name no file system takes, …); the audit row has them.
    var failures: Int

    enum CodingKeys: String, CodingKey {
        case target, files, directories, bytes, failures
        case backupID = "backup_id"
    }
}
