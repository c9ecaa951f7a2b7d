import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The local spool of asynchronous WAL archiving: `wal push` copies a file here (fsynced) and
/// returns in milliseconds; a drainer (`bunker wal drain`) ships the spooled files to the
/// repository and removes each one only once the repository holds it durably.
///
/// One directory per source (`<spool_dir>/<scope>/`); a file is written to a temporary name,
/// fsynced, renamed, and the directory fsynced, so a spooled file is whole or absent. The
/// drainer holds an exclusive `flock` on `.drain.lock`, so at most one runs per source.
public struct WalSpool: Sendable {
    public let directory: String
    public let capacity: Int

    public init(root: String, source: String, capacity: Int) {
        self.directory = root + "/" + WalObject.scope(of: source)
        self.capacity = capacity
    }

    /// What ``spool(_:contents:)`` did.
    public enum Outcome: Sendable, Equatable {
        case spooled
        /// The same content is spooled already (a retried push).
        case alreadySpooled
        /// The spool holds `capacity` files: the caller archives synchronously instead.
        case full
    }

    /// Files waiting, by name, oldest name first (WAL names sort in write order within a timeline).
    public func pending() throws -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            if !FileManager.default.fileExists(atPath: directory) { return [] }
            throw BunkerError(.sourceIO, "Cannot read the WAL spool \(directory); check its owner and mode.")
        }
        return names.filter { !$0.hasPrefix(".") && WalFileName($0) != nil }.sorted { a, b in
            // History files first: a later timeline's segments need theirs archived before them.
            let ha = a.hasSuffix(".history"), hb = b.hasSuffix(".history")
            return ha != hb ? ha : a < b
        }
    }

    /// The spooled file `file`, if it is spooled.
    public func contents(of file: String) -> Data? {
        guard WalFileName(file) != nil else { return nil }
        return FileManager.default.contents(atPath: directory + "/" + file)
    }

    /// Where a file the repository refused (different content under an archived name, another
    /// cluster's WAL) is moved by the drainer, beside a `.reason` file: out of the spool, so that
    /// `wal fetch` never serves it and no drainer retries it, and in sight, so that every later
    /// push fails until an operator has looked.
    public var refusedDirectory: String { directory + "/refused" }

    /// The refused files, by name.
    public func refused() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: refusedDirectory)) ?? []).filter { WalFileName($0) != nil }.sorted()
    }

    /// Moves the spooled `file` out of the spool into ``refusedDirectory``, with why.
    public func refuse(_ file: String, reason: String) throws {
        if mkdir(refusedDirectory, 0o700) != 0 && errno != EEXIST { throw failure("create directory", refusedDirectory) }
        let note = refusedDirectory + "/" + file + ".reason"
        _ = FileManager.default.createFile(atPath: note, contents: Data((reason + "\n").utf8), attributes: [.posixPermissions: 0o600])
        guard rename(directory + "/" + file, refusedDirectory + "/" + file) == 0 || errno == ENOENT else {
            throw failure("move aside", directory + "/" + file)
        }
        try syncDirectory()
    }

    /// Copies `contents` into the spool as `file`, durably, unless the spool is full. Refused
    /// while the repository refused a file spooled earlier (``refused()``): PostgreSQL took that
    /// push for done, so the refusal can only reach it through the pushes that follow.
    public func spool(_ file: String, contents: Data) throws -> Outcome {
        try makeDirectory()
        if let first = refused().first {
            let reason = (try? String(contentsOfFile: refusedDirectory + "/" + first + ".reason", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            throw BunkerError(.walConflict, "The repository refused \(first), spooled earlier\(reason.isEmpty ? "" : ": \(reason)"). Archiving stops here until that is resolved: find out which cluster wrote it (docs/postgres-pitr.md), then remove it from \(refusedDirectory). \(file) was not archived.")
        }
        if let existing = self.contents(of: file) {
            guard existing == contents else {
                throw BunkerError(.walConflict, "\(file) is waiting in the WAL spool \(directory) with different content; it was not overwritten. Two clusters may be archiving into one source.")
            }
            return .alreadySpooled
        }
        guard try pending().count < capacity else { return .full }
        let temporary = directory + "/.tmp-" + UUID().uuidString
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failure("create", temporary) }
        do {
            defer { close(fd) }
            try writeAll(contents, to: fd, path: temporary)
            guard fsync(fd) == 0 else { throw failure("fsync", temporary) }
        } catch {
            unlink(temporary)
            throw error
        }
        FaultPoints.hit("wal-spool-before-rename")
        guard rename(temporary, directory + "/" + file) == 0 else {
            let error = failure("rename", temporary)
            unlink(temporary)
            throw error
        }
        try syncDirectory()
        return .spooled
    }

    /// Removes a file the repository now holds.
    public func remove(_ file: String) throws {
        guard unlink(directory + "/" + file) == 0 || errno == ENOENT else { throw failure("remove", directory + "/" + file) }
        try syncDirectory()
    }

    /// Runs `body` holding the drainer's lock; returns nil at once if another drainer holds it.
    public func withDrainLock<R>(_ body: () async throws -> R) async throws -> R? {
        try makeDirectory()
        let path = directory + "/.drain.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failure("open", path) }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            if errno == EWOULDBLOCK { return nil }
            throw failure("lock", path)
        }
        return try await body()
    }

    /// Whether a drainer holds the lock now.
    public func drainerRuns() -> Bool {
        let fd = open(directory + "/.drain.lock", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return false
        }
        return true
    }

    private func makeDirectory() throws {
        for dir in [(directory as NSString).deletingLastPathComponent, directory] where mkdir(dir, 0o700) != 0 && errno != EEXIST {
            throw failure("create directory", dir)
        }
    }

    private func syncDirectory() throws {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("open", directory) }
        defer { close(fd) }
        if fsync(fd) != 0 && errno != EINVAL { throw failure("fsync", directory) }
    }

    private func failure(_ operation: String, _ path: String) -> BunkerError {
        let failure = POSIXFailure(errno: errno, operation: operation, path: path)
        return BunkerError(failure.errno == ENOSPC ? .storageFull : .sourceIO, "The WAL spool cannot \(operation) \(path): \(String(cString: strerror(failure.errno))). Check the spool directory's owner, mode and free space.", cause: failure)
    }
}
