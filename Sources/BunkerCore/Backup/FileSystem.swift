import Foundation

/// What `lstat` says about an entry, in the units snapshots store.
struct FileStatus {
    var kind: Node.Kind?
    var mode: UInt32
    var size: UInt64
    var mtimeNanoseconds: Int64
    var inode: UInt64
    var device: UInt64
    var uid: UInt32
    var gid: UInt32

    init(path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            throw BunkerError(.sourceIO, "Cannot read \(path): \(String(cString: strerror(errno))).")
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .file
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        default: kind = nil
        }
        mode = UInt32(st.st_mode & 0o7777)
        size = UInt64(st.st_size)
        mtimeNanoseconds = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        inode = UInt64(st.st_ino)
        device = UInt64(st.st_dev)
        uid = st.st_uid
        gid = st.st_gid
    }
}

enum FileSystem {
    /// The names in a directory, sorted by their bytes.
    static func entries(of dir: String) throws -> [String] {
        guard let d = opendir(dir) else {
            throw BunkerError(.sourceIO, "Cannot list \(dir): \(String(cString: strerror(errno))).")
        }
        defer { closedir(d) }
        var names: [String] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    static func readLink(_ path: String) throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n >= 0 else {
            throw BunkerError(.sourceIO, "Cannot read symlink \(path): \(String(cString: strerror(errno))).")
        }
        return buffer.withUnsafeBufferPointer { ptr in
            String(decoding: UnsafeRawBufferPointer(start: ptr.baseAddress, count: n), as: UTF8.self)
        }
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
