import Foundation

/// Something users are told about by e-mail and webhooks.
public struct NotificationEvent: Sendable, Codable, Equatable {
    /// What happened. The raw values are the names used in `bunker.toml` (`events = […]`) and in
    /// webhook bodies.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case backupSucceeded = "backup_succeeded"
        case backupFailed = "backup_failed"
        case restoreSucceeded = "restore_succeeded"
        case restoreFailed = "restore_failed"
        case verifyFailed = "verify_failed"
        case drillFailed = "drill_failed"
        case copyFailed = "copy_failed"
        /// `wal push` refused a WAL file: different content under an archived name, or WAL of
        /// another cluster. PostgreSQL keeps the file and retries; the PITR window stops growing.
        case walArchiveFailed = "wal_archive_failed"
        /// No WAL file of a postgres source was archived for longer than the lag threshold: the
        /// point-in-time window stopped growing (or the cluster was idle).
        case walArchiveLag = "wal_archive_lag"
        /// WAL segments are missing between the first and the last archived: no point-in-time
        /// restore can pass the gap until a new base backup is taken.
        case walArchiveGap = "wal_archive_gap"
        case backupOverdue = "backup_overdue"
        case lowDiskSpace = "low_disk_space"
        case accountLocked = "account_locked"
        case test = "test"

        /// How loudly to say it.
        public var severity: Severity {
            switch self {
            case .backupSucceeded, .restoreSucceeded, .test: return .info
            case .backupOverdue, .lowDiskSpace, .accountLocked, .walArchiveLag: return .warning
            case .backupFailed, .verifyFailed, .drillFailed, .copyFailed, .walArchiveFailed, .walArchiveGap: return .error
            case .restoreFailed: return .critical
            }
        }
    }

    public enum Severity: String, Sendable, Codable {
        case info, warning, error, critical
    }

    /// One labelled fact shown in the message (`Snapshot: 1a2b3c4d`).
    public struct Fact: Sendable, Codable, Equatable {
        public var label: String
        public var value: String

        public init(_ label: String, _ value: String) {
            self.label = label
            self.value = value
        }
    }

    public var kind: Kind
    public var time: Date
    /// One line: what happened ("Backup of app-db, studies succeeded").
    public var title: String
    /// The facts: ids, sizes, checksums, durations, the error.
    public var facts: [Fact]
    /// What to do next: recommended actions after a failure, a checklist after a restore.
    public var actions: [String]
    /// Who started the operation (a user name), when someone did.
    public var initiatedBy: String?
    /// The e-mail of who started it, when known: they are told too.
    public var initiatorEmail: String?

    public init(kind: Kind, time: Date = Date(), title: String, facts: [Fact] = [], actions: [String] = [],
                initiatedBy: String? = nil, initiatorEmail: String? = nil) {
        self.kind = kind
        self.time = time
        self.title = title
        self.facts = facts
        self.actions = actions
        self.initiatedBy = initiatedBy
        self.initiatorEmail = initiatorEmail
    }

    /// The value of the fact labelled `label`.
    public func fact(_ label: String) -> String? {
        facts.first { $0.label == label }?.value
    }
}
