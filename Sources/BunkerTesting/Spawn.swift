import Foundation

/// Runs a program to its end with `posix_spawn` and `waitpid`, its output (standard output and
/// error together) captured in a file.
///
/// The fixtures use this rather than Foundation's `Process` for programs that start daemons
/// (`pg_ctl start`): the daemon inherits whatever descriptors the program had, and `Process` on
/// Linux can miss the program's exit while they stay open, so a test would wait for the daemon
/// to stop. Here the child keeps only descriptors 0–2 (`closefrom` 3), and the wait is for this
/// one process id.
public func spawnAndWait(_ executable: String, _ arguments: [String], environment: [String: String] = [:], outputFile: String) throws -> (status: Int32, output: String) {
    let pid = try spawn(executable, arguments, environment: environment, outputFile: outputFile)
    let code = try waitForExit(pid, executable)
    return (code, (try? String(contentsOfFile: outputFile, encoding: .utf8)) ?? "")
}

/// Starts a program with its output in `outputFile`; returns its process id, for ``waitForExit(_:_:)``.
public func spawn(_ executable: String, _ arguments: [String], environment: [String: String] = [:], outputFile: String) throws -> pid_t {
    let fd = open(outputFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
    guard fd >= 0 else { throw FixtureError("Cannot create \(outputFile): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    fchmod(fd, 0o666)

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, fd, 1)
    posix_spawn_file_actions_adddup2(&actions, fd, 2)
    closeInheritedDescriptors(&actions)

    var env = ProcessInfo.processInfo.environment
    for (key, value) in environment { env[key] = value }
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        argv.forEach { free($0) }
        envp.forEach { free($0) }
    }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
    guard spawned == 0 else { throw FixtureError("Cannot run \(executable): \(String(cString: strerror(spawned)))") }
    return pid
}

/// Waits for a spawned program; returns its exit code, or 128 + the signal that killed it.
@discardableResult
public func waitForExit(_ pid: pid_t, _ what: String) throws -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        guard errno == EINTR else { throw FixtureError("waitpid for \(what) failed: \(String(cString: strerror(errno)))") }
    }
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}

/// Adds "close every descriptor from 3 on" to `actions`: glibc's `closefrom` action (2.34 and
/// later, looked up at run time as Swift's Glibc module does not import it), else a close for
/// each descriptor open now.
private func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") {
        _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
        return
    }
    let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    for fd in open.compactMap(Int32.init) where fd >= 3 {
        posix_spawn_file_actions_addclose(&actions, fd)
    }
}

/// Runs a shell command; returns status and combined output.
@discardableResult
public func shell(_ command: String, in dir: String? = nil) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command]
    if let dir { process.currentDirectoryURL = URL(fileURLWithPath: dir) }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Runs SQL on a database with the real `sqlite3` command; throws with its output if it fails.
public func runSQLite(_ database: String, _ sql: String) throws {
    let result = try spawnAndWait("/usr/bin/sqlite3", ["-batch", database, sql], outputFile: database + ".sqlite3-output")
    try? FileManager.default.removeItem(atPath: database + ".sqlite3-output")
    guard result.status == 0 else {
        throw FixtureError("sqlite3 \(database) exited with \(result.status): \(result.output)")
    }
}
