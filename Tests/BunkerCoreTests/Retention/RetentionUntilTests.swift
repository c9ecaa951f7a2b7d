import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// Nightly backups at 23:00 UTC from 2026-01-01 to 2026-01-09 and one at 10:00 on 2026-01-10;
/// "now" is 2026-01-10 12:00 UTC (a Saturday of ISO week 2026-W02).
private enum Nights {
    static let now = TestClock.utc("2026-01-10 12:00")

    static func snapshot(_ label: String, tags: [String] = []) -> (id: ID, snapshot: Snapshot) {
        let id = ID.sha256(of: Array("clinic \(label)".utf8))
        return (id, Snapshot(time: TestClock.utc(label), hostname: "clinic", username: "backup", paths: ["/data"], tags: tags, tree: id))
    }

    static let labels = (1...9).map { String(format: "2026-01-%02d 23:00", $0) } + ["2026-01-10 10:00"]
    static let snapshots = labels.map { snapshot($0) }
}

private func policy(_ configure: (inout RetentionPolicy) -> Void) -> RetentionPolicy {
    var policy = RetentionPolicy()
    policy.minimumAge = RetentionDuration()
    configure(&policy)
    return policy
}

/// `retention_until` of each snapshot, by its label; "now" for `Nights.now`, "null" for nil.
private func until(_ policy: RetentionPolicy, _ snapshots: [(id: ID, snapshot: Snapshot)] = Nights.snapshots,
                   holds: [Hold] = [], now: Date = Nights.now) -> [String: String] {
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: "UTC")
    f.dateFormat = "yyyy-MM-dd HH:mm"
    let dates = policy.retentionUntil(for: snapshots, holds: holds, now: now)
    var result: [String: String] = [:]
    for (entry, date) in zip(snapshots, dates) {
        result[f.string(from: entry.snapshot.time)] = date.map { $0 == now ? "now" : f.string(from: $0) } ?? "null"
    }
    return result
}

struct RetentionUntilTests {
    @Test func keepDailyEndsWhenThatManyNewerDaysHaveABackup() {
        let dates = until(policy { $0.keepDaily = 3 })
        #expect(dates["2026-01-10 10:00"] == "2026-01-13 00:00")
        #expect(dates["2026-01-09 23:00"] == "2026-01-12 00:00")
        #expect(dates["2026-01-08 23:00"] == "2026-01-11 00:00")
        #expect(dates["2026-01-07 23:00"] == "now")
        #expect(dates["2026-01-01 23:00"] == "now")
    }

    @Test func whenBackupsStoppedTheNewerPeriodsAreCountedFromNowOn() {
        // Ten days without a backup: keep_daily 3 still keeps the last three days that have one,
        // until three new days have a backup, from tomorrow on.
        let dates = until(policy { $0.keepDaily = 3 }, now: TestClock.utc("2026-01-20 12:00"))
        #expect(dates["2026-01-10 10:00"] == "2026-01-23 00:00")
        #expect(dates["2026-01-09 23:00"] == "2026-01-22 00:00")
        #expect(dates["2026-01-08 23:00"] == "2026-01-21 00:00")
        #expect(dates["2026-01-07 23:00"] == "now")
    }

    @Test func keepWeeklyCountsIsoWeeksFromTheirMonday() {
        let dates = until(policy { $0.keepWeekly = 2 })
        // 2026-W02 starts on Monday 5 January, 2026-W01 on Monday 29 December 2025.
        #expect(dates["2026-01-10 10:00"] == "2026-01-19 00:00")
        #expect(dates["2026-01-04 23:00"] == "2026-01-12 00:00")
        #expect(dates["2026-01-03 23:00"] == "now")
    }

    @Test func withinSpansAddTheSpanToTheSnapshotsTime() {
        let dates = until(policy { $0.keepWithin = .days(5) })
        #expect(dates["2026-01-09 23:00"] == "2026-01-14 23:00")
        #expect(dates["2026-01-05 23:00"] == "2026-01-10 23:00")
        #expect(dates["2026-01-04 23:00"] == "now")

        let daily = until(policy { $0.keepWithinDaily = RetentionDuration(months: 1) })
        #expect(daily["2026-01-01 23:00"] == "2026-02-01 23:00")
    }

    @Test func keepLastAssumesOneBackupPerPeriodOfThePolicysCadenceFromNowOn() {
        let daily = until(policy { $0.keepLast = 2 })
        #expect(daily["2026-01-10 10:00"] == "2026-01-12 00:00")
        #expect(daily["2026-01-09 23:00"] == "2026-01-11 00:00")
        #expect(daily["2026-01-08 23:00"] == "now")

        // An hourly rule makes the cadence an hour: the next backups are at 13:00 and 14:00.
        let hourly = until(policy { $0.keepLast = 2; $0.keepHourly = 1 })
        #expect(hourly["2026-01-10 10:00"] == "2026-01-10 14:00")
        #expect(hourly["2026-01-09 23:00"] == "2026-01-10 13:00")
    }

    @Test func theLatestRuleThatKeepsASnapshotDecides() {
        let dates = until(policy { $0.keepDaily = 2; $0.keepWithin = .days(5) })
        #expect(dates["2026-01-09 23:00"] == "2026-01-14 23:00")
        #expect(dates["2026-01-10 10:00"] == "2026-01-15 10:00")
        #expect(dates["2026-01-06 23:00"] == "2026-01-11 23:00")
    }

    @Test func floorsCountAsRules() {
        let dates = until(policy { $0.keepDaily = 1; $0.minimumAge = .days(3) })
        #expect(dates["2026-01-09 23:00"] == "2026-01-12 23:00")
        #expect(dates["2026-01-10 10:00"] == "2026-01-13 10:00")
        #expect(dates["2026-01-06 23:00"] == "now")

        let safety = Nights.snapshot("2026-01-08 12:00", tags: [RetentionPolicy.safetyTag])
        let withSafety = until(policy { $0.keepDaily = 1; $0.safetyMinimumAge = .days(30) }, Nights.snapshots + [safety])
        #expect(withSafety["2026-01-08 12:00"] == "2026-02-07 12:00")
    }

    @Test func heldOrTaggedSnapshotsHaveNoDate() {
        let held = Nights.snapshot("2026-01-02 23:00")
        let tagged = Nights.snapshot("2026-01-04 12:00", tags: ["audit"])
        let hold = Hold(snapshot: held.id, reason: "case 114", time: Nights.now, username: "auditor", hostname: "clinic")
        let dates = until(policy { $0.keepDaily = 3; $0.keepTags = ["audit"] }, Nights.snapshots + [tagged], holds: [hold])
        #expect(dates["2026-01-02 23:00"] == "null")
        #expect(dates["2026-01-04 12:00"] == "null")
        #expect(dates["2026-01-03 23:00"] == "now")
        #expect(dates["2026-01-09 23:00"] == "2026-01-12 00:00")
    }

    @Test func aPolicyWithoutKeepRulesGivesNoDate() {
        let dates = until(policy { $0.minimumAge = .days(1) })
        #expect(dates.count == Nights.labels.count)
        #expect(dates.values.allSatisfy { $0 == "null" })
    }

    /// The date is when `apply` stops keeping the snapshot if a backup is taken at the start of
    /// every later day: kept a second before it, gone a second after.
    @Test(arguments: [
        policy { $0.keepDaily = 3 },
        policy { $0.keepLast = 4 },
        policy { $0.keepWithin = .days(4) },
        policy { $0.keepDaily = 2; $0.keepWithinDaily = .days(6); $0.minimumAge = .days(1) },
    ])
    func theDateIsWhenApplyStopsKeepingTheSnapshot(policy: RetentionPolicy) throws {
        let dates = policy.retentionUntil(for: Nights.snapshots, holds: [], now: Nights.now)
        for (entry, date) in zip(Nights.snapshots, dates) {
            let date = try #require(date)
            guard date > Nights.now else {
                #expect(policy.apply(to: Nights.snapshots, holds: [], now: Nights.now).first { $0.id == entry.id }?.keep == false)
                continue
            }
            func kept(at moment: Date) -> Bool {
                var history = Nights.snapshots
                var day = TestClock.utc("2026-01-11 00:00")
                while day <= moment {
                    history.append(Nights.snapshot(Self.label(day)))
                    day += 86400
                }
                return policy.apply(to: history, holds: [], now: moment).first { $0.id == entry.id }!.keep
            }
            #expect(kept(at: date - 1), "\(entry.snapshot.time) should still be kept just before \(date)")
            #expect(!kept(at: date + 1), "\(entry.snapshot.time) should go just after \(date)")
        }
    }

    private static func label(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm"
        return f.string(from: date)
    }
}
