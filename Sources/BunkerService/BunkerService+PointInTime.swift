import BunkerCore
import BunkerSources
import Foundation

extension SnapshotSource {
    /// Whether the record is of a PostgreSQL physical base backup (`method = "physical"`).
    public var isPhysicalBaseBackup: Bool { sourceKind == .postgres && details?["method"] == "physical" }

    /// When a physical base backup ended (Bunker's clock once pg_basebackup had finished).
    public var baseBackupStopTime: Date? { details?["stop_time"].flatMap(Timestamp.parse) }
    /// The WAL location where a physical base backup ended, as a number.
    var baseBackupStopLSN: UInt64? { details?["stop_lsn"].flatMap(BunkerService.lsn) }
    /// The timeline a physical base backup was taken on.
    var baseBackupTimeline: UInt32? { details?["timeline"].flatMap { UInt32($0) } }
    /// The WAL location where a physical base backup started, as a number.
    var baseBackupStartLSN: UInt64? { details?["start_lsn"].flatMap(BunkerService.lsn) }
}

extension BunkerService {
    /// The snapshot a restore reads: the one the request names, except that `latest` with a
    /// physical restore (`--pgdata`, or a recovery target) is the newest snapshot holding a base
    /// backup of the named source that ended before the target time or WAL location, if there
    /// is one (for a transaction id or a restore point, which say nothing of when, the newest). A named
    /// snapshot whose base backup ended after the target time is refused: recovery cannot go
    /// back before the end of its base backup.
    func restoredSnapshot(_ request: SourceRestoreRequest) async throws -> (id: ID, snapshot: Snapshot) {
        let physical = request.recovery != nil || { if case .pgdata = request.target { true } else { false } }()
        guard physical else {
            guard request.snapshot == "latest" else { return try await repository.findSnapshot(request.snapshot) }
            return try await latestRestorable(holding: request.sourceNames)
        }
        guard request.sourceNames.count == 1, let source = request.sourceNames.first else {
            throw BunkerError(.invalidArgument, "A point-in-time restore restores one PostgreSQL source: name it with --source NAME.")
        }
        var moment: Date?
        var location: UInt64?
        switch request.recovery?.target {
        case .time(let time): moment = time
        case .lsn(let text):
            guard let parsed = Self.lsn(text) else {
                throw BunkerError(.invalidArgument, "--to-lsn \(text) is not a WAL location: write it as PostgreSQL does, e.g. 0/3000060.")
            }
            location = parsed
        default: break
        }
        let shown = moment.map(RecoveryTarget.postgresTime)
        let path = try await recoveryPath(of: source)
        let target = request.recovery?.target ?? .latest
        if request.snapshot != "latest" {
            let found = try await repository.findSnapshot(request.snapshot)
            if let record = found.snapshot.sources?.first(where: { $0.name == source }), record.isPhysicalBaseBackup {
                if let moment, let stop = record.baseBackupStopTime, stop > moment {
                    throw BunkerError(.invalidArgument, "The base backup of source \(source) in snapshot \(found.id.short) ended at \(RecoveryTarget.postgresTime(stop)), after the target \(shown!): recovery can only move forward from the end of a base backup. Give an older snapshot, or `latest` to let Bunker choose.")
                }
                if let path, !Self.recoverable(record, along: path) {
                    let newest = path.newestTimeline(from: record.baseBackupTimeline ?? 1)
                    throw BunkerError(.invalidArgument, "The base backup of source \(source) in snapshot \(found.id.short) (timeline \(record.baseBackupTimeline ?? 1), ended at \(record.details?["stop_lsn"] ?? "?")) is not on the history of timeline \(newest), the newest in the archive, which recovery follows: it was taken after that timeline branched off. Give `latest` to let Bunker choose a base backup that is.")
                }
                try Self.checkWalPath(path, record: record, target: target, source: source, snapshot: found.id)
            }
            return found
        }
        var offTimeline = 0
        let candidates = try await repository.snapshots().filter { entry in
            guard let record = entry.snapshot.sources?.first(where: { $0.name == source }), record.isPhysicalBaseBackup else { return false }
            if let location, (record.baseBackupStopLSN ?? .max) > location { return false }
            if let moment, (record.baseBackupStopTime.map { $0 > moment } ?? true) { return false }
            // A base backup taken on a timeline after the newest one branched off it (the
            // safety base backup of an in-place restore is one) cannot reach the newest.
            if let path, !Self.recoverable(record, along: path) {
                offTimeline += 1
                return false
            }
            return true
        }
        guard let newest = candidates.max(by: { ($0.snapshot.sources?.first { $0.name == source }?.baseBackupStopTime ?? .distantPast) < ($1.snapshot.sources?.first { $0.name == source }?.baseBackupStopTime ?? .distantPast) }) else {
            if offTimeline > 0 {
                throw BunkerError(.snapshotNotFound, "Every base backup of source \(source) that fits the target was taken on a timeline after the newest timeline in the archive branched off it, so recovery (which follows the newest timeline) cannot start from any of them. Take a base backup now (`bunker backup --source \(source)`) and restore to a later target.")
            }
            if let location {
                throw BunkerError(.snapshotNotFound, "There is no physical base backup of source \(source) that ended before WAL location \(WalLocation.format(location)), so Bunker cannot restore to it. Choose a later target.")
            }
            if let shown {
                throw BunkerError(.snapshotNotFound, "There is no physical base backup of source \(source) that ended before \(shown), so Bunker cannot restore to that moment: the point-in-time window starts at the end of the oldest base backup (`bunker snapshots` lists them). Choose a later target.")
            }
            throw BunkerError(.snapshotNotFound, "There is no physical base backup of source \(source) (method = \"physical\"); run `bunker backup` first.")
        }
        if let record = newest.snapshot.sources?.first(where: { $0.name == source }) {
            try Self.checkWalPath(path, record: record, target: target, source: source, snapshot: newest.id)
        }
        return newest
    }

    /// The source's archived WAL as a recovery walks it; nil when none is archived (a base
    /// backup then restores to its own end, with the WAL it holds).
    func recoveryPath(of source: String) async throws -> WalRecoveryPath? {
        var path = try await WalArchive(repository: repository, source: source).recoveryPath()
        // What waits in the spool is fetched from there (``fetchWal(_:to:source:)``).
        if let spool = walSpool(source: source) {
            path.add(try spool.pending().map { ($0, $0.hasSuffix(".history") ? spool.contents(of: $0) : nil) })
        }
        return path.segments.isEmpty && path.histories.isEmpty ? nil : path
    }

    /// Whether recovery from the base backup `record` can follow the archive's newest timeline.
    static func recoverable(_ record: SnapshotSource, along path: WalRecoveryPath) -> Bool {
        guard let timeline = record.baseBackupTimeline, let end = record.baseBackupStopLSN else { return true }
        return path.canRecover(baseBackupOn: timeline, endingAt: end)
    }

    /// Refuses a recovery that would have to pass a gap in the archived WAL after the base
    /// backup `record`: to the latest state (PostgreSQL would end recovery at the gap, without
    /// an error, and the restore would look complete), or to a target known to lie past it (a
    /// location after the gap's start, a moment after the segment following it was pushed).
    /// A target before the gap is left to PostgreSQL, which stops there.
    static func checkWalPath(_ path: WalRecoveryPath?, record: SnapshotSource, target: RecoveryTarget, source: String, snapshot: ID) throws {
        // From the segment the base backup ended in: it holds the WAL before (pg_basebackup's
        // --wal-method=fetch).
        guard let path, let timeline = record.baseBackupTimeline, let end = record.baseBackupStopLSN ?? record.baseBackupStartLSN,
              let first = path.gaps(from: path.segment(holding: end), on: timeline).first else { return }
        let gap = first.gap
        let gapStart = (WalFileName(gap.firstMissing)?.segmentNumber(segmentSize: path.segmentSize) ?? 0) * UInt64(path.segmentSize)
        let passes: Bool = switch target {
        case .latest: true
        case .lsn(let text): (Self.lsn(text) ?? 0) >= gapStart
        case .time(let moment): first.resumedAt.map { moment > $0 } ?? false
        case .xid, .name: false
        }
        guard passes else { return }
        let missing = gap.count == 1 ? "segment \(gap.firstMissing) is" : "segments \(gap.firstMissing) to \(gap.lastMissing) (\(gap.count)) are"
        let before = first.resumedAt.map { " The segment after the gap was archived at \(RecoveryTarget.postgresTime($0)); a target before the gap (at the latest the moment its last segment was written: `bunker stats --json` shows the archive) can still be reached." } ?? ""
        throw BunkerError(.integrity, "The archived WAL of source \(source) has a gap after the base backup of snapshot \(snapshot.short): \(missing) missing (timeline \(gap.timeline), WAL from \(WalLocation.format(gapStart)) on). Recovery to \(target.description) would stop at the gap, before the changes after it, so nothing was restored.\(before) If the old server's pg_wal still holds the missing files, archive them with `bunker wal push` and restore again; `bunker verify` lists every gap.")
    }

    /// The recovery options a restore or drill of `source` uses: the request's, with the
    /// `restore_command` that calls this very executable, with this configuration.
    func recoveryOptions(_ requested: RecoveryOptions?, source: String) -> RecoveryOptions {
        var options = requested ?? RecoveryOptions()
        // `--config` is an option of each subcommand, not of `bunker` itself: it follows `wal fetch`.
        var command = [Self.executablePath, "wal", "fetch"]
        if let file = configuration.file { command += ["--config", Configuration.absolute(file, relativeTo: nil)] }
        options.walFetch = command + ["--source", source]
        return options
    }

    /// A WAL location written as PostgreSQL writes it (`16/B374D848`) as a number.
    static func lsn(_ text: String) -> UInt64? {
        WalLocation.parse(text)
    }

    /// The full path of the running `bunker`: PostgreSQL runs `restore_command` as its own user,
    /// in its own environment, where `bunker` may not be on the PATH.
    static var executablePath: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if n > 0 { return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        return Configuration.absolute(CommandLine.arguments[0], relativeTo: nil)
    }
}

extension SourceRestoreRequest {
    /// Makes this a restore of `source`'s physical base backup into the new data directory
    /// `pgdata`, recovered up to `targetTime` (as users write it: `2026-12-03 14:00:00+00`),
    /// or through all archived WAL when nil; the server is not started.
    public mutating func restorePhysical(source: String, into pgdata: String, targetTime: String?) throws {
        var recovery = RecoveryOptions()
        if let targetTime {
            guard let moment = RecoveryTarget.parseTime(targetTime) else {
                throw BunkerError(.invalidArgument, "\"\(targetTime)\" is not a moment Bunker can read: write it as \"2026-12-03 14:00:00+00\" or 2026-12-03T14:00:00Z (with its offset from UTC).")
            }
            recovery.target = .time(moment)
        }
        sourceNames = [source]
        target = .pgdata(pgdata)
        self.recovery = recovery
        safetyBackup = false
    }
}

extension BunkerService {
    /// The sources of a snapshot that hold physical base backups.
    public func physicalSources(inSnapshot reference: String) async throws -> [String] {
        let (_, snapshot) = try await repository.findSnapshot(reference)
        return (snapshot.sources ?? []).filter(\.isPhysicalBaseBackup).map(\.name)
    }
}
