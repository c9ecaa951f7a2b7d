import Foundation

/// What the monitor looks at: facts read from the repository.
public struct MonitorReading: Sendable, Equatable {
    /// The newest successful backup that is not a safety copy; nil: none yet.
    public var lastSuccessfulBackup: Date?
    /// Free and total bytes of the repository's filesystem, when the storage can tell.
    public var space: (free: UInt64, total: UInt64)?
    /// Accounts locked after repeated wrong passwords, as the audit trail records them.
    public var lockouts: [Lockout]

    /// One lockout: the audit row that records it.
    public struct Lockout: Sendable, Equatable {
        public var seq: Int64
        public var username: String
        public var time: String
        public var reason: String

        public init(seq: Int64, username: String, time: String, reason: String) {
            self.seq = seq
            self.username = username
            self.time = time
            self.reason = reason
        }
    }

    /// Each postgres source's WAL archive.
    public var wal: [WalArchiveReading]
    /// The repository's stored bytes and its size budget, when one is set.
    public var budget: (used: UInt64, max: UInt64)?

    /// One source's archived WAL: when its newest file was archived, and the segments missing.
    public struct WalArchiveReading: Sendable, Equatable {
        public var source: String
        public var lastPush: Date?
        /// Segments missing between the first and the last archived, on every timeline.
        public var missingSegments: Int
        public var firstMissing: String?

        public init(source: String, lastPush: Date?, missingSegments: Int = 0, firstMissing: String? = nil) {
            self.source = source
            self.lastPush = lastPush
            self.missingSegments = missingSegments
            self.firstMissing = firstMissing
        }
    }

    public init(
        lastSuccessfulBackup: Date?, space: (free: UInt64, total: UInt64)?, lockouts: [Lockout] = [], wal: [WalArchiveReading] = [],
        budget: (used: UInt64, max: UInt64)? = nil
    ) {
        self.budget = budget
        self.lastSuccessfulBackup = lastSuccessfulBackup
        self.space = space
        self.lockouts = lockouts
        self.wal = wal
    }

    public static func == (a: MonitorReading, b: MonitorReading) -> Bool {
        a.lastSuccessfulBackup == b.lastSuccessfulBackup && a.space?.free == b.space?.free && a.space?.total == b.space?.total
            && a.lockouts == b.lockouts && a.wal == b.wal && a.budget?.used == b.budget?.used && a.budget?.max == b.budget?.max
    }
}

/// Raises the alerts nobody should have to look for: no successful backup for too long, too
/// little free space on the repository's filesystem, WAL not archived for too long, and WAL
/// segments missing from the archive.
///
/// Each alert is raised once per episode, not at every check: the overdue alert again only after
/// a newer backup has succeeded and become overdue in turn, the space alert again only after the
/// free space has recovered (by one point above the threshold) and fallen again. Before the
/// first backup, the overdue clock runs from when monitoring began. An account locked after
/// repeated wrong passwords is told about once per lockout. The WAL lag alert comes once per newest
/// archived file (again only after archiving resumed and stopped again); the gap alert once per
/// first missing segment, and again only after the gap was closed (a new base backup, then
/// retention) and another opened. What was raised is kept in a state
/// file, so a restart does not repeat it.
public final class AlertMonitor: Sendable {
    public let overdueAfter: TimeInterval
    public let minFreePercent: Double
    public let walLagAfter: TimeInterval
    /// The share of `[repository] max_size` from which the budget alert goes out (the DermAI
    /// strategy's 80 %).
    public static let budgetWarningPercent = 80.0
    private let stateFile: String?
    private let now: @Sendable () -> Date

    struct State: Codable {
        var watchingSince: Date
        /// The backup time (or `watchingSince`) the overdue alert was raised for.
        var overdueRaisedFor: Date?
        var lowSpaceRaised = false
        /// The audit row of the newest lockout already told about; nil before the first look,
        /// when the lockouts of the past are taken as known.
        var lastLockoutSeq: Int64?
        /// Per source: the newest archived file's time (whole seconds since 1970, which the state
        /// file keeps exactly) the lag alert was raised for.
        var walLagRaisedFor: [String: Int64]?
        /// Per source: the first missing segment the gap alert was raised for.
        var walGapRaisedFor: [String: String]?
        var budgetRaised: Bool?
    }

    public init(
        overdueHours: Double, minFreePercent: Double, walLagMinutes: Double = 60, stateFile: String?,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.overdueAfter = overdueHours * 3600
        self.minFreePercent = minFreePercent
        self.walLagAfter = walLagMinutes * 60
        self.stateFile = stateFile
        self.now = now
    }

    /// The alerts `reading` calls for now; remembers them so they are not raised twice.
    public func evaluate(_ reading: MonitorReading) -> [NotificationEvent] {
        let time = now()
        var state = load() ?? State(watchingSince: time)
        var alerts: [NotificationEvent] = []

        let reference = reading.lastSuccessfulBackup ?? state.watchingSince
        let age = time.timeIntervalSince(reference)
        // The state file keeps whole seconds (ISO 8601): compared at that precision, or a
        // backup time with a fraction never matches the reloaded state, and every `bunker
        // check` (and every round of `bunker serve`) sent the alert again.
        if age > overdueAfter && state.overdueRaisedFor.map(Self.wholeSeconds) != Self.wholeSeconds(reference) {
            state.overdueRaisedFor = reference
            let hours = String(format: "%.1f", age / 3600)
            var facts: [NotificationEvent.Fact] = [.init("Threshold", String(format: "%.0f hours", overdueAfter / 3600))]
            if let last = reading.lastSuccessfulBackup {
                facts.insert(.init("Last successful backup", ISO8601DateFormatter().string(from: last) + " (\(hours) hours ago)"), at: 0)
            } else {
                facts.insert(.init("Last successful backup", "none since monitoring began \(hours) hours ago"), at: 0)
            }
            alerts.append(NotificationEvent(
                kind: .backupOverdue, time: time, title: "No successful backup for \(hours) hours", facts: facts,
                actions: [
                    "Look for backup_failed messages and at `bunker audit list --action backup`.",
                    "Check that `bunker serve` (or the systemd timer / cron line) is running and that the schedule has a backup.",
                    "Run `bunker backup` now.",
                ]))
        }

        if let space = reading.space, space.total > 0 {
            let percent = Double(space.free) / Double(space.total) * 100
            if percent < minFreePercent && !state.lowSpaceRaised {
                state.lowSpaceRaised = true
                alerts.append(NotificationEvent(
                    kind: .lowDiskSpace, time: time, title: String(format: "Only %.1f%% free on the repository's filesystem", percent),
                    facts: [
                        .init("Free", NotificationEvent.size(space.free)), .init("Total", NotificationEvent.size(space.total)),
                        .init("Threshold", String(format: "%.0f%%", minFreePercent)),
                    ],
                    actions: [
                        "Run `bunker cleanup --dry-run` to see what the retention policy would free, then `bunker cleanup`.",
                        "Add space, or move the repository; a backup that fills the disk fails without harming earlier ones.",
                    ]))
            } else if percent >= minFreePercent + 1 {
                state.lowSpaceRaised = false
            }
        }
        if let budget = reading.budget, budget.max > 0 {
            let percent = Double(budget.used) / Double(budget.max) * 100
            if percent >= AlertMonitor.budgetWarningPercent && state.budgetRaised != true {
                state.budgetRaised = true
                alerts.append(NotificationEvent(
                    kind: .repositoryBudget, time: time, title: String(format: "The repository holds %.0f%% of its size budget", percent),
                    facts: [
                        .init("Stored", NotificationEvent.size(budget.used)), .init("Budget", NotificationEvent.size(budget.max)),
                        .init("Threshold", String(format: "%.0f%%", AlertMonitor.budgetWarningPercent)),
                    ],
                    actions: [
                        "Run `bunker cleanup --dry-run` to see what the retention policy would free, then `bunker cleanup`.",
                        "Raise [repository] max_size if the data grew for good: at 100 % backups are refused (safety copies before a restore excepted).",
                    ]))
            } else if percent < AlertMonitor.budgetWarningPercent - 1 {
                state.budgetRaised = false
            }
        }
        let newLockouts = reading.lockouts.filter { $0.seq > (state.lastLockoutSeq ?? .max) }
        for lockout in newLockouts {
            alerts.append(NotificationEvent(
                kind: .accountLocked, time: time, title: "Account \(lockout.username) locked after repeated wrong passwords",
                facts: [.init("User", lockout.username), .init("When", lockout.time), .init("Audit row", String(lockout.seq)), .init("Detail", lockout.reason)],
                actions: [
                    "If it was not \(lockout.username), treat it as an attack on the account: `bunker audit list --action auth` shows the attempts.",
                    "The lock ends by itself; `bunker user passwd \(lockout.username)` sets a new password if it was guessed at.",
                ]))
        }
        state.lastLockoutSeq = max(state.lastLockoutSeq ?? 0, reading.lockouts.map(\.seq).max() ?? 0)
        alerts += evaluateWal(reading.wal, at: time, state: &state)
        save(state)
        return alerts
    }

    private func evaluateWal(_ archives: [MonitorReading.WalArchiveReading], at time: Date, state: inout State) -> [NotificationEvent] {
        var alerts: [NotificationEvent] = []
        var lagRaised = state.walLagRaisedFor ?? [:]
        var gapRaised = state.walGapRaisedFor ?? [:]
        for wal in archives {
            if let last = wal.lastPush, time.timeIntervalSince(last) > walLagAfter, lagRaised[wal.source] != Int64(last.timeIntervalSince1970) {
                lagRaised[wal.source] = Int64(last.timeIntervalSince1970)
                let minutes = Int(time.timeIntervalSince(last) / 60)
                alerts.append(NotificationEvent(
                    kind: .walArchiveLag, time: time, title: "No WAL of \(wal.source) archived for \(minutes) minutes",
                    facts: [
                        .init("Source", wal.source), .init("Newest WAL archived", ISO8601DateFormatter().string(from: last)),
                        .init("Threshold", String(format: "%.0f minutes", walLagAfter / 60)),
                    ],
                    actions: [
                        "On the database server, `SELECT * FROM pg_stat_archiver` shows whether archive_command fails (failed_count, last_failed_wal); PostgreSQL's log says why.",
                        "A cluster with no writes archives nothing: set archive_timeout, or raise [notifications] wal_archive_lag_minutes.",
                        "Until archiving resumes, a point-in-time restore cannot reach past the newest archived WAL, and pg_wal grows on the database server.",
                    ]))
            }
            if let first = wal.firstMissing, wal.missingSegments > 0 {
                if gapRaised[wal.source] != first {
                    gapRaised[wal.source] = first
                    alerts.append(NotificationEvent(
                        kind: .walArchiveGap, time: time, title: "\(wal.missingSegments) WAL segments of \(wal.source) are missing from the archive",
                        facts: [.init("Source", wal.source), .init("First missing", first), .init("Missing", String(wal.missingSegments))],
                        actions: [
                            "Take a new base backup now (`bunker backup --source \(wal.source)`): no point-in-time restore can pass the gap.",
                            "`bunker verify` names every gap; `bunker audit list --action wal_push` shows refused or failed pushes.",
                        ]))
                }
            } else {
                gapRaised[wal.source] = nil
            }
        }
        state.walLagRaisedFor = lagRaised
        state.walGapRaisedFor = gapRaised
        return alerts
    }

    private static func wholeSeconds(_ date: Date) -> Int64 {
        Int64(date.timeIntervalSince1970.rounded(.down))
    }

    private func load() -> State? {
        guard let stateFile, let data = FileManager.default.contents(atPath: stateFile) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(State.self, from: data)
    }

    private func save(_ state: State) {
        guard let stateFile else { return }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        try? FileManager.default.createDirectory(atPath: (stateFile as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try? encoder.encode(state).write(to: URL(fileURLWithPath: stateFile), options: .atomic)
    }
}
