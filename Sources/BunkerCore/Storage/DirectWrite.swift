import Foundation

/// Writes a large object (a pack) around the page cache, with `O_DIRECT`.
///
/// A backup writes each pack once and does not read it back: copying it into the page cache
/// first, then writing the cache back, only costs CPU. On the benchmark's machine, writing
/// 565 MB of packs and syncing them took 1.35-1.6 s of CPU buffered (most of it the kernel copying
/// into freshly allocated cache pages) and 0.25-0.3 s with `O_DIRECT`; a first backup of the
/// 1 GiB set spent 14 % of its CPU in that copy.
///
/// `O_DIRECT` needs the buffer, offset and length aligned to the device's block: the whole 4 KiB
/// blocks go through a reused 1 MiB aligned buffer (a copy in user space costs a tenth of the
/// kernel's), the last partial block is written buffered. The caller still fsyncs: `O_DIRECT`
/// does not flush the disk's own cache or the file's metadata. A file system without `O_DIRECT`
/// (tmpfs, some FUSE and network file systems) refuses to switch it on, or the first write,
/// and the object is written buffered as before.
enum DirectWrite {
    /// Objects at least this large are written around the cache: packs, not index files or
    /// snapshots.
    static let threshold = 1 << 20
    static let block = 4096
    static let bufferSize = 1 << 20

    #if arch(x86_64) || arch(i386)
    /// `O_DIRECT`, which Glibc's module leaves out (it needs `_GNU_SOURCE`); the value differs
    /// between architectures.
    static let flag: Int32 = 0o40000
    #elseif arch(arm64) || arch(arm)
    static let flag: Int32 = 0o200000
    #else
    static let flag: Int32 = 0
    #endif

    private final class AlignedBuffer {
        let pointer: UnsafeMutableRawPointer

        init() {
            var pointer: UnsafeMutableRawPointer?
            precondition(posix_memalign(&pointer, DirectWrite.block, DirectWrite.bufferSize) == 0, "out of memory")
            self.pointer = pointer!
        }

        deinit { free(pointer) }
    }

    private static let buffers = WorkerPool { AlignedBuffer() }

    /// Writes `data` to the empty file `fd` from offset 0: around the cache where the file system
    /// allows it, buffered otherwise. Throws the `POSIXFailure` of a failed write.
    static func write(_ data: Data, to fd: Int32, path: String) throws {
        let flags = fcntl(fd, F_GETFL)
        let aligned = data.count / block * block
        guard flag != 0, data.count >= threshold, flags >= 0, fcntl(fd, F_SETFL, flags | flag) == 0 else {
            return try writeBuffered(data, from: 0, to: fd, path: path)
        }
        var done = 0
        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            let buffer = buffers.take()
            defer { buffers.put(buffer) }
            while done < aligned {
                let count = min(bufferSize, aligned - done)
                buffer.pointer.copyMemory(from: bytes.baseAddress! + done, byteCount: count)
                var written = 0
                while written < count {
                    let n = pwrite(fd, buffer.pointer + written, count - written, off_t(done + written))
                    if n < 0 {
                        let err = errno
                        if err == EINTR { continue }
                        // Refused at the first write (the file system takes the flag but not
                        // the I/O): the rest goes buffered from here.
                        if err == EINVAL && done == 0 && written == 0 { return }
                        throw POSIXFailure(errno: err, operation: "write", path: path)
                    }
                    written += n
                }
                done += count
            }
        }
        _ = fcntl(fd, F_SETFL, flags)
        try writeBuffered(data, from: done, to: fd, path: path)
    }

    private static func writeBuffered(_ data: Data, from start: Int, to fd: Int32, path: String) throws {
        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var done = start
            while done < bytes.count {
                let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(done))
                if n < 0 {
                    let err = errno
                    if err == EINTR { continue }
                    throw POSIXFailure(errno: err, operation: "write", path: path)
                }
                done += n
            }
        }
    }
}
