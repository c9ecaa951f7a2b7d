import BunkerCore
import Foundation
import Synchronization

/// The jobs a schedule can run.
public enum ScheduledJobKind: String, Sendable, Codable, CaseIterable {
    case backup, cleanup, verify, drill
    /// A copy into `[repositories.NAME]` (``Schedule/destination``): the DermAI cloud and
    /// off-site tiers.
    case copy
}

/// One line of `[[schedule]]`: a job and when it runs.
public struct Schedule: Sendable, Equatable {
    public var job: ScheduledJobKind
    public var cron: CronExpression
    /// For backups: which sources (the Clinical Dashboard API's backup_type).
    public var backupType: BackupType?
    /// For copies: the name of the `[repositories.NAME]` copied into.
    public var destination: String?

    public init(job: ScheduledJobKind, cron: CronExpression, backupType: BackupType? = nil, destination: String? = nil) {
        self.job = job
        self.cron = cron
        self.backupType = job == .backup ? (backupType ?? .full) : nil
        self.destination = job == .copy ? destination : nil
    }

    /// What identifies the schedule in the scheduler's state: changing the line starts it afresh.
    public var key: String {
        [job.rawValue, cron.description, backupType?.rawValue, destination.map { "to=" + $0 }].compactMap { $0 }.joined(separator: " ")
    }

    /// Bunker's default schedules (after the DermAI strategy's cron table), used when the configuration names none: a daily database backup, a
    /// weekly full backup, a daily cleanup, a weekly verification and a monthly restore drill.
    public static let defaults: [Schedule] = [
        Schedule(job: .backup, cron: try! CronExpression("0 2 * * *"), backupType: .database),
        Schedule(job: .backup, cron: try! CronExpression("0 3 * * 0"), backupType: .full),
        Schedule(job: .cleanup, cron: try! CronExpression("0 4 * * *")),
        Schedule(job: .verify, cron: try! CronExpression("0 5 * * 6")),
        Schedule(job: .drill, cron: try! CronExpression("0 6 1 * *")),
    ]
}

/// A run the scheduler starts.
public struct ScheduledRun: Sendable, Equatable {
    public var schedule: Schedule
    /// The time the schedule named (the latest one, when several were missed).
    public var scheduledAt: Date
    /// True when the run is late: the server was down, or another run was still going.
    public var late: Bool
}

/// Runs scheduled jobs at their times, one at a time.
///
/// - A run missed while the server was down, or while another job ran, runs once when the
///   scheduler next looks (like systemd's `Persistent=true`); several missed times of one schedule
///   make one run.
/// - Runs never overlap: ``runDue()`` runs what is due one after another, and a call made while
///   it runs returns at once without starting anything (what it would have run is still due).
/// - What has run is kept in a state file (written whole, then renamed) after each run, so a
///   restart neither repeats a finished run nor forgets a missed one; a run interrupted by a crash
///   runs again after the restart. A schedule seen for the first time starts from now: it does not
///   fire for times before it existed.
/// - Time comes from `now`, so tests move through days and months without sleeping.
public actor Scheduler {
    public let schedules: [Schedule]
    private let timeZone: TimeZone
    private let now: @Sendable () -> Date
    private let stateFile: String?
    private let runner: @Sendable (ScheduledRun) async -> Void
    /// Per schedule key: the time up to which every fire has been handled.
    private var handled: [String: Date]
    /// Set while ``runDue()`` runs jobs: the actor is re-entered at each `await`, and a second
    /// caller must not start jobs beside the running one.
    private var running = false

    public init(schedules: [Schedule], stateFile: String?, timeZone: TimeZone = .current,
                now: @escaping @Sendable () -> Date = { Date() }, run: @escaping @Sendable (ScheduledRun) async -> Void) {
        self.schedules = schedules
        self.timeZone = timeZone
        self.now = now
        self.stateFile = stateFile
        self.runner = run
        var state = stateFile.flatMap(Self.load) ?? [:]
        let start = now()
        for schedule in schedules where state[schedule.key] == nil { state[schedule.key] = start }
        self.handled = state
    }

    /// Runs every schedule that is due now, one after another, earliest first; returns the runs.
    @discardableResult
    public func runDue() async -> [ScheduledRun] {
        guard !running else { return [] }
        running = true
        defer { running = false }
        let time = now()
        var due: [ScheduledRun] = []
        for schedule in schedules {
            guard let since = handled[schedule.key], let first = schedule.cron.nextFire(after: since, in: timeZone), first <= time else { continue }
            // The latest fire not after `time`: what this run stands for.
            var latest = first
            var steps = 0
            while steps < 10_000, let next = schedule.cron.nextFire(after: latest, in: timeZone), next <= time {
                latest = next
                steps += 1
            }
            due.append(ScheduledRun(schedule: schedule, scheduledAt: latest, late: time.timeIntervalSince(first) >= 60))
        }
        due.sort { $0.scheduledAt < $1.scheduledAt }
        for run in due {
            await runner(run)
            handled[run.schedule.key] = time
            save()
        }
        return due
    }

    /// Each schedule's next time after the last handled one.
    public func nextRuns() -> [(schedule: Schedule, at: Date?)] {
        schedules.map { schedule in
            (schedule, handled[schedule.key].flatMap { schedule.cron.nextFire(after: $0, in: timeZone) })
        }
    }

    /// Runs due jobs until the task is cancelled, sleeping until the next time (at most a minute,
    /// so a changed system clock is noticed).
    public func run(sleep: @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }) async {
        while !Task.isCancelled {
            await runDue()
            let next = nextRuns().compactMap(\.at).min() ?? now().addingTimeInterval(60)
            let wait = min(max(next.timeIntervalSince(now()), 1), 60)
            do { try await sleep(.seconds(wait)) } catch { return }
        }
    }

    private static func load(_ file: String) -> [String: Date]? {
        guard let data = FileManager.default.contents(atPath: file) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode([String: Date].self, from: data)
    }

    private func save() {
        guard let stateFile else { return }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        // The schedules of the current configuration only: removed lines are forgotten.
        let current = handled.filter { key, _ in schedules.contains { $0.key == key } }
        guard let data = try? encoder.encode(current) else { return }
        try? FileManager.default.createDirectory(atPath: (stateFile as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try? data.write(to: URL(fileURLWithPath: stateFile), options: .atomic)
    }
}
