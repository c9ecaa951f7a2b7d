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
        /// Quiet events (see ``isQuiet``): a verify, drill or copy that succeeded, which resolves
        /// the PagerDuty incident its failure opened.
        case verifySucceeded = "verify_succeeded"
        case drillSucceeded = "drill_succeeded"
        case copySucceeded = "copy_succeeded"
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
        /// The repository holds 80 % or more of its size budget (`[repository] max_size`).
        case repositoryBudget = "repository_budget"
        case accountLocked = "account_locked"
        case test = "test"

        /// Told only to notifiers whose `events` list it: a success nobody needs mail about, sent
        /// by default only to PagerDuty, where it resolves the incident.
        public var isQuiet: Bool {
            self == .verifySucceeded || self == .drillSucceeded || self == .copySucceeded
        }

        /// How loudly to say it.
        public var severity: Severity {
            switch self {
            case .backupSucceeded, .restoreSucceeded, .verifySucceeded, .drillSucceeded, .copySucceeded, .test: return .info
            case .backupOverdue, .lowDiskSpace, .repositoryBudget, .accountLocked, .walArchiveLag: return .warning
            case .backupFailed, .verifyFailed, .drillFailed, .copyFailed, .walArchiveFailed, .walArchiveGap: return .error
            case .restoreFailed: return .critical
            }
        }
    }

    /// What tells about an event, and what it resolves in an incident tool: one key per thing
    /// that fails and later succeeds (the backups, a verify, a source's WAL archive, …).
    public var topic: String {
        switch kind {
        case .backupSucceeded, .backupFailed, .backupOverdue: "backup"
        case .restoreSucceeded, .restoreFailed: "restore"
        case .verifySucceeded, .verifyFailed: "verify"
        case .drillSucceeded, .drillFailed: "drill"
        case .copySucceeded, .copyFailed: "copy:" + (fact("Destination") ?? "")
        case .walArchiveFailed, .walArchiveLag, .walArchiveGap: "wal:" + (fact("Source") ?? "")
        case .lowDiskSpace, .repositoryBudget: "space"
        case .accountLocked: "account:" + (fact("User") ?? "")
        case .test: "test"
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
