import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Synchronization
import Testing

/// A clock the test moves by hand.
final class ManualClock: Sendable {
    private let time: Mutex<Date>
    init(_ start: Date) { time = Mutex(start) }
    var now: Date { time.withLock { $0 } }
    func advance(by seconds: TimeInterval) { time.withLock { $0 = $0.addingTimeInterval(seconds) } }
    func set(_ date: Date) { time.withLock { $0 = date } }
}

/// What the runner saw.
final class RunLog: Sendable {
    private let runs = Mutex<[ScheduledRun]>([])
    private let active = Mutex((now: 0, most: 0))
    var all: [ScheduledRun] { runs.withLock { $0 } }
    var mostAtOnce: Int { active.withLock { $0.most } }
    func record(_ run: ScheduledRun, during body: () async -> Void) async {
        active.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
        runs.withLock { $0.append(run) }
        await body()
        active.withLock { $0.now -= 1 }
    }
}

@Suite struct SchedulerTests {
    let utcZone = TimeZone(identifier: "UTC")!

    @Test func theDefaultJobsFireAtTheirTimesAcrossDaysAndMonths() async throws {
        let clock = ManualClock(utc("2026-12-01T00:00:00Z"))
        let log = RunLog()
        let scheduler = Scheduler(schedules: Schedule.defaults, stateFile: nil, timeZone: utcZone, now: { clock.now }) { run in
            await log.record(run) {}
        }
        // Forty days, looking every ten minutes.
        for _ in 0..<(40 * 24 * 6) {
            clock.advance(by: 600)
            await scheduler.runDue()
        }
        func times(_ job: ScheduledJobKind, _ type: BackupType? = nil) -> [String] {
            let formatter = ISO8601DateFormatter()
            return log.all.filter { $0.schedule.job == job && $0.schedule.backupType == type }.map { formatter.string(from: $0.scheduledAt) }
        }
        let days = (1...40).map { ISO8601DateFormatter().string(from: utc("2026-12-01T02:00:00Z").addingTimeInterval(Double($0 - 1) * 86400)) }
        #expect(times(.backup, .database) == days)
        #expect(times(.backup, .full) == ["2026-12-06T03:00:00Z", "2026-12-13T03:00:00Z", "2026-12-20T03:00:00Z", "2026-12-27T03:00:00Z", "2027-01-03T03:00:00Z"])
        #expect(times(.cleanup).count == 40)
        #expect(times(.cleanup).first == "2026-12-01T04:00:00Z")
        #expect(times(.verify) == ["2026-12-05T05:00:00Z", "2026-12-12T05:00:00Z", "2026-12-19T05:00:00Z", "2026-12-26T05:00:00Z", "2027-01-02T05:00:00Z", "2027-01-09T05:00:00Z"])
        #expect(times(.drill) == ["2026-12-01T06:00:00Z", "2027-01-01T06:00:00Z"])
        #expect(log.all.allSatisfy { !$0.late }, "a scheduler that looks every ten minutes is never late")
    }

    @Test func aRunMissedWhileTheServerWasDownFiresOnceAfterTheRestart() async throws {
        try await withTemporaryDirectory { dir in
            let state = dir + "/scheduler.json"
            let clock = ManualClock(utc("2026-12-01T00:00:00Z"))
            let log = RunLog()
            let daily = [Schedule(job: .backup, cron: try CronExpression("0 23 * * *"), backupType: .database)]
            let first = Scheduler(schedules: daily, stateFile: state, timeZone: utcZone, now: { clock.now }) { await log.record($0) {} }
            clock.set(utc("2026-12-01T23:00:00Z"))
            #expect(await first.runDue().count == 1)

            // Down from 2 December to the morning of 5 December: three nightly runs missed.
            clock.set(utc("2026-12-05T08:00:00Z"))
            let second = Scheduler(schedules: daily, stateFile: state, timeZone: utcZone, now: { clock.now }) { await log.record($0) {} }
            let caughtUp = await second.runDue()
            #expect(caughtUp.count == 1, "three missed times make one run")
            #expect(caughtUp.first?.late == true)
            #expect(caughtUp.first?.scheduledAt == utc("2026-12-04T23:00:00Z"))
            #expect(await second.runDue().isEmpty, "and only one")

            // A third start the same morning repeats nothing.
            let third = Scheduler(schedules: daily, stateFile: state, timeZone: utcZone, now: { clock.now }) { await log.record($0) {} }
            #expect(await third.runDue().isEmpty)
            #expect(await third.nextRuns().first?.at == utc("2026-12-05T23:00:00Z"))
            #expect(log.all.count == 2)
        }
    }

    @Test func aNewScheduleDoesNotFireForTimesBeforeItExisted() async throws {
        let clock = ManualClock(utc("2026-12-02T12:00:00Z"))
        let scheduler = Scheduler(schedules: [Schedule(job: .verify, cron: try CronExpression("0 5 * * *"))], stateFile: nil, timeZone: utcZone, now: { clock.now }) { _ in }
        #expect(await scheduler.runDue().isEmpty)
    }

    @Test func runsNeverOverlap() async throws {
        let clock = ManualClock(utc("2026-12-01T00:00:00Z"))
        let log = RunLog()
        let schedules = [
            Schedule(job: .backup, cron: try CronExpression("0 1 * * *"), backupType: .full),
            Schedule(job: .cleanup, cron: try CronExpression("0 1 * * *")),
            Schedule(job: .verify, cron: try CronExpression("30 1 * * *")),
        ]
        let current = Mutex<Scheduler?>(nil)
        let reentered = Mutex<[[ScheduledRun]]>([])
        let scheduler = Scheduler(schedules: schedules, stateFile: nil, timeZone: utcZone, now: { clock.now }) { run in
            await log.record(run) {
                // Each job takes an hour of (test) time; while the first runs, the scheduler is
                // asked again (as a second wake-up of the loop would).
                clock.advance(by: 3600)
                if run.schedule.job == .backup, let again = current.withLock({ $0 }) {
                    let inner = await again.runDue()
                    reentered.withLock { $0.append(inner) }
                }
            }
        }
        current.withLock { $0 = scheduler }
        clock.set(utc("2026-12-01T01:00:00Z"))
        let ran = await scheduler.runDue()
        #expect(ran.map(\.schedule.job) == [.backup, .cleanup], "the backup and the cleanup ran, once each")
        #expect(reentered.withLock { $0 } == [[]], "a call while a job runs starts nothing")
        #expect(log.mostAtOnce == 1, "one job at a time")
        // The verify fell due at 01:30, while the others ran: it runs next, late.
        let next = await scheduler.runDue()
        #expect(next.map(\.schedule.job) == [.verify])
        #expect(next.first?.late == true)
        #expect(log.mostAtOnce == 1)
    }
}
