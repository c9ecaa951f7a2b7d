import BunkerCore
import Foundation

/// The one-writer claim between processes that share a data directory: an exclusive `flock` on
/// `writer.lock` there, which holds the running writer's label ("a backup by alice (pid 4242)").
///
/// Two `bunker backup` commands, or a CLI restore and a backup of `bunker serve`, take the same
/// claim. Backups and restores take only a shared repository lock, so without it two writers
/// of one installation could run together. The kernel drops the lock when its process dies
/// (kill -9 included): a crashed writer never leaves a stale claim. The file is never removed,
/// so that every process locks the same inode.
///
/// Across hosts (one repository written by several machines) each host has its own data
/// directory and claim; the repository lock is what orders them.
struct WriterClaimFile: Sendable {
    let path: String

    /// A held claim; ``release()`` (or the process's end) frees it.
    struct Held: Sendable {
        fileprivate let fd: Int32

        func release() { close(fd) }
    }

    /// Takes the claim for `label`, or returns the label of the process that holds it.
    func tryClaim(label: String) throws -> Result<Held, Busy> {
        let directory = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let failure = POSIXFailure(errno: errno, operation: "open", path: path)
            throw BunkerError(.permissionDenied, "Cannot open the writer claim \(path): \(failure). Check the owner and mode of the data directory.", cause: failure)
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            defer { close(fd) }
            guard code == EWOULDBLOCK else {
                let failure = POSIXFailure(errno: code, operation: "flock", path: path)
                throw BunkerError(.permissionDenied, "Cannot lock the writer claim \(path): \(failure).", cause: failure)
            }
            return .failure(Busy(label: holder(fd)))
        }
        // The label is for the busy message of others only; a failure to write it changes nothing.
        let text = Data("\(label)\n\(getpid())\n".utf8)
        if ftruncate(fd, 0) == 0 { try? writeAll(text, to: fd, path: path) }
        return .success(Held(fd: fd))
    }

    struct Busy: Error {
        var label: String
    }

    /// What the holder wrote, or a neutral phrase while it has not yet written it.
    private func holder(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = pread(fd, &buffer, buffer.count, 0)
        let lines = count > 0 ? String(decoding: buffer[..<count], as: UTF8.self).split(separator: "\n").map(String.init) : []
        guard lines.count == 2 else { return "another Bunker process" }
        return "\(lines[0]) (process \(lines[1]))"
    }
}
