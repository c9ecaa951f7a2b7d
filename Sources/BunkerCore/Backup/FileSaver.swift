import Crypto
import Foundation

/// Reads a file or stream, cuts it into chunks and hands them to the ``BlobSaver`` in batches;
/// returns the chunk list and the SHA-256 of the whole content.
///
/// Up to ``workers`` files are read at once, each with one pooled chunk buffer, and up to two
/// batches of a file are sealed at once, so both cores work whether the tree has many small files
/// or one large one. SQLite databases are cut at page boundaries (see ``sqlitePageSize(fd:)``).
final class FileSaver: Sendable {
    /// A file's content as stored: its chunks in order, the SHA-256 of all of it, its length.
    struct Content: Sendable {
        var chunks: [ID]
        var sha256: String
        var size: UInt64
    }

    private let repository: Repository
    private let blobs: BlobSaver
    private let progress: OperationProgress?
    private let limiter = AsyncLimiter(limit: FileSaver.workers)
    private let buffers: WorkerPool<ChunkBuffer>
    private let gear: [UInt64]

    /// Parallel files being read; each holds one chunk buffer of twice the maximum chunk size.
    static let workers = 2

    init(blobs: BlobSaver, repository: Repository, progress: OperationProgress?) {
        self.repository = repository
        self.blobs = blobs
        self.progress = progress
        let bufferSize = repository.config.chunker.maxSize * 2
        self.buffers = WorkerPool { ChunkBuffer(size: bufferSize) }
        self.gear = Chunker.gearTable(seed: repository.config.chunker.seed)
    }

    /// Lets go of the chunk buffers no file is being read into (8 MiB each): before a listing of
    /// tens of MB is compressed and sealed, which happens when the large file it names has just
    /// been read, often as the last work of a backup.
    func releaseIdleBuffers() {
        buffers.dropIdle()
    }

    /// Stores the regular file at `location`, which must still be the one `status` describes;
    /// waits for one of the ``workers`` permits first.
    func saveFile(at location: EntryLocation, expecting status: FileStatus, path: String) async throws -> Content {
        try await limiter.withPermit {
            let fd = try location.openFile(expecting: status)
            defer { close(fd) }
            progress?.update { $0.currentPath = path }
            posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
            let fixedSize = Self.sqlitePageSize(fd: fd).flatMap(repository.config.chunker.pageAlignedChunkSize(pageSize:))
            return try await saveContent(fixedSize: fixedSize) { target in
                try FileSystem.read(fd: fd, into: target, path: path)
            }
        }
    }

    /// Stores a stream read to its end as the content of the file `name`, then lets the stream
    /// report whether its producer failed. With `pageSize`, the content is cut at page
    /// boundaries, as SQLite files are (see ``sqlitePageSize(fd:)``).
    func saveStream(_ stream: any ByteStream, name: String, pageSize: Int? = nil) async throws -> Content {
        progress?.update { $0.currentPath = name }
        let chunkLimit = repository.config.chunker.maxSize
        let fixedSize = pageSize.flatMap(repository.config.chunker.pageAlignedChunkSize(pageSize:))
        let content = try await saveContent(fixedSize: fixedSize, ready: { try await stream.prepareRead(chunkLimit) }) { target in
            try stream.read(into: target)
        }
        try stream.finish()
        return content
    }

    /// Chunks what `read` yields and stores the chunks the repository lacks.
    private func saveContent(
        fixedSize: Int?, ready: () async throws -> Void = {},
        read: @escaping (UnsafeMutableRawBufferPointer) throws -> Int
    ) async throws -> Content {
        let buffer = buffers.take()
        defer { buffers.put(buffer) }
        var chunker = Chunker(parameters: repository.config.chunker, gear: gear, buffer: buffer.memory, fixedSize: fixedSize, read: read)
        var hasher = ContentHasher(key: repository.key)
        var total: UInt64 = 0
        var ids: [ID] = []
        // Chunks go to the sealing tasks in batches of about half a MiB, so that small
        // page-aligned database chunks cost one task and one packer call per batch, not each.
        try await withThrowingTaskGroup(of: (Int, [ID]).self) { group in
            var results: [[ID]?] = []
            var inFlight = 0
            var batch: [Data] = []
            var batchIDs: [ID] = []
            var batchBytes = 0
            func dispatch() async throws {
                // A safe point to stop a cancelled backup: what was dispatched is settled by
                // ``WriteSession/settleAfterFailure()`` as after any failure, so the repository
                // is as a kill would leave it (it verifies, and the next backup completes).
                try Task.checkCancellation()
                if inFlight >= 2, let (i, done) = try await group.next() {
                    results[i] = done
                    inFlight -= 1
                }
                let work = batch
                let known = batchIDs.isEmpty ? nil : batchIDs
                let position = results.count
                results.append(nil)
                batch = []
                batchIDs = []
                batchBytes = 0
                group.addTask { (position, try await self.blobs.save(.data, work, ids: known)) }
                inFlight += 1
            }
            // `ready` waits (suspended) for a whole chunk's input, so `next` does not block.
            while true {
                try await ready()
                guard let chunk = try chunker.next({ bytes -> Data in
                    if let id = hasher.add(chunk: bytes) { batchIDs.append(id) }
                    return Data(bytes)
                }) else { break }
                total += UInt64(chunk.count)
                progress?.update { $0.bytesDone += UInt64(chunk.count) }
                batch.append(chunk)
                batchBytes += chunk.count
                if batchBytes >= BlobSaver.batchBytes { try await dispatch() }
            }
            if !batch.isEmpty { try await dispatch() }
            while let (i, done) = try await group.next() { results[i] = done }
            // A large database has half a million chunks (18 MB of ids at 10 GiB): the list is
            // allocated once at its length, and each batch's part let go of as it is copied, so
            // that it is never held twice over, as growing it by appends would (the old and the
            // doubled buffer side by side, beside every batch's part).
            ids.reserveCapacity(results.reduce(0) { $0 + $1!.count })
            for i in results.indices {
                ids += results[i]!
                results[i] = nil
            }
        }
        return Content(chunks: ids, sha256: hasher.finalize().hex, size: total)
    }

    /// The SHA-256 of a file's content and, where the processor hashes two messages at once
    /// (``SHA256Stream``), each chunk's id in the same pass over its bytes: they were the two
    /// largest hashing jobs of a backup, over the same bytes. Elsewhere the ids are left to the
    /// ``BlobSaver``'s sealing tasks, as before.
    ///
    /// The trade: a chunk's id is computed on the task reading its file, not on a sealing task.
    /// On two cores that is all gain (a 1 GiB first backup: 0.5 CPU s less of 5.5); on many
    /// cores a single large file would be read at the pair's 3 GB/s at most (two streams of
    /// 1.5 GB/s), against 1.8 GB/s for the file's hash alone before, still above what zstd
    /// compresses on one core.
    private struct ContentHasher {
        private let key: KeyedSHA256?
        private var paired = SHA256Stream()
        private var alone = SHA256()

        init(key: MasterKey) {
            self.key = key.pairedIDs
        }

        /// Adds the next chunk of the content; returns the chunk's id when it was computed here.
        mutating func add(chunk bytes: UnsafeRawBufferPointer) -> ID? {
            guard let key else {
                alone.update(bufferPointer: bytes)
                return nil
            }
            var chunk = key.start()
            SHA256Stream.update(&paired, &chunk, with: bytes)
            return key.finalize(chunk)
        }

        /// The SHA-256 of the whole content.
        consuming func finalize() -> ID {
            key == nil ? ID(digest: alone.finalize()) : paired.finalize()
        }
    }

    /// The page size of an SQLite database file, read from its header; nil for other files.
    ///
    /// SQLite changes pages in place, so a few changed rows dirty a few pages; cutting the file at
    /// page boundaries into small fixed chunks stores only those, where content-defined chunks of
    /// a megabyte would each be dirtied by one scattered change.
    static func sqlitePageSize(fd: Int32) -> Int? {
        var header = [UInt8](repeating: 0, count: 18)
        guard pread(fd, &header, 18, 0) == 18, header.prefix(16).elementsEqual(Array("SQLite format 3\0".utf8)) else {
            return nil
        }
        let raw = Int(header[16]) << 8 | Int(header[17])
        let size = raw == 1 ? 65536 : raw
        guard size >= 512, size <= 65536, size & (size - 1) == 0 else { return nil }
        return size
    }
}

/// A reusable chunker buffer (twice the maximum chunk size), pooled so that no file allocates one.
final class ChunkBuffer: @unchecked Sendable {
    let memory: UnsafeMutableRawBufferPointer

    init(size: Int) {
        memory = .allocate(byteCount: size, alignment: 64)
    }

    deinit { memory.deallocate() }
}
