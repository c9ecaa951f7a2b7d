import Foundation

/// The archived WAL of one timeline: its first and last segment and the segments missing
/// between them.
public struct WalTimelineSummary: Sendable, Codable, Equatable {
    public var timeline: UInt32
    public var firstSegment: String
    public var lastSegment: String
    public var segments: Int
    /// Every run of missing segments between the first and the last.
    public var gaps: [WalGap]

    enum CodingKeys: String, CodingKey {
        case timeline, segments, gaps
        case firstSegment = "first_segment"
        case lastSegment = "last_segment"
    }
}

/// A run of missing segments: recovery through it is impossible.
public struct WalGap: Sendable, Codable, Equatable {
    public var timeline: UInt32
    /// The first and last missing segment (the same for a single one).
    public var firstMissing: String
    public var lastMissing: String
    public var count: Int

    enum CodingKeys: String, CodingKey {
        case timeline, count
        case firstMissing = "first_missing"
        case lastMissing = "last_missing"
    }
}

/// What the repository holds of one source's WAL: the archived range per timeline, its gaps,
/// and how far archiving lags behind.
public struct WalArchiveSummary: Sendable, Codable, Equatable {
    public var source: String
    public var systemIdentifier: String?
    public var segmentSize: Int?
    public var timelines: [WalTimelineSummary] = []
    /// Archived `.history` files (timeline switches).
    public var histories: [String] = []
    public var backupLabels = 0
    public var partials = 0
    public var objects = 0
    public var storedBytes: UInt64 = 0
    /// When the oldest and the newest object were pushed (the storage's write time).
    public var firstPush: Date?
    public var lastPush: Date?
    /// Seconds from the newest push to now: how stale the restorable end is when the server
    /// keeps writing (`bunker_wal_archive_lag_seconds`).
    public var archiveLagSeconds: Double?
    /// The restorable window: from the end of the oldest base backup whose WAL is archived from
    /// its start on, to the newest push (the newest archived WAL was written before then). Set
    /// by the service layer, which knows the base backups; nil without one.
    public var windowStart: Date?
    public var windowEnd: Date?

    /// Every gap of every timeline.
    public var gaps: [WalGap] { timelines.flatMap(\.gaps) }

    public init(source: String) {
        self.source = source
    }

    enum CodingKeys: String, CodingKey {
        case source, timelines, histories, partials, objects, gaps
        case systemIdentifier = "system_identifier"
        case segmentSize = "segment_size"
        case backupLabels = "backup_labels"
        case storedBytes = "stored_bytes"
        case firstPush = "first_push"
        case lastPush = "last_push"
        case archiveLagSeconds = "archive_lag_seconds"
        case windowStart = "window_start"
        case windowEnd = "window_end"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(source, forKey: .source)
        try c.encodeIfPresent(systemIdentifier, forKey: .systemIdentifier)
        try c.encodeIfPresent(segmentSize, forKey: .segmentSize)
        try c.encode(timelines, forKey: .timelines)
        try c.encode(gaps, forKey: .gaps)
        try c.encode(histories, forKey: .histories)
        try c.encode(backupLabels, forKey: .backupLabels)
        try c.encode(partials, forKey: .partials)
        try c.encode(objects, forKey: .objects)
        try c.encode(storedBytes, forKey: .storedBytes)
        try c.encodeIfPresent(firstPush, forKey: .firstPush)
        try c.encodeIfPresent(lastPush, forKey: .lastPush)
        try c.encodeIfPresent(archiveLagSeconds, forKey: .archiveLagSeconds)
        try c.encodeIfPresent(windowStart, forKey: .windowStart)
        try c.encodeIfPresent(windowEnd, forKey: .windowEnd)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        source = try c.decode(String.self, forKey: .source)
        systemIdentifier = try c.decodeIfPresent(String.self, forKey: .systemIdentifier)
        segmentSize = try c.decodeIfPresent(Int.self, forKey: .segmentSize)
        timelines = try c.decode([WalTimelineSummary].self, forKey: .timelines)
        histories = try c.decode([String].self, forKey: .histories)
        backupLabels = try c.decode(Int.self, forKey: .backupLabels)
        partials = try c.decode(Int.self, forKey: .partials)
        objects = try c.decode(Int.self, forKey: .objects)
        storedBytes = try c.decode(UInt64.self, forKey: .storedBytes)
        firstPush = try c.decodeIfPresent(Date.self, forKey: .firstPush)
        lastPush = try c.decodeIfPresent(Date.self, forKey: .lastPush)
        archiveLagSeconds = try c.decodeIfPresent(Double.self, forKey: .archiveLagSeconds)
        windowStart = try c.decodeIfPresent(Date.self, forKey: .windowStart)
        windowEnd = try c.decodeIfPresent(Date.self, forKey: .windowEnd)
    }
}

extension WalArchive {
    /// Every source with archived WAL in `repository`, summarized: what `verify` walks and
    /// `stats` shows. One listing of the kind; only the cluster records are read.
    public static func summaries(of repository: Repository) async throws -> [WalArchiveSummary] {
        let infos = try await repository.storage.list(.wal)
        var byScope: [String: [(WalObject.Name, ObjectInfo)]] = [:]
        for info in infos {
            guard let name = WalObject.Name(info.handle.name) else { continue }
            byScope[name.scope, default: []].append((name, info))
        }
        var result: [WalArchiveSummary] = []
        for (scope, objects) in byScope.sorted(by: { $0.key < $1.key }) {
            var clusterRecord: WalObject.Cluster?
            if case .cluster(_, let sysid)? = objects.map(\.0).first(where: { if case .cluster = $0 { return true } else { return false } }) {
                // A damaged record leaves the summary without the cluster's facts; the read-data
                // check names the damaged object.
                let data = try? await repository.loadSealed(ObjectHandle(.wal, WalObject.clusterName(scope: scope, systemIdentifier: sysid)))
                clusterRecord = data.flatMap { try? JSONCoding.decoder.decode(WalObject.Cluster.self, from: $0) }
            }
            let source = clusterRecord?.source ?? Self.source(ofScope: scope)
            result.append(summarize(source: source, cluster: clusterRecord, objects: objects, now: repository.now()))
        }
        return result
    }

    /// The summary of this source's archive.
    public func summary() async throws -> WalArchiveSummary {
        let objects = try await storage.list(.wal, prefix: scope + "-").compactMap { info -> (WalObject.Name, ObjectInfo)? in
            guard let name = WalObject.Name(info.handle.name), name.scope == scope else { return nil }
            return (name, info)
        }
        return Self.summarize(source: source, cluster: try await cluster(), objects: objects, now: repository.now())
    }

    /// The source name a scope stands for (see ``WalObject/scope(of:)``).
    static func source(ofScope scope: String) -> String {
        guard scope.hasPrefix("~") else { return scope }
        var bytes: [UInt8] = []
        var digits = scope.dropFirst().makeIterator()
        while let high = digits.next(), let low = digits.next(), let byte = UInt8(String([high, low]), radix: 16) { bytes.append(byte) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Walks each timeline's segments in order and names every run missing between its first and
    /// last. Without a cluster record (no segment archived yet) the default 16 MiB is assumed.
    static func summarize(source: String, cluster: WalObject.Cluster?, objects: [(WalObject.Name, ObjectInfo)], now: Date) -> WalArchiveSummary {
        var summary = WalArchiveSummary(source: source)
        summary.systemIdentifier = cluster?.systemIdentifier
        summary.segmentSize = cluster?.segmentSize
        let segmentSize = cluster?.segmentSize ?? 16 << 20
        var numbers: [UInt32: Set<UInt64>] = [:]
        var histories: Set<String> = []
        for (name, info) in objects {
            summary.storedBytes += UInt64(info.size)
            guard case .file(_, let file, _) = name else { continue }
            summary.objects += 1
            if let modified = info.modified {
                summary.firstPush = min(summary.firstPush ?? modified, modified)
                summary.lastPush = max(summary.lastPush ?? modified, modified)
            }
            switch file.kind {
            case .history: histories.insert(file.text)
            case .backup: summary.backupLabels += 1
            case .segment, .partial, .stream:
                if file.kind == .partial { summary.partials += 1 }
                if let number = file.segmentNumber(segmentSize: segmentSize) { numbers[file.timeline, default: []].insert(number) }
            }
        }
        summary.histories = histories.sorted()
        for (timeline, present) in numbers.sorted(by: { $0.key < $1.key }) {
            let sorted = present.sorted()
            var gaps: [WalGap] = []
            for (a, b) in zip(sorted, sorted.dropFirst()) where b > a + 1 {
                gaps.append(WalGap(
                    timeline: timeline,
                    firstMissing: WalFileName.segment(timeline: timeline, number: a + 1, segmentSize: segmentSize),
                    lastMissing: WalFileName.segment(timeline: timeline, number: b - 1, segmentSize: segmentSize),
                    count: Int(b - a - 1)))
            }
            summary.timelines.append(WalTimelineSummary(
                timeline: timeline,
                firstSegment: WalFileName.segment(timeline: timeline, number: sorted[0], segmentSize: segmentSize),
                lastSegment: WalFileName.segment(timeline: timeline, number: sorted[sorted.count - 1], segmentSize: segmentSize),
                segments: sorted.count, gaps: gaps))
        }
        if let last = summary.lastPush { summary.archiveLagSeconds = max(0, now.timeIntervalSince(last)) }
        return summary
    }
}
