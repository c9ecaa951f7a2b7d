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
}
