import BunkerCore
import Foundation
import Synchronization

/// How to reach a PostgreSQL server with its client programs.
public struct PostgresConnection: Sendable, Equatable {
    /// A host name, an address, or a socket directory (a path).
    public var host: String
    public var port: Int
    public var user: String
    /// The environment variable holding the password, if any.
    public var passwordEnvironment: String?
    /// A file whose first line is the password, if any.
    public var passwordFile: String?
    /// Where pg_dump and psql are; nil searches PATH, then /usr/lib/postgresql/*/bin.
    public var binDirectory: String?
    /// How long one call of pg_dump or psql may take before it is killed (`timeout`).
    public var timeout: Duration

    public init(host: String, port: Int = 5432, user: String, passwordEnvironment: String? = nil, passwordFile: String? = nil,
                binDirectory: String? = nil, timeout: Duration = HelperTimeout.defaultDuration) {
        self.host = host
        self.port = port
        self.user = user
        self.passwordEnvironment = passwordEnvironment
        self.passwordFile = passwordFile
        self.binDirectory = binDirectory
        self.timeout = timeout
    }

    /// The limit of every pg_dump and psql call, and what its message tells the operator.
    var helperTimeout: HelperTimeout {
        HelperTimeout(timeout, advice: "That limit is the source's `timeout` (timeout = \"\(HelperTimeout.format(timeout))\" in its [[source]] table of bunker.toml; default 6h): raise it if the work really takes longer, or find what it waits for (a lock held by another session: see pg_locks and pg_stat_activity).")
    }

    /// Arguments naming the server and user (the database is added per call).
    var arguments: [String] { ["--host", host, "--port", String(port), "--username", user, "--no-password"] }

    /// The environment for a client program: the password, a connect timeout, a name in pg_stat_activity.
    func environment(session: String = "bunker") throws -> [String: String] {
        var env = ["PGCONNECT_TIMEOUT": "10", "PGAPPNAME": session]
        if let file = passwordFile {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw BunkerError(.invalidArgument, "Cannot read the PostgreSQL password file \(file).")
            }
            env["PGPASSWORD"] = text.components(separatedBy: .newlines).first ?? ""
        } else if let variable = passwordEnvironment {
            guard let value = ProcessInfo.processInfo.environment[variable] else {
                throw BunkerError(.invalidArgument, "The PostgreSQL password variable \(variable) is not set.")
            }
            env["PGPASSWORD"] = value
        }
        return env
    }

    /// The path of a client program.
    func tool(_ name: String) throws -> String {
        var candidates: [String] = []
        if let binDirectory { candidates.append(binDirectory + "/" + name) }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            candidates.append("\(dir)/\(name)")
        }
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        for version in versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) }) {
            candidates.append("/usr/lib/postgresql/\(version)/bin/\(name)")
        }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw BunkerError(.sourceIO, "\(name) is not installed: install PostgreSQL's client programs (Debian: apt-get install postgresql-client) or set bin_dir.")
        }
        return found
    }

    /// Runs one SQL statement with psql and returns its unaligned output.
    func query(_ sql: String, database: String, what: String, timeout: HelperTimeout? = nil) async throws -> String {
        try await ChildProcess.run(tool("psql"), arguments + ["--dbname", database, "-X", "-A", "-t", "-F", "\u{1f}", "-v", "ON_ERROR_STOP=1", "-c", sql],
                                   environment: environment(), timeout: timeout ?? helperTimeout, what: what)
    }

    /// A name for one helper's session, its `application_name`, so that it can be found on the
    /// server once the helper is gone.
    static func sessionName(_ purpose: String) -> String {
        "bunker-\(purpose)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Ends the server's side of a helper stopped at its timeout. The server notices a vanished
    /// client only when it next talks to it; until then a dump waiting for a lock keeps its
    /// place in the lock queue (holding the locks it has, which queue others' DDL and, behind
    /// that, the application), and a load keeps its open transaction. Best effort: a server that
    /// does not answer now is told nothing.
    func endSession(_ session: String, database: String) async {
        _ = try? await query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = \(PostgresSource.literal(session))",
                             database: database, what: "Ending the session \(session)", timeout: HelperTimeout(.seconds(60)))
    }

    /// A `postgres://` address for records and messages, without any password.
    func address(database: String) -> String {
        let shownHost = host.hasPrefix("/") ? "[\(host)]" : host
        return "postgres://\(user)@\(shownHost):\(port)/\(database)"
    }
}

/// A PostgreSQL database, dumped logically with `pg_dump` and loaded back in one transaction.
///
/// The dump is plain SQL (`--clean --if-exists`), streamed from pg_dump's output straight into
/// the repository: no dump file on disk, and uncompressed text that deduplicates from day to day
/// and compresses well with zstd. pg_dump's exit status is checked once its output ends; a
/// failure (a wrong database, a server that goes away) fails the backup, which then writes no
/// snapshot. A restore feeds the dump to `psql` with `ON_ERROR_STOP` inside a transaction that
/// Bunker opens and commits only after the dump's SHA-256 has been checked: it fully succeeds or
/// changes nothing, even when Bunker itself dies mid-load.
public struct PostgresSource: Source {
    public let name: String
    /// The server; nil for a source made from a snapshot's record of a source not configured
    /// here, which writes its dump to a file but connects to nothing (see ``server``).
    public let connection: PostgresConnection?
    public let database: String
    /// The database psql connects to for CREATE and DROP DATABASE.
    public var maintenanceDatabase = "postgres"
    /// `logical` (pg_dump) or `physical` (pg_basebackup; see PostgresSource+Physical.swift).
    public var method = "logical"
    /// How `bunker wal push` archives this cluster's WAL (`[source.wal]`).
    public var walArchiving = WalArchiving()
    public var kind: SourceKind { .postgres }
    public let origin: String

    static let dumpFile = "database.sql"

    public init(name: String, connection: PostgresConnection, database: String) {
        self.name = name
        self.connection = connection
        self.database = database
        self.origin = connection.address(database: database)
    }

    /// A source known only from a snapshot's record: its database is the last part of the
    /// recorded address. No server is guessed (a restore into a guessed server could overwrite
    /// someone else's database), so only restores to a file work.
    init(restoring record: SnapshotSource) {
        self.name = record.name
        self.connection = nil
        self.database = record.origin.split(separator: "/").last.map(String.init) ?? record.name
        self.origin = record.origin
    }

    /// The server to connect to; an error saying what to configure for a source made from a
    /// snapshot's record.
    var server: PostgresConnection {
        get throws {
            guard let connection else {
                throw BunkerError(.invalidArgument, "Source \(name) is not configured here, so Bunker does not know which PostgreSQL server to connect to: add its [[source]] table (kind = \"postgres\" with host, port, user and database) to bunker.toml, or write its dump to a file with --sql FILE or --target DIR.")
            }
            return connection
        }
    }

    /// Whether the database exists on the server; a server that cannot be asked is an error,
    /// never "no data": a restore would otherwise skip the safety backup of what it overwrites.
    public func liveDataExists() async throws -> Bool {
        do {
            let found = try await server.query("SELECT 1 FROM pg_database WHERE datname = \(Self.literal(database))", database: maintenanceDatabase,
                                                   what: "Looking up database \(database)")
            return !found.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
        } catch let error as BunkerError {
            throw BunkerError(error.code, "Cannot tell whether source \(name) has live data to protect (\(origin)): \(error.message)", cause: error.cause)
        }
    }

    /// Restoring into the source's own database (`--to-database` naming it) overwrites the live
    /// data just as a restore in place does.
    public func overwritesLiveData(_ destination: RestoreDestination) -> Bool {
        destination == .live || destination == .database(database)
    }

    public func prepareBackup(scratch: String) async throws -> PreparedBackup {
        if method == Self.physicalMethod { return try await preparePhysicalBackup() }
        let connection = try server
        let session = PostgresConnection.sessionName("dump")
        let child = try ChildProcess(
            executable: connection.tool("pg_dump"),
            arguments: connection.arguments + ["--format=plain", "--clean", "--if-exists", "--dbname", database],
            environment: connection.environment(session: session), output: true, timeout: connection.helperTimeout,
            purpose: "pg_dump of database \(database) (source \(name))")
        let stream = DumpStream(child: child, source: name, database: database) { [connection, database] in
            await connection.endSession(session, database: database)
        }
        let record: @Sendable () throws -> SnapshotSource = { [name, kind, origin] in
            let (counts, version) = stream.counter.withLock { ($0.counts, $0.serverVersion) }
            var details = ["format": "plain", "file": Self.dumpFile]
            if let version { details["server_version"] = version }
            return SnapshotSource(name: name, kind: kind.rawValue, origin: origin, rowCounts: counts, details: details)
        }
        return PreparedBackup(item: .directory(name: name, [.stream(stream, name: Self.dumpFile)]), record: record, cleanup: { child.kill() })
    }

    public func restore(_ node: Node, record: SnapshotSource?, to destination: RestoreDestination, context: RestoreContext) async throws -> SourceRestoreResult {
        if Self.isPhysical(record) { return try await restorePhysical(node, record: record, to: destination, context: context) }
        let dump = try await databaseFile(in: node, loader: context.loader, preferred: record?.details?["file"])
        switch destination {
        case .path(let target):
            try await writeSQL(dump, to: target, context: context)
            var result = SourceRestoreResult(source: name, kind: kind, destination: target)
            result.files = 1
            result.bytes = dump.size ?? 0
            result.checks = ["SHA-256"]
            return result
        case .live:
            try await load(dump, into: database, createIfMissing: true, context: context)
            var result = SourceRestoreResult(source: name, kind: kind, destination: origin)
            result.bytes = dump.size ?? 0
            result.checks = ["SHA-256", "single-transaction load (psql ON_ERROR_STOP)"]
            return result
        case .database(let other):
            try await load(dump, into: other, createIfMissing: true, context: context)
            var result = SourceRestoreResult(source: name, kind: kind, destination: try server.address(database: other))
            result.bytes = dump.size ?? 0
            result.checks = ["SHA-256", "single-transaction load (psql ON_ERROR_STOP)"]
            return result
        }
    }

    public func drill(_ node: Node, record: SnapshotSource?, context: RestoreContext) async throws -> [DrillCheck] {
        if Self.isPhysical(record) { return try await drillPhysical(node, record: record, context: context) }
        do {
            _ = try server
        } catch let error as BunkerError {
            return [DrillCheck(name: "load", passed: false, detail: error.message)]
        }
        let dump = try await databaseFile(in: node, loader: context.loader, preferred: record?.details?["file"])
        let scratch = "bunker_drill_\(UUID().uuidString.prefix(8).lowercased())"
        var checks: [DrillCheck] = []
        do {
            try await load(dump, into: scratch, createIfMissing: true, context: context)
            checks.append(DrillCheck(name: "load", passed: true, detail: "Loaded \(dump.size ?? 0) bytes of SQL into scratch database \(scratch) in one transaction; SHA-256 matches."))
            checks.append(try await countCheck(recorded: record?.rowCounts, in: scratch))
        } catch let error as BunkerError {
            checks.append(DrillCheck(name: "load", passed: false, detail: error.message))
        } catch {
            try? await dropDatabase(scratch)
            throw error
        }
        try? await dropDatabase(scratch)
        return checks
    }

    /// `DIR/NAME/database.sql`: the dump as plain SQL.
    public func directoryDestination(in directory: String, record: SnapshotSource) throws -> RestoreDestination {
        if Self.isPhysical(record) { return .path(directory + "/" + name) }
        return try databaseDestination(in: directory, record: record, fallback: Self.dumpFile)
    }

    /// The dump, as the archive's SQL.
    public func export(_ node: Node, record: SnapshotSource, to archive: some SourceExportArchive) async throws {
        if Self.isPhysical(record) { return try await archive.addTree(node) }
        guard let dump = try await storedDatabaseFile(in: node, loader: archive.loader, preferred: record.details?["file"]) else { return }
        try await archive.addSQL(dump)
    }

    // MARK: - Helpers

    /// Loads a dump into `target` in one transaction; a database this call created is dropped
    /// again when the load fails.
    private func load(_ dump: Node, into target: String, createIfMissing: Bool, context: RestoreContext) async throws {
        let connection = try server
        var created = false
        if createIfMissing {
            let exists = try await connection.query("SELECT 1 FROM pg_database WHERE datname = \(Self.literal(target))", database: maintenanceDatabase, what: "Looking up database \(target)")
            if exists.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                _ = try await connection.query("CREATE DATABASE \(Self.identifier(target))", database: maintenanceDatabase, what: "Creating database \(target)")
                created = true
            }
        }
        // The transaction is opened and committed by Bunker, not by psql's --single-transaction:
        // psql commits that one when its input ends, and its input also ends when Bunker dies
        // (a kill, a crash), which would commit a dump cut short. Here a cut input ends the
        // session with the transaction open, and the server rolls it back.
        let session = PostgresConnection.sessionName("load")
        let child = try ChildProcess(
            executable: connection.tool("psql"),
            arguments: connection.arguments + ["--dbname", target, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
            environment: connection.environment(session: session), input: true, timeout: connection.helperTimeout,
            purpose: "Loading the dump into database \(target) (source \(name))")
        do {
            try await child.writeInput(Data("BEGIN;\n".utf8))
            try await ContentReader(loader: context.loader).read(dump) { data in
                try await child.writeInput(data)
                context.progress?.update { $0.bytesDone += UInt64(data.count) }
                FaultPoints.hit("postgres-restore-write")
            }
            // Only now is the whole dump read and its SHA-256 checked.
            try await child.writeInput(Data("\nCOMMIT;\n".utf8))
        } catch {
            // psql has not seen the end of its input, so it has not committed: killing it rolls
            // back. It may also have stopped by itself on an error (ON_ERROR_STOP), which is why
            // the write failed.
            child.kill()
            if child.didTimeOut { await connection.endSession(session, database: maintenanceDatabase) }
            if created { try? await dropDatabase(target) }
            if child.didTimeOut {
                throw BunkerError(.sourceIO, "Loading the dump into database \(target) was stopped before psql committed; the transaction was rolled back, so \(target) is as it was. \(child.timeoutError().message)")
            }
            let reason = child.errorText.isEmpty ? (error as? BunkerError)?.message ?? "\(error)" : "psql said: \(child.errorText)"
            throw BunkerError((error as? BunkerError)?.code ?? .sourceIO, "Loading the dump into database \(target) failed before psql committed; the transaction was rolled back, so \(target) is as it was. \(reason)", cause: error)
        }
        let status = await child.exitStatus()
        guard status == 0 else {
            if child.didTimeOut {
                await connection.endSession(session, database: maintenanceDatabase)
                // All of the dump was handed to psql, so it may have sent its COMMIT just before.
                throw BunkerError(.sourceIO, "Loading the dump into database \(target) was stopped before psql finished; its transaction was rolled back, so \(target) is as it was, unless psql had sent its final COMMIT in the moment before it was stopped (then the load is complete). \(child.timeoutError().message)")
            }
            if created { try? await dropDatabase(target) }
            throw BunkerError(.sourceIO, "Loading the dump into database \(target) failed (psql exited with \(status)); the transaction was rolled back, so \(target) is as it was. psql said: \(child.errorText)")
        }
    }

    /// Writes the dump as a plain SQL file (the database.sql of a backup's ZIP); `-` writes to standard output.
    private func writeSQL(_ dump: Node, to target: String, context: RestoreContext) async throws {
        if target == "-" {
            try await ContentReader(loader: context.loader).read(dump) { data in
                try writeAll(data, to: STDOUT_FILENO, path: "standard output")
            }
            return
        }
        if FileManager.default.fileExists(atPath: target) {
            throw BunkerError(.invalidArgument, "\(target) already exists; remove it or choose another path.")
        }
        SystemCalls.removeStaleStaging(beside: target)
        let temp = SystemCalls.stagingPath(beside: target)
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw BunkerError(.sourceIO, "Cannot create \(temp): \(String(cString: strerror(errno))).")
        }
        do {
            defer { close(fd) }
            try await ContentReader(loader: context.loader).read(dump) { data in
                try writeAll(data, to: fd, path: target)
            }
            guard fsync(fd) == 0 else {
                throw BunkerError(.sourceIO, "Cannot flush \(target): \(String(cString: strerror(errno))).")
            }
            guard rename(temp, target) == 0 else {
                throw BunkerError(.sourceIO, "Cannot move the dump to \(target): \(String(cString: strerror(errno))).")
            }
        } catch {
            unlink(temp)
            throw error
        }
    }

    private func dropDatabase(_ name: String) async throws {
        _ = try await server.query("DROP DATABASE IF EXISTS \(Self.identifier(name)) WITH (FORCE)", database: maintenanceDatabase, what: "Dropping database \(name)")
    }

    /// Compares `count(*)` of every table the dump held with the counts recorded at backup time.
    ///
    /// No SQL is built from the names: the server lists its own tables and counts each through
    /// `format('%I.%I')`, which quotes a name the way pg_dump does (the recorded counts are keyed
    /// by pg_dump's spelling), so a name holding quotes, a semicolon or a newline is counted like
    /// any other and can run nothing. The answer comes back as one JSON object, which no name
    /// can break apart.
    private func countCheck(recorded: [String: Int]?, in target: String) async throws -> DrillCheck {
        guard let recorded, !recorded.isEmpty else {
            return DrillCheck(name: "row_counts", passed: true, detail: "The dump holds no table data to count.")
        }
        let output: String
        do {
            output = try await server.query(Self.countQuery, database: target, what: "Counting rows in \(target)")
        } catch let error as BunkerError {
            return DrillCheck(name: "row_counts", passed: false, detail: error.message)
        }
        guard let actual = try? JSONDecoder().decode([String: Int].self, from: Data(output.trimmingCharacters(in: .whitespacesAndNewlines).utf8)) else {
            return DrillCheck(name: "row_counts", passed: false, detail: "psql answered the row count query with something other than a JSON object: \(output.prefix(200))")
        }
        var differences: [String] = []
        for (table, count) in recorded.sorted(by: { $0.key < $1.key }) where actual[table] != count {
            differences.append("\(table): \(count) at backup, \(actual[table].map(String.init) ?? "missing") restored")
        }
        if differences.isEmpty {
            return DrillCheck(name: "row_counts", passed: true, detail: "\(recorded.count) tables, \(recorded.values.reduce(0, +)) rows, as recorded at backup time.")
        }
        return DrillCheck(name: "row_counts", passed: false, detail: differences.joined(separator: "; "))
    }

    /// `count(*)` of every ordinary table outside the system schemas, as one JSON object keyed
    /// `schema.table` in pg_dump's quoting (`query_to_xml` runs the per-table count server-side).
    static let countQuery = """
        SELECT coalesce(json_object_agg(format('%I.%I', n.nspname, c.relname),
            (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint), '{}')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        """

    static func identifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    static func literal(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }
}

extension SourceKind {
    /// A PostgreSQL database: ``PostgresSource``.
    public static let postgres = SourceKind(rawValue: "postgres")
}

extension PostgresSource: SourceKindDefinition {
    public static var kind: SourceKind { .postgres }
    public static var holdsDatabase: Bool { true }

    /// `method` (`logical`, the default, or `physical`), `database` (required for logical;
    /// physical connects to it only to ask for the system identifier, default postgres), `host` (a socket directory or a host name; default
    /// /var/run/postgresql), `port` (5432), `user` (default `$USER`, else postgres),
    /// `password_env` or `password_file` (never the password itself), `bin_dir` and `timeout`
    /// (the limit of each pg_dump or psql call; default 6h).
    public static func makeSource(name: String, settings: inout some SourceSettingsReader) throws -> any Source {
        if settings.has("password") {
            throw settings.error(key: "password", "a password is never written in the configuration; use password_env = \"PGPASSWORD\" or password_file")
        }
        let method = try settings.string("method") ?? "logical"
        guard method == "logical" || method == physicalMethod else {
            throw settings.error(key: "method", "method must be logical (pg_dump) or physical (pg_basebackup), not \"\(method)\"")
        }
        let database = method == physicalMethod ? try settings.string("database") ?? "postgres" : try settings.required { try $0.string("database") }
        let connection = PostgresConnection(
            host: try settings.string("host") ?? "/var/run/postgresql",
            port: try settings.int("port", range: 1...65535) ?? 5432,
            user: try settings.string("user") ?? (settings.environment["USER"] ?? "postgres"),
            passwordEnvironment: try settings.string("password_env"),
            passwordFile: try settings.path("password_file"),
            binDirectory: try settings.string("bin_dir"),
            timeout: try settings.duration("timeout") ?? HelperTimeout.defaultDuration)
        var source = PostgresSource(name: name, connection: connection, database: database)
        source.method = method
        source.walArchiving = try WalArchiving(reading: &settings, source: name)
        return source
    }

    /// A source that writes the record's dump to a file, and refuses anything that needs a server.
    public static func makeSource(restoring record: SnapshotSource) throws -> any Source {
        PostgresSource(restoring: record)
    }
}

/// pg_dump's output as a ``ByteStream``, counting rows as it passes.
///
/// The archiver waits for the output in ``prepareRead(_:)``, suspended, so no thread of the
/// cooperative pool is held while pg_dump waits for a lock or a slow server; ``read(into:)``
/// then takes what is buffered.
final class DumpStream: ByteStream {
    private let child: ChildProcess
    let counter = Mutex(DumpRowCounter())
    private let source: String
    private let database: String
    /// Ends pg_dump's server session after a timeout; called once.
    private let endSession: Mutex<(@Sendable () async -> Void)?>

    init(child: ChildProcess, source: String, database: String, endSession: @escaping @Sendable () async -> Void) {
        self.child = child
        self.source = source
        self.database = database
        self.endSession = Mutex(endSession)
    }

    func prepareRead(_ count: Int) async throws {
        await child.waitForOutput(count)
        guard child.outputEnded else { return }
        _ = await child.exitStatus()
        if child.didTimeOut, let end = endSession.withLock({ end in defer { end = nil }; return end }) {
            await end()
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try child.readOutput(into: buffer)
        counter.withLock { $0.consume(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) }
        return n
    }

    func finish() throws {
        let status = child.exitStatusBlocking()
        if child.didTimeOut {
            throw BunkerError(.sourceIO, "\(child.timeoutError().message) No snapshot was written.")
        }
        guard status == 0 else {
            let said = child.errorText
            throw BunkerError(.sourceIO, "pg_dump of database \(database) (source \(source)) failed with exit status \(status); no snapshot was written. pg_dump said: \(said.isEmpty ? "nothing" : said)")
        }
    }
}
