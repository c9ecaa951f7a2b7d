import Foundation

/// What a timeline's history file (`00000003.history`) says: the timelines it descends from,
/// oldest first, each with the WAL location where it ended and its child began.
///
/// PostgreSQL writes one line per ancestor, `parentTLI <tab> switchpoint <tab> reason`
/// (`1	0/3000158	before 2026-12-03 14:00:00+00`); comments start with `#`.
public struct WalTimelineHistory: Sendable, Equatable {
    public struct Ancestor: Sendable, Equatable {
        public var timeline: UInt32
        /// Where the ancestor ended: the first WAL location of its child.
        public var end: UInt64

        public init(timeline: UInt32, end: UInt64) {
            self.timeline = timeline
            self.end = end
        }
    }

    public var timeline: UInt32
    public var ancestors: [Ancestor]

    public init(timeline: UInt32, ancestors: [Ancestor] = []) {
        self.timeline = timeline
        self.ancestors = ancestors
    }

    /// Parses a history file's text; nil when a line is not one PostgreSQL writes.
    public static func parse(_ text: String, of timeline: UInt32) -> WalTimelineHistory? {
        var ancestors: [Ancestor] = []
        for line in text.split(whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, let parent = UInt32(fields[0]), let end = WalLocation.parse(String(fields[1])) else { return nil }
            ancestors.append(Ancestor(timeline: parent, end: end))
        }
        return WalTimelineHistory(timeline: timeline, ancestors: ancestors)
    }

    /// Whether recovery onto this timeline can start from a base backup taken on `timeline`
    /// that ended at `end`: the timeline itself, or an ancestor the base backup ended on before
    /// the timeline branched off it (PostgreSQL refuses any other: "requested timeline is not a
    /// child of this server's history").
    public func descends(from timeline: UInt32, endingAt end: UInt64) -> Bool {
        if timeline == self.timeline { return true }
        guard let ancestor = effectiveAncestors.last(where: { $0.timeline == timeline }) else { return false }
        return end <= ancestor.end
    }

    /// The ancestors with the end that counts: a restore may go back before an earlier one's
    /// switch (`1 0/9000000`, then `2 0/5000000`: timeline 3 left timeline 2 where timeline 2 was
    /// still timeline 1's past), and PostgreSQL resolves a location by the newest line first, so
    /// an ancestor ends no later than any switch after it.
    public var effectiveAncestors: [Ancestor] {
        var result = ancestors
        var limit = UInt64.max
        for i in result.indices.reversed() {
            limit = min(limit, result[i].end)
            result[i].end = limit
        }
        return result
    }
}

/// A WAL location as PostgreSQL writes it (`16/B374D848`).
public enum WalLocation {
    public static func parse(_ text: String) -> UInt64? {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let high = UInt64(parts[0], radix: 16), let low = UInt64(parts[1], radix: 16),
              high <= 0xFFFF_FFFF, low <= 0xFFFF_FFFF else { return nil }
        return high << 32 | low
    }

    public static func format(_ location: UInt64) -> String {
        "\(String(location >> 32, radix: 16, uppercase: true))/\(String(location & 0xFFFF_FFFF, radix: 16, uppercase: true))"
    }
}

/// What a point-in-time recovery of one source would meet in its archive: the timelines
/// (`recovery_target_timeline = 'latest'` follows the newest one the history files lead to)
/// and the segments archived on each, so that a restore is refused before it starts when its
/// base backup is not on the way to that timeline, or when a segment on the way is missing
/// (PostgreSQL would then end recovery at the gap, and `--latest` would look like a success).
public struct WalRecoveryPath: Sendable {
    /// A run of missing segments on the way, and when the first segment after it was pushed:
    /// every WAL record in the gap was written before then, so a target later than that moment
    /// lies past the gap.
    public struct Gap: Sendable, Equatable {
        public var gap: WalGap
        public var resumedAt: Date?
    }

    public var segmentSize: Int
    /// Each archived history, by the timeline it leads to.
    public var histories: [UInt32: WalTimelineHistory]
    /// Segment numbers archived whole (or streamed) per timeline, with when each was first pushed
    /// (nil when the storage does not say).
    public var segments: [UInt32: [UInt64: Date?]]

    public init(segmentSize: Int, histories: [UInt32: WalTimelineHistory] = [:], segments: [UInt32: [UInt64: Date?]] = [:]) {
        self.segmentSize = segmentSize
        self.histories = histories
        self.segments = segments
    }

    /// The timeline recovery from a base backup on `start` ends on: as PostgreSQL finds it,
    /// the last of `start + 1`, `start + 2`… whose history file is archived.
    public func newestTimeline(from start: UInt32) -> UInt32 {
        var newest = start
        while histories[newest + 1] != nil { newest += 1 }
        return newest
    }

    /// The history recovery follows from a base backup on `start` (no ancestors when no history
    /// leads past it).
    public func history(from start: UInt32) -> WalTimelineHistory {
        let newest = newestTimeline(from: start)
        return histories[newest] ?? WalTimelineHistory(timeline: newest)
    }

    /// Whether a base backup on `timeline` that ended at `end` can be recovered onto the newest
    /// timeline.
    public func canRecover(baseBackupOn timeline: UInt32, endingAt end: UInt64) -> Bool {
        history(from: timeline).descends(from: timeline, endingAt: end)
    }

    /// The segment number holding location `location`.
    public func segment(holding location: UInt64) -> UInt64 {
        location / UInt64(segmentSize)
    }

    private func isArchived(_ number: UInt64, on timeline: UInt32) -> Bool {
        segments[timeline]?.keys.contains(number) == true
    }

    /// The timeline whose segment `number` recovery reads: an ancestor up to the segment holding
    /// its switch point (exclusive), its child from there on.
    private func timeline(ofSegment number: UInt64, along history: WalTimelineHistory, from start: UInt32) -> UInt32 {
        for ancestor in history.effectiveAncestors.drop(while: { $0.timeline != start }) where number < segment(holding: ancestor.end) {
            return ancestor.timeline
        }
        return history.timeline
    }

    /// The runs of segments missing on the way from segment `first` (the one a base backup
    /// ended in: the base backup holds the WAL before) on `timeline` to the last segment archived
    /// on the way.
    ///
    /// Missing segments right after `first` count only when the archive holds WAL from before
    /// them on the way: an archive that starts later (retention's point-in-time window keeps WAL
    /// only from its oldest base backup on; archiving set up after the base backup) leaves this
    /// base backup to restore to its own end, which is no gap.
    public func gaps(from first: UInt64, on timeline: UInt32) -> [Gap] {
        let history = history(from: timeline)
        let owner = { (number: UInt64) in self.timeline(ofSegment: number, along: history, from: timeline) }
        let onTheWay = segments.flatMap { tl, numbers in numbers.keys.filter { owner($0) == tl } }
        // The last segment archived on the way: on each timeline, before it branched off.
        guard let last = onTheWay.filter({ $0 >= first }).max() else { return [] }
        let archivedBefore = onTheWay.contains { $0 < first }
        var gaps: [Gap] = []
        var number = first
        while number <= last {
            let tl = owner(number)
            guard !isArchived(number, on: tl) else {
                number += 1
                continue
            }
            var end = number
            while end < last, owner(end + 1) == tl, !isArchived(end + 1, on: tl) { end += 1 }
            let gap = WalGap(
                timeline: tl,
                firstMissing: WalFileName.segment(timeline: tl, number: number, segmentSize: segmentSize),
                lastMissing: WalFileName.segment(timeline: tl, number: end, segmentSize: segmentSize),
                count: Int(end - number + 1))
            // The segment after the gap is archived: the walk only stops at one.
            let resumedAt = segments[owner(end + 1)]?[end + 1] ?? nil
            if number > first || archivedBefore { gaps.append(Gap(gap: gap, resumedAt: resumedAt)) }
            number = end + 1
        }
        return gaps
    }
}

extension WalRecoveryPath {
    /// Adds files that `wal fetch` also serves but the repository does not hold yet (the local
    /// spool of asynchronous archiving): `(name, contents of a history file)`.
    public mutating func add(_ files: [(name: String, history: Data?)]) {
        for (name, history) in files {
            guard let file = WalFileName(name) else { continue }
            switch file.kind {
            case .history:
                if histories[file.timeline] == nil, let history, let parsed = WalTimelineHistory.parse(String(decoding: history, as: UTF8.self), of: file.timeline) {
                    histories[file.timeline] = parsed
                }
            case .segment, .stream:
                guard let number = file.segmentNumber(segmentSize: segmentSize), segments[file.timeline]?.keys.contains(number) != true else { continue }
                segments[file.timeline, default: [:]][number] = .some(nil)
            case .backup, .partial:
                continue
            }
        }
    }
}

extension WalArchive {
    /// The source's archive as a recovery would walk it: one listing, plus each history file.
    public func recoveryPath() async throws -> WalRecoveryPath {
        let listed = try await storage.list(.wal, prefix: scope + "-")
        let segmentSize = try await cluster()?.segmentSize ?? 16 << 20
        var histories: [UInt32: WalTimelineHistory] = [:]
        var segments: [UInt32: [UInt64: Date?]] = [:]
        for info in listed {
            guard case .file(let s, let file, _)? = WalObject.Name(info.handle.name), s == scope else { continue }
            switch file.kind {
            case .history:
                guard histories[file.timeline] == nil, let data = try await fetch(file.text) else { continue }
                guard let parsed = WalTimelineHistory.parse(String(decoding: data, as: UTF8.self), of: file.timeline) else {
                    throw BunkerError(.corruptObject, "The archived history file \(file.text) of source \(source) is not one PostgreSQL writes; run `bunker verify --read-data`.")
                }
                histories[file.timeline] = parsed
            case .segment, .stream:
                guard let number = file.segmentNumber(segmentSize: segmentSize) else { continue }
                let earlier = segments[file.timeline]?[number] ?? nil
                segments[file.timeline, default: [:]][number] = [earlier, info.modified].compactMap { $0 }.min()
            case .backup, .partial:
                continue
            }
        }
        return WalRecoveryPath(segmentSize: segmentSize, histories: histories, segments: segments)
    }
}
