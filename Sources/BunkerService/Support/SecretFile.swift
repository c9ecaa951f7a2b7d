import BunkerCore
import Crypto
import Foundation

/// A 32-byte key kept as 64 hex digits in a file of mode 0600: the audit anchors' HMAC key, the
/// API's token secret.
public enum SecretFile {
    /// Reads the key at `path`, generating it from the system's random source if the file does
    /// not exist yet. `naming` says in errors what the key is for.
    public static func loadOrCreate(at path: String, naming what: String) throws -> SymmetricKey {
        try load(at: path, naming: what) ?? create(at: path, naming: what)
    }

    /// Reads the key at `path`; nil when there is no such file.
    public static func load(at path: String, naming what: String) throws -> SymmetricKey? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let id = ID(hex: text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw BunkerError(.catalog, "\(what.prefix(1).uppercased() + what.dropFirst()) in \(path) is unreadable or damaged (it must hold 64 hex digits); restore it from your backup of the data directory.")
        }
        return SymmetricKey(data: id.bytes)
    }

    /// Generates a key and writes it to `path`, which must not exist yet.
    public static func create(at path: String, naming what: String) throws -> SymmetricKey {
        let generated = SymmetricKey(size: .bits256)
        try write(ID(digest: generated).hex + "\n", to: path, flags: O_EXCL, naming: what)
        return generated
    }

    /// Writes `text` to a file opened with `flags` (created 0600), and fsyncs it.
    static func write(_ text: String, to path: String, flags: Int32, naming what: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0o600)
        guard fd >= 0 else {
            throw BunkerError(.catalog, "Cannot open \(what) \(path): \(String(cString: strerror(errno))).")
        }
        defer { close(fd) }
        try writeCatalogFile(text, to: fd, naming: "\(what) \(path)")
    }

    /// Writes all of `text` to `fd` and fsyncs it; a failure is a catalog error naming `what`.
    static func writeCatalogFile(_ text: String, to fd: Int32, naming what: String) throws {
        do {
            try writeAll(Data(text.utf8), to: fd, path: what)
        } catch let error as BunkerError {
            throw BunkerError(.catalog, error.message, cause: error.cause)
        }
        guard fsync(fd) == 0 else {
            throw BunkerError(.catalog, "Cannot write \(what): \(String(cString: strerror(errno))).")
        }
    }
}
