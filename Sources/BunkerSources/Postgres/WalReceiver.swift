import BunkerCore
import Foundation

/// `pg_receivewal` streaming a source's WAL into a local directory, as a replication client of
/// its server: each segment is written there as `SEGMENT.partial` while it fills (at its full
/// size, zero after the last record received) and renamed to `SEGMENT` once complete.
///
/// It is one long-lived child process: ``start()`` runs it, ``isRunning`` says whether it
/// still does (it ends when the server goes away or refuses replication), ``stop()`` ends it.
/// The role needs the REPLICATION attribute, and `pg_hba.conf` a `replication` line for it.
public final class WalReceiver: Sendable {
    public let directory: String
    private let connection: PostgresConnection
    private let process = Mutex<Process?>(nil)
    private let log: String

    public init(source: PostgresSource, directory: String) throws {
        self.connection = try source.server
        self.directory = directory
        self.log = directory + "/pg_receivewal.log"
    }

    /// Starts `pg_receivewal` (the directory is made if missing); its output goes to
    /// `pg_receivewal.log` there.
    public func start() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let child = Process()
        child.executableURL = URL(fileURLWithPath: try connection.tool("pg_receivewal"))
        child.arguments = connection.arguments + ["--directory", directory, "--status-interval", "1", "--no-loop"]
        child.environment = ProcessInfo.processInfo.environment.merging(try connection.environment(session: "bunker-wal-stream")) { $1 }
        FileManager.default.createFile(atPath: log, contents: nil)
        let output = FileHandle(forWritingAtPath: log)
        child.standardOutput = output
        child.standardError = output
        child.standardInput = FileHandle.nullDevice
        try withStopSignalsUnblocked { try child.run() }
        process.withLock { $0 = child }
    }

    public var isRunning: Bool { process.withLock { $0?.isRunning ?? false } }

    /// What it said last (its log's end), for a message when it ended.
    public var lastWords: String {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return String(text.suffix(600)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Ends `pg_receivewal`: SIGINT, which every version handles by flushing what it received
    /// and exiting (only PostgreSQL 16's handles SIGTERM), then SIGKILL after 10 s.
    public func stop() {
        guard let running = process.withLock({ $0 }), running.isRunning else { return }
        running.interrupt()
        let deadline = ContinuousClock.now + .seconds(10)
        while running.isRunning && ContinuousClock.now < deadline { usleep(20_000) }
        if running.isRunning { kill(running.processIdentifier, SIGKILL) }
        running.waitUntilExit()
    }

    /// The files in the directory: complete segments, and the one being written (`.partial`).
    public func files() -> (complete: [String], partial: String?) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let complete = names.filter { WalFileName($0)?.kind == .segment }.sorted()
        let partial = names.filter { $0.hasSuffix(".partial") && WalFileName($0)?.kind == .partial }.sorted().last
        return (complete, partial)
    }
}

import Synchronization
