import Foundation

/// Which snapshots to keep: restic's and Borg's vocabulary, plus the floors a clinic needs.
///
/// ## How a policy decides
/// Snapshots are first split into **groups**: same host, same source set (the configured source
/// names a snapshot holds, or its backed-up paths for a backup of plain paths), and safety
/// snapshots (tag `safety`, taken before a restore) apart from the others. Each group is judged on
/// its own, newest snapshot first, so that a daily database backup never competes with a weekly
/// file backup, nor a pre-restore copy with the backups it protects.
///
/// Within a group a snapshot is kept if any rule keeps it:
/// - `keep_last n`: the n newest.
/// - `keep_hourly/daily/weekly/monthly/yearly n`: walking from the newest, the newest snapshot of
///   each of the n most recent hours (days, ISO weeks, months, years) that have one.
/// - `keep_within d`: everything taken less than d before now.
/// - `keep_within_hourly/daily/weekly/monthly/yearly d`: the newest snapshot of every hour (day,
///   …) that lies less than d before now — the DermAI retention tiers are written this way.
/// - `keep_tags`: any snapshot carrying one of the tags.
///
/// And whatever the rules say, a snapshot is never removed while it is **held**, while it is
/// younger than `min_age`, or, for a safety snapshot, younger than `safety_min_age`.
/// Periods are UTC calendar periods; "now" comes from the caller's clock.
public struct RetentionPolicy: Sendable, Equatable, Codable {
    public var keepLast: Int?
    public var keepHourly: Int?
    public var keepDaily: Int?
    public var keepWeekly: Int?
    public var keepMonthly: Int?
    public var keepYearly: Int?
    public var keepWithin: RetentionDuration?
    public var keepWithinHourly: RetentionDuration?
    public var keepWithinDaily: RetentionDuration?
    public var keepWithinWeekly: RetentionDuration?
    public var keepWithinMonthly: RetentionDuration?
    public var keepWithinYearly: RetentionDuration?
    public var keepTags: [String] = []
    /// Nothing younger is ever removed (the compliance floor).
    public var minimumAge: RetentionDuration = .days(1)
    /// Safety snapshots younger than this are never removed.
    public var safetyMinimumAge: RetentionDuration = .days(30)

    /// The tag of the snapshots a restore takes of the live data before overwriting it.
    public static let safetyTag = "safety"

    /// A policy with no keep rule (only the floors); set rules on it.
    public init() {}

    /// The DermAI retention tiers: the newest backup of every day for 7 days, of every week for 30 days,
    /// of every month for 365 days and of every year for the compliance period.
    public static func standard(complianceDays: Int = 2555) -> RetentionPolicy {
        var policy = RetentionPolicy()
        policy.keepWithinDaily = .days(7)
        policy.keepWithinWeekly = .days(30)
        policy.keepWithinMonthly = .days(365)
        policy.keepWithinYearly = .days(complianceDays)
        return policy
    }

    /// Whether any rule keeps anything; forgetting with no rule would remove every snapshot
    /// older than the floors, which is refused.
    public var hasKeepRule: Bool {
        [keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly].contains { ($0 ?? 0) > 0 }
            || [keepWithin, keepWithinHourly, keepWithinDaily, keepWithinWeekly, keepWithinMonthly, keepWithinYearly].contains { $0.map { !$0.isZero } ?? false }
            || !keepTags.isEmpty
    }

    enum CodingKeys: String, CodingKey {
        case keepLast = "keep_last"
        case keepHourly = "keep_hourly"
        case keepDaily = "keep_daily"
        case keepWeekly = "keep_weekly"
        case keepMonthly = "keep_monthly"
        case keepYearly = "keep_yearly"
        case keepWithin = "keep_within"
        case keepWithinHourly = "keep_within_hourly"
        case keepWithinDaily = "keep_within_daily"
        case keepWithinWeekly = "keep_within_weekly"
        case keepWithinMonthly = "keep_within_monthly"
        case keepWithinYearly = "keep_within_yearly"
        case keepTags = "keep_tags"
        case minimumAge = "min_age"
        case safetyMinimumAge = "safety_min_age"
    }

    /// The rules in words, for output: `keep_daily 7, keep_within_weekly 30d, min_age 1d`.
    public var summary: String {
        var parts: [String] = []
        for (name, value) in [("keep_last", keepLast), ("keep_hourly", keepHourly), ("keep_daily", keepDaily),
                              ("keep_weekly", keepWeekly), ("keep_monthly", keepMonthly), ("keep_yearly", keepYearly)] {
            if let value { parts.append("\(name) \(value)") }
        }
        for (name, value) in [("keep_within", keepWithin), ("keep_within_hourly", keepWithinHourly),
                              ("keep_within_daily", keepWithinDaily), ("keep_within_weekly", keepWithinWeekly),
                              ("keep_within_monthly", keepWithinMonthly), ("keep_within_yearly", keepWithinYearly)] {
            if let value { parts.append("\(name) \(value)") }
        }
        if !keepTags.isEmpty { parts.append("keep_tags \(keepTags.joined(separator: ","))") }
        parts.append("min_age \(minimumAge)")
        parts.append("safety_min_age \(safetyMinimumAge)")
        return parts.joined(separator: ", ")
    }
}

/// The calendar periods that bucket rules count.
enum RetentionPeriod: CaseIterable {
    case hourly, daily, weekly, monthly, yearly

    var name: String {
        switch self {
        case .hourly: return "hourly"
        case .daily: return "daily"
        case .weekly: return "weekly"
        case .monthly: return "monthly"
        case .yearly: return "yearly"
        }
    }

    /// The period holding `date`, as people write it: `2026-11-20 14h`, `2026-11-20`,
    /// `2026-W47`, `2026-11`, `2026`.
    func bucket(of date: Date) -> String {
        if self == .weekly {
            let c = RetentionCalendar.isoWeeks.dateComponents([.yearForWeekOfYear, .weekOfYear], from: date)
            return String(format: "%04d-W%02d", c.yearForWeekOfYear ?? 0, c.weekOfYear ?? 0)
        }
        let c = RetentionCalendar.utc.dateComponents([.year, .month, .day, .hour], from: date)
        let (y, m, d, h) = (c.year ?? 0, c.month ?? 0, c.day ?? 0, c.hour ?? 0)
        switch self {
        case .hourly: return String(format: "%04d-%02d-%02d %02dh", y, m, d, h)
        case .daily: return String(format: "%04d-%02d-%02d", y, m, d)
        case .monthly: return String(format: "%04d-%02d", y, m)
        case .yearly, .weekly: return String(format: "%04d", y)
        }
    }
}

extension RetentionPolicy {
    func count(_ period: RetentionPeriod) -> Int? {
        switch period {
        case .hourly: return keepHourly
        case .daily: return keepDaily
        case .weekly: return keepWeekly
        case .monthly: return keepMonthly
        case .yearly: return keepYearly
        }
    }

    func within(_ period: RetentionPeriod) -> RetentionDuration? {
        switch period {
        case .hourly: return keepWithinHourly
        case .daily: return keepWithinDaily
        case .weekly: return keepWithinWeekly
        case .monthly: return keepWithinMonthly
        case .yearly: return keepWithinYearly
        }
    }
}

/// What a policy decided about one snapshot, and why.
public struct RetentionDecision: Sendable, Codable {
    public var id: ID
    public var time: Date
    /// The group the snapshot was judged in (see ``RetentionPolicy``).
    public var group: String
    public var tags: [String]
    public var keep: Bool
    /// Each rule that keeps it (`keep_daily 2026-11-20`, `hold: case 114 (alice, …)`,
    /// `min_age: 3h old`), or why it goes.
    public var reasons: [String]

    enum CodingKeys: String, CodingKey {
        case id, time, group, tags, keep, reasons
    }
}

extension RetentionPolicy {
    /// The group a snapshot is judged in: host, source set, and safety snapshots apart.
    public static func group(of snapshot: Snapshot) -> String {
        let set: String
        if let sources = snapshot.sources, !sources.isEmpty {
            set = "sources " + sources.map(\.name).sorted().joined(separator: ",")
        } else {
            set = "paths " + snapshot.paths.sorted().joined(separator: ",")
        }
        let safety = snapshot.tags.contains(safetyTag) ? " (safety)" : ""
        return "host \(snapshot.hostname), \(set)\(safety)"
    }

    /// Decides, for every snapshot, whether it is kept and why. Pure: the same snapshots, holds
    /// and `now` give the same answer, so tables of cases can test it over years of history.
    ///
    /// The result is in the order of `snapshots`.
    public func apply(to snapshots: [(id: ID, snapshot: Snapshot)], holds: [Hold], now: Date) -> [RetentionDecision] {
        var reasons: [ID: [String]] = [:]
        func keep(_ id: ID, _ reason: String) { reasons[id, default: []].append(reason) }

        var groups: [String: [(id: ID, snapshot: Snapshot)]] = [:]
        for entry in snapshots { groups[Self.group(of: entry.snapshot), default: []].append(entry) }
        for (_, members) in groups {
            let newestFirst = members.sorted { ($0.snapshot.time, $0.id.hex) > ($1.snapshot.time, $1.id.hex) }
            if let n = keepLast, n > 0 {
                for (i, entry) in newestFirst.prefix(n).enumerated() { keep(entry.id, "keep_last \(n) (#\(i + 1))") }
            }
            for period in RetentionPeriod.allCases {
                if let n = count(period), n > 0 {
                    var remaining = n
                    var last: String?
                    for entry in newestFirst where remaining > 0 {
                        let bucket = period.bucket(of: entry.snapshot.time)
                        guard bucket != last else { continue }
                        last = bucket
                        remaining -= 1
                        keep(entry.id, "keep_\(period.name) \(n) (\(bucket))")
                    }
                }
                if let span = within(period), !span.isZero {
                    let cutoff = span.cutoff(before: now)
                    var last: String?
                    for entry in newestFirst where entry.snapshot.time >= cutoff {
                        let bucket = period.bucket(of: entry.snapshot.time)
                        guard bucket != last else { continue }
                        last = bucket
                        keep(entry.id, "keep_within_\(period.name) \(span) (\(bucket))")
                    }
                }
            }
        }

        let withinCutoff = keepWithin.flatMap { $0.isZero ? nil : $0.cutoff(before: now) }
        let minimumCutoff = minimumAge.cutoff(before: now)
        let safetyCutoff = safetyMinimumAge.cutoff(before: now)
        var holdsBySnapshot: [ID: [Hold]] = [:]
        for hold in holds { holdsBySnapshot[hold.snapshot, default: []].append(hold) }

        return snapshots.map { entry in
            let (id, snapshot) = entry
            var why: [String] = []
            for hold in holdsBySnapshot[id] ?? [] {
                why.append("hold: \(hold.reason) (placed by \(hold.username) on \(Timestamp.format(hold.time).prefix(10)))")
            }
            if !minimumAge.isZero, snapshot.time > minimumCutoff {
                why.append("min_age \(minimumAge) (\(Self.age(of: snapshot.time, now: now)) old)")
            }
            if snapshot.tags.contains(Self.safetyTag), !safetyMinimumAge.isZero, snapshot.time > safetyCutoff {
                why.append("safety_min_age \(safetyMinimumAge) (safety snapshot, \(Self.age(of: snapshot.time, now: now)) old)")
            }
            if let withinCutoff, let span = keepWithin, snapshot.time >= withinCutoff {
                why.append("keep_within \(span)")
            }
            for tag in keepTags where snapshot.tags.contains(tag) {
                why.append("keep_tags \(tag)")
            }
            why += reasons[id] ?? []
            let kept = !why.isEmpty
            return RetentionDecision(id: id, time: snapshot.time, group: Self.group(of: snapshot), tags: snapshot.tags,
                                     keep: kept, reasons: kept ? why : ["no rule keeps it"])
        }
    }

    /// `3h`, `12d`, `2y41d`: how long ago, for reasons.
    static func age(of time: Date, now: Date) -> String {
        let seconds = max(0, now.timeIntervalSince(time))
        let hours = Int(seconds / 3600)
        if hours < 48 { return "\(hours)h" }
        let days = hours / 24
        return days < 365 ? "\(days)d" : "\(days / 365)y\(days % 365)d"
    }
}
