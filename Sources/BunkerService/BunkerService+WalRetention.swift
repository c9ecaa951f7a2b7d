import BunkerCore
import BunkerSources
import Foundation

/// What WAL retention removed (or, in a dry run, would remove) for one source.
public struct WalRetentionReport: Sendable, Codable, Equatable {
    public var source: String
    /// The first WAL file kept: the start of the base backup the window begins with.
    public var keptFrom: String
    public var removed: Int

    enum CodingKeys: String, CodingKey {
        case source
        case keptFrom = "kept_from"
        case removed
    }
}

extension BunkerService {
    /// Removes the archived WAL that no kept base backup and no point of the PITR window needs,
    /// source by source; run by cleanup and prune under the exclusive lock, after the snapshots
    /// to drop are gone (or, in a dry run, with `forgotten` left out).
    ///
    /// The rule: WAL is kept from the start of the oldest physical base backup a snapshot still
    /// holds. With `[source.wal] pitr_days = N`, from the start of the newest base backup that
    /// ended before N days ago instead (if there is one), since a restore to any moment of the
    /// window starts from it; the older base backups kept by retention still restore, each to
    /// its own end, with the WAL it holds. A source with no base backup keeps all its WAL.
    func applyWalRetention(dryRun: Bool, forgotten: Set<ID> = [], now: Date = Date()) async throws -> [WalRetentionReport] {
        let bases = try await physicalBaseBackups(in: repository, leavingOut: forgotten)
        var reports: [WalRetentionReport] = []
        for (source, kept) in bases.sorted(by: { $0.key < $1.key }) {
            let byStop = kept
            var first = byStop[0]
            let pitrDays = (configuration.sources.first { $0.name == source } as? PostgresSource)?.walArchiving.pitrDays
            if let pitrDays, let windowBase = byStop.last(where: { $0.stop <= now.addingTimeInterval(-Double(pitrDays) * 86400) }) {
                first = windowBase
            }
            let removed = try await WalArchive(repository: repository, source: source).removeSegments(before: first.start, dryRun: dryRun)
            reports.append(WalRetentionReport(source: source, keptFrom: first.start, removed: removed.count))
        }
        return reports
    }

    /// The physical base backups the repository's snapshots hold, by source, oldest end first:
    /// where each starts in the WAL and when it ended.
    func physicalBaseBackups(in repository: Repository, leavingOut forgotten: Set<ID> = []) async throws -> [String: [(start: String, stop: Date)]] {
        var bases: [String: [(start: String, stop: Date)]] = [:]
        for (id, snapshot) in try await repository.snapshots() where !forgotten.contains(id) {
            for record in snapshot.sources ?? [] {
                guard let details = record.details, details["method"] == PostgresSource.physicalMethod,
                      let start = details["start_wal_file"], let stop = details["stop_time"].flatMap(Timestamp.parse) else { continue }
                bases[record.name, default: []].append((start, stop))
            }
        }
        return bases.mapValues { $0.sorted { $0.stop < $1.stop } }
    }

    /// `summary` with its restorable window: from the end of the oldest base backup whose
    /// start is archived (on its timeline, at or after the first archived segment), to the
    /// newest push.
    static func withWindow(_ summary: WalArchiveSummary, bases: [(start: String, stop: Date)]) -> WalArchiveSummary {
        var summary = summary
        let archived = bases.first { base in
            summary.timelines.contains { $0.firstSegment.prefix(8) == base.start.prefix(8) && $0.firstSegment <= base.start }
        }
        summary.windowStart = archived?.stop
        summary.windowEnd = archived == nil ? nil : summary.lastPush
        return summary
    }
}
