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
        guard physical else { return try await repository.findSnapshot(request.snapshot) }
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
        if request.snapshot != "latest" {
            let found = try await repository.findSnapshot(request.snapshot)
            if let moment, let record = found.snapshot.sources?.first(where: { $0.name == source }), record.isPhysicalBaseBackup,
               let stop = record.baseBackupStopTime, stop > moment {
                throw BunkerError(.invalidArgument, "The base backup of source \(source) in snapshot \(found.id.short) ended at \(RecoveryTarget.postgresTime(stop)), after the target \(shown!): recovery can only move forward from the end of a base backup. Give an older snapshot, or `latest` to let Bunker choose.")
            }
            return found
        }
        let candidates = try await repository.snapshots().filter { entry in
            guard let record = entry.snapshot.sources?.first(where: { $0.name == source }), record.isPhysicalBaseBackup else { return false }
            if let location, (record.baseBackupStopLSN ?? .max) > location { return false }
            guard let moment else { return true }
            return record.baseBackupStopTime.map { $0 <= moment } ?? false
        }
        guard let newest = candidates.max(by: { ($0.snapshot.sources?.first { $0.name == source }?.baseBackupStopTime ?? .distantPast) < ($1.snapshot.sources?.first { $0.name == source }?.baseBackupStopTime ?? .distantPast) }) else {
            if let location {
                throw BunkerError(.snapshotNotFound, "There is no physical base backup of source \(source) that ended before WAL location \(String(location >> 32, radix: 16, uppercase: true))/\(String(location & 0xFFFF_FFFF, radix: 16, uppercase: true)), so Bunker cannot restore to it. Choose a later target.")
            }
            if let shown {
                throw BunkerError(.snapshotNotFound, "There is no physical base backup of source \(source) that ended before \(shown), so Bunker cannot restore to that moment: the point-in-time window starts at the end of the oldest base backup (`bunker snapshots` lists them). Choose a later target.")
            }
            throw BunkerError(.snapshotNotFound, "There is no physical base backup of source \(source) (method = \"physical\"); run `bunker backup` first.")
        }
        return newest
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
        let parts = text.split(separator: "/")
        guard parts.count == 2, let high = UInt64(parts[0], radix: 16), let low = UInt64(parts[1], radix: 16), high <= 0xFFFF_FFFF, low <= 0xFFFF_FFFF else { return nil }
        return high << 32 | low
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
