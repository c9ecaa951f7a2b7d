import BunkerCore
import Foundation

/// A physical base backup restored in place: over the live cluster's own data directory.
///
/// The service layer has already checked the snapshot and taken a safety base backup of the
/// live cluster. Then:
/// 1. The live server is asked where its data directory, socket and port are, and how it was
///    started (`postmaster.opts`); a cluster with tablespaces, of another system identifier, or
///    that does not archive its WAL is refused before anything changes.
/// 2. Its current WAL segment is closed and archived (`pg_switch_wal()`), so that recovery to the
///    latest point reaches the last transactions committed before the restore.
/// 3. The server is stopped (fast shutdown) and its data directory renamed aside
///    (`DIR.bunker-before-restore-TIME`), in the same parent, so nothing is copied or deleted.
/// 4. The base backup is restored into a new `DIR` and set up for recovery, as with `--pgdata`.
/// 5. With `--start`, the server is started with its own options, recovery waited for and the
///    target checked; only then is the old directory removed. Without it, the old directory
///    stays and the command that starts the server is reported.
/// A failure after step 3 removes the new directory, renames the old one back and starts its
/// server again: the cluster is as it was before the restore.
extension PostgresSource {
    /// What the live server says of itself.
    struct LiveCluster {
        var dataDirectory: String
        var port: Int
        var socketDirectory: String?
        var systemIdentifier: String
        var tablespaces: Int
        var archiveMode: String
    }

    func restorePhysicalInPlace(_ node: Node, record: SnapshotSource?, context: RestoreContext) async throws -> SourceRestoreResult {
        let live = try await liveCluster()
        let recovery = context.recovery ?? RecoveryOptions()
        if let recorded = record?.details?["system_identifier"], recorded != live.systemIdentifier {
            throw BunkerError(.invalidArgument, "The live server of source \(name) is cluster \(live.systemIdentifier), but the base backup is of cluster \(recorded): Bunker restores in place only over the cluster the backup was taken of. Restore it into a new data directory with --pgdata DIR. Nothing was changed.")
        }
        guard live.tablespaces == 0 else {
            throw BunkerError(.invalidArgument, "The live cluster of source \(name) has \(live.tablespaces) tablespaces outside its data directory, which Bunker does not restore in place. Restore into a new data directory with --pgdata DIR. Nothing was changed.")
        }
        guard live.archiveMode != "off" else {
            throw BunkerError(.invalidArgument, "The live server of source \(name) does not archive its WAL (archive_mode = off), so an in-place restore would lose every change since the base backup. Set archive_command to `bunker wal push` (docs/postgres-pitr.md), or restore with --pgdata DIR. Nothing was changed.")
        }
        let directory = live.dataDirectory
        let opts = try Self.startOptions(String(contentsOfFile: directory + "/postmaster.opts", encoding: .utf8))
        if recovery.start && live.socketDirectory == nil {
            throw BunkerError(.invalidArgument, "The live server of source \(name) has no Unix socket (unix_socket_directories is empty), through which Bunker would watch its recovery: restore without --start, or with --pgdata DIR. Nothing was changed.")
        }
        let ownerName = recovery.osUser ?? Self.ownerName(of: directory)
        let owner = try ServerUser.forDataDirectory(directory, named: ownerName, parentOwnerCounts: false)
        let major = record?.details?["pg_major_version"]
        let old = try PhysicalServer(directory: directory, port: live.port, owner: owner, major: major, socketDirectory: live.socketDirectory, ownOptions: opts)

        let archived = try await archiveCurrentSegment()
        old.stop()
        guard !old.isRunning else {
            throw BunkerError(.sourceIO, "The live server of source \(name) did not stop (pg_ctl stop -m fast on \(directory)); nothing was restored. Stop it, then restore again.")
        }
        let aside = directory + ".bunker-before-restore-" + Self.compactTime(Date())
        guard rename(directory, aside) == 0 else {
            let reason = String(cString: strerror(errno))
            try? await old.start(private: false)
            throw BunkerError(.sourceIO, "Cannot move the data directory \(directory) aside (\(reason)): Bunker needs to write its parent directory. The server was started again; nothing was restored.")
        }
        let server = try PhysicalServer(directory: directory, port: live.port, owner: owner, major: major, socketDirectory: live.socketDirectory, ownOptions: opts)
        do {
            var scratch = context
            var options = recovery
            options.start = false
            options.osUser = owner?.name
            scratch.recovery = options
            var result = try await restorePhysical(node, record: record, to: .path(directory), context: scratch)
            // The cluster's own configuration applies (its start options name it when it lives
            // outside the data directory), not the minimal files written for a new directory.
            result.warnings.removeAll { $0.contains("Minimal ones were written") || $0.contains("--no-archive") }
            result.details.removeValue(forKey: "start_command")
            result.details["in_place"] = "true"
            result.details["archived_before_stop"] = archived
            if recovery.start {
                try await server.checkRestoreCommand(recovery.restoreCommand)
                try await server.start(private: false)
                let reached = try await server.waitForRecovery(target: recovery.target)
                try Self.checkSystemIdentifier(reached, record: record, directory: directory)
                result.checks += ["recovery ended", "system identifier"]
                result.details.merge(reached) { $1 }
                result.details["port"] = String(live.port)
                result.details["socket_directory"] = live.socketDirectory
                // Recovery succeeded: the old directory is no longer needed (the safety backup
                // holds it in the repository).
                try? FileManager.default.removeItem(atPath: aside)
                result.details["old_data_directory"] = "removed"
            } else {
                result.details["start_command"] = server.startCommand(private: false)
                result.details["old_data_directory"] = aside
                result.warnings.append("The server of source \(name) is stopped. Start it with the command shown; the old data directory is kept in \(aside) until you remove it, once recovery has ended and the data is checked.")
            }
            return result
        } catch {
            if server.isRunning { server.stop() }
            try? FileManager.default.removeItem(atPath: directory)
            let back = rename(aside, directory) == 0
            var restarted = false
            if back { restarted = (try? await old.start(private: false)) != nil }
            let base = error as? BunkerError ?? BunkerError(.sourceIO, "\(error)")
            let state = back
                ? "The old data directory is back in \(directory)\(restarted ? " and its server was started again" : "; its server did not start, start it by hand")."
                : "The old data directory could not be moved back: it is in \(aside); move it to \(directory) and start the server."
            throw BunkerError(base.code, "\(base.message) \(state)", cause: base)
        }
    }

    /// Asks the live server where its data directory, socket and port are.
    private func liveCluster() async throws -> LiveCluster {
        let sql = """
            SELECT current_setting('data_directory'), current_setting('port'), current_setting('unix_socket_directories'), \
            (SELECT system_identifier FROM pg_control_system()), \
            (SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global')), current_setting('archive_mode')
            """
        let output: String
        do {
            output = try await server.query(sql, database: maintenanceDatabase, what: "Asking the server of source \(name) where its data directory is")
        } catch let error as BunkerError {
            throw BunkerError(error.code, "An in-place restore of source \(name) asks its live server where its data directory is, and it did not answer: \(error.message) Start the server, or restore into a new data directory with --pgdata DIR. Nothing was changed.", cause: error)
        }
        let fields = output.trimmingCharacters(in: .whitespacesAndNewlines).components(separatedBy: "\u{1f}")
        guard fields.count == 6, let port = Int(fields[1]), let tablespaces = Int(fields[4]) else {
            throw BunkerError(.sourceIO, "The server of source \(name) answered \(output.prefix(200)) when asked for its data directory; nothing was changed.")
        }
        let socket = fields[2].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.first { $0.hasPrefix("/") }
        return LiveCluster(dataDirectory: fields[0], port: port, socketDirectory: socket, systemIdentifier: fields[3], tablespaces: tablespaces, archiveMode: fields[5])
    }

    /// Closes the server's current WAL segment and waits (60 s at most) until it is archived;
    /// returns its name.
    private func archiveCurrentSegment() async throws -> String {
        let what = "Archiving the current WAL segment of source \(name) before the restore"
        let segment = try await server.query("SELECT pg_walfile_name(pg_switch_wal())", database: maintenanceDatabase, what: what)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let done = try await server.query("SELECT coalesce(last_archived_wal, '') >= \(Self.literal(segment)) FROM pg_stat_archiver", database: maintenanceDatabase, what: what)
            if done.trimmingCharacters(in: .whitespacesAndNewlines) == "t" { return segment }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw BunkerError(.sourceIO, "The live server of source \(name) did not archive WAL segment \(segment) within 60 s (see pg_stat_archiver and its log): an in-place restore now would lose the changes in it. Nothing was changed; fix archiving and restore again.")
    }

    /// The options a server was started with, from its `postmaster.opts` (the program, then each
    /// argument in double quotes), without its data directory, quoted for `pg_ctl -o`.
    static func startOptions(_ text: String) throws -> String {
        var words: [String] = []
        var rest = Substring(text.trimmingCharacters(in: .whitespacesAndNewlines))
        while let open = rest.firstIndex(of: "\"") {
            let after = rest.index(after: open)
            guard let close = rest[after...].firstIndex(of: "\"") else { break }
            words.append(String(rest[after..<close]))
            rest = rest[rest.index(after: close)...]
        }
        var kept: [String] = []
        var i = 0
        while i < words.count {
            if words[i] == "-D" { i += 2; continue }
            if words[i].hasPrefix("-D") || words[i].hasPrefix("--pgdata") { i += 1; continue }
            kept.append(words[i])
            i += 1
        }
        return kept.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
    }

    static func ownerName(of path: String) -> String? {
        var status = stat()
        guard stat(path, &status) == 0, let entry = getpwuid(status.st_uid) else { return nil }
        return String(cString: entry.pointee.pw_name)
    }

    static func compactTime(_ date: Date) -> String {
        Timestamp.format(date).filter { $0.isNumber || $0 == "T" }
    }
}
