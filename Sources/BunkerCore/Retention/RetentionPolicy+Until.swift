import Foundation

/// # When could the policy remove a snapshot? (`retention_until`)
///
/// Every listing shows, for each snapshot, the earliest moment the current policy could remove it,
/// as the DermAI backup strategy's manifest does with `retention_until`. A bucket rule such as
/// `keep_daily 7` keeps a snapshot while it is among the newest seven days *that have a backup*,
/// so the answer depends on backups not yet taken. It is therefore computed under one stated
/// assumption, **the cadence**: backups go on, one at the start of every following period of the
/// policy's finest bucket rule (hourly, daily, weekly, monthly or yearly; daily when the policy has
/// only `keep_last`, `keep_within` or `keep_tags`), and none more in periods that have already
/// begun. Under it, each rule that keeps the snapshot now stops keeping it at a known moment:
///
/// - `keep_last n`, for the r-th newest of its group: when the (n − r + 1)-th future backup is
///   taken.
/// - `keep_<period> n`, for the newest of the k-th most recent period that has one: when n − k + 1
///   newer periods have a backup, or sooner, when the next backup falls in its own period and
///   becomes the newest there (`keep_daily 7` on yesterday's last backup: 7 days after today
///   begins).
/// - `keep_within d`: the snapshot's time + d.
/// - `keep_within_<period> d`: the snapshot's time + d, or sooner, when the next backup falls in
///   its own period.
/// - `min_age` and `safety_min_age`: the snapshot's time + the age; nothing goes sooner.
///
/// No rule keeps a snapshot again once it stopped, so the moment is the latest of these.
/// A snapshot nothing keeps any more gets "now": the next `bunker forget` or cleanup removes it.
/// There is **no** moment (null) when the current policy never removes the snapshot: it is held,
/// `keep_tags` keeps it, or the policy has no keep rule (`forget` refuses such a policy).
/// The moment is a lower bound: backups taken less often keep snapshots longer, and the next
/// cleanup after it, not the moment itself, is when the snapshot goes.
extension RetentionPolicy {
    /// The earliest moment this policy could remove each snapshot (see the article above), in the
    /// order of `snapshots`; nil for one it never removes (held, kept by tag, or no keep rule).
    /// Pure, like ``apply(to:holds:now:)``.
    public func retentionUntil(for snapshots: [(id: ID, snapshot: Snapshot)], holds: [Hold], now: Date) -> [Date?] {
        let dates = removalDates(for: snapshots, holds: holds, now: now)
        return snapshots.map { dates[$0.id] }
    }

    private func removalDates(for snapshots: [(id: ID, snapshot: Snapshot)], holds: [Hold], now: Date) -> [ID: Date] {
        guard hasKeepRule else { return [:] }
        let held = Set(holds.map(\.snapshot))
        let cadence = RetentionPeriod.allCases.first { (count($0) ?? 0) > 0 || !(within($0)?.isZero ?? true) } ?? .daily
        let future = FutureBackups(cadence: cadence, now: now)

        var result: [ID: Date] = [:]
        var groups: [String: [(id: ID, snapshot: Snapshot)]] = [:]
        for entry in snapshots { groups[Self.group(of: entry.snapshot), default: []].append(entry) }
        for (_, members) in groups {
            let newestFirst = members.sorted { ($0.snapshot.time, $0.id.hex) > ($1.snapshot.time, $1.id.hex) }
            for (index, entry) in newestFirst.enumerated() {
                guard !held.contains(entry.id), !keepTags.contains(where: entry.snapshot.tags.contains) else { continue }
                var until = now
                for moment in ruleMoments(of: index, in: newestFirst, future: future, now: now) { until = max(until, moment) }
                result[entry.id] = until
            }
        }
        return result
    }

    /// The moments at which each rule and floor that keeps `newestFirst[index]` now stops keeping it.
    private func ruleMoments(of index: Int, in newestFirst: [(id: ID, snapshot: Snapshot)], future: FutureBackups, now: Date) -> [Date] {
        let time = newestFirst[index].snapshot.time
        var moments: [Date] = []
        if let n = keepLast, index < n { moments.append(future.backup(n - index)) }
        if let span = keepWithin, !span.isZero, time >= span.cutoff(before: now) { moments.append(span.added(to: time)) }
        if !minimumAge.isZero, time > minimumAge.cutoff(before: now) { moments.append(minimumAge.added(to: time)) }
        if newestFirst[index].snapshot.tags.contains(Self.safetyTag), !safetyMinimumAge.isZero, time > safetyMinimumAge.cutoff(before: now) {
            moments.append(safetyMinimumAge.added(to: time))
        }
        for period in RetentionPeriod.allCases {
            let bucket = period.bucket(of: time)
            // Only the newest snapshot of its period is kept by the period's rules.
            guard index == 0 || period.bucket(of: newestFirst[index - 1].snapshot.time) != bucket else { continue }
            // The next backup, when it falls in the same period, takes its place.
            let displaced = period.bucket(of: future.backup(1)) == bucket ? future.backup(1) : Date.distantFuture
            if let n = count(period), n > 0 {
                // Periods with a backup, newest first, up to and including this one's.
                var rank = 1
                var last = period.bucket(of: newestFirst[0].snapshot.time)
                for entry in newestFirst[...index] where period.bucket(of: entry.snapshot.time) != last {
                    last = period.bucket(of: entry.snapshot.time)
                    rank += 1
                }
                if rank <= n {
                    let pushedOut = future.firstBackup(inNewPeriod: n - rank + 1, of: period, newest: newestFirst[0].snapshot.time)
                    moments.append(min(displaced, pushedOut))
                }
            }
            if let span = within(period), !span.isZero, time >= span.cutoff(before: now) {
                moments.append(min(displaced, span.added(to: time)))
            }
        }
        return moments
    }
}

/// The backups the cadence assumes: one at the start of every period of `cadence` after now.
private struct FutureBackups {
    var cadence: RetentionPeriod
    var first: Date

    init(cadence: RetentionPeriod, now: Date) {
        self.cadence = cadence
        first = cadence.advance(cadence.start(of: now), by: 1)
    }

    /// The k-th future backup (k ≥ 1).
    func backup(_ k: Int) -> Date {
        cadence.advance(first, by: k - 1)
    }

    /// The first future backup at or after `date`.
    func backup(atOrAfter date: Date) -> Date {
        let start = cadence.start(of: date)
        return max(first, start == date ? start : cadence.advance(start, by: 1))
    }

    /// When the m-th period of `period` after the one of the group's `newest` snapshot receives its
    /// first future backup.
    func firstBackup(inNewPeriod m: Int, of period: RetentionPeriod, newest: Date) -> Date {
        let base = period.start(of: first)
        // The first future backup opens a new period unless the newest snapshot's period is the same.
        let offset = base > period.start(of: newest) ? 0 : 1
        let j = offset + m - 1
        return j == 0 ? first : backup(atOrAfter: period.advance(base, by: j))
    }
}

extension RetentionPeriod {
    private var calendar: Calendar { self == .weekly ? RetentionCalendar.isoWeeks : RetentionCalendar.utc }

    private var component: Calendar.Component {
        switch self {
        case .hourly: return .hour
        case .daily: return .day
        case .weekly: return .weekOfYear
        case .monthly: return .month
        case .yearly: return .year
        }
    }

    /// The first instant of the period holding `date`.
    func start(of date: Date) -> Date {
        calendar.dateInterval(of: component, for: date)?.start ?? date
    }

    /// `date` moved by `n` periods.
    func advance(_ date: Date, by n: Int) -> Date {
        calendar.date(byAdding: component, value: n, to: date) ?? date
    }
}
