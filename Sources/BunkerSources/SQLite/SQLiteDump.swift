import BunkerCore
import Foundation

/// An SQLite database as SQL text, written by the `sqlite3` shell's `.dump`.
public enum SQLiteDump {
    /// Writes `database`'s `.dump` to the file `output`.
    public static func write(database: String, to output: String) throws {
        let candidates = ((ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map { "\($0)/sqlite3" })
        guard let sqlite3 = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw BunkerError(.sourceIO, "The sqlite3 shell is needed to write an SQLite database as SQL: install it (Debian: apt-get install sqlite3).")
        }
        guard FileManager.default.createFile(atPath: output, contents: nil, attributes: [.posixPermissions: 0o600]),
              let handle = FileHandle(forWritingAtPath: output) else {
            throw BunkerError(.sourceIO, "Cannot create \(output).")
        }
        defer { try? handle.close() }
        let child = try ChildProcess(executable: sqlite3, arguments: ["-readonly", database, ".dump"], output: true)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try child.readOutput(into: $0) }
            if n > 0 { try SystemCalls.write(fd: handle.fileDescriptor, Data(buffer[0..<n]), path: output) }
            if n < buffer.count { break }
        }
        let status = child.wait()
        guard status == 0 else {
            throw BunkerError(.sourceIO, "sqlite3 .dump of \(database) failed (exit \(status)): \(child.errorText)")
        }
    }
}
