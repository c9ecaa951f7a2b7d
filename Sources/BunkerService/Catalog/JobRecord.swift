import BunkerCore
import Foundation
import GRDB

/// A long operation (table `jobs`): a backup, restore, drill, export or verify, from its start
/// row in the audit trail to its end row.
public struct JobRecord: Codable, Sendable, Equatable {
    /// Where a job is.
    public enum State: String, Sendable, Codable {
        case running, succeeded, failed
        /// Its process died; closed at the next start.
        case interrupted
    }

    /// A UUID.
    public var id: String
    /// The audited action: `backup`, `restore`, …
    public var kind: String
    public var state: State
    public var actor: String
    public var target: String?
    public var startedAt: Date
    public var finishedAt: Date?
    /// The process running it, so that the next start can tell a crash from a job still running.
    public var pid: Int32
    /// The process's boot id and start time (`<boot id>:<ticks>`), which tell a reused pid from
    /// the job's own process; nil for jobs written before Bunker kept it.
    public var processStart: String?
    public var hostname: String
    /// The job's start row in the audit trail.
    public var auditSeq: Int64
    public var message: String?
    /// Who asked the running job to stop (`bunker jobs cancel`), until its process stops it.
    public var cancelRequestedBy: String? = nil
    /// The running job's counters, as its process last published them (once a second), so
    /// that `bunker jobs` in another process shows how far it is; the final ones once it ended.
    public var progress: OperationProgress.Counters? = nil

    enum CodingKeys: String, CodingKey {
        case id, kind, state, actor, target, pid, hostname, message, progress
        case cancelRequestedBy = "cancel_requested_by"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case auditSeq = "audit_seq"
        case processStart = "process_start"
    }
}

extension JobRecord.State: DatabaseValueConvertible {}

extension JobRecord: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "jobs"
    /// Dates as GRDB writes them, without its `DateFormatter` (see ``CatalogDate``).
    public static func databaseDateEncodingStrategy(for column: String) -> DatabaseDateEncodingStrategy { CatalogDate.encoding }
}
