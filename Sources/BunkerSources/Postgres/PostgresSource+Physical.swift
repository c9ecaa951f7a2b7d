import BunkerCore
import Foundation

/// Physical base backups (`method = "physical"`): the whole data directory, as `pg_basebackup`
/// sends it, restored into a new data directory set up for point-in-time recovery.
///
/// Backup: `pg_basebackup -D - -Ft -X fetch --checkpoint=fast` writes one tar archive to its
/// standard output, holding the data directory and the WAL the backup needs to be consistent.
/// ``TarReader`` parses it as it streams and the archiver stores each file as it passes: no copy
/// on disk. Relation files (under `base/`, `global/` and `pg_tblspc/`) are cut at the cluster's
/// block size, so that the next base backup of a mostly unchanged cluster stores only the pages
/// that changed. The snapshot's record holds what a restore needs to choose and check a base
/// backup: its start and stop WAL locations, timeline, start and stop time, the cluster's system
/// identifier and major version. A pg_basebackup that fails (or an archive cut short) fails the
/// backup, which then writes no snapshot.
///
/// Restore: into an empty or absent directory (`--pgdata DIR`), or in place (see
/// PostgresSource+InPlace.swift, which ends in this same restore); the files are written and
/// checked (SHA-256) by the core's restorer, the directory is given mode 0700 and, when Bunker
/// runs as root, to the user the server runs as. Recovery is then set up in
/// `postgresql.auto.conf` (older recovery settings there commented out) and `recovery.signal`:
/// `restore_command` calls `bunker wal fetch` by full paths, the target comes from
/// ``RecoveryOptions/target``, and the server promotes at the target on the latest timeline.
/// With ``RecoveryOptions/start`` the server is started, recovery waited for, and the target
/// checked; otherwise the command that starts it is reported.
extension PostgresSource {
    /// The `method` of a physical source, and of its snapshot records.
    public static let physicalMethod = "physical"

    /// Whether a snapshot's record is of a physical base backup.
    static func isPhysical(_ record: SnapshotSource?) -> Bool {
        record?.details?["method"] == physicalMethod
    }

    // MARK: - Backup

    func preparePhysicalBackup() async throws -> PreparedBackup {
        let connection = try server
        let facts = try await clusterFacts(connection)
        let label = "bunker \(name) \(Timestamp.format(Date()))"
        let child = try ChildProcess(
            executable: connection.tool("pg_basebackup"),
            arguments: connection.arguments + ["--pgdata=-", "--format=tar", "--wal-method=fetch", "--checkpoint=fast", "--label=\(label)", "--verbose"],
            environment: connection.environment(session: PostgresConnection.sessionName("basebackup")), output: true,
            timeout: connection.helperTimeout, purpose: "pg_basebackup of source \(name)")
        let blockSize = facts.blockSize
        let source = name
        let reader = TarReader(
            input: ChildOutput(child: child), keep: ["backup_label"],
            pageSizes: { path in ["base", "global", "pg_tblspc"].contains(path[0]) ? blockSize : nil },
            finish: {
                let status = await child.exitStatus()
                try child.check(status) { said in
                    "pg_basebackup of source \(source) failed with exit status \(status); no snapshot was written. pg_basebackup said: \(said)"
                }
            })
        let record: @Sendable () throws -> SnapshotSource = { [name, kind, origin] in
            var details = facts.details
            details["method"] = Self.physicalMethod
            details["format"] = "pg_basebackup tar"
            details["label"] = label
            details.merge(Self.backupLabelFacts(reader.keptLabel)) { $1 }
            details.merge(Self.stopFacts(child.errorText)) { _, new in new }
            // Bunker's clock once pg_basebackup has ended: no earlier than the backup's real
            // end, so a base backup chosen as "stopped before T" can always reach T.
            details["stop_time"] = Timestamp.format(Date())
            guard details["start_lsn"] != nil, details["stop_lsn"] != nil else {
                throw BunkerError(.sourceIO, "pg_basebackup of source \(name) did not report its start and stop WAL locations (backup_label, and its --verbose output), so the base backup could not be recorded; no snapshot was written.")
            }
            return SnapshotSource(name: name, kind: kind.rawValue, origin: origin, details: details)
        }
        return PreparedBackup(item: .entries(reader, name: name), record: record, cleanup: { child.kill() })
    }

    /// What the server says of itself before the backup: the system identifier (which names the
    /// cluster across restores, for WAL archiving to check), the major version and the block size.
    private func clusterFacts(_ connection: PostgresConnection) async throws -> (details: [String: String], blockSize: Int) {
        let sql = "SELECT system_identifier, current_setting('server_version_num'), current_setting('block_size'), current_setting('server_version') FROM pg_control_system()"
        let output: String
        do {
            output = try await connection.query(sql, database: database, what: "Asking the server of source \(name) for its system identifier")
        } catch let error as BunkerError {
            throw BunkerError(error.code, "The base backup of source \(name) could not start, and no snapshot was written: \(error.message)", cause: error)
        }
        let fields = output.trimmingCharacters(in: .whitespacesAndNewlines).components(separatedBy: "\u{1f}")
        guard fields.count == 4, let versionNumber = Int(fields[1]), let blockSize = Int(fields[2]) else {
            throw BunkerError(.sourceIO, "The server of source \(name) answered the system identifier query with \(output.prefix(200)); no snapshot was written.")
        }
        let details = ["system_identifier": fields[0], "pg_major_version": String(versionNumber / 10000),
                       "server_version": fields[3], "block_size": String(blockSize)]
        return (details, blockSize)
    }

    /// The start of the backup as `backup_label` records it.
    static func backupLabelFacts(_ label: String?) -> [String: String] {
        var facts: [String: String] = [:]
        for line in (label ?? "").split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            switch parts[0] {
            case "START WAL LOCATION":
                let words = parts[1].split(separator: " ")
                facts["start_lsn"] = words.first.map(String.init)
                if let file = words.last, words.count >= 3 { facts["start_wal_file"] = file.trimmingCharacters(in: CharacterSet(charactersIn: "()")) }
            case "START TIMELINE": facts["timeline"] = parts[1]
            case "START TIME":
                facts["start_time_server"] = parts[1]
                if let date = RecoveryTarget.parseTime(parts[1]) { facts["start_time"] = Timestamp.format(date) }
            case "CHECKPOINT LOCATION": facts["checkpoint_lsn"] = parts[1]
            default: break
            }
        }
        return facts
    }

    /// The end of the backup as pg_basebackup's `--verbose` output reports it (and the start,
    /// should backup_label be missing).
    static func stopFacts(_ said: String) -> [String: String] {
        var facts: [String: String] = [:]
        for line in said.split(separator: "\n") {
            if let range = line.range(of: "write-ahead log end point: ") {
                facts["stop_lsn"] = line[range.upperBound...].split(separator: " ").first.map(String.init)
            }
        }
        return facts
    }

    // MARK: - Restore

    func restorePhysical(_ node: Node, record: SnapshotSource?, to destination: RestoreDestination, context: RestoreContext) async throws -> SourceRestoreResult {
        if destination == .live { return try await restorePhysicalInPlace(node, record: record, context: context) }
        guard case .path(let target) = destination else {
            throw BunkerError(.invalidArgument, "Source \(name) holds a physical base backup, which Bunker restores into its live data directory (in place) or a new one (--pgdata DIR), not into another database.")
        }
        let directory = (target as NSString).standardizingPath
        try Self.prepareEmptyDirectory(directory)
        guard let subtree = node.subtree else {
            throw BunkerError(.corruptObject, "The snapshot's entry for source \(name) is not a directory.")
        }
        let report = try await Restorer(loader: context.loader, progress: context.progress).restore(tree: subtree, to: directory)
        if let first = report.failures.first {
            throw BunkerError(.integrity, "\(report.failures.count) files of the base backup could not be restored into \(directory) (first: \(first.path): \(first.message)); the data directory is incomplete and must not be started. Run `bunker verify --read-data`.")
        }
        let recovery = context.recovery ?? RecoveryOptions()
        let madeConfiguration = try Self.writeMissingConfiguration(in: directory)
        try Self.writeRecoveryConfiguration(in: directory, options: recovery, source: name, record: record)
        chmod(directory, 0o700)
        let owner = try ServerUser.forDataDirectory(directory, named: recovery.osUser)
        if let owner { try owner.own(directory) }

        var result = SourceRestoreResult(source: name, kind: kind, destination: directory)
        result.files = report.filesRestored
        result.bytes = report.bytesRestored
        result.checks = ["SHA-256"]
        if !madeConfiguration.isEmpty {
            result.warnings.append("The base backup holds no \(madeConfiguration.joined(separator: ", ")): the cluster keeps its configuration outside its data directory (as Debian does, in /etc/postgresql/VERSION/NAME). Minimal ones were written into \(directory) (defaults; local connections by peer authentication); copy the cluster's own in before using it in production.")
        }
        if recovery.archiving {
            result.warnings.append("The server restored into \(directory) archives its WAL into the archive of source \(name), as the live server did: once it ends recovery it writes a new timeline there, which later restores of \(name) to its latest state follow. That is right for a server that replaces the live one; for a copy to look at, restore with --no-archive (archive_mode = off).")
        }
        result.details["archiving"] = recovery.archiving ? "on" : "off"
        result.details["recovery_target"] = recovery.target.description
        result.details["restore_command"] = recovery.restoreCommand
        if let stop = record?.details?["stop_time"] { result.details["base_backup_stop_time"] = stop }
        let server = try PhysicalServer(directory: directory, port: recovery.port ?? PhysicalServer.freePort(), owner: owner, major: record?.details?["pg_major_version"])
        if recovery.start {
            try await server.checkRestoreCommand(recovery.restoreCommand)
            try await server.start(private: false)
            let reached = try await server.waitForRecovery(target: recovery.target)
            try Self.checkSystemIdentifier(reached, record: record, directory: directory)
            result.checks.append("recovery ended")
            result.checks.append("system identifier")
            result.details.merge(reached) { $1 }
            result.details["port"] = String(server.port)
            result.details["socket_directory"] = directory
        } else {
            result.details["start_command"] = server.startCommand(private: false)
        }
        return result
    }

    /// A physical drill: restores into a scratch data directory, starts a private server on a
    /// free port (no TCP, no archiving), checks that recovery ended and the server answers, then
    /// stops and removes it.
    func drillPhysical(_ node: Node, record: SnapshotSource?, context: RestoreContext) async throws -> [DrillCheck] {
        var template = Array((NSTemporaryDirectory() + "/bunker-drill-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw BunkerError(.sourceIO, "Cannot make a scratch directory for the drill: \(String(cString: strerror(errno))).")
        }
        let parent = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let recovery = context.recovery ?? RecoveryOptions()
        let owner = try ServerUser.forDataDirectory(parent + "/data", named: recovery.osUser, parentOwnerCounts: false)
        // The server's user may pass through the scratch directory, never change it.
        chmod(parent, 0o755)
        var scratch = context
        var options = recovery
        options.start = false
        options.archiving = false
        options.port = try PhysicalServer.freePort()
        scratch.recovery = options
        var checks: [DrillCheck] = []
        do {
            let restored = try await restorePhysical(node, record: record, to: .path(parent + "/data"), context: scratch)
            checks.append(DrillCheck(name: "sha256", passed: true, detail: "\(restored.files) files, \(restored.bytes) bytes restored; SHA-256 of every file matches the backup."))
        } catch let error as BunkerError {
            return [DrillCheck(name: "sha256", passed: false, detail: error.message)]
        }
        let server = try PhysicalServer(directory: parent + "/data", port: options.port!, owner: owner, major: record?.details?["pg_major_version"])
        defer { server.stop() }
        do {
            try await server.checkRestoreCommand(options.restoreCommand)
            try await server.start(private: true)
            let reached = try await server.waitForRecovery(target: recovery.target)
            try Self.checkSystemIdentifier(reached, record: record, directory: parent + "/data")
            let answer = try await server.query("SELECT count(*) FROM pg_database")
            checks.append(DrillCheck(name: "recovery", passed: true, detail: "A scratch server on port \(server.port) ended recovery (\(recovery.target.description)); " +
                                     reached.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + "; it answers (\(answer) databases)."))
        } catch let error as BunkerError {
            checks.append(DrillCheck(name: "recovery", passed: false, detail: error.message))
        }
        return checks
    }

    /// The restored server must be the cluster the base backup was taken of.
    static func checkSystemIdentifier(_ found: [String: String], record: SnapshotSource?, directory: String) throws {
        guard let recorded = record?.details?["system_identifier"], let actual = found["system_identifier"], recorded != actual else { return }
        throw BunkerError(.integrity, "The server restored in \(directory) has system identifier \(actual), but the base backup was taken of cluster \(recorded): the restored data is not what was backed up. Do not use it.")
    }

    /// Refuses a data directory that holds anything; creates an absent one (mode 0700).
    static func prepareEmptyDirectory(_ directory: String) throws {
        var status = stat()
        if lstat(directory, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFDIR else {
                throw BunkerError(.invalidArgument, "\(directory) exists and is not a directory; name an empty or absent directory with --pgdata.")
            }
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? ["?"]
            guard entries.isEmpty else {
                throw BunkerError(.invalidArgument, "\(directory) is not empty (it holds \(entries.prefix(3).joined(separator: ", "))): a base backup is restored only into an empty or absent directory, so that no live data directory is overwritten.")
            }
            return
        }
        guard mkdir(directory, 0o700) == 0 else {
            throw BunkerError(.invalidArgument, "Cannot create the data directory \(directory): \(String(cString: strerror(errno))).")
        }
    }

    /// Writes the configuration files a server needs to start but a data directory may lack
    /// (Debian keeps them in /etc): an empty `postgresql.conf` (every default, plus
    /// `postgresql.auto.conf`), a `pg_hba.conf` allowing local connections by peer
    /// authentication only, an empty `pg_ident.conf`. Returns the names of those it wrote.
    static func writeMissingConfiguration(in directory: String) throws -> [String] {
        let defaults = [
            ("postgresql.conf", "# Written by bunker restore: the base backup held no postgresql.conf. Every setting has its default.\n"),
            ("pg_hba.conf", "# Written by bunker restore: the base backup held no pg_hba.conf.\nlocal all all peer\n"),
            ("pg_ident.conf", "# Written by bunker restore: the base backup held no pg_ident.conf.\n"),
        ]
        var written: [String] = []
        for (name, text) in defaults where !FileManager.default.fileExists(atPath: directory + "/" + name) {
            try writeFile(text, to: directory + "/" + name)
            written.append(name)
        }
        return written
    }

    /// The settings that say how a server recovers; an older one of them in
    /// `postgresql.auto.conf` is commented out, so that only Bunker's apply.
    static let recoverySettings: Set<String> = [
        "restore_command", "archive_cleanup_command", "recovery_end_command", "recovery_target", "recovery_target_name",
        "recovery_target_time", "recovery_target_xid", "recovery_target_lsn", "recovery_target_inclusive",
        "recovery_target_timeline", "recovery_target_action", "primary_conninfo", "primary_slot_name",
    ]

    /// Appends the recovery settings to `postgresql.auto.conf`, commenting out older ones, and
    /// writes `recovery.signal` (removing `standby.signal`: this is a recovery, not a standby).
    static func writeRecoveryConfiguration(in directory: String, options: RecoveryOptions, source: String, record: SnapshotSource?) throws {
        let path = directory + "/postgresql.auto.conf"
        let old = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n"
        var lines: [String] = []
        for line in old.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            let key = trimmed.prefix { $0 != "=" && $0 != " " && $0 != "\t" }.lowercased()
            if !trimmed.hasPrefix("#"), recoverySettings.contains(key) || (!options.archiving && key == "archive_mode") {
                lines.append("#\(line)    # replaced by bunker restore")
            } else {
                lines.append(line)
            }
        }
        while lines.last == "" { lines.removeLast() }
        lines.append("")
        lines.append("# Recovery set up by bunker restore of source \(source) at \(Timestamp.format(Date())).")
        lines.append("restore_command = \(RecoveryOptions.configQuoted(options.restoreCommand))")
        if let (setting, value) = options.target.setting {
            lines.append("\(setting) = \(RecoveryOptions.configQuoted(value))")
        }
        lines.append("recovery_target_timeline = 'latest'")
        lines.append("recovery_target_action = 'promote'")
        if !options.archiving {
            lines.append("# A copy to look at (--no-archive): it never archives into the archive of source \(source).")
            lines.append("archive_mode = 'off'")
        }
        lines.append("")
        try writeFile(lines.joined(separator: "\n"), to: path)
        try writeFile("", to: directory + "/recovery.signal")
        unlink(directory + "/standby.signal")
    }

    /// Writes a small file whole (beside it, flushed, renamed), mode 0600.
    private static func writeFile(_ text: String, to path: String) throws {
        let temp = SystemCalls.stagingPath(beside: path)
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw BunkerError(.sourceIO, "Cannot create \(temp): \(String(cString: strerror(errno))).")
        }
        do {
            defer { close(fd) }
            try writeAll(Data(text.utf8), to: fd, path: path)
            guard fsync(fd) == 0, rename(temp, path) == 0 else {
                throw BunkerError(.sourceIO, "Cannot write \(path): \(String(cString: strerror(errno))).")
            }
        } catch {
            unlink(temp)
            throw error
        }
    }
}

extension TarReader {
    /// The `backup_label` the archive held, once read.
    var keptLabel: String? { kept["backup_label"].map { String(decoding: $0, as: UTF8.self) } }
}
