import BunkerCore
import Foundation

/// The system user a restored data directory belongs to and its server runs as, when Bunker
/// runs as root (PostgreSQL refuses to run as root).
struct ServerUser: Sendable {
    var name: String
    var uid: uid_t
    var gid: gid_t

    /// nil when Bunker does not run as root (the files are then Bunker's user's, who runs the
    /// server). Else the user `named`; else the owner of the directory's parent, when that is
    /// not root (a parent made for PostgreSQL); else `postgres`.
    static func forDataDirectory(_ directory: String, named: String?, parentOwnerCounts: Bool = true) throws -> ServerUser? {
        guard geteuid() == 0 else { return nil }
        if let named {
            guard let entry = getpwnam(named) else {
                throw BunkerError(.invalidArgument, "There is no system user \(named) (--pg-user) to give the data directory to.")
            }
            return ServerUser(name: named, uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
        }
        var status = stat()
        if parentOwnerCounts, stat(SystemCalls.directory(of: directory), &status) == 0, status.st_uid != 0, let entry = getpwuid(status.st_uid) {
            return ServerUser(name: String(cString: entry.pointee.pw_name), uid: status.st_uid, gid: entry.pointee.pw_gid)
        }
        guard let entry = getpwnam("postgres") else {
            throw BunkerError(.invalidArgument, "Bunker runs as root and PostgreSQL will not: name the system user the server runs as with --pg-user.")
        }
        return ServerUser(name: "postgres", uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
    }

    /// Gives `directory` and everything in it to this user (symlinks themselves, not their
    /// targets). The directory itself goes last: until then it is root's, mode 0700, so the user
    /// cannot swap an entry for a symlink while its names are being followed.
    func own(_ directory: String) throws {
        for path in (try? FileManager.default.subpathsOfDirectory(atPath: directory)) ?? [] {
            lchown(directory + "/" + path, uid, gid)
        }
        guard lchown(directory, uid, gid) == 0 else {
            throw BunkerError(.sourceIO, "Cannot give \(directory) to user \(name): \(String(cString: strerror(errno))).")
        }
    }

    /// `executable arguments…` run as this user.
    func command(_ executable: String, _ arguments: [String]) -> (String, [String]) {
        ("/usr/sbin/runuser", ["-u", name, "--", executable] + arguments)
    }
}

/// A server on a restored data directory: started with `pg_ctl`, asked through its socket in the
/// data directory, stopped.
struct PhysicalServer: Sendable {
    let directory: String
    let port: Int
    let owner: ServerUser?
    /// Where its socket is: the data directory, unless the server keeps its own settings.
    let socketDirectory: String
    /// The live cluster's own start options (``PostgresSource/startOptions(_:)``), for a server
    /// restored in place; nil: Bunker's (its port, its socket in the data directory).
    let ownOptions: String?
    private let bin: String

    init(directory: String, port: Int, owner: ServerUser?, major: String?, socketDirectory: String? = nil, ownOptions: String? = nil) throws {
        self.directory = directory
        self.port = port
        self.owner = owner
        self.socketDirectory = socketDirectory ?? directory
        self.ownOptions = ownOptions
        self.bin = try Self.binaries(major: major)
    }

    /// Where the server programs of `major` are (Debian keeps them in /usr/lib/postgresql/N/bin),
    /// else the newest installed, else PATH.
    static func binaries(major: String?) throws -> String {
        if let major, FileManager.default.isExecutableFile(atPath: "/usr/lib/postgresql/\(major)/bin/pg_ctl") {
            return "/usr/lib/postgresql/\(major)/bin"
        }
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        for version in versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) }) where FileManager.default.isExecutableFile(atPath: "/usr/lib/postgresql/\(version)/bin/pg_ctl") {
            return "/usr/lib/postgresql/\(version)/bin"
        }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        where FileManager.default.isExecutableFile(atPath: "\(dir)/pg_ctl") {
            return String(dir)
        }
        throw BunkerError(.sourceIO, "pg_ctl is not installed: install the PostgreSQL server\(major.map { " \($0)" } ?? "") (Debian: apt-get install postgresql).")
    }

    /// A TCP port nobody listens on now.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BunkerError(.sourceIO, "Cannot open a socket to find a free port.") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw BunkerError(.sourceIO, "Cannot find a free port: \(String(cString: strerror(errno))).") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// The server's options: its port and its socket in the data directory; a private server
    /// (a drill's) also listens on no TCP address and archives nothing.
    private func options(private isPrivate: Bool) -> String {
        if let ownOptions { return ownOptions }
        var options = "-p \(port) -k \(RecoveryOptions.shellQuoted(directory))"
        if isPrivate { options += " -c listen_addresses='' -c archive_mode=off" }
        return options
    }

    private var log: String { directory + "/bunker-restore.log" }

    /// The command that starts the server, as a user types it.
    func startCommand(private isPrivate: Bool) -> String {
        let words = [bin + "/pg_ctl", "-D", directory, "-l", log, "-w", "-t", "3600", "start", "-o", options(private: isPrivate)]
        let command = words.map(RecoveryOptions.shellQuoted).joined(separator: " ")
        guard let owner else { return command }
        return "runuser -u \(owner.name) -- " + command
    }

    /// Runs `restoreCommand` as the server will (as its user, in its environment) for a WAL file
    /// no archive holds, and refuses to go on unless it answers "not archived" (exit 1): a
    /// server whose user cannot reach the repository would stop recovery at its first file,
    /// with only a line in its log to say why.
    func checkRestoreCommand(_ restoreCommand: String) async throws {
        let probe = directory + "/bunker-restore-command-probe"
        var line = ""
        var characters = restoreCommand.makeIterator()
        while let character = characters.next() {
            guard character == "%" else {
                line.append(character)
                continue
            }
            switch characters.next() {
            case "f": line += "FFFFFFFE.history"  // a timeline no cluster reaches
            case "p": line += RecoveryOptions.shellQuoted(probe)
            case "%": line += "%"
            case let other?: line += "%" + String(other)
            case nil: line += "%"
            }
        }
        let output = directory + "/bunker-restore-command.out"
        let (program, words) = command("/bin/sh", ["-c", line])
        let pid = try Self.spawn(program, words, outputFile: output)
        defer {
            unlink(output)
            unlink(probe)
        }
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) != pid {
            if errno == ECHILD { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        guard code != 1 else { return }
        let said = ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        throw BunkerError(
            .sourceIO,
            "The server's restore_command cannot reach the repository as \(owner?.name ?? "this user") (it exited \(code)\(said.isEmpty ? "" : ": \(said)")), so recovery would stop at its first WAL file. "
                + "Let that user read bunker.toml, the repository's password file and the repository (docs/postgres-pitr.md, \"What PostgreSQL's user needs\"), then restore again.")
    }

    /// Starts the server with `pg_ctl -w`, which returns once the server accepts connections:
    /// for a recovery with hot_standby (the default), once it is consistent; the end of recovery
    /// is waited for by ``waitForRecovery(target:timeout:)``.
    ///
    /// pg_ctl is spawned with only descriptors 0–2, its output in a file: the server it starts
    /// inherits what pg_ctl has, and a pipe of Bunker's held open by the server would never end.
    func start(private isPrivate: Bool) async throws {
        let (program, words) = command(bin + "/pg_ctl", ["-D", directory, "-l", log, "-w", "-t", "3600", "start", "-o", options(private: isPrivate)])
        let output = directory + "/bunker-pg_ctl.out"
        let pid = try Self.spawn(program, words, outputFile: output)
        defer { unlink(output) }
        var status: Int32 = 0
        while true {
            let done = waitpid(pid, &status, WNOHANG)
            if done == pid { break }
            if done < 0 && errno != EINTR {
                throw BunkerError(.sourceIO, "Cannot wait for pg_ctl: \(String(cString: strerror(errno))).")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
            let said = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            throw BunkerError(.sourceIO, "Starting the restored server in \(directory) failed (pg_ctl said: \(said.trimmingCharacters(in: .whitespacesAndNewlines))). The server's log says: \(logTail())")
        }
    }

    /// Bunker's own variables (`BUNKER_*` but the fault points, `AWS_*`), for the server Bunker
    /// starts: its `restore_command` runs `bunker wal fetch`, which must reach the repository as
    /// this process did, password included when it came from `BUNKER_PASSWORD`. PostgreSQL's
    /// user is trusted with the repository's password anyway, since it runs that command; a
    /// server started by hand later needs `password_file` in the configuration instead.
    private static var repositoryVariables: [String: String] {
        ProcessInfo.processInfo.environment.filter {
            ($0.key.hasPrefix("BUNKER_") && !$0.key.hasPrefix("BUNKER_FAULT_")) || $0.key.hasPrefix("AWS_")
        }
    }

    /// Starts `executable` with standard input from /dev/null, its output in `outputFile`, and no
    /// other descriptor of Bunker's; returns its process id.
    private static func spawn(_ executable: String, _ arguments: [String], outputFile: String) throws -> pid_t {
        let fd = open(outputFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
        guard fd >= 0 else {
            throw BunkerError(.sourceIO, "Cannot create \(outputFile): \(String(cString: strerror(errno))).")
        }
        defer { close(fd) }
        fchmod(fd, 0o666)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fd, 1)
        posix_spawn_file_actions_adddup2(&actions, fd, 2)
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") {
            _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
        } else {
            for open in ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap(Int32.init) where open >= 3 {
                posix_spawn_file_actions_addclose(&actions, open)
            }
        }
        let environment = ChildProcess.environment(inheriting: ProcessInfo.processInfo.environment, adding: repositoryVariables)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard spawned == 0 else {
            throw BunkerError(.sourceIO, "Cannot run \(executable): \(String(cString: strerror(spawned))).")
        }
        return pid
    }

    /// Stops the server (fast shutdown); best effort.
    func stop() {
        let (executable, arguments) = command(bin + "/pg_ctl", ["-D", directory, "-m", "fast", "-w", "-t", "60", "stop"])
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try? process.run()
        process.waitUntilExit()
    }

    /// Runs SQL on the server as its own user, through the socket; returns the unaligned answer.
    func query(_ sql: String) async throws -> String {
        let user = owner?.name ?? (ProcessInfo.processInfo.environment["USER"] ?? "postgres")
        let psql = FileManager.default.isExecutableFile(atPath: bin + "/psql") ? bin + "/psql" : "psql"
        return try await run(psql, ["-X", "-A", "-t", "-h", socketDirectory, "-p", String(port), "-U", user, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql],
                             what: "Asking the restored server").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Waits until recovery has ended (the server promoted), then checks what can be checked of
    /// the target; returns what was found. Throws, with the end of the server's log, when the
    /// server stopped (a target it could not reach, a missing WAL file) or never promoted.
    func waitForRecovery(target: RecoveryTarget, timeout: Duration = .seconds(3600)) async throws -> [String: String] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let answer = try? await query("SELECT pg_is_in_recovery()")
            if answer == "f" { break }
            if answer == nil, !isRunning {
                throw BunkerError(.sourceIO, "The restored server in \(directory) stopped before recovery ended. Its log says: \(logTail())")
            }
            guard ContinuousClock.now < deadline else {
                throw BunkerError(.sourceIO, "Recovery of the restored server in \(directory) did not end within \(timeout); it is still running. Its log says: \(logTail())")
            }
            try await Task.sleep(for: .milliseconds(300))
        }
        var found: [String: String] = [:]
        let facts = try await query("SELECT coalesce(pg_last_xact_replay_timestamp()::text, ''), c.timeline_id, s.system_identifier FROM pg_control_checkpoint() c, pg_control_system() s")
        let parts = facts.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        let replayed = parts.first ?? ""
        if !replayed.isEmpty { found["last_replayed_commit"] = replayed }
        if parts.count > 2 {
            found["timeline"] = parts[1]
            found["system_identifier"] = parts[2]
        }
        if case .time(let moment) = target, let last = RecoveryTarget.parseTime(replayed), last > moment {
            throw BunkerError(.integrity, "Recovery went past its target: the last replayed transaction committed at \(replayed), after \(RecoveryTarget.postgresTime(moment)). The server in \(directory) is running; do not use it.")
        }
        return found
    }

    /// Whether a postmaster runs on the data directory (its pid file names a live process).
    var isRunning: Bool {
        guard let text = try? String(contentsOfFile: directory + "/postmaster.pid", encoding: .utf8),
              let pid = text.split(separator: "\n").first.flatMap({ Int32($0) }) else { return false }
        return kill(pid, 0) == 0
    }

    private func logTail() -> String {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return String(text.suffix(1500)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func command(_ executable: String, _ arguments: [String]) -> (String, [String]) {
        owner?.command(executable, arguments) ?? (executable, arguments)
    }

    private func run(_ executable: String, _ arguments: [String], what: String) async throws -> String {
        let (program, words) = command(executable, arguments)
        do {
            return try await ChildProcess.run(program, words, timeout: HelperTimeout(.seconds(3700)), what: what)
        } catch let error as BunkerError {
            throw BunkerError(error.code, "\(error.message) The server's log says: \(logTail())", cause: error)
        }
    }
}
