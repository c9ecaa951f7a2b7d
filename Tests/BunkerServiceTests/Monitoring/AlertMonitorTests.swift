import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Testing

@Suite struct AlertMonitorTests {
    @Test func theOverdueAlertFiresWhenTheClockPassesTheThresholdAndNotBefore() async throws {
        try await withTemporaryDirectory { dir in
            let clock = ManualClock(utc("2026-12-01T23:00:00Z"))
            let monitor = AlertMonitor(overdueHours: 25, minFreePercent: 20, stateFile: dir + "/alerts.json", now: { clock.now })
            let lastBackup = utc("2026-12-01T23:00:00Z")
            let reading = MonitorReading(lastSuccessfulBackup: lastBackup, space: nil)

            clock.set(utc("2026-12-02T23:59:00Z"))  // 24 h 59 min
            #expect(monitor.evaluate(reading).isEmpty)
            clock.set(utc("2026-12-03T00:00:00Z"))  // exactly 25 h: not yet "longer than"
            #expect(monitor.evaluate(reading).isEmpty)
            clock.set(utc("2026-12-03T00:01:00Z"))
            let alerts = monitor.evaluate(reading)
            #expect(alerts.map(\.kind) == [.backupOverdue])
            #expect(alerts.first?.fact("Last successful backup")?.hasPrefix("2026-12-01T23:00:00Z") == true)

            // Once per episode, also across a restart (a new monitor on the same state file).
            clock.set(utc("2026-12-03T06:00:00Z"))
            #expect(monitor.evaluate(reading).isEmpty)
            let restarted = AlertMonitor(overdueHours: 25, minFreePercent: 20, stateFile: dir + "/alerts.json", now: { clock.now })
            #expect(restarted.evaluate(reading).isEmpty)

            // A newer backup ends the episode; it can become overdue in its turn.
            let newer = MonitorReading(lastSuccessfulBackup: utc("2026-12-03T07:00:00Z"), space: nil)
            clock.set(utc("2026-12-03T08:00:00Z"))
            #expect(restarted.evaluate(newer).isEmpty)
            clock.set(utc("2026-12-04T08:01:00Z"))
            #expect(restarted.evaluate(newer).map(\.kind) == [.backupOverdue])
        }
    }

    /// Backup times carry fractions of a second; the state file keeps whole seconds. Each
    /// `bunker check` is a new monitor on the same state file: one alert for the episode.
    @Test func theOverdueAlertOfABackupTimeWithAFractionIsSentOnceAcrossRuns() async throws {
        try await withTemporaryDirectory { dir in
            let clock = ManualClock(utc("2026-12-03T22:00:00Z"))
            let reading = MonitorReading(lastSuccessfulBackup: utc("2026-12-01T20:11:57Z").addingTimeInterval(0.947), space: nil)
            var sent: [NotificationEvent.Kind] = []
            for minute in 0..<3 {
                clock.set(utc("2026-12-03T22:00:00Z").addingTimeInterval(Double(minute) * 60))
                sent += AlertMonitor(overdueHours: 48, minFreePercent: 20, stateFile: dir + "/alerts.json", now: { clock.now }).evaluate(reading).map(\.kind)
            }
            #expect(sent == [.backupOverdue])
        }
    }

    @Test func walLagIsRaisedOncePerNewestArchivedFileAfterTheThreshold() async throws {
        try await withTemporaryDirectory { dir in
            let clock = ManualClock(utc("2026-12-03T12:00:00Z"))
            func monitor() -> AlertMonitor {
                AlertMonitor(overdueHours: 25, minFreePercent: 20, walLagMinutes: 30, stateFile: dir + "/alerts.json", now: { clock.now })
            }
            func reading(lastPush: String) -> MonitorReading {
                MonitorReading(lastSuccessfulBackup: clock.now, space: nil, wal: [
                    .init(source: "clinic", lastPush: utc(lastPush)),
                    .init(source: "quiet", lastPush: nil),
                ])
            }
            clock.set(utc("2026-12-03T12:30:00Z"))  // exactly 30 minutes: not yet
            #expect(monitor().evaluate(reading(lastPush: "2026-12-03T12:00:00Z")).isEmpty)
            clock.set(utc("2026-12-03T12:31:00Z"))
            let alerts = monitor().evaluate(reading(lastPush: "2026-12-03T12:00:00Z"))
            #expect(alerts.map(\.kind) == [.walArchiveLag])
            #expect(alerts.first?.title == "No WAL of clinic archived for 31 minutes")
            #expect(alerts.first?.fact("Newest WAL archived") == "2026-12-03T12:00:00Z")
            // Once for that file, across restarts; again once archiving resumed and stopped again.
            clock.set(utc("2026-12-03T14:00:00Z"))
            #expect(monitor().evaluate(reading(lastPush: "2026-12-03T12:00:00Z")).isEmpty)
            #expect(monitor().evaluate(reading(lastPush: "2026-12-03T13:50:00Z")).isEmpty)
            clock.set(utc("2026-12-03T14:21:00Z"))
            #expect(monitor().evaluate(reading(lastPush: "2026-12-03T13:50:00Z")).map(\.kind) == [.walArchiveLag])
        }
    }

    @Test func aWalGapIsRaisedOnceAndAgainOnlyForANewGap() async throws {
        try await withTemporaryDirectory { dir in
            let clock = ManualClock(utc("2026-12-03T12:00:00Z"))
            let monitor = AlertMonitor(overdueHours: 25, minFreePercent: 20, stateFile: dir + "/alerts.json", now: { clock.now })
            func reading(missing: Int, first: String?) -> MonitorReading {
                MonitorReading(lastSuccessfulBackup: clock.now, space: nil, wal: [
                    .init(source: "clinic", lastPush: clock.now, missingSegments: missing, firstMissing: first),
                ])
            }
            #expect(monitor.evaluate(reading(missing: 0, first: nil)).isEmpty)
            let gap = monitor.evaluate(reading(missing: 2, first: "000000010000000000000005"))
            #expect(gap.map(\.kind) == [.walArchiveGap])
            #expect(gap.first?.fact("First missing") == "000000010000000000000005")
            #expect(gap.first?.kind.severity == .error)
            #expect(monitor.evaluate(reading(missing: 2, first: "000000010000000000000005")).isEmpty)
            // Closed (retention dropped the WAL before a new base backup), then a new gap.
            #expect(monitor.evaluate(reading(missing: 0, first: nil)).isEmpty)
            #expect(monitor.evaluate(reading(missing: 1, first: "000000010000000000000005")).map(\.kind) == [.walArchiveGap])
        }
    }

    @Test func withoutAnyBackupTheClockRunsFromWhenMonitoringBegan() async throws {
        try await withTemporaryDirectory { dir in
            let clock = ManualClock(utc("2026-12-01T00:00:00Z"))
            let none = MonitorReading(lastSuccessfulBackup: nil, space: nil)
            #expect(AlertMonitor(overdueHours: 48, minFreePercent: 20, stateFile: dir + "/alerts.json", now: { clock.now }).evaluate(none).isEmpty)
            clock.set(utc("2026-12-02T23:00:00Z"))
            #expect(AlertMonitor(overdueHours: 48, minFreePercent: 20, stateFile: dir + "/alerts.json", now: { clock.now }).evaluate(none).isEmpty)
            clock.set(utc("2026-12-03T00:30:00Z"))
            let alerts = AlertMonitor(overdueHours: 48, minFreePercent: 20, stateFile: dir + "/alerts.json", now: { clock.now }).evaluate(none)
            #expect(alerts.map(\.kind) == [.backupOverdue], "48.5 hours after monitoring began, across restarts")
            #expect(alerts.first?.fact("Last successful backup") == "none since monitoring began 48.5 hours ago")
        }
    }

    @Test func lowSpaceIsRaisedOnceAndAgainOnlyAfterItRecovered() async throws {
        try await withTemporaryDirectory { dir in
            let clock = ManualClock(utc("2026-12-01T00:00:00Z"))
            let monitor = AlertMonitor(overdueHours: 25, minFreePercent: 20, stateFile: dir + "/alerts.json", now: { clock.now })
            func reading(freePercent: UInt64) -> MonitorReading {
                MonitorReading(lastSuccessfulBackup: clock.now, space: (free: freePercent * 1_000_000, total: 100_000_000))
            }
            #expect(monitor.evaluate(reading(freePercent: 35)).isEmpty)
            let low = monitor.evaluate(reading(freePercent: 15))
            #expect(low.map(\.kind) == [.lowDiskSpace])
            #expect(low.first?.title == "Only 15.0% free on the repository's filesystem")
            #expect(monitor.evaluate(reading(freePercent: 12)).isEmpty, "not again while it stays low")
            #expect(monitor.evaluate(reading(freePercent: 20)).isEmpty, "20% is not yet a recovery (one point of hysteresis)")
            #expect(monitor.evaluate(reading(freePercent: 18)).isEmpty)
            #expect(monitor.evaluate(reading(freePercent: 30)).isEmpty)
            #expect(monitor.evaluate(reading(freePercent: 10)).map(\.kind) == [.lowDiskSpace])
        }
    }
}
