import Foundation

extension WalArchive {
    /// Removes the archived WAL no restore can use any more: every segment, partial segment and
    /// backup label of timeline `start.timeline` or an earlier one that comes before `start`, the
    /// first segment the oldest kept base backup needs (its start WAL file). Segments of later
    /// timelines and every history file are kept (a later timeline branched off after `start`'s;
    /// history files are tiny and recovery reads them to choose a timeline). Returns the removed
    /// object names (with `dryRun`, those it would remove).
    ///
    /// For retention (the caller knows which base backups are kept, and a `pitr_days` window
    /// moves `start` forward); the caller holds the repository's exclusive lock, as prune does.
    /// A `wal fetch` running meanwhile for a removed file answers "not archived".
    public func removeSegments(before start: String, dryRun: Bool = false) async throws -> [String] {
        guard let first = WalFileName(start), first.holdsWAL || first.kind == .backup else {
            throw BunkerError(.invalidArgument, "\"\(start)\" is not a WAL segment's name; give the first segment the oldest kept base backup needs.")
        }
        let segmentSize = try await cluster()?.segmentSize ?? 16 << 20
        guard let firstNumber = first.segmentNumber(segmentSize: segmentSize) else { return [] }
        var removed: [String] = []
        for info in try await storage.list(.wal, prefix: scope + "-") {
            guard case .file(let s, let file, _)? = WalObject.Name(info.handle.name), s == scope, file.kind != .history,
                  file.timeline <= first.timeline, let number = file.segmentNumber(segmentSize: segmentSize), number < firstNumber else { continue }
            if !dryRun { try await storage.remove(info.handle) }
            removed.append(info.handle.name)
        }
        return removed.sorted()
    }
}
