import Foundation

/// Writes a new file around the page cache, with `O_DIRECT`: a repository's packs, and the
/// large files a restore writes.
///
/// A backup writes each pack once and does not read it back, and a restore's large files are
/// written once and flushed to disk before it ends: copying them into the page cache first, then
/// writing the cache back, only costs CPU. On the benchmark's machine, writing 565 MB of packs
/// and syncing them took 1.35-1.6 s of CPU buffered (most of it the kernel copying into freshly
/// allocated cache pages) and 0.25-0.3 s with `O_DIRECT`; a first backup of the 1 GiB set spent
/// 14 % of its CPU in that copy.
///
/// `O_DIRECT` needs the buffer, offset and length aligned to the device's block. The bytes are
/// gathered in a reused 1 MiB aligned buffer (a copy in user space costs a tenth of the
/// kernel's), written whenever it is full; at the end its whole 4 KiB blocks go the same way and
/// the last partial block is written buffered. The caller still flushes (fsync, syncfs):
/// `O_DIRECT` does not flush the disk's own cache or the file's metadata. A file system without
/// `O_DIRECT` (tmpfs before Linux 6.6, some FUSE and network file systems) refuses to switch it
/// on, or refuses the first write, and the file is written buffered as before.
///
/// One caller at a time: a writer is used by the task that writes its file, which may hand a
/// write to another thread and wait for it (hence `@unchecked Sendable`).
final class DirectFileWriter: @unchecked Sendable {
    /// Files at least this large are written around the cache: packs, not index files or
    /// snapshots; a restore's large files, not its thousands of small documents.
    static let threshold = 1 << 20
    private static let block = 4096
    private static let bufferSize = 1 << 20

    #if arch(x86_64) || arch(i386)
    /// `O_DIRECT`, which Glibc's module leaves out (it needs `_GNU_SOURCE`); the value differs
    /// between architectures.
    private static let flag: Int32 = 0o40000
    #elseif arch(arm64) || arch(arm)
    private static let flag: Int32 = 0o200000
    #else
    private static let flag: Int32 = 0
    #endif

    private final class AlignedBuffer {
        let pointer: UnsafeMutableRawPointer

        /// Nil when the memory cannot be had: the file is then written buffered.
        init?() {
            var pointer: UnsafeMutableRawPointer?
            guard posix_memalign(&pointer, DirectFileWriter.block, DirectFileWriter.bufferSize) == 0, let pointer else { return nil }
            self.pointer = pointer
        }

        deinit { free(pointer) }
    }

    private static let buffers = WorkerPool { AlignedBuffer() }

    private let fd: Int32
    private let path: String
    private let flags: Int32
    /// The aligned buffer, taken when `O_DIRECT` was switched on (given back when done).
    private var buffer: AlignedBuffer?
    /// Whether writes still go around the cache.
    private var direct = false
    /// Bytes gathered at the start of the buffer, not yet written.
    private var staged = 0
    /// Bytes written to the file so far.
    private var offset = 0

    /// A writer for the empty file `fd`, from offset 0: around the cache if `size` (what the
    /// caller expects to write) reaches ``threshold`` and the file system allows it.
    init(fd: Int32, path: String, size: Int) {
        self.fd = fd
        self.path = path
        flags = fcntl(fd, F_GETFL)
        guard Self.flag != 0, size >= Self.threshold, flags >= 0, let buffer = Self.buffers.take() ?? nil else { return }
        if fcntl(fd, F_SETFL, flags | Self.flag) == 0 {
            self.buffer = buffer
            direct = true
        } else {
            Self.buffers.put(buffer)
        }
    }

    deinit {
        if let buffer { Self.buffers.put(buffer) }
    }

    /// Whether writes go around the cache (and wait for the disk).
    var isDirect: Bool { direct }

    /// Throws the `POSIXFailure` of a failed write.
    func write(_ data: Data) throws {
        try data.withUnsafeBytes { try write($0) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var consumed = 0
        while consumed < bytes.count {
            guard direct, let buffer else {
                try pwriteAll(bytes.baseAddress! + consumed, bytes.count - consumed)
                return
            }
            let count = min(Self.bufferSize - staged, bytes.count - consumed)
            (buffer.pointer + staged).copyMemory(from: bytes.baseAddress! + consumed, byteCount: count)
            staged += count
            consumed += count
            if staged == Self.bufferSize { try flush(Self.bufferSize) }
        }
    }

    /// Writes what is left: the file is then whole (not yet flushed to disk).
    func finish() throws {
        guard direct, let buffer else { return }
        let whole = staged / Self.block * Self.block
        if whole > 0 { try flush(whole) }
        // The last partial block, buffered.
        stopDirect()
        if staged > 0 {
            let rest = staged
            staged = 0
            try pwriteAll(buffer.pointer, rest)
        }
    }

    /// Writes the first `count` staged bytes (whole blocks) around the cache and moves what
    /// follows them to the buffer's start; when the file system refuses the first such write,
    /// writes everything staged buffered and goes on buffered.
    private func flush(_ count: Int) throws {
        let buffer = buffer!
        var written = 0
        while written < count {
            let n = pwrite(fd, buffer.pointer + written, count - written, off_t(offset))
            if n < 0 {
                let err = errno
                if err == EINTR { continue }
                if err == EINVAL && offset == 0 {
                    stopDirect()
                    let all = staged
                    staged = 0
                    try pwriteAll(buffer.pointer, all)
                    return
                }
                throw POSIXFailure(errno: err, operation: "write", path: path)
            }
            written += n
            offset += n
        }
        staged -= count
        if staged > 0 { buffer.pointer.copyMemory(from: buffer.pointer + count, byteCount: staged) }
    }

    private func stopDirect() {
        if direct { _ = fcntl(fd, F_SETFL, flags) }
        direct = false
    }

    private func pwriteAll(_ start: UnsafeRawPointer, _ count: Int) throws {
        var done = 0
        while done < count {
            let n = pwrite(fd, start + done, count - done, off_t(offset))
            if n < 0 {
                let err = errno
                if err == EINTR { continue }
                throw POSIXFailure(errno: err, operation: "write", path: path)
            }
            done += n
            offset += n
        }
    }
}
