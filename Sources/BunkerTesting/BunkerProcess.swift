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
    public static var executable: String {
        if let path = ProcessInfo.processInfo.environment["BUNKER_BIN"], !path.isEmpty { return path }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("bunker").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return ".build/debug/bunker"
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
