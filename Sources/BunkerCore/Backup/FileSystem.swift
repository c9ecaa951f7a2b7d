import Foundation

/// What `lstat` says about an entry, in the units snapshots store.
struct FileStatus {
    var kind: Node.Kind
    var mode: UInt32
    var size: UInt64
    var mtimeNanoseconds: Int64
    var inode: UInt64
    var device: UInt64
    var rdev: UInt64
    var uid: UInt32
    var gid: UInt32

    init(_ st: stat) {
        kind = FileStatus.kind(of: st.st_mode)
        mode = UInt32(st.st_mode & 0o7777)
        size = UInt64(st.st_size)
        mtimeNanoseconds = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        inode = UInt64(st.st_ino)
        device = UInt64(st.st_dev)
        rdev = UInt64(st.st_rdev)
        uid = st.st_uid
        gid = st.st_gid
    }

    init(path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            throw BunkerError(.sourceIO, "Cannot read \(path): \(String(cString: strerror(errno))).")
        }
        self.init(st)
    }

    static func kind(of mode: mode_t) -> Node.Kind { Node.Kind(mode: mode) }

    /// Whether an opened descriptor's `fstat` is the very entry this `lstat` chose.
    func isSameEntry(as opened: stat) -> Bool {
        FileStatus.kind(of: opened.st_mode) == kind && UInt64(opened.st_dev) == device && UInt64(opened.st_ino) == inode
    }
}

/// An open directory, closed when the last reference goes away.
///
/// Walks and restores go through directory descriptors (`openat`, `O_NOFOLLOW`) rather than
/// paths, so that a name that is swapped for a symlink while Bunker works is never followed: the
/// entry Bunker checked is the entry it reads or writes.
public final class DirectoryHandle: Sendable {
    public let fd: Int32

    /// Takes ownership of an open directory descriptor.
    public init(owning fd: Int32) {
        self.fd = fd
    }

    deinit { close(fd) }

    /// Opens a directory named by the user (a source's path, a restore target): symlinks in the
    /// path are followed, as the user named it.
    public convenience init(path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw BunkerError(.sourceIO, "Cannot open the directory \(path): \(String(cString: strerror(errno))).")
        }
        self.init(owning: fd)
    }

    /// Opens the directory `name` inside this one, refusing a symlink or anything else.
    public func openDirectory(_ name: [UInt8]) throws -> DirectoryHandle {
        let fd = FileName.with(name) { openat(self.fd, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        guard fd >= 0 else { throw FileName.error(errno, "open the directory", name) }
        return DirectoryHandle(owning: fd)
    }

    /// `lstat` of the entry `name`, or nil when there is none.
    public func status(of name: [UInt8]) throws -> stat? {
        var st = stat()
        let result = FileName.with(name) { fstatat(fd, $0, &st, AT_SYMLINK_NOFOLLOW) }
        if result == 0 { return st }
        if errno == ENOENT { return nil }
        throw FileName.error(errno, "read", name)
    }

    /// `fstat` of this directory.
    public func status() throws -> stat {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw BunkerError(.sourceIO, "Cannot read a directory: \(String(cString: strerror(errno))).") }
        return st
    }

    /// Removes the entry `name` and, for a directory, everything in it, without following symlinks.
    public func removeTree(_ name: [UInt8]) throws {
        guard let st = try status(of: name) else { return }
        if st.st_mode & S_IFMT == S_IFDIR {
            let child = try openDirectory(name)
            // A directory without write or search permission cannot be emptied: grant them first.
            fchmod(child.fd, 0o700)
            for entry in try child.entries() { try child.removeTree(entry) }
            guard FileName.with(name, { unlinkat(fd, $0, AT_REMOVEDIR) }) == 0 || errno == ENOENT else {
                throw FileName.error(errno, "remove the directory", name)
            }
        } else {
            guard FileName.with(name, { unlinkat(fd, $0, 0) }) == 0 || errno == ENOENT else {
                throw FileName.error(errno, "remove", name)
            }
        }
    }

    /// Moves the entry `name` of this directory to `newName` in `target` (same filesystem),
    /// replacing nothing: a directory must not exist at the destination, a file is refused there.
    public func move(_ name: [UInt8], to target: DirectoryHandle, as newName: [UInt8]? = nil) throws {
        let destination = newName ?? name
        var result = FileName.with(name) { from in
            FileName.with(destination) { renameat2(fd, from, target.fd, $0, renameNoReplace) }
        }
        if result != 0 && errno == EINVAL {
            // A filesystem without RENAME_NOREPLACE: check, then rename (Bunker is the only writer
            // of its staging directories).
            guard try target.status(of: destination) == nil else { throw FileName.error(EEXIST, "move", name) }
            result = FileName.with(name) { from in FileName.with(destination) { renameat(fd, from, target.fd, $0) } }
        }
        guard result == 0 else { throw FileName.error(errno, "move", name) }
    }

    /// Flushes this directory's entries (a rename into it) to disk.
    public func sync() throws {
        guard fsync(fd) == 0 else { throw BunkerError(.sourceIO, "Cannot flush a directory to disk: \(String(cString: strerror(errno))).") }
    }

    /// The names in this directory, as bytes, sorted by their bytes (without `.` and `..`).
    ///
    /// Read with `getdents64` on this descriptor rather than through `opendir`: a walk lists every
    /// directory once, and `fdopendir` cost a second descriptor, its `DIR` and a `closedir` for
    /// each (a tenth of a no-change backup of half a million files went to listing directories).
    /// The read position belongs to the open directory: not for two listings of one handle at once.
    public func entries() throws -> [[UInt8]] {
        // A listing reads the directory from its start. A directory that cannot seek (some FUSE
        // filesystems) is read from where it is, which for a handle listed once is its start.
        guard lseek(fd, 0, SEEK_SET) == 0 || errno == ESPIPE else {
            throw BunkerError(.sourceIO, "Cannot list a directory: \(String(cString: strerror(errno))).")
        }
        var names: [[UInt8]] = []
        try withUnsafeTemporaryAllocation(byteCount: DirectoryHandle.listingBufferSize, alignment: 8) { buffer in
            while true {
                let count = getdents64(fd, buffer.baseAddress!, buffer.count)
                if count < 0 {
                    if errno == EINTR { continue }
                    throw BunkerError(.sourceIO, "Cannot list a directory: \(String(cString: strerror(errno))).")
                }
                if count == 0 { break }
                // Each record: d_ino (8), d_off (8), d_reclen (2), d_type (1), then the name and
                // its NUL, padded to 8 bytes.
                var at = 0
                while at < count {
                    let length = Int(buffer.load(fromByteOffset: at + 16, as: UInt16.self))
                    guard length >= 20, at + length <= count else {
                        throw BunkerError(.sourceIO, "Cannot list a directory: the system returned a malformed entry.")
                    }
                    let start = buffer.baseAddress! + at + 19
                    let nameLength = strnlen(start.assumingMemoryBound(to: CChar.self), length - 19)
                    let name = UnsafeRawBufferPointer(start: start, count: nameLength)
                    if !(nameLength == 1 && name[0] == 0x2E) && !(nameLength == 2 && name[0] == 0x2E && name[1] == 0x2E) {
                        names.append(Array(name))
                    }
                    at += length
                }
            }
        }
        return names.sorted { FileName.precedes($0, $1) }
    }

    /// The `getdents64` buffer: room for a few hundred names per call.
    static let listingBufferSize = 32 << 10
}

/// getdents64(2): the directory entries after the descriptor's offset, as the kernel lays them out.
@_silgen_name("getdents64")
func getdents64(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int

/// renameat2(2), which glibc declares only for _GNU_SOURCE.
@_silgen_name("renameat2")
public func renameat2(_ olddirfd: Int32, _ oldpath: UnsafePointer<CChar>, _ newdirfd: Int32, _ newpath: UnsafePointer<CChar>, _ flags: UInt32) -> Int32

/// RENAME_NOREPLACE: fail with EEXIST rather than replace the destination.
public let renameNoReplace: UInt32 = 1
/// RENAME_EXCHANGE: swap the two names in one step.
public let renameExchange: UInt32 = 2

/// Names as bytes: C strings made from them, and readable forms for messages.
public enum FileName {
    /// Calls `body` with `name` as a NUL-terminated C string.
    ///
    /// The string is made on the stack when under 1 KiB, as a single name always is: a walk makes
    /// one for each `lstat` and `open`.
    public static func with<R>(_ name: [UInt8], _ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(of: CChar.self, capacity: name.count + 1) { buffer in
            name.withUnsafeBytes { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: $0) }
            buffer[name.count] = 0
            return try body(UnsafePointer(buffer.baseAddress!))
        }
    }

    /// Whether `a` sorts before `b` by their bytes, as listings order names (``Node/compareNames(_:_:)``).
    static func precedes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { a in b.withUnsafeBytes { b in Node.compareNames(a, b) < 0 } }
    }

    /// A readable form of a name (U+FFFD for bytes that are not UTF-8).
    public static func display(_ name: [UInt8]) -> String {
        String(decoding: name, as: UTF8.self)
    }

    /// A `sourceIO` error naming the action, the name and the system's reason.
    public static func error(_ err: Int32, _ action: String, _ name: [UInt8]) -> BunkerError {
        BunkerError(.sourceIO, "Cannot \(action) \(display(name)): \(String(cString: strerror(err))).")
    }
}

enum FileSystem {
    /// The names in a directory, sorted by their bytes (readable forms: for progress only).
    static func entries(of dir: String) throws -> [String] {
        try DirectoryHandle(path: dir).entries().map(FileName.display)
    }

    /// Reads up to `buffer.count` bytes, retrying on EINTR and short reads; 0 at the end.
    static func read(fd: Int32, into buffer: UnsafeMutableRawBufferPointer, path: String) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = Glibc.read(fd, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw BunkerError(.sourceIO, "Cannot read \(path): \(String(cString: strerror(errno))).")
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    static func absolute(_ path: String) -> String {
        let joined = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return (joined as NSString).standardizingPath
    }
}

/// Where an entry is: a name inside an open directory, or (a backup's root item) a path.
struct EntryLocation: Sendable {
    /// The open directory holding the entry; nil when `name` is a whole path.
    let directory: DirectoryHandle?
    let name: [UInt8]

    private var dirFD: Int32 { directory?.fd ?? AT_FDCWD }

    /// `lstat` of the entry.
    func status() throws -> stat {
        var st = stat()
        let result = FileName.with(name) { fstatat(dirFD, $0, &st, AT_SYMLINK_NOFOLLOW) }
        guard result == 0 else { throw FileName.error(errno, "read", name) }
        return st
    }

    /// Opens the regular file `status` describes for reading, or throws if the name now leads to
    /// anything else (a symlink is not followed; a FIFO does not block the open; a device is not read).
    func openFile(expecting status: FileStatus) throws -> Int32 {
        let fd = FileName.with(name) { openat(dirFD, $0, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC) }
        guard fd >= 0 else {
            if errno == ELOOP { throw changed("a symlink") }
            throw FileName.error(errno, "open", name)
        }
        var opened = stat()
        guard fstat(fd, &opened) == 0, status.isSameEntry(as: opened) else {
            close(fd)
            throw changed(FileStatus(opened).kind.article)
        }
        // O_NONBLOCK only guarded the open; reads of a regular file never block anyway.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return fd
    }

    /// Opens the directory `status` describes, or throws if the name now leads elsewhere.
    func openDirectory(expecting status: FileStatus) throws -> DirectoryHandle {
        let fd = FileName.with(name) { openat(dirFD, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) }
        guard fd >= 0 else {
            if errno == ELOOP || errno == ENOTDIR { throw changed("something that is not a directory") }
            throw FileName.error(errno, "open the directory", name)
        }
        let handle = DirectoryHandle(owning: fd)
        var opened = stat()
        guard fstat(fd, &opened) == 0, status.isSameEntry(as: opened) else {
            throw changed("another directory")
        }
        return handle
    }

    /// A symlink's target, as bytes.
    func readLink() throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = FileName.with(name) { path in
            buffer.withUnsafeMutableBytes { readlinkat(dirFD, path, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count - 1) }
        }
        guard n >= 0 else { throw FileName.error(errno, "read the symlink", name) }
        return Array(buffer[0..<n])
    }

    private func changed(_ what: String) -> BunkerError {
        BunkerError(.sourceIO, "Skipped \(FileName.display(name)): it was replaced by \(what) while the backup ran, so it was not read.")
    }
}

extension Node.Kind {
    /// The kind of an entry whose `st_mode` this is.
    public init(mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFREG: self = .file
        case S_IFDIR: self = .directory
        case S_IFLNK: self = .symlink
        case S_IFIFO: self = .fifo
        case S_IFSOCK: self = .socket
        case S_IFCHR: self = .characterDevice
        default: self = .blockDevice
        }
    }

    /// How a message names an entry of this kind.
    public var article: String {
        switch self {
        case .file: "a regular file"
        case .directory: "a directory"
        case .symlink: "a symlink"
        case .fifo: "a FIFO"
        case .socket: "a socket"
        case .characterDevice: "a character device"
        case .blockDevice: "a block device"
        }
    }
}
