import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A repository in a local directory.
///
/// Objects are written to a temporary file in the object's directory, fsynced, then `link`ed to
/// their final name (which fails instead of replacing an existing object), and the directory is
/// fsynced. Directories are created 0700 and files 0600, except that a file in a directory its
/// group may read is given that group and mode 0640: an administrator who opened `wal/` and
/// `keys/` to PostgreSQL's group (docs/postgres-pitr.md) keeps them open to it for what root's
/// `bunker` writes there later (a `wal push` by hand, streamed WAL, a new key). Packs are spread
/// over 256 subdirectories by the first two hex digits of their name.
public struct LocalStorage: Storage, SpaceReporting, TemporaryFileCleaning {
    /// The repository's root directory.
    public let root: String

    private static let temporaryPrefix = ".tmp-"

    public init(path: String) {
        self.root = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
    }

    /// Creates the root and every kind's directory (the 256 pack subdirectories too).
    public func create() throws {
        try makeDirectory(root)
        for kind in ObjectKind.allCases where kind != .config {
            try makeDirectory(directory(of: kind))
        }
        for i in 0..<256 {
            try makeDirectory(directory(of: .pack) + "/" + String(format: "%02x", i))
        }
        try syncDirectory(root)
    }

    func directory(of kind: ObjectKind) -> String {
        kind == .config ? root : root + "/" + kind.rawValue
    }

    func path(of handle: ObjectHandle) -> String {
        switch handle.kind {
        case .config: return root + "/config"
        case .pack: return directory(of: .pack) + "/" + String(handle.name.prefix(2)) + "/" + handle.name
        default: return directory(of: handle.kind) + "/" + handle.name
        }
    }

    private func validate(_ handle: ObjectHandle) throws {
        let name = handle.name
        guard !name.isEmpty, !name.contains("/"), !name.hasPrefix("."), name != "..",
              handle.kind != .pack || name.utf8.count >= 2 else {
            throw BunkerError(.invalidArgument, "Invalid object name \"\(name)\".")
        }
    }

    public func save(_ handle: ObjectHandle, data: Data) async throws {
        // Writing and two fsyncs block for as long as the disk takes: on a thread of their own,
        // not one of the few that run every task (on two cores, a backup would otherwise stop
        // hashing and compressing while each pack goes to disk).
        try await BlockingIO.run { try saveBlocking(handle, data: data) }
    }

    private func saveBlocking(_ handle: ObjectHandle, data: Data) throws {
        try validate(handle)
        let final = path(of: handle)
        let dir = (final as NSString).deletingLastPathComponent
        // Pack subdirectories, and `holds/` or `catalog/` in repositories made before them.
        if handle.kind == .pack || handle.kind.isLateAddition { try makeDirectory(dir) }
        let temp = dir + "/" + Self.temporaryPrefix + UUID().uuidString
        do {
            try writeFile(temp, data)
            FaultPoints.hit("storage-before-rename")
            if link(temp, final) != 0 {
                let err = errno
                if err == EEXIST {
                    throw BunkerError(.objectExists, "\(handle) already exists in the repository; objects are never overwritten.")
                }
                throw POSIXFailure(errno: err, operation: "link", path: final)
            }
            unlink(temp)
            try syncDirectory(dir)
        } catch let failure as POSIXFailure {
            unlink(temp)
            throw BunkerError.storage(failure)
        } catch {
            unlink(temp)
            throw error
        }
    }

    public func load(_ handle: ObjectHandle, range: Range<Int>?) async throws -> Data {
        try validate(handle)
        let file = path(of: handle)
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let err = errno
            if err == ENOENT { throw BunkerError(.objectNotFound, "\(handle) is missing from the repository.") }
            throw BunkerError.storage(POSIXFailure(errno: err, operation: "open", path: file))
        }
        defer { close(fd) }
        var st = Glibc.stat.init()
        guard fstat(fd, &st) == 0 else { throw BunkerError.storage(POSIXFailure(errno: errno, operation: "stat", path: file)) }
        let size = Int(st.st_size)
        let start = range?.lowerBound ?? 0
        let count = range?.count ?? size
        if count >= Self.mappedLoadSize, start + count <= size, let mapped = Self.map(fd, start: start, count: count) {
            return mapped
        }
        var data = Data(count: count)
        var done = 0
        try data.withUnsafeMutableBytes { (buffer: UnsafeMutableRawBufferPointer) in
            while done < count {
                let n = pread(fd, buffer.baseAddress! + done, count - done, off_t(start + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw BunkerError.storage(POSIXFailure(errno: errno, operation: "read", path: file))
                }
                if n == 0 { break }
                done += n
            }
        }
        if done < count {
            throw BunkerError(.corruptObject, "\(handle) is shorter than expected (wanted bytes \(start)..<\(start + count), file ends at \(start + done)); the object is truncated.")
        }
        return data
    }

    /// Loads of at least this many bytes (whole packs for `verify` and `copy`, a restore's runs of
    /// chunks) map the file instead of reading it: the bytes are the page cache's own pages, where
    /// a read would zero fresh memory and copy into it: on the benchmark's 1 GiB set a
    /// `verify --read-data`'s system time falls from 0.75 to 0.2 s. Smaller loads are read:
    /// mapping and unmapping cost more than copying a few pages.
    static let mappedLoadSize = 512 << 10

    /// `count` bytes of `fd` from `start`, mapped private and writable (a caller that changes its
    /// copy gets pages of its own and never the file's), or nil when they cannot all be mapped
    /// and read, and the caller reads instead.
    ///
    /// Every page is read in (`MADV_POPULATE_READ`) before the bytes are handed out: a page that
    /// cannot be read, a disk's read error under a pack that `verify` must report, or a range
    /// past the end of the file, fails that call, where touching it later would kill the
    /// process with SIGBUS; the caller's read then reports the error as one. Kernels before
    /// 5.14 refuse the call, and every load is read. Populating for reading maps the page
    /// cache's pages as they are: a page is copied only if it is written. (`MAP_POPULATE`
    /// would do neither: it skips pages it cannot read, and on a writable private map it
    /// copies every page up front.)
    ///
    /// Populated pages are not pinned. Objects are never rewritten or truncated in place (a new
    /// object is linked from a temporary file; prune removes whole files, and a removed file's
    /// mapped pages stay readable), but under memory pressure the kernel may drop a clean page
    /// and read it again when touched: a read error in that moment, on a disk that read the
    /// same page a moment before, would still raise SIGBUS.
    static func map(_ fd: Int32, start: Int, count: Int) -> Data? {
        guard start >= 0, count > 0 else { return nil }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let offset = start / page * page
        let length = count + (start - offset)
        guard let base = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, off_t(offset)),
              base != MAP_FAILED else { return nil }
        guard madvise(base, length, MADV_POPULATE_READ) == 0 else {
            munmap(base, length)
            return nil
        }
        return Data(bytesNoCopy: base + (start - offset), count: count, deallocator: .custom { _, _ in munmap(base, length) })
    }

    public func stat(_ handle: ObjectHandle) async throws -> ObjectInfo {
        try validate(handle)
        let file = path(of: handle)
        var st = Glibc.stat.init()
        guard statPath(file, &st) == 0 else {
            let err = errno
            if err == ENOENT { throw BunkerError(.objectNotFound, "\(handle) is missing from the repository.") }
            throw BunkerError.storage(POSIXFailure(errno: err, operation: "stat", path: file))
        }
        return ObjectInfo(handle: handle, size: Int(st.st_size), modified: modificationTime(st))
    }

    public func list(_ kind: ObjectKind) async throws -> [ObjectInfo] {
        switch kind {
        case .config:
            if let info = try? await stat(.config) { return [info] }
            return []
        case .pack:
            var result: [ObjectInfo] = []
            for sub in try entries(of: directory(of: .pack)) where sub.utf8.count == 2 {
                result += try listFiles(in: directory(of: .pack) + "/" + sub, kind: .pack)
            }
            return result
        case .hold, .catalog, .wal:
            // Repositories made before these kinds existed have no directory until the first object.
            guard access(directory(of: kind), F_OK) == 0 || errno != ENOENT else { return [] }
            return try listFiles(in: directory(of: kind), kind: kind)
        default:
            return try listFiles(in: directory(of: kind), kind: kind)
        }
    }

    /// Names are matched as the directory is read, so only the matching objects are `stat`ed.
    public func list(_ kind: ObjectKind, prefix: String) async throws -> [ObjectInfo] {
        switch kind {
        case .config, .pack:
            return try await list(kind).filter { $0.handle.name.hasPrefix(prefix) }
        default:
            guard !kind.isLateAddition || access(directory(of: kind), F_OK) == 0 || errno != ENOENT else { return [] }
            return try listFiles(in: directory(of: kind), kind: kind, prefix: prefix)
        }
    }

    public func remove(_ handle: ObjectHandle) async throws {
        try validate(handle)
        let file = path(of: handle)
        if unlink(file) != 0 {
            let err = errno
            if err == ENOENT { throw BunkerError(.objectNotFound, "\(handle) is missing from the repository.") }
            throw BunkerError.storage(POSIXFailure(errno: err, operation: "remove", path: file))
        }
        try syncDirectory((file as NSString).deletingLastPathComponent)
    }

    /// Free and total bytes of the filesystem holding the repository.
    public func space() -> (free: UInt64, total: UInt64)? {
        var s = statvfs()
        guard statvfs(root, &s) == 0 else { return nil }
        return (UInt64(s.f_bavail) * UInt64(s.f_frsize), UInt64(s.f_blocks) * UInt64(s.f_frsize))
    }

    /// Deletes temporary files left by writers that died before renaming them into place.
    public func removeTemporaryFiles() throws -> Int {
        var removed = 0
        var dirs = ObjectKind.allCases.filter { $0 != .config && $0 != .pack }.map(directory(of:))
        dirs.append(root)
        for sub in (try? entries(of: directory(of: .pack))) ?? [] { dirs.append(directory(of: .pack) + "/" + sub) }
        for dir in dirs {
            for name in (try? entries(of: dir)) ?? [] where name.hasPrefix(Self.temporaryPrefix) {
                if unlink(dir + "/" + name) == 0 { removed += 1 }
            }
        }
        return removed
    }

    // MARK: - Helpers

    /// The objects in one directory. A name that vanishes between `readdir` and `stat` was
    /// removed meanwhile and is left out; any other failure to `stat` fails the listing, since a
    /// caller (prune) must never take an object it could not see for absent.
    private func listFiles(in dir: String, kind: ObjectKind, prefix: String = "") throws -> [ObjectInfo] {
        var result: [ObjectInfo] = []
        for name in try entries(of: dir) where !name.hasPrefix(".") && name.hasPrefix(prefix) {
            var st = Glibc.stat.init()
            guard statPath(dir + "/" + name, &st) == 0 else {
                let err = errno
                if err == ENOENT { continue }
                throw BunkerError.storage(POSIXFailure(errno: err, operation: "stat", path: dir + "/" + name))
            }
            if (st.st_mode & S_IFMT) == S_IFREG {
                result.append(ObjectInfo(handle: ObjectHandle(kind, name), size: Int(st.st_size), modified: modificationTime(st)))
            }
        }
        return result
    }

    /// The names in a directory that must exist: a missing one (a repository damaged or not
    /// mounted) fails, rather than reading as empty.
    private func entries(of dir: String) throws -> [String] {
        guard let d = opendir(dir) else {
            let err = errno
            if err == ENOENT {
                throw BunkerError(.storageIO, "The repository directory \(dir) is missing, so its objects cannot be listed. Check that the repository is mounted and complete; run `bunker verify` before any prune.",
                                  cause: POSIXFailure(errno: err, operation: "list", path: dir))
            }
            throw BunkerError.storage(POSIXFailure(errno: err, operation: "list", path: dir))
        }
        defer { closedir(d) }
        var names: [String] = []
        while true {
            // readdir returns NULL both at the end and on an error; only errno tells them apart.
            errno = 0
            guard let entry = readdir(d) else {
                let err = errno
                if err != 0 { throw BunkerError.storage(POSIXFailure(errno: err, operation: "list", path: dir)) }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    private func makeDirectory(_ dir: String) throws {
        if mkdir(dir, 0o700) != 0 && errno != EEXIST {
            throw BunkerError.storage(POSIXFailure(errno: errno, operation: "create directory", path: dir))
        }
    }

    private func writeFile(_ file: String, _ data: Data) throws {
        let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw POSIXFailure(errno: errno, operation: "create", path: file) }
        defer { close(fd) }
        var directory = Glibc.stat()
        if statPath((file as NSString).deletingLastPathComponent, &directory) == 0, directory.st_mode & S_IRGRP != 0 {
            // Best effort: a member of another group cannot hand the file to it, and then the
            // file stays the writer's alone, as before.
            if fchown(fd, uid_t.max, directory.st_gid) == 0 { fchmod(fd, 0o640) }
        }
        // Packs around the page cache (``DirectFileWriter``); a failure is the system call's,
        // which the caller maps to what it means for the repository.
        let writer = DirectFileWriter(fd: fd, path: file, size: data.count)
        try writer.write(data)
        try writer.finish()
        if fsync(fd) != 0 { throw POSIXFailure(errno: errno, operation: "fsync", path: file) }
    }

    private func syncDirectory(_ dir: String) throws {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw BunkerError.storage(POSIXFailure(errno: errno, operation: "open directory", path: dir)) }
        defer { close(fd) }
        if fsync(fd) != 0 && errno != EINVAL {
            throw BunkerError.storage(POSIXFailure(errno: errno, operation: "fsync directory", path: dir))
        }
    }
}

private func modificationTime(_ st: Glibc.stat) -> Date {
    Date(timeIntervalSince1970: Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9)
}

/// `stat(2)`, out of reach of ``LocalStorage/stat(_:)``'s name.
private func statPath(_ path: String, _ st: inout Glibc.stat) -> Int32 {
    stat(path, &st)
}

/// Runs blocking file-system calls off Swift's cooperative thread pool.
enum BlockingIO {
    private static let queue = DispatchQueue(label: "bunker.blocking-io", attributes: .concurrent)

    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }
}
