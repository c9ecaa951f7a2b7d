import BunkerCore
import Foundation

/// An SQLite database as SQL text, written by the `sqlite3` shell's `.dump`.
public enum SQLiteDump {
    /// Writes `database`'s `.dump` to the file `output`; sqlite3 is stopped after `timeout`.
    public static func write(database: String, to output: String, timeout: Duration = HelperTimeout.defaultDuration) async throws {
        let candidates = ((ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map { "\($0)/sqlite3" })
        guard let sqlite3 = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw BunkerError(.sourceIO, "The sqlite3 shell is needed to write an SQLite database as SQL: install it (Debian: apt-get install sqlite3).")
        }
        guard FileManager.default.createFile(atPath: output, contents: nil, attributes: [.posixPermissions: 0o600]),
              let handle = FileHandle(forWritingAtPath: output) else {
            throw BunkerError(.sourceIO, "Cannot create \(output).")
        }
        defer { try? handle.close() }
        // sqlite3 writes the file itself, so there is no pipe to read.
        let child = try ChildProcess(
            executable: sqlite3, arguments: ["-readonly", database, ".dump"], outputFile: handle,
            timeout: HelperTimeout(timeout, advice: "An SQL dump of an SQLite database takes seconds to minutes; check that \(database) is a readable database on a disk that answers."),
            purpose: "sqlite3 .dump of \(database)")
        let status = await child.exitStatus()
        try child.check(status) { said in "sqlite3 .dump of \(database) failed (exit \(status)): \(said)" }
    }
}
