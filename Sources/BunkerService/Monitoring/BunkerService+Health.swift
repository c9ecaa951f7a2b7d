import BunkerCore
import Foundation
import GRDB

/// What an administrator sees at `GET /api/v1/health`: is anything overdue, failing or full.
public struct HealthDetail: Sendable, Codable {
    public struct LastRun: Sendable, Codable {
        public var time: String
        public var outcome: String
        public var target: String?
        public var details: [String: String]
    }

    public struct Space: Sendable, Codable {
        public var freeBytes: UInt64
        public var totalBytes: UInt64
        public var freePercent: Double

        enum CodingKeys: String, CodingKey {
            case freeBytes = "free_bytes"
            case totalBytes = "total_bytes"
            case freePercent = "free_percent"
        }
    }

    public struct ScheduledJob: Sendable, Codable {
        public var job: String
        public var cron: String
        public var backupType: String?
        public var nextRun: String?

        enum CodingKeys: String, CodingKey {
            case job, cron
            case backupType = "backup_type"
            case nextRun = "next_run"
        }
    }

    /// `ok`, or `degraded` with the reasons in ``problems``.
    public var status: String
    public var problems: [String]
    /// The problems that mean backups are not protecting the data now (none succeeded for too
    /// long, a failed verify or drill, a break in the WAL archive): `bunker check`'s CRITICAL;
    /// the rest of ``problems`` are warnings. Not part of the API's body.
    public var criticalProblems: [String] = []
    public var lastBackupAt: String?
    public var lastBackupAgeHours: Double?
    public var lastBackupID: String?
    public var lastVerify: LastRun?
    public var lastDrill: LastRun?
    public var space: Space?
    public var scheduler: [ScheduledJob]
    public var notificationsWaiting: Int
    public var notificationsFailed: Int

    enum CodingKeys: String, CodingKey {
        case status, problems, space, scheduler
        case lastBackupAt = "last_backup_at"
        case lastBackupAgeHours = "last_backup_age_hours"
        case lastBackupID = "last_backup_id"
        case lastVerify = "last_verify"
        case lastDrill = "last_drill"
        case notificationsWaiting = "notifications_waiting"
        case notificationsFailed = "notifications_failed"
    }
}

extension Catalog {
    /// The audit rows of lockouts (the refused password that locked the account; not the
    /// attempts refused while it stays locked), oldest first.
    func lockouts(limit: Int = 100) throws -> [MonitorReading.Lockout] {
        try queue.read { db in
            try AuditRecord.filter(Column("outcome") == AuditOutcome.denied.rawValue && Column("reason").like("%wrong password (%); locked until%"))
                .order(Column("seq").desc).limit(limit).fetchAll(db)
        }.reversed().map { MonitorReading.Lockout(seq: $0.seq, username: $0.action == "auth.login" ? ($0.target ?? $0.actor) : $0.actor, time: $0.timestamp, reason: $0.reason ?? "") }
    }

    /// The newest end row of `action` (a finished verify, drill, …).
    func lastFinished(_ action: String) throws -> AuditRecord? {
        try queue.read { db in
            try AuditRecord.filter(Column("action") == action && Column("operation_seq") != nil).order(Column("seq").desc).fetchOne(db)
        }
    }
}

extension BunkerService {
    /// The health of backups: last backup and its age, last verify and drill, free space, the
    /// scheduler's next runs, and the notification outbox.
    public func healthDetail() async -> HealthDetail {
        let now = repository.now()
        let formatter = ISO8601DateFormatter()
        var problems: [String] = []
        var critical: [String] = []
        func criticalProblem(_ text: String) {
            problems.append(text)
            critical.append(text)
        }
        let newest = try? await repository.snapshots().last { !$0.snapshot.tags.contains("safety") }
        let age = newest.map { now.timeIntervalSince($0.snapshot.time) / 3600 }
        if let age, age > configuration.notifications.backupOverdueHours {
            criticalProblem(String(format: "no successful backup for %.1f hours", age))
        } else if newest == nil {
            problems.append("no backup yet")
        }
        func lastRun(_ action: String) -> HealthDetail.LastRun? {
            guard let row = try? catalog().lastFinished(action) else { return nil }
            return HealthDetail.LastRun(time: row.timestamp, outcome: row.outcome.rawValue, target: row.target, details: row.detailValues)
        }
        let verify = lastRun("verify")
        let drill = lastRun("drill")
        if verify?.outcome == "failure" { criticalProblem("the last verify found problems") }
        if drill?.outcome == "failure" { criticalProblem("the last restore drill failed") }
        if let lock = repository.config.objectLock, !lock.enforced {
            problems.append("the repository is configured for object lock, but its bucket does not enforce it: it is not immutable")
        }
        // A gap in archived WAL is a break in the point-in-time window: no restore can pass it.
        // No WAL archived for longer than the threshold: the window stopped growing.
        for wal in (try? await walSummaries()) ?? [] {
            if !wal.gaps.isEmpty {
                let missing = wal.gaps.reduce(0) { $0 + $1.count }
                criticalProblem("WAL of \(wal.source) has \(missing) segments missing from the archive (first \(wal.gaps[0].firstMissing)): take a new base backup")
            }
            if let last = wal.lastPush, now.timeIntervalSince(last) > configuration.notifications.walArchiveLagMinutes * 60 {
                problems.append("no WAL of \(wal.source) archived for \(Int(now.timeIntervalSince(last) / 60)) minutes (threshold \(Int(configuration.notifications.walArchiveLagMinutes))): check archive_command and pg_stat_archiver")
            }
        }
        var space: HealthDetail.Space?
        if let (free, total) = repository.storage.capability((any SpaceReporting).self)?.space(), total > 0 {
            let percent = Double(free) / Double(total) * 100
            space = HealthDetail.Space(freeBytes: free, totalBytes: total, freePercent: (percent * 10).rounded() / 10)
            if percent < configuration.notifications.minFreeSpacePercent { problems.append(String(format: "only %.1f%% free space", percent)) }
        }
        if let budget = (try? await sizeBudget()) ?? nil, budget.max > 0 {
            let percent = Double(budget.used) / Double(budget.max) * 100
            if percent >= AlertMonitor.budgetWarningPercent {
                let text = String(format: "the repository holds %.0f%% of its size budget (%@ of %@)", percent, NotificationEvent.size(budget.used), NotificationEvent.size(budget.max))
                if percent >= 100 { criticalProblem(text + ": backups are refused") } else { problems.append(text) }
            }
        }
        let next = await makeScheduler().nextRuns()
        let outbox = notificationOutbox()
        problems += notificationProblems
        if let failed = outbox?.failed.count, failed > 0 {
            problems.append("\(failed) notifications could not be delivered (see `bunker notify status`)")
        }
        return HealthDetail(
            status: problems.isEmpty ? "ok" : "degraded", problems: problems, criticalProblems: critical,
            lastBackupAt: newest.map { formatter.string(from: $0.snapshot.time) }, lastBackupAgeHours: age.map { ($0 * 10).rounded() / 10 },
            lastBackupID: newest?.id.hex, lastVerify: verify, lastDrill: drill, space: space,
            scheduler: next.map { HealthDetail.ScheduledJob(job: $0.schedule.job.rawValue, cron: $0.schedule.cron.description, backupType: $0.schedule.backupType?.rawValue, nextRun: $0.at.map(formatter.string)) },
            notificationsWaiting: outbox?.pending.count ?? 0, notificationsFailed: outbox?.failed.count ?? 0)
    }
}
