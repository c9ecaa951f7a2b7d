import BunkerCore
import Foundation

enum SystemCalls {
    /// Swaps two paths in one step (RENAME_EXCHANGE), so that no moment exists in which neither
    /// is in place. Where the filesystem cannot, falls back to two renames.
    static func exchange(_ a: String, _ b: String) throws {
        if renameat2(AT_FDCWD, a, AT_FDCWD, b, renameExchange) == 0 { return }
        let err = errno
        guard err == EINVAL || err == ENOSYS else {
            throw BunkerError(.sourceIO, "Cannot swap \(a) and \(b): \(String(cString: strerror(err))).")
        }
        let aside = a + ".swap"
        guard rename(b, aside) == 0 else {
            throw BunkerError(.sourceIO, "Cannot move \(b) aside: \(String(cString: strerror(errno))).")
        }
        guard rename(a, b) == 0 else {
            let message = String(cString: strerror(errno))
            rename(aside, b)
            throw BunkerError(.sourceIO, "Cannot move \(a) into place: \(message).")
        }
        guard rename(aside, a) == 0 else {
            throw BunkerError(.sourceIO, "The restore is in place, but the previous data could not be moved to \(a): \(String(cString: strerror(errno))).")
        }
    }

    /// Flushes a file (or directory) to disk.
    static func fsync(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw BunkerError(.sourceIO, "Cannot open \(path) to flush it: \(String(cString: strerror(errno))).")
        }
        defer { close(fd) }
        guard Glibc.fsync(fd) == 0 else {
            throw BunkerError(errno == ENOSPC ? .storageFull : .sourceIO, "Cannot flush \(path) to disk: \(String(cString: strerror(errno))).")
        }
    }

    /// The directory holding `path`.
    static func directory(of path: String) -> String {
        (path as NSString).deletingLastPathComponent
    }

    /// A name no other file beside `path` has, for staging.
    static func stagingPath(beside path: String, label: String = "bunker-restore") -> String {
        let dir = directory(of: path)
        let base = (path as NSString).lastPathComponent
        return (dir.isEmpty ? "." : dir) + "/.\(base).\(label)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Removes the files a killed restore staged beside `path` (``stagingPath(beside:label:)``
    /// names, with SQLite's `-journal`, `-wal` and `-shm` beside them): a restore that is killed
    /// while it writes or checks a staged database leaves a full-size copy nothing else removes.
    /// Called by a restore to `path` before it stages its own, under the one-writer claim, so
    /// no other restore's file can be among them. Regular files only; returns what it removed.
    @discardableResult
    static func removeStaleStaging(beside path: String, label: String = "bunker-restore") -> [String] {
        let dir = directory(of: path)
        let folder = dir.isEmpty ? "." : dir
        let prefix = ".\((path as NSString).lastPathComponent).\(label)-"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return [] }
        var removed: [String] = []
        for name in names where name.hasPrefix(prefix) {
            var token = name.dropFirst(prefix.count)
            for suffix in ["-journal", "-wal", "-shm"] where token.hasSuffix(suffix) { token = token.dropLast(suffix.count) }
            guard token.count == 8, token.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { continue }
            let stale = folder + "/" + name
            var info = stat()
            guard lstat(stale, &info) == 0, info.st_mode & S_IFMT == S_IFREG, unlink(stale) == 0 else { continue }
            removed.append(stale)
        }
        return removed
    }
}
