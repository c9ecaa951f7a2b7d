import ArgumentParser
import BunkerCore
import BunkerService
import BunkerSources
import Foundation

extension BunkerCommand {
    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "restore",
            abstract: "Restore a snapshot: over the live sources (safely), or somewhere else.",
            discussion: """
                Without a destination, the configured sources in the snapshot are restored in place: the snapshot's data \
                is checked first, a safety backup (tagged "safety") of the current state is taken, then each source is \
                staged beside its live data, checked (SHA-256, PRAGMA integrity_check, a single-transaction load) and \
                swapped in. A failure leaves the live data as it was and names the safety snapshot.
                --target DIR restores everything under DIR; --to, --to-database and --sql restore one database elsewhere. \
                A snapshot of plain paths needs --target.
                A PostgreSQL source with method = "physical" is restored in place (after a safety base backup, the \
                live server's current WAL segment is archived, the server stopped and its data directory moved aside \
                until recovery succeeded) or with --pgdata DIR into a new (empty or absent) \
                data directory, set up for point-in-time recovery: restore_command calls `bunker wal fetch`, and \
                --to-time, --to-xid, --to-lsn or --to-name (or --latest, the default: all archived WAL) say where \
                recovery stops. With ID `latest` and --to-time, the newest base backup that ended before the target \
                is used. --start starts the server, waits for recovery to end and checks the target; otherwise the \
                command that starts it is printed.
                """)

        @OptionGroup var repository: RepositoryOptions

        @Argument(help: ArgumentHelp("Snapshot id (or a unique prefix), or latest: the newest that is not a safety copy and holds the --source named.", valueName: "id"))
        var snapshot: String

        @Option(name: [.customShort("t"), .long], help: ArgumentHelp("Restore into this directory instead of over the live data (created if missing).", valueName: "dir"))
        var target: String?

        @Option(name: [.customShort("i"), .customLong("include")], help: ArgumentHelp("With --target: restore only this path of the snapshot, e.g. studies/2024 (repeatable).", valueName: "path"))
        var includes: [String] = []

        @Option(help: ArgumentHelp("Which sources: full (all), database or files.", valueName: "type"))
        var type: BackupType = .full

        @Option(name: .customLong("source"), help: ArgumentHelp("Restore only this source (repeatable).", valueName: "name"))
        var sources: [String] = []

        @Option(help: ArgumentHelp("Restore the one SQLite source to this new file instead of the live database.", valueName: "path"))
        var to: String?

        @Option(help: ArgumentHelp("Restore the one PostgreSQL source into this database (created if missing) instead of the live one.", valueName: "name"))
        var toDatabase: String?

        @Option(help: ArgumentHelp("Write the one PostgreSQL source's dump as plain SQL to this file (- for standard output).", valueName: "file"))
        var sql: String?

        @Option(help: ArgumentHelp("Restore the one PostgreSQL source's physical base backup into this new data directory (empty or absent), set up for point-in-time recovery.", valueName: "dir"))
        var pgdata: String?

        @Option(help: ArgumentHelp("With --pgdata, or in place: recover up to this moment, e.g. \"2026-12-03 14:00:00+00\" (an offset is required).", valueName: "time"))
        var toTime: String?

        @Option(help: ArgumentHelp("With --pgdata, or in place: recover up to and including this transaction id.", valueName: "xid"))
        var toXid: String?

        @Option(help: ArgumentHelp("With --pgdata, or in place: recover up to this WAL location, e.g. 0/3000060.", valueName: "lsn"))
        var toLsn: String?

        @Option(help: ArgumentHelp("With --pgdata, or in place: recover up to this restore point (pg_create_restore_point).", valueName: "name"))
        var toName: String?

        @Flag(help: "With --pgdata, or in place: replay all archived WAL (the default).")
        var latest = false

        @Flag(help: "With --pgdata, or in place: start the server, wait for recovery to end and check the target.")
        var start = false

        @Flag(help: "With --pgdata: the restored server does not archive its WAL (archive_mode = off), for a copy to look at. Without it, the server archives into the source's archive as the live one did, as a server that replaces a lost one must.")
        var noArchive = false

        @Option(help: ArgumentHelp("With --start: the port the server listens on (default: a free one).", valueName: "port"))
        var port: Int?

        @Option(help: ArgumentHelp("When run as root: the system user the data directory is given to and the server runs as (default: the owner of its parent directory, else postgres).", valueName: "user"))
        var pgUser: String?

        @Flag(help: "Do not take a safety backup of the live data first (not recommended).")
        var noSafetyBackup = false

        @Option(help: ArgumentHelp("Why this restore is done, recorded in the audit trail.", valueName: "text"))
        var reason: String?

        func validate() throws {
            let destinations = [target, to, toDatabase, sql, pgdata].compactMap { $0 }
            if destinations.count > 1 {
                throw ValidationError("--target, --to, --to-database, --sql and --pgdata exclude each other.")
            }
            let targets = [toTime, toXid, toLsn, toName].compactMap { $0 }.count + (latest ? 1 : 0)
            if targets > 1 {
                throw ValidationError("--to-time, --to-xid, --to-lsn, --to-name and --latest exclude each other.")
            }
            if pgdata == nil && port != nil {
                throw ValidationError("--port is for a server restored with --pgdata DIR; one restored in place keeps its own.")
            }
            if pgdata == nil && noArchive {
                throw ValidationError("--no-archive is for a copy restored with --pgdata DIR; a server restored in place replaces the live one and keeps archiving.")
            }
            if (targets > 0 || start || pgUser != nil) && [target, to, toDatabase, sql].contains(where: { $0 != nil }) {
                throw ValidationError("--to-time, --to-xid, --to-lsn, --to-name, --latest, --start and --pg-user restore a physical base backup: with --pgdata DIR, or in place without a destination.")
            }
            if let toTime, RecoveryTarget.parseTime(toTime) == nil {
                throw ValidationError("--to-time \(toTime) is not a moment Bunker can read: write it as \"2026-12-03 14:00:00+00\" or 2026-12-03T14:00:00Z (with its offset from UTC).")
            }
            if !includes.isEmpty && target == nil {
                throw ValidationError("--include needs --target.")
            }
        }

        func run() async throws {
            try await repository.output.run {
                let service = try await repository.service()
                let recoveryAsked = [toTime, toXid, toLsn, toName].contains { $0 != nil } || latest || start || pgUser != nil
                if pgdata != nil || recoveryAsked {
                    try await restorePhysical(service, into: pgdata)
                    return
                }
                // `latest` is the newest backup that is not a safety copy (and holds --source).
                let (id, s) = snapshot == "latest"
                    ? try await service.latestRestorable(holding: sources)
                    : try await service.repository.findSnapshot(snapshot)
                // Plain-path snapshots, and --include, restore the tree as it is stored.
                if s.sources == nil || !includes.isEmpty {
                    guard let target else {
                        throw BunkerError(.invalidArgument, "Snapshot \(id.short) is a backup of plain paths: give --target DIR.")
                    }
                    try await restoreTree(service, id: id, target: target)
                    return
                }
                var request = SourceRestoreRequest(snapshot: id.hex)
                request.reason = reason
                request.type = type
                request.sourceNames = sources
                request.safetyBackup = !noSafetyBackup
                if let target { request.target = .directory(target) }
                if let to { request.target = .sqliteFile(to) }
                if let toDatabase { request.target = .database(toDatabase) }
                if let sql { request.target = .sql(sql) }
                if noSafetyBackup && request.target == .inPlace && !repository.output.json {
                    Output.warning("--no-safety-backup: the live data this restore overwrites will not be recoverable from Bunker.")
                }
                let chosen = request
                let outcome = try await repository.job(service, "restore", access: .writes) { try await service.restore(chosen, progress: $0) }
                if repository.output.json {
                    Output.printJSON(outcome)
                } else if !repository.output.quiet {
                    if let safety = outcome.safetySnapshotID {
                        print("Safety backup of the live data: snapshot \(safety.prefix(8)) (tagged safety)")
                    }
                    print("Checked \(outcome.packsChecked) packs of snapshot \(id.short) before restoring.")
                    for source in outcome.sources {
                        print("Restored \(source.source) (\(source.kind.rawValue)) to \(source.destination): \(Output.bytes(source.bytes)); checked: \(source.checks.joined(separator: ", ")).")
                    }
                }
            }
        }

        /// A physical base backup into a new data directory (or, without one, in place of the live
        /// cluster's, after a safety base backup), set up for point-in-time recovery.
        private func restorePhysical(_ service: BunkerService, into pgdata: String?) async throws {
            var recovery = RecoveryOptions()
            if let toTime, let moment = RecoveryTarget.parseTime(toTime) { recovery.target = .time(moment) }
            if let toXid { recovery.target = .xid(toXid) }
            if let toLsn { recovery.target = .lsn(toLsn) }
            if let toName { recovery.target = .name(toName) }
            recovery.start = start
            recovery.port = port
            recovery.osUser = pgUser
            recovery.archiving = !noArchive
            var request = SourceRestoreRequest(snapshot: snapshot)
            request.reason = reason
            request.sourceNames = sources
            request.recovery = recovery
            if let pgdata {
                request.target = .pgdata(pgdata)
            } else {
                request.target = .inPlace
                request.safetyBackup = !noSafetyBackup
                request.type = type
            }
            let chosen = request
            // Into a new data directory it writes only that, never the repository nor the live
            // cluster; in place it first writes a safety backup.
            let outcome = try await repository.job(service, "restore", access: pgdata == nil ? .writes : .reads) { try await service.restore(chosen, progress: $0) }
            if repository.output.json {
                Output.printJSON(outcome)
                return
            }
            guard !repository.output.quiet else { return }
            for warning in outcome.warnings { Output.warning(warning) }
            if let safety = outcome.safetySnapshotID {
                print("Safety backup of the live data: snapshot \(safety.prefix(8)) (tagged safety)")
            }
            for source in outcome.sources {
                print("Restored the base backup of \(source.source) from snapshot \(outcome.snapshotID.prefix(8)) into \(source.destination): \(source.files) files, \(Output.bytes(source.bytes)); checked: \(source.checks.joined(separator: ", ")).")
                print("Recovery target: \(source.details["recovery_target"] ?? "latest")")
                print("restore_command = \(source.details["restore_command"] ?? "")")
                if let port = source.details["port"] {
                    let replayed = source.details["last_replayed_commit"].map { "the last replayed transaction committed at \($0)" } ?? "no transaction was replayed past the base backup"
                    print("Recovery ended (timeline \(source.details["timeline"] ?? "?")); \(replayed).")
                    print("The server is running on port \(port), socket directory \(source.details["socket_directory"] ?? source.destination).")
                }
                if let command = source.details["start_command"] {
                    print("Start it with:\n  \(command)")
                }
            }
        }

        private func restoreTree(_ service: BunkerService, id: ID, target: String) async throws {
            // It writes only the target, never the repository nor a source's live data.
            let report = try await repository.job(service, "restore", access: .reads) {
                try await service.restoreTree(snapshot: id.hex, includes: includes, to: target, reason: reason, progress: $0)
            }
            if repository.output.json {
                Output.printJSON(RestoreOutput(snapshotID: id.hex, target: target, report: report))
            } else {
                for failure in report.failures { Output.error("\(failure.path): \(failure.message)") }
                if !repository.output.quiet {
                    print("Restored \(report.filesRestored) files (\(Output.bytes(report.bytesRestored))), \(report.directoriesRestored) directories, \(report.symlinksRestored) symlinks from snapshot \(id.short) to \(target); every file's SHA-256 checked.")
                    let damaged = report.failures.filter { !$0.inTarget }.count
                    if damaged > 0 {
                        print("\(report.failures.count) entries could NOT be restored (listed above); run `bunker verify --read-data` to see the damage.")
                    } else if !report.failures.isEmpty {
                        print("\(report.failures.count) entries could NOT be written into \(target) (listed above): the target was in the way, not the snapshot. Clear the way, or restore into an empty directory, and restore again.")
                    }
                }
            }
            if !report.failures.isEmpty { throw ExitCode(7) }
        }
    }
}

struct RestoreOutput: Encodable {
    var snapshotID: String
    var target: String
    var report: RestoreReport

    enum CodingKeys: String, CodingKey {
        case snapshotID = "snapshot_id"
        case target, report
    }
}
