import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// Four years of nightly backups (23:00 UTC, 2022-01-01 … 2025-12-31), one taken this morning,
/// an extra daytime snapshot tagged `audit`, and a legal hold on 2023-06-15; "now" is
/// 2026-01-01 12:00 UTC.
private enum History {
    static let now = TestClock.utc("2026-01-01 12:00")
    static let held = "2023-06-15 23:00"
    static let morning = "2026-01-01 10:00"

    static func label(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm"
        return f.string(from: date)
    }

    static func snapshot(_ label: String, tags: [String] = [], host: String = "clinic", paths: [String] = ["/data"]) -> (id: ID, snapshot: Snapshot) {
        let id = ID.sha256(of: Array("\(host) \(paths) \(label)".utf8))
        let snapshot = Snapshot(time: TestClock.utc(label), hostname: host, username: "backup", paths: paths, tags: tags, tree: id)
        return (id, snapshot)
    }

    static let snapshots: [(id: ID, snapshot: Snapshot)] = {
        var result: [(id: ID, snapshot: Snapshot)] = []
        var day = TestClock.utc("2022-01-01 23:00")
        while day < TestClock.utc("2026-01-01 00:00") {
            result.append(snapshot(label(day)))
            day += 86400
        }
        result.append(snapshot("2024-03-10 12:00", tags: ["audit"]))
        result.append(snapshot(morning))
        return result
    }()

    static var holds: [Hold] {
        [Hold(snapshot: snapshot(held).id, reason: "case 2023-114", time: now, username: "auditor", hostname: "clinic")]
    }
}

private func policy(_ configure: (inout RetentionPolicy) -> Void) -> RetentionPolicy {
    var policy = RetentionPolicy()
    policy.minimumAge = RetentionDuration()
    configure(&policy)
    return policy
}

struct RetentionPolicyCase: Sendable, CustomTestStringConvertible {
    var name: String
    var policy: RetentionPolicy
    var kept: Set<String>
    var testDescription: String { name }
}

private let monthEnds2025 = ["2025-01-31", "2025-02-28", "2025-03-31", "2025-04-30", "2025-05-31", "2025-06-30",
                             "2025-07-31", "2025-08-31", "2025-09-30", "2025-10-31", "2025-11-30"].map { $0 + " 23:00" }
private let lastWeek = ["2025-12-25", "2025-12-26", "2025-12-27", "2025-12-28", "2025-12-29", "2025-12-30", "2025-12-31"].map { $0 + " 23:00" }

private let cases: [RetentionPolicyCase] = [
    RetentionPolicyCase(name: "keep_last 3", policy: policy { $0.keepLast = 3 },
                        kept: [History.morning, "2025-12-31 23:00", "2025-12-30 23:00", History.held]),
    RetentionPolicyCase(name: "keep_last 1 with a one-day minimum age", policy: policy { $0.keepLast = 1; $0.minimumAge = .days(1) },
                        kept: [History.morning, "2025-12-31 23:00", History.held]),
    RetentionPolicyCase(name: "keep_daily 7", policy: policy { $0.keepDaily = 7 },
                        kept: Set([History.morning, History.held] + lastWeek.dropFirst())),
    RetentionPolicyCase(name: "keep_weekly 4 (ISO weeks)", policy: policy { $0.keepWeekly = 4 },
                        kept: [History.morning, "2025-12-28 23:00", "2025-12-21 23:00", "2025-12-14 23:00", History.held]),
    RetentionPolicyCase(name: "keep_monthly 3", policy: policy { $0.keepMonthly = 3 },
                        kept: [History.morning, "2025-12-31 23:00", "2025-11-30 23:00", History.held]),
    RetentionPolicyCase(name: "keep_yearly 10", policy: policy { $0.keepYearly = 10 },
                        kept: [History.morning, "2025-12-31 23:00", "2024-12-31 23:00", "2023-12-31 23:00", "2022-12-31 23:00", History.held]),
    RetentionPolicyCase(name: "keep_tags audit and keep_last 1", policy: policy { $0.keepTags = ["audit"]; $0.keepLast = 1 },
                        kept: [History.morning, "2024-03-10 12:00", History.held]),
    RetentionPolicyCase(name: "keep_within 3d", policy: policy { $0.keepWithin = .days(3) },
                        kept: [History.morning, "2025-12-31 23:00", "2025-12-30 23:00", "2025-12-29 23:00", History.held]),
    RetentionPolicyCase(name: "the DermAI retention tiers over a 7-year compliance period", policy: .standard(complianceDays: 2555),
                        kept: Set([History.morning, History.held, "2025-12-21 23:00", "2025-12-14 23:00", "2025-12-07 23:00",
                                   "2024-12-31 23:00", "2023-12-31 23:00", "2022-12-31 23:00"] + lastWeek + monthEnds2025)),
    RetentionPolicyCase(name: "the DermAI retention tiers over a 2-year compliance period", policy: .standard(complianceDays: 730),
                        kept: Set([History.morning, History.held, "2025-12-21 23:00", "2025-12-14 23:00", "2025-12-07 23:00",
                                   "2024-12-31 23:00"] + lastWeek + monthEnds2025)),
]

@Suite struct RetentionPolicyTests {
    @Test(arguments: cases)
    func policyKeepsExactlyTheExpectedSnapshots(_ testCase: RetentionPolicyCase) {
        let decisions = testCase.policy.apply(to: History.snapshots, holds: History.holds, now: History.now)
        #expect(decisions.count == History.snapshots.count)
        let kept = Set(decisions.filter(\.keep).map { History.label($0.time) })
        #expect(kept.subtracting(testCase.kept).sorted() == [], "kept but should go")
        #expect(testCase.kept.subtracting(kept).sorted() == [], "should be kept but goes")
        for decision in decisions {
            #expect(!decision.reasons.isEmpty)
            if !decision.keep { #expect(decision.reasons == ["no rule keeps it"]) }
        }
    }

    @Test func everyKeptSnapshotSaysWhichRuleKeptIt() throws {
        var policy = RetentionPolicy.standard()
        policy.keepTags = ["audit"]
        let decisions = policy.apply(to: History.snapshots, holds: History.holds, now: History.now)
        func reasons(_ label: String) throws -> [String] {
            try #require(decisions.first { History.label($0.time) == label }).reasons
        }
        #expect(try reasons(History.held) == ["hold: case 2023-114 (placed by auditor on 2026-01-01)"])
        #expect(try reasons("2024-03-10 12:00") == ["keep_tags audit"])
        #expect(try reasons(History.morning).contains("min_age 1d (2h old)"))
        #expect(try reasons(History.morning).contains("keep_within_daily 7d (2026-01-01)"))
        #expect(try reasons("2025-12-28 23:00") == ["keep_within_daily 7d (2025-12-28)", "keep_within_weekly 30d (2025-W52)"])
        #expect(try reasons("2022-12-31 23:00") == ["keep_within_yearly 2555d (2022)"])
        #expect(try reasons("2025-06-15 23:00") == ["no rule keeps it"])
    }

    @Test func safetySnapshotsAreKeptThirtyDaysAndJudgedApartFromBackups() throws {
        let regular = (0..<40).map { History.snapshot(History.label(History.now - Double($0 + 1) * 86400)) }
        let safety = [History.snapshot("2025-12-10 05:00", tags: ["safety"]), History.snapshot("2025-11-01 05:00", tags: ["safety"])]
        var policy = RetentionPolicy()
        policy.keepLast = 1
        policy.minimumAge = RetentionDuration()
        let decisions = policy.apply(to: regular + safety, holds: [], now: History.now)
        let kept = decisions.filter(\.keep).map { History.label($0.time) }.sorted()
        // The newest regular backup is kept by keep_last; the newest safety snapshot is kept by
        // keep_last of its own group and by the 30-day floor; the older one is past the floor.
        #expect(kept == ["2025-12-10 05:00", "2025-12-31 12:00"])
        let newestSafety = try #require(decisions.first { History.label($0.time) == "2025-12-10 05:00" })
        #expect(newestSafety.reasons.contains("safety_min_age 30d (safety snapshot, 22d old)"))
        #expect(newestSafety.group.hasSuffix("(safety)"))

        policy.keepLast = nil
        policy.keepTags = ["none"]
        let floorOnly = policy.apply(to: regular + safety, holds: [], now: History.now).filter(\.keep).map { History.label($0.time) }
        #expect(floorOnly == ["2025-12-10 05:00"], "only the safety floor keeps anything")
    }

    @Test func groupsByHostAndSourceSetAreJudgedSeparately() {
        let a = History.snapshot("2025-12-31 23:00", paths: ["/data"])
        let b = History.snapshot("2025-12-30 23:00", paths: ["/srv/db"])
        let c = History.snapshot("2025-12-29 23:00", host: "other", paths: ["/data"])
        let d = History.snapshot("2025-12-28 23:00", paths: ["/data"])
        var policy = RetentionPolicy()
        policy.keepLast = 1
        policy.minimumAge = RetentionDuration()
        let kept = Set(policy.apply(to: [a, b, c, d], holds: [], now: History.now).filter(\.keep).map(\.id))
        #expect(kept == [a.id, b.id, c.id])
    }

    /// Running forget every night for three years must keep exactly what a single forget at the
    /// end keeps: an earlier run never removes a snapshot that a later run would have kept.
    @Test func forgettingEveryNightForYearsKeepsWhatOneForgetKeeps() {
        let policy = RetentionPolicy.standard(complianceDays: 730)
        var all: [(id: ID, snapshot: Snapshot)] = []
        var remaining: [(id: ID, snapshot: Snapshot)] = []
        var night = TestClock.utc("2023-01-01 23:00")
        let end = TestClock.utc("2026-01-01 00:00")
        while night < end {
            let snapshot = History.snapshot(History.label(night))
            all.append(snapshot)
            remaining.append(snapshot)
            let decisions = policy.apply(to: remaining, holds: [], now: night + 3600)
            let keep = Set(decisions.filter(\.keep).map(\.id))
            remaining = remaining.filter { keep.contains($0.id) }
            night += 86400
        }
        let once = Set(policy.apply(to: all, holds: [], now: end).filter(\.keep).map(\.id))
        #expect(Set(remaining.map(\.id)) == once)
        #expect(remaining.count > 20 && remaining.count < 40, "about 7 daily, 4 weekly, 12 monthly and 3 yearly: \(remaining.count)")
    }

    @Test(arguments: [("30d", 30, 0, 0, 0), ("2w", 14, 0, 0, 0), ("1y6m", 0, 6, 1, 0), ("12h", 0, 0, 0, 12), ("7", 7, 0, 0, 0)])
    func durationsParseLikeRestics(_ text: String, _ days: Int, _ months: Int, _ years: Int, _ hours: Int) throws {
        #expect(try RetentionDuration(parsing: text) == RetentionDuration(years: years, months: months, days: days, hours: hours))
    }

    @Test(arguments: ["", "d", "3x", "-1d", "1.5d"])
    func malformedDurationsAreRefused(_ text: String) {
        #expect(throws: BunkerError.self) { try RetentionDuration(parsing: text) }
    }
}
