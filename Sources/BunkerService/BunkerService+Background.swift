import BunkerCore
import Foundation

extension BunkerService {
    /// Reads the repository and raises (notifies) the alerts it calls for; returns them.
    @discardableResult
    public func checkAlerts() async -> [NotificationEvent] {
        let newest = try? await repository.snapshots().last { !$0.snapshot.tags.contains("safety") }
        let space = repository.storage.capability((any SpaceReporting).self)?.space()
        let settings = configuration.notifications
        let monitor = AlertMonitor(
            overdueHours: settings.backupOverdueHours, minFreePercent: settings.minFreeSpacePercent, walLagMinutes: settings.walArchiveLagMinutes,
            stateFile: configuration.dataDirectory + "/alerts.json", now: repository.now)
        let lockouts = (try? catalog().lockouts()) ?? []
        let wal = ((try? await walSummaries()) ?? []).map { summary in
            MonitorReading.WalArchiveReading(
                source: summary.source, lastPush: summary.lastPush,
                missingSegments: summary.gaps.reduce(0) { $0 + $1.count }, firstMissing: summary.gaps.first?.firstMissing)
        }
        let budget = try? await sizeBudget()
        let alerts = monitor.evaluate(MonitorReading(lastSuccessfulBackup: newest?.snapshot.time, space: space, lockouts: lockouts, wal: wal, budget: budget ?? nil))
        for alert in alerts {
            if let catalog = try? catalog() {
                try? catalog.record("alert", target: alert.kind.rawValue, outcome: .failure, details: ["title": alert.title], by: .system)
            }
            await notify(alert, initiator: .system)
        }
        return alerts
    }

    /// The scheduler over the configured schedules (or `schedules`), running jobs through this
    /// service as the actor `scheduler`. Its state is kept in the data directory; `now` is the
    /// repository's clock unless a test moves its own.
    public func makeScheduler(
        schedules: [Schedule]? = nil, timeZone: TimeZone = .current, now: (@Sendable () -> Date)? = nil
    ) -> Scheduler {
        Scheduler(schedules: schedules ?? configuration.effectiveSchedules, stateFile: configuration.dataDirectory + "/scheduler.json",
                  timeZone: timeZone, now: now ?? repository.now) { [weak self] run in
            await self?.runScheduled(run)
        }
    }

    /// Runs one scheduled job through ``jobs``, as the API's jobs run: a scheduled backup or
    /// cleanup waits for a running writer (an API backup, a restore) to finish instead of running
    /// beside it. Failures are already audited and notified by the operation.
    func runScheduled(_ run: ScheduledRun) async {
        let actor = AuditActor(name: "scheduler", channel: .system)
        let job = run.schedule.job
        let access: JobAccess = job == .backup || job == .cleanup || job == .copy ? .writes : .reads
        let options = JobOptions("a scheduled \(job.rawValue)", access: access, wait: nil)
        do {
            try await jobs.run(options) { [self] in
                switch job {
                case .backup:
                    var request = SourceBackupRequest(type: run.schedule.backupType ?? .full)
                    request.tags = ["scheduled"]
                    _ = try await backup(request, by: actor, reason: "scheduled (\(run.schedule.cron))", progress: options.progress)
                case .cleanup:
                    _ = try await cleanup(CleanupRequest(), by: actor, progress: options.progress)
                case .verify:
                    // A rotating seventh of the data each run: a weekly verify reads everything in
                    // seven weeks, a daily one in a week.
                    _ = try await verify(readData: true, subset: nextVerifyPart(), by: actor, progress: options.progress)
                case .drill:
                    _ = try await drill(snapshot: nil, by: actor, progress: options.progress)
                case .copy:
                    let name = run.schedule.destination ?? ""
                    _ = try await copy(CopyRequest(destinationName: name), toRepositoryNamed: name, by: actor, progress: options.progress)
                }
            }
        } catch {
            FileHandle.standardError.write(Data("bunker: scheduled \(job.rawValue) failed: \((error as? BunkerError)?.message ?? "\(error)")\n".utf8))
        }
    }

    /// The part of the data the next scheduled verify reads: 1/7, 2/7, … 7/7, then 1/7 again,
    /// counted in the data directory's `verify-rotation` file.
    public func nextVerifyPart() -> DataSubset {
        let file = configuration.dataDirectory + "/verify-rotation"
        let done = (try? String(contentsOfFile: file, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
        try? FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try? String(done + 1).write(toFile: file, atomically: true, encoding: .utf8)
        return .part(done % 7 + 1, of: 7)
    }

    /// What `bunker serve` runs beside the HTTP server until cancelled: the scheduler, delivery
    /// of queued notifications every 15 s, the alert checks every 5 minutes, and the WAL
    /// streaming of every source with `stream = true`.
    public func runBackgroundWork(scheduler: Scheduler? = nil) async {
        let scheduler = scheduler ?? makeScheduler()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await scheduler.run() }
            for source in streamedWalSources {
                group.addTask { [self] in
                    do {
                        try await streamWal(source: source)
                    } catch {
                        FileHandle.standardError.write(Data("bunker: WAL streaming of source \(source) stopped: \((error as? BunkerError)?.message ?? "\(error)")\n".utf8))
                    }
                }
            }
            group.addTask { [self] in
                while !Task.isCancelled {
                    await deliverNotifications()
                    try? await Task.sleep(for: .seconds(15))
                }
            }
            group.addTask { [self] in
                while !Task.isCancelled {
                    await checkAlerts()
                    try? await Task.sleep(for: .seconds(300))
                }
            }
        }
    }
}
