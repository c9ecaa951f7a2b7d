import Foundation

/// Runs the real `bunker` executable as a subprocess, as users and scripts do.
public enum BunkerProcess {
    /// What a finished run printed and how it ended.
    public struct Outcome: Sendable {
        public var status: Int32
        /// True when the process died from a signal (then `status` is the signal number).
        public var killed: Bool
        public var stdout: String
        public var stderr: String
    }

    /// The binary: `$BUNKER_BIN`, else `bunker` beside the test bundle in the build folder.
    ///
    /// PostgreSQL's user runs it too (`archive_command`, `restore_command`): when the build
    /// folder is in a directory other users cannot enter (a checkout under a `mktemp -d`), a
    /// copy in a directory they can is used instead, made once per build of the binary.
    public static let executable: String = reachableByOtherUsers(built)

    private static var built: String {
        if let path = ProcessInfo.processInfo.environment["BUNKER_BIN"], !path.isEmpty { return path }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("bunker").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return ".build/debug/bunker"
    }

    /// `path` if every directory above it lets other users through, else a copy under /tmp
    /// (named by the binary's size and time, so that each build is copied once).
    private static func reachableByOtherUsers(_ path: String) -> String {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        var dir = (absolute as NSString).deletingLastPathComponent
        var reachable = true
        while !dir.isEmpty && dir != "/" {
            var info = stat()
            if stat(dir, &info) != 0 || info.st_mode & 0o001 == 0 { reachable = false }
            dir = (dir as NSString).deletingLastPathComponent
        }
        guard !reachable, let attributes = try? FileManager.default.attributesOfItem(atPath: absolute),
              let size = attributes[.size] as? Int, let modified = attributes[.modificationDate] as? Date else { return absolute }
        let folder = "/tmp/bunker-test-binary-\(size)-\(Int(modified.timeIntervalSince1970))"
        let copy = folder + "/bunker"
        if FileManager.default.isExecutableFile(atPath: copy) { return copy }
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            chmod(folder, 0o755)
            let temporary = folder + "/.bunker-\(getpid())"
            try? FileManager.default.removeItem(atPath: temporary)
            try FileManager.default.copyItem(atPath: absolute, toPath: temporary)
            chmod(temporary, 0o755)
            guard rename(temporary, copy) == 0 else { return absolute }
            return copy
        } catch {
            return absolute
        }
    }

    /// Runs `bunker arguments…` with `environment` added to a minimal one; waits for it.
    ///
    /// Unless the test names a data directory or a configuration, the data directory (catalog
    /// and audit trail) is `bunker-data` beside `BUNKER_REPOSITORY`, inside the test's temporary
    /// directory, not `./.bunker` in the working directory that all tests share.
    public static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> Outcome {
        var environment = environment
        if environment["BUNKER_DATA_DIR"] == nil, environment["BUNKER_CONFIG"] == nil, !arguments.contains("--config"),
           let repo = environment["BUNKER_REPOSITORY"] {
            environment["BUNKER_DATA_DIR"] = (repo as NSString).deletingLastPathComponent + "/bunker-data"
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": NSTemporaryDirectory()]
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read both pipes while the process runs, so that a chatty child never blocks on a full pipe.
        let group = DispatchGroup()
        nonisolated(unsafe) var stdoutData = Data()
        nonisolated(unsafe) var stderrData = Data()
        group.enter()
        DispatchQueue.global().async {
            stdoutData = out.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        group.enter()
        DispatchQueue.global().async {
            stderrData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        process.waitUntilExit()
        group.wait()
        return Outcome(
            status: process.terminationStatus, killed: process.terminationReason == .uncaughtSignal,
            stdout: String(decoding: stdoutData, as: UTF8.self), stderr: String(decoding: stderrData, as: UTF8.self))
    }
}
