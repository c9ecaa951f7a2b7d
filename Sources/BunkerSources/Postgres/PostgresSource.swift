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

    public init(host: String, port: Int = 5432, user: String, passwordEnvironment: String? = nil, passwordFile: String? = nil, binDirectory: String? = nil) {
        self.host = host
        self.port = port
        self.user = user
        self.passwordEnvironment = passwordEnvironment
        self.passwordFile = passwordFile
        self.binDirectory = binDirectory
    }

    /// Arguments naming the server and user (the database is added per call).
    var arguments: [String] { ["--host", host, "--port", String(port), "--username", user, "--no-password"] }

    /// The environment for a client program: the password, a connect timeout, a name in pg_stat_activity.
    func environment() throws -> [String: String] {
        var env = ["PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "bunker"]
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
    func query(_ sql: String, database: String, what: String) throws -> String {
        try ChildProcess.run(tool("psql"), arguments + ["--dbname", database, "-X", "-A", "-t", "-F", "\u{1f}", "-v", "ON_ERROR_STOP=1", "-c", sql],
                             environment: environment(), what: what)
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
/// snapshot. A restore feeds the dump to `psql --single-transaction` with `ON_ERROR_STOP`, and
/// commits only after the dump's SHA-256 has been checked: it fully succeeds or changes nothing.
public struct PostgresSource: Source {
    public let name: String
    public let connection: PostgresConnection
    public let database: String
    /// The database psql connects to for CREATE and DROP DATABASE.
    public var maintenanceDatabase = "postgres"
    public var kind: SourceKind { .postgres }
    public var origin: String { connection.address(database: database) }

    static let dumpFile = "database.sql"

    public init(name: String, connection: PostgresConnection, database: String) {
        self.name = name
        self.connection = connection
        self.database = database
    }

    public func liveDataExists() async -> Bool {
        (try? connection.query("SELECT 1", database: database, what: "Connecting to \(database)")) != nil
    }

    public func prepareBackup(scratch: String) async throws -> PreparedBackup {
        let child = try ChildProcess(
            executable: connection.tool("pg_dump"),
            arguments: connection.arguments + ["--format=plain", "--clean", "--if-exists", "--dbname", database],
            environment: connection.environment(), output: true)
        let stream = DumpStream(child: child, source: name, database: database)
        let record: @Sendable () throws -> SnapshotSource = { [name, kind, origin] in
            let (counts, version) = stream.counter.withLock { ($0.counts, $0.serverVersion) }
            var details = ["format": "plain", "file": Self.dumpFile]
            if let version { details["server_version"] = version }
            return SnapshotSource(name: name, kind: kind.rawValue, origin: origin, rowCounts: counts, details: details)
        }
        return PreparedBackup(item: .directory(name: name, [.stream(stream, name: Self.dumpFile)]), record: record, cleanup: { child.kill() })
    }

    public func restore(_ node: Node, record: SnapshotSource?, to destination: RestoreDestination, context: RestoreContext) async throws -> SourceRestoreResult {
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
            var result = SourceRestoreResult(source: name, kind: kind, destination: connection.address(database: other))
            result.bytes = dump.size ?? 0
            result.checks = ["SHA-256", "single-transaction load (psql ON_ERROR_STOP)"]
            return result
        }
    }

    public func drill(_ node: Node, record: SnapshotSource?, context: RestoreContext) async throws -> [DrillCheck] {
        let dump = try await databaseFile(in: node, loader: context.loader, preferred: record?.details?["file"])
        let scratch = "bunker_drill_\(UUID().uuidString.prefix(8).lowercased())"
        var checks: [DrillCheck] = []
        defer { try? dropDatabase(scratch) }
        do {
            try await load(dump, into: scratch, createIfMissing: true, context: context)
            checks.append(DrillCheck(name: "load", passed: true, detail: "Loaded \(dump.size ?? 0) bytes of SQL into scratch database \(scratch) in one transaction; SHA-256 matches."))
        } catch let error as BunkerError {
            checks.append(DrillCheck(name: "load", passed: false, detail: error.message))
            return checks
        }
        checks.append(try countCheck(recorded: record?.rowCounts, in: scratch))
        return checks
    }

    // MARK: - Helpers

    /// Loads a dump into `target` in one transaction; a database this call created is dropped
    /// again when the load fails.
    private func load(_ dump: Node, into target: String, createIfMissing: Bool, context: RestoreContext) async throws {
        var created = false
        if createIfMissing {
            let exists = try connection.query("SELECT 1 FROM pg_database WHERE datname = \(Self.literal(target))", database: maintenanceDatabase, what: "Looking up database \(target)")
            if exists.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                _ = try connection.query("CREATE DATABASE \(Self.identifier(target))", database: maintenanceDatabase, what: "Creating database \(target)")
                created = true
            }
        }
        // The transaction is opened and committed by Bunker, not by psql's --single-transaction:
        // psql commits that one when its input ends, and its input also ends when Bunker dies
        // (a kill, a crash), which would commit a dump cut short. Here a cut input ends the
        // session with the transaction open, and the server rolls it back.
        let child = try ChildProcess(
            executable: connection.tool("psql"),
            arguments: connection.arguments + ["--dbname", target, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
            environment: connection.environment(), input: true)
        do {
            try child.writeInput(Data("BEGIN;\n".utf8))
            try await ContentReader(loader: context.loader).read(dump) { data in
                try child.writeInput(data)
                context.progress?.update { $0.bytesDone += UInt64(data.count) }
                FaultPoints.hit("postgres-restore-write")
            }
            // Only now is the whole dump read and its SHA-256 checked.
            try child.writeInput(Data("\nCOMMIT;\n".utf8))
        } catch {
            // psql has not seen the end of its input, so it has not committed: killing it rolls
            // back. It may also have stopped by itself on an error (ON_ERROR_STOP), which is why
            // the write failed.
            child.kill()
            if created { try? dropDatabase(target) }
            let reason = child.errorText.isEmpty ? (error as? BunkerError)?.message ?? "\(error)" : "psql said: \(child.errorText)"
            throw BunkerError((error as? BunkerError)?.code ?? .sourceIO, "Loading the dump into database \(target) failed before psql committed; the transaction was rolled back, so \(target) is as it was. \(reason)", cause: error)
        }
        let status = child.wait()
        guard status == 0 else {
            if created { try? dropDatabase(target) }
            throw BunkerError(.sourceIO, "Loading the dump into database \(target) failed (psql exited with \(status)); the transaction was rolled back, so \(target) is as it was. psql said: \(child.errorText)")
        }
    }

    /// Writes the dump as a plain SQL file (the seed's database.sql); `-` writes to standard output.
    private func writeSQL(_ dump: Node, to target: String, context: RestoreContext) async throws {
        if target == "-" {
            try await ContentReader(loader: context.loader).read(dump) { data in
                try SystemCalls.write(fd: STDOUT_FILENO, data, path: "standard output")
            }
            return
        }
        if FileManager.default.fileExists(atPath: target) {
            throw BunkerError(.invalidArgument, "\(target) already exists; remove it or choose another path.")
        }
        let temp = SystemCalls.stagingPath(beside: target)
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw BunkerError(.sourceIO, "Cannot create \(temp): \(String(cString: strerror(errno))).")
        }
        do {
            defer { close(fd) }
            try await ContentReader(loader: context.loader).read(dump) { data in
                try SystemCalls.write(fd: fd, data, path: target)
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

    private func dropDatabase(_ name: String) throws {
        _ = try connection.query("DROP DATABASE IF EXISTS \(Self.identifier(name)) WITH (FORCE)", database: maintenanceDatabase, what: "Dropping database \(name)")
    }

    /// Compares `count(*)` of every table the dump held with the counts recorded at backup time.
    private func countCheck(recorded: [String: Int]?, in target: String) throws -> DrillCheck {
        guard let recorded, !recorded.isEmpty else {
            return DrillCheck(name: "row_counts", passed: true, detail: "The dump holds no table data to count.")
        }
        // The names are pg_dump's own, already quoted where needed.
        let sql = recorded.keys.sorted().map { "SELECT \(Self.literal($0)), count(*) FROM \($0)" }.joined(separator: " UNION ALL ")
        let output: String
        do {
            output = try connection.query(sql, database: target, what: "Counting rows in \(target)")
        } catch let error as BunkerError {
            return DrillCheck(name: "row_counts", passed: false, detail: error.message)
        }
        var actual: [String: Int] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: "\u{1f}", omittingEmptySubsequences: false)
            if parts.count == 2, let count = Int(parts[1]) { actual[String(parts[0])] = count }
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

    static func identifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    static func literal(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }
}

/// pg_dump's output as a ``ByteStream``, counting rows as it passes.
final class DumpStream: ByteStream {
    private let child: ChildProcess
    let counter = Mutex(DumpRowCounter())
    private let source: String
    private let database: String

    init(child: ChildProcess, source: String, database: String) {
        self.child = child
        self.source = source
        self.database = database
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try child.readOutput(into: buffer)
        counter.withLock { $0.consume(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) }
        return n
    }

    func finish() throws {
        let status = child.wait()
        guard status == 0 else {
            let said = child.errorText
            throw BunkerError(.sourceIO, "pg_dump of database \(database) (source \(source)) failed with exit status \(status); no snapshot was written. pg_dump said: \(said.isEmpty ? "nothing" : said)")
        }
    }
}
