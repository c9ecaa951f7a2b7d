import Foundation

/// A real PostgreSQL cluster for one test: `initdb` into a temporary directory, a server on a
/// Unix socket in that directory (no TCP port to collide on), trust authentication for the
/// `postgres` superuser, stopped and removed afterwards.
///
/// PostgreSQL refuses to run as root; when the tests run as root (as in CI), the server runs as
/// the unprivileged `postgres` user that Debian's package creates, through `runuser`.
public final class PostgresCluster: Sendable {
    public let directory: String
    public let socketDirectory: String
    public let port = 5432
    public let user = "postgres"
    private let bin: String

    /// Where the server programs are (Debian keeps them out of PATH).
    public static func serverBinaries() -> String? {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        for version in versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) }) {
            let dir = "/usr/lib/postgresql/\(version)/bin"
            if FileManager.default.isExecutableFile(atPath: dir + "/initdb") { return dir }
        }
        return nil
    }

    private init(directory: String, bin: String) {
        self.directory = directory
        self.socketDirectory = directory
        self.bin = bin
    }

    /// Starts a new cluster.
    public static func start() throws -> PostgresCluster {
        guard let bin = serverBinaries() else {
            throw FixtureError("PostgreSQL's server is not installed (Debian: apt-get install postgresql); `make test` installs it.")
        }
        var template = Array("/tmp/bunker-pg-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw FixtureError("mkdtemp failed") }
        let directory = String(cString: made)
        let cluster = PostgresCluster(directory: directory, bin: bin)
        if geteuid() == 0 {
            guard let pw = getpwnam("postgres") else {
                throw FixtureError("Tests run as root, and PostgreSQL will not: a `postgres` user is needed (Debian's postgresql package creates it).")
            }
            chown(directory, pw.pointee.pw_uid, pw.pointee.pw_gid)
        }
        chmod(directory, 0o755)
        try cluster.server(["initdb", "-D", directory + "/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"])
        try cluster.server(["pg_ctl", "-D", directory + "/data", "-l", directory + "/server.log", "-w", "-t", "60", "start",
                            "-o", "-k \(directory) -c listen_addresses='' -p 5432 -c fsync=off -c full_page_writes=off"])
        return cluster
    }

    /// Runs a server program as the user PostgreSQL accepts.
    @discardableResult
    private func server(_ command: [String]) throws -> String {
        var arguments = [bin + "/" + command[0]] + command.dropFirst()
        var executable = arguments.removeFirst()
        if geteuid() == 0 {
            arguments = ["-u", "postgres", "--", executable] + arguments
            executable = "/usr/sbin/runuser"
        }
        // Output goes to a file, not a pipe: the server pg_ctl starts would inherit a pipe and
        // keep it open, and reading it to its end would wait for the server to stop.
        let result = try Self.run(executable, arguments, environment: [:], outputFile: directory + "/command.log")
        guard result.status == 0 else {
            let log = (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? ""
            throw FixtureError("\(command[0]) failed (\(result.status)): \(result.output)\n\(log.suffix(2000))")
        }
        return result.output
    }

    /// Runs SQL with psql as the superuser; returns unaligned output. Throws if psql fails.
    @discardableResult
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        let result = try Self.run(psqlPath, ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", socketDirectory, "-p", "5432", "-U", user, "-d", database, "-c", sql], environment: [:])
        guard result.status == 0 else { throw FixtureError("psql failed: \(result.output)") }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Loads an SQL file with psql (stops at the first error).
    public func load(file: String, database: String) throws -> (status: Int32, output: String) {
        try Self.run(psqlPath, ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", socketDirectory, "-p", "5432", "-U", user, "-d", database, "-f", file], environment: [:])
    }

    private var psqlPath: String { FileManager.default.isExecutableFile(atPath: bin + "/psql") ? bin + "/psql" : "/usr/bin/psql" }

    /// Restarts the server (a fast shutdown, then a start), so that settings that need a
    /// restart (`ALTER SYSTEM SET archive_mode = on`) take effect.
    public func restart() throws {
        try server(["pg_ctl", "-D", directory + "/data", "-l", directory + "/server.log", "-w", "-t", "60", "-m", "fast", "restart",
                    "-o", "-k \(directory) -c listen_addresses='' -p 5432 -c fsync=off -c full_page_writes=off"])
    }

    /// Stops the server at once (as a crash would), leaving the directory.
    public func kill() {
        _ = try? server(["pg_ctl", "-D", directory + "/data", "-m", "immediate", "-w", "stop"])
    }

    /// Stops the server and removes the cluster.
    public func stop() {
        kill()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs a client or server program, its output kept in a file of the cluster's directory.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String], outputFile: String? = nil) throws -> (status: Int32, output: String) {
        let file = outputFile ?? NSTemporaryDirectory() + "/bunker-pg-out-\(UUID().uuidString)"
        defer { if outputFile == nil { unlink(file) } }
        return try spawnAndWait(executable, arguments, environment: environment, outputFile: file)
    }
}

/// Runs `body` with a fresh cluster, stopped and removed afterwards.
public func withPostgres<R>(_ body: (PostgresCluster) async throws -> R) async throws -> R {
    let cluster = try PostgresCluster.start()
    defer { cluster.stop() }
    return try await body(cluster)
}

/// A fixture that could not be set up.
public struct FixtureError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
