import Crypto
import Foundation
import Synchronization

/// A byte stream backed up as one file: a database dump read from a pipe, say.
public protocol ByteStream: Sendable {
    /// Suspends until ``read(into:)`` can return `count` bytes (or the rest of the stream)
    /// without blocking: a stream fed by a pipe waits here, so that no thread of the cooperative
    /// pool waits on its producer. Called before every chunk; the default returns at once.
    func prepareRead(_ count: Int) async throws
    /// Reads into `buffer` and returns the number of bytes read, 0 only at the end (a short
    /// read is not the end).
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Called once the stream has been read to its end; throws if its producer failed, and the
    /// backup then fails without writing a snapshot.
    func finish() throws
}

extension ByteStream {
    public func prepareRead(_ count: Int) async throws {}
}

/// One entry at the root of a snapshot, or inside a ``directory(name:_:)`` item.
public indirect enum BackupItem: Sendable {
    /// A file or directory tree on disk, stored under `name`. Unreadable entries inside it are
    /// left out with a warning.
    case path(String, name: String, excludes: [String] = [])
    /// One regular file that must be stored whole: any read error fails the backup.
    case file(String, name: String)
    /// A stream stored as a regular file named `name`.
    case stream(any ByteStream, name: String)
    /// A directory made by the backup itself, holding other items.
    case directory(name: String, [BackupItem])

    /// The name the item has in the snapshot.
    public var name: String {
        switch self {
        case .path(_, let name, _), .file(_, let name), .stream(_, let name), .directory(let name, _): return name
        }
    }
}

/// What to back up and how to label it.
public struct BackupRequest: Sendable {
    /// How the parent snapshot (the one whose metadata lets unchanged files be skipped) is chosen.
    public enum ParentSelection: Sendable {
        /// The newest snapshot of the same host and the same paths.
        case automatic
        /// Read every file.
        case none
        case snapshot(ID)
    }

    /// What the snapshot records as backed up (and the automatic parent must match).
    public var paths: [String]
    /// The root entries of the snapshot.
    public var items: [BackupItem]
    /// Exclude patterns applied to every ``BackupItem/path(_:name:excludes:)`` item.
    public var excludes: [String] = []
    public var tags: [String] = []
    public var description: String?
    /// The backup type of the Clinical Dashboard API (`full`, `database`, `files`), recorded in the snapshot.
    public var backupType: String?
    public var parent: ParentSelection = .automatic
    /// zstd level; nil uses the repository's.
    public var compressionLevel: Int?
    public var hostname: String = ProcessInfo.processInfo.hostName
    /// Called after every item is stored and before the snapshot is written: what the snapshot
    /// records about each source (a stream's producer knows its row counts only at its end).
    public var describeSources: (@Sendable () throws -> [SnapshotSource])?

    /// Backs up files and directories, each stored at the root under its last path component.
    public init(paths: [String]) {
        let absolute = paths.map(FileSystem.absolute)
        self.paths = absolute.sorted()
        self.items = absolute.sorted().map { .path($0, name: $0 == "/" ? "root" : ($0 as NSString).lastPathComponent) }
    }

    /// Backs up the given items; `paths` is what the snapshot records as their origin.
    public init(items: [BackupItem], paths: [String]) {
        self.items = items
        self.paths = paths
    }
}

/// What a finished backup reports.
public struct BackupResult: Sendable {
    public let snapshotID: ID
    public let snapshot: Snapshot
    /// Files that could not be read and were left out (the snapshot holds everything else).
    public let warnings: [String]
}

/// Backs up file trees into one snapshot.
///
/// The walk is depth-first in name order. Files whose size, mtime and inode match the parent
/// snapshot's node reuse its chunk list without being read. Other files are cut by the chunker;
/// each chunk is hashed (keyed), and if the index does not know it, compressed, sealed and handed
/// to the ``Packer``. Up to `fileWorkers` files are read at once and up to two chunks of a file
/// are sealed at once, so both cores work whether the tree has many small files or one large one.
/// Trees are saved bottom-up; the snapshot is written only after every pack and the index.
public final class Archiver: Sendable {
    private let repository: Repository
    private let request: BackupRequest
    private let progress: OperationProgress?
    private let level: Int
    private let fileLimiter: AsyncLimiter
    private let compressors: WorkerPool<ZstdCompressor>
    private let buffers: WorkerPool<ChunkBuffer>
    private let gear: [UInt64]
    private let summary = Mutex(BackupSummary())
    private let warnings = Mutex<[String]>([])
    /// What this backup has claimed in the shared index and not yet indexed: packs written, and
    /// blobs reserved but not yet in a written pack. A failed backup settles both (see
    /// ``settleAfterFailure()``).
    private let inFlight = Mutex<(packs: Set<ID>, reserved: Set<ID>)>(([], []))
    /// New small data blobs waiting for their bundle to fill up (see ``saveBlobs(_:_:packer:)``).
    private let pendingBundle = Mutex<(blobs: [(id: ID, plaintext: Data)], bytes: Int)>(([], 0))

    /// Parallel files being read; each holds one chunk buffer of twice the maximum chunk size.
    static let fileWorkers = 2
    /// Packs written between two index files during a backup.
    static let packsPerIndex = 8
    /// Bytes of chunks handed to one sealing task.
    static let batchBytes = 512 << 10
    /// New data chunks smaller than this are stored in bundles (see ``saveBlobs(_:_:packer:)``).
    static let bundleMemberLimit = 64 << 10

    public init(repository: Repository, request: BackupRequest, progress: OperationProgress? = nil) throws {
        self.repository = repository
        self.request = request
        self.progress = progress
        _ = try ExcludeRules(request.excludes)
        let level = request.compressionLevel ?? repository.config.compressionLevel
        try validateCompressionLevel(level)
        self.level = level
        self.fileLimiter = AsyncLimiter(limit: Archiver.fileWorkers)
        self.compressors = WorkerPool { ZstdCompressor(level: level) }
        let bufferSize = repository.config.chunker.maxSize * 2
        self.buffers = WorkerPool { ChunkBuffer(size: bufferSize) }
        self.gear = Chunker.gearTable(seed: repository.config.chunker.seed)
    }

    /// Runs the backup and writes the snapshot.
    public func run() async throws -> BackupResult {
        let started = repository.now()
        let clock = ContinuousClock.now
        guard !request.items.isEmpty else {
            throw BunkerError(.invalidArgument, "Nothing to back up: name at least one path.")
        }
        try validate(request.items, origin: "the snapshot")
        let (parentID, parentTree) = try await findParent(paths: request.paths)

        let packer = Packer(storage: repository.storage, key: repository.key, targetSize: repository.config.packSize) {
            [self] id, blobs, _ in
            repository.index.addPending(pack: id, blobs: blobs)
            inFlight.withLock { claims in
                claims.packs.insert(id)
                for blob in blobs { claims.reserved.remove(blob.id) }
            }
            FaultPoints.hit("backup-after-pack")
            // Index what is written every few packs, so that a backup interrupted later loses
            // at most that much work: the next one finds these blobs and does not store them again.
            if repository.index.unsavedPackCount >= Archiver.packsPerIndex {
                try await repository.flushIndex()
            }
        }

        if let progress { try startScan(items: request.items, progress: progress) }

        let rootID: ID
        do {
            var nodes: [Node] = []
            for item in request.items {
                try Task.checkCancellation()
                if let node = try await saveItem(item, parent: parentTree?.node(named: item.name), packer: packer) {
                    nodes.append(node)
                }
            }
            rootID = try await saveTree(Tree(nodes: nodes), packer: packer)
            if let last = takePendingBundle(ifAtLeast: 0) { try await packer.add([try seal(last)]) }
            try await packer.flush()
            try await repository.flushIndex()
        } catch {
            await settleAfterFailure()
            throw error
        }
        let sources = try request.describeSources?()
        FaultPoints.hit("backup-before-snapshot")

        var final = summary.withLock { $0 }
        final.warnings = warnings.withLock { $0.count }
        let elapsed = (ContinuousClock.now - clock).components
        final.durationSeconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        let snapshot = Snapshot(
            time: started, hostname: request.hostname, username: currentUserName(), paths: request.paths,
            tags: request.tags, description: request.description, tree: rootID, parent: parentID,
            programVersion: "bunker \(bunkerVersion)", summary: final, backupType: request.backupType, sources: sources)
        let id = try await repository.saveSnapshot(snapshot)
        return BackupResult(snapshotID: id, snapshot: snapshot, warnings: warnings.withLock { $0 })
    }

    /// Leaves the shared index true after a failed backup, for the next operation of the same
    /// process (the server runs many).
    ///
    /// The packs already written are indexed, so they are safe from prune and the next backup
    /// may reuse them; if even that index file cannot be written (a full disk), they are dropped
    /// from memory instead, since prune will delete them as leftovers once they are past its
    /// grace period and nothing may deduplicate against them. Blobs reserved but never written
    /// are released, or no later backup of this process would ever store them.
    private func settleAfterFailure() async {
        do {
            try await repository.flushIndex()
        } catch {
            repository.index.dropUnsaved(inFlight.withLock { $0.packs })
        }
        repository.index.release(inFlight.withLock { $0.reserved })
        inFlight.withLock { $0 = ([], []) }
        pendingBundle.withLock { $0 = ([], 0) }
    }

    /// Refuses items that would collide or cannot be read at all, before anything is stored.
    private func validate(_ items: [BackupItem], origin: String) throws {
        var names: [String: String] = [:]
        for item in items {
            let described: String
            switch item {
            case .path(let path, _, let excludes):
                _ = try ExcludeRules(excludes)
                described = path
                var st = stat()
                if lstat(path, &st) != 0 {
                    throw BunkerError(.invalidArgument, "Cannot back up \(path): \(String(cString: strerror(errno))).")
                }
            case .file(let path, _):
                described = path
            case .stream(_, let name):
                described = "stream \(name)"
            case .directory(let name, let children):
                described = name
                try validate(children, origin: name)
            }
            guard Node(name: item.name, type: .file, mode: 0, mtimeNanoseconds: 0, uid: 0, gid: 0).hasSafeName else {
                throw BunkerError(.invalidArgument, "\(described) cannot be stored as \(item.name.debugDescription): a name must not be empty, . or .., nor contain /.")
            }
            if let other = names[item.name] {
                throw BunkerError(.invalidArgument, "\(other) and \(described) would both be stored as \"\(item.name)\" in \(origin); back them up in separate snapshots.")
            }
            names[item.name] = described
        }
    }

    // MARK: - Parent

    private func findParent(paths: [String]) async throws -> (ID?, Tree?) {
        let chosen: ID?
        switch request.parent {
        case .none:
            return (nil, nil)
        case .snapshot(let id):
            chosen = id
        case .automatic:
            let wanted = paths.sorted()
            chosen = try await repository.snapshots().last { $0.snapshot.hostname == request.hostname && $0.snapshot.paths == wanted }?.id
        }
        guard let chosen else { return (nil, nil) }
        let snapshot = try await repository.loadSnapshot(chosen)
        // A parent whose tree cannot be read only costs speed: read every file instead.
        guard let tree = try? await repository.loadTree(snapshot.tree) else { return (nil, nil) }
        return (chosen, tree)
    }

    // MARK: - Items

    private func saveItem(_ item: BackupItem, parent: Node?, packer: Packer) async throws -> Node? {
        switch item {
        case .path(let path, let name, let excludes):
            let rules = try ExcludeRules(request.excludes + excludes)
            return try await saveEntry(at: EntryLocation(directory: nil, name: Array(path.utf8)), path: path, relative: "", name: Array(name.utf8), parent: parent, excludes: rules, packer: packer)
        case .file(let path, let name):
            let location = EntryLocation(directory: nil, name: Array(path.utf8))
            let status = FileStatus(try location.status())
            guard status.kind == .file else {
                throw BunkerError(.sourceIO, "\(path) is not a regular file.")
            }
            var node = Node(name: name, type: .file, mode: status.mode, mtimeNanoseconds: status.mtimeNanoseconds, uid: status.uid, gid: status.gid)
            let (content, sha, size) = try await fileLimiter.withPermit {
                let fd = try location.openFile(expecting: status)
                defer { close(fd) }
                return try await saveFileContent(fd: fd, path: path, packer: packer)
            }
            node.content = content
            node.sha256 = sha
            node.size = size
            countNewFile(size: size, isNew: parent?.type != .file)
            return node
        case .stream(let stream, let name):
            var node = madeNode(name: name, type: .file, mode: 0o600)
            progress?.update { $0.currentPath = name }
            let chunkLimit = repository.config.chunker.maxSize
            let (content, sha, size) = try await saveContent(of: name, fixedSize: nil, packer: packer, ready: { try await stream.prepareRead(chunkLimit) }) { target in
                try stream.read(into: target)
            }
            try stream.finish()
            node.content = content
            node.sha256 = sha
            node.size = size
            countNewFile(size: size, isNew: parent?.type != .file)
            return node
        case .directory(let name, let children):
            var node = madeNode(name: name, type: .directory, mode: 0o700)
            let parentTree: Tree?
            if let sub = parent?.subtree, parent?.type == .directory {
                parentTree = try? await repository.loadTree(sub)
            } else {
                parentTree = nil
            }
            var nodes: [Node] = []
            for child in children {
                if let saved = try await saveItem(child, parent: parentTree?.node(named: child.name), packer: packer) {
                    nodes.append(saved)
                }
            }
            node.subtree = try await saveTree(Tree(nodes: nodes), packer: packer)
            summary.withLock { $0.directories += 1 }
            return node
        }
    }

    /// A node for something the backup made rather than found: owned by this process, timed now.
    private func madeNode(name: String, type: Node.Kind, mode: UInt32) -> Node {
        let now = repository.now().timeIntervalSince1970
        return Node(name: name, type: type, mode: mode, mtimeNanoseconds: Int64(now * 1e9), uid: geteuid(), gid: getegid())
    }

    private func countNewFile(size: UInt64, isNew: Bool) {
        summary.withLock {
            if isNew { $0.filesNew += 1 } else { $0.filesChanged += 1 }
            $0.totalFiles += 1
            $0.totalBytes += size
            $0.bytesRead += size
        }
        progress?.update { $0.filesDone += 1 }
    }

    // MARK: - Walk

    private func warn(_ message: String) {
        warnings.withLock { $0.append(message) }
        progress?.update { $0.errors += 1 }
    }

    /// Backs up one entry, found by `lstat` at `location`, stored as `name`.
    ///
    /// The entry is opened through its directory's descriptor with `O_NOFOLLOW` and the opened
    /// descriptor's `fstat` must be the entry the `lstat` chose (type, device, inode): a file or
    /// directory swapped for a symlink, FIFO or device while the backup runs is skipped with a
    /// warning, never followed or read. Special files are recorded as what they are.
    private func saveEntry(at location: EntryLocation, path: String, relative: String, name: [UInt8], parent: Node?, excludes: ExcludeRules, packer: Packer) async throws -> Node? {
        let status: FileStatus
        do {
            status = FileStatus(try location.status())
        } catch let error as BunkerError {
            warn(error.message)
            return nil
        }
        if !relative.isEmpty, excludes.excludes(name: FileName.display(name), absolute: path, relative: relative, isDirectory: status.kind == .directory) {
            return nil
        }
        let storesRawNames = repository.config.storesRawNames
        if !storesRawNames {
            if status.kind.isSpecial {
                warn("Skipped \(path): this repository (format version \(repository.config.version)) cannot record sockets, pipes and device files; a repository made by `bunker init` now can.")
                return nil
            }
            if String(validating: name, as: UTF8.self) == nil {
                warn("Skipped \(path): its name is not valid UTF-8, which this repository (format version \(repository.config.version)) cannot store; a repository made by `bunker init` now can.")
                return nil
            }
        }
        var node = Node(nameBytes: name, type: status.kind, mode: status.mode, mtimeNanoseconds: status.mtimeNanoseconds, uid: status.uid, gid: status.gid)
        switch status.kind {
        case .fifo, .socket:
            summary.withLock { $0.totalFiles += 1 }
        case .characterDevice, .blockDevice:
            node.rdev = status.rdev
            summary.withLock { $0.totalFiles += 1 }
        case .symlink:
            do {
                let target = try location.readLink()
                if !storesRawNames && String(validating: target, as: UTF8.self) == nil {
                    warn("Skipped \(path): its target is not valid UTF-8, which this repository (format version \(repository.config.version)) cannot store.")
                    return nil
                }
                node.linkTargetBytes = target
            } catch let error as BunkerError {
                warn(error.message)
                return nil
            }
        case .directory:
            let parentTree: Tree?
            if let sub = parent?.subtree, parent?.type == .directory {
                parentTree = try? await repository.loadTree(sub)
            } else {
                parentTree = nil
            }
            let handle: DirectoryHandle
            let entries: [[UInt8]]
            do {
                handle = try location.openDirectory(expecting: status)
                entries = try handle.entries()
            } catch let error as BunkerError {
                warn("\(path): \(error.message)")
                return nil
            }
            let children = try await saveChildren(of: handle, path: path, relative: relative, entries: entries, parentTree: parentTree, excludes: excludes, packer: packer)
            node.subtree = try await saveTree(Tree(nodes: children), packer: packer)
            summary.withLock { $0.directories += 1 }
        case .file:
            node.size = status.size
            node.inode = status.inode
            node.device = status.device
            if let parent, parent.type == .file, parent.size == status.size, parent.mtimeNanoseconds == status.mtimeNanoseconds,
               parent.inode == status.inode, let content = parent.content, let sha = parent.sha256,
               repository.index.containsAll(content) {
                node.content = content
                node.sha256 = sha
                summary.withLock {
                    $0.filesUnmodified += 1
                    $0.totalFiles += 1
                    $0.totalBytes += status.size
                }
                progress?.update {
                    $0.filesDone += 1
                    $0.bytesDone += status.size
                }
                return node
            }
            do {
                let (content, sha, size) = try await fileLimiter.withPermit {
                    let fd = try location.openFile(expecting: status)
                    defer { close(fd) }
                    return try await saveFileContent(fd: fd, path: path, packer: packer)
                }
                node.content = content
                node.sha256 = sha
                node.size = size
            } catch let error as BunkerError where error.code == .sourceIO {
                warn(error.message)
                return nil
            }
            countNewFile(size: node.size ?? 0, isNew: parent?.type != .file)
        }
        return node
    }

    private func saveChildren(of dir: DirectoryHandle, path: String, relative: String, entries: [[UInt8]], parentTree: Tree?, excludes: ExcludeRules, packer: Packer) async throws -> [Node] {
        var results = [Node?](repeating: nil, count: entries.count)
        let window = 16
        try await withThrowingTaskGroup(of: (Int, Node?).self) { group in
            var next = 0
            func launch(_ i: Int) {
                let name = entries[i]
                let text = FileName.display(name)
                let childRelative = relative.isEmpty ? text : relative + "/" + text
                let parent = parentTree?.node(nameBytes: name)
                let location = EntryLocation(directory: dir, name: name)
                group.addTask {
                    (i, try await self.saveEntry(at: location, path: path + "/" + text, relative: childRelative, name: name, parent: parent, excludes: excludes, packer: packer))
                }
            }
            while next < min(window, entries.count) {
                launch(next)
                next += 1
            }
            while let (i, node) = try await group.next() {
                results[i] = node
                if next < entries.count {
                    launch(next)
                    next += 1
                }
            }
        }
        return results.compactMap { $0 }
    }

    // MARK: - Content

    private func saveFileContent(fd: Int32, path: String, packer: Packer) async throws -> ([ID], String, UInt64) {
        progress?.update { $0.currentPath = path }
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        let fixedSize = Self.sqlitePageSize(fd: fd).flatMap(repository.config.chunker.pageAlignedChunkSize(pageSize:))
        return try await saveContent(of: path, fixedSize: fixedSize, packer: packer) { target in
            try FileSystem.read(fd: fd, into: target, path: path)
        }
    }

    /// Chunks what `read` yields, stores the chunks the repository lacks, and returns the chunk
    /// ids, the SHA-256 of the whole content and its length.
    private func saveContent(
        of path: String, fixedSize: Int?, packer: Packer, ready: () async throws -> Void = {},
        read: @escaping (UnsafeMutableRawBufferPointer) throws -> Int
    ) async throws -> ([ID], String, UInt64) {
        let buffer = buffers.take()
        defer { buffers.put(buffer) }
        var chunker = Chunker(parameters: repository.config.chunker, gear: gear, buffer: buffer.memory, fixedSize: fixedSize, read: read)
        var hasher = SHA256()
        var total: UInt64 = 0
        var ids: [ID] = []
        // Chunks go to the sealing tasks in batches of about half a MiB, so that small
        // page-aligned database chunks cost one task and one packer call per batch, not each.
        try await withThrowingTaskGroup(of: (Int, [ID]).self) { group in
            var results: [Int: [ID]] = [:]
            var batches = 0
            var inFlight = 0
            var batch: [Data] = []
            var batchBytes = 0
            func dispatch() async throws {
                // A safe point to stop a cancelled backup: what was dispatched is settled by
                // ``settleAfterFailure()`` as after any failure, so the repository is as a kill
                // would leave it (it verifies, and the next backup completes).
                try Task.checkCancellation()
                if inFlight >= 2, let (i, done) = try await group.next() {
                    results[i] = done
                    inFlight -= 1
                }
                let work = batch
                let position = batches
                batches += 1
                batch = []
                batchBytes = 0
                group.addTask { (position, try await self.saveBlobs(.data, work, packer: packer)) }
                inFlight += 1
            }
            // `ready` waits (suspended) for a whole chunk's input, so `next` does not block.
            while true {
                try await ready()
                guard let chunk = try chunker.next({ bytes -> Data in
                    hasher.update(bufferPointer: bytes)
                    return Data(bytes)
                }) else { break }
                total += UInt64(chunk.count)
                progress?.update { $0.bytesDone += UInt64(chunk.count) }
                batch.append(chunk)
                batchBytes += chunk.count
                if batchBytes >= Archiver.batchBytes { try await dispatch() }
            }
            if !batch.isEmpty { try await dispatch() }
            while let (i, done) = try await group.next() { results[i] = done }
            for i in 0..<batches { ids += results[i]! }
        }
        let sha = ID(digest: hasher.finalize()).hex
        return (ids, sha, total)
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

    private func saveTree(_ tree: Tree, packer: Packer) async throws -> ID {
        try await saveBlob(.tree, TreeCoding.encode(tree), packer: packer)
    }

    /// Saves a blob unless the repository (or this backup) already has it; returns its id.
    private func saveBlob(_ type: BlobType, _ plaintext: Data, packer: Packer) async throws -> ID {
        try await saveBlobs(type, [plaintext], packer: packer)[0]
    }

    /// Saves the blobs the repository (and this backup) does not have yet; returns every id.
    ///
    /// New data blobs below ``bundleMemberLimit`` (a database's page chunks, small files) are
    /// stored in bundles of about ``batchBytes``, filled across files: one compression over half a
    /// MiB instead of one per page or document (zstd finds far more to share: 12% less for the
    /// benchmark's database, 19% for its documents, and the per-call cost is paid once), one seal,
    /// and a 36-byte header entry per member instead of 69 bytes of seal and entry. Each member
    /// keeps its own id, so deduplication stays per chunk.
    private func saveBlobs(_ type: BlobType, _ plaintexts: [Data], packer: Packer) async throws -> [ID] {
        var ids: [ID] = []
        var fresh: [(id: ID, plaintext: Data)] = []
        for plaintext in plaintexts {
            let id = repository.key.blobID(of: plaintext)
            ids.append(id)
            // Known, or being stored by this backup: nothing to store. Being stored by another
            // backup of this process: store it too, for that one may yet fail and never write it
            // (a duplicate costs space until the next prune, a missing blob costs the snapshot).
            if !repository.index.reserve(id) {
                if repository.index.contains(id) || inFlight.withLock({ $0.reserved.contains(id) }) { continue }
            }
            inFlight.withLock { _ = $0.reserved.insert(id) }
            fresh.append((id, plaintext))
        }
        guard !fresh.isEmpty else { return ids }
        let bundling = type == .data && repository.config.version >= RepositoryConfig.bundlesSince
        var units: [[(id: ID, plaintext: Data)]] = []
        for blob in fresh {
            if bundling && blob.plaintext.count < Archiver.bundleMemberLimit {
                pendingBundle.withLock {
                    $0.blobs.append(blob)
                    $0.bytes += blob.plaintext.count
                }
            } else {
                units.append([blob])
            }
        }
        if let full = takePendingBundle(ifAtLeast: Archiver.batchBytes) { units.append(full) }
        guard !units.isEmpty else { return ids }
        var sealed: [Packer.Entry] = []
        for unit in units { sealed.append(try seal(unit, type: type)) }
        try await packer.add(sealed)
        return ids
    }

    /// The blobs waiting for a bundle, once they hold at least `bytes` (0: whatever is left).
    private func takePendingBundle(ifAtLeast bytes: Int) -> [(id: ID, plaintext: Data)]? {
        pendingBundle.withLock { pending in
            guard !pending.blobs.isEmpty, pending.bytes >= bytes else { return nil }
            defer { pending = ([], 0) }
            return pending.blobs
        }
    }

    /// Compresses (when that makes it smaller) and seals one blob, or several as a bundle, and
    /// counts what is added.
    private func seal(_ blobs: [(id: ID, plaintext: Data)], type: BlobType = .data) throws -> Packer.Entry {
        var plaintext: Data
        if blobs.count == 1 {
            plaintext = blobs[0].plaintext
        } else {
            plaintext = Data(capacity: blobs.reduce(0) { $0 + $1.plaintext.count })
            for blob in blobs { plaintext.append(blob.plaintext) }
        }
        let compressed = compressors.with { $0.compress(plaintext) }
        let data = try repository.key.seal(compressed ?? plaintext)
        let rawLength = compressed == nil ? 0 : plaintext.count
        summary.withLock {
            $0.blobsAdded += blobs.count
            $0.dataAdded += UInt64(plaintext.count)
            $0.dataAddedStored += UInt64(data.count)
        }
        progress?.update { $0.bytesStored += UInt64(data.count) }
        if blobs.count == 1 {
            return Packer.Entry(type: type, id: blobs[0].id, sealed: data, rawLength: rawLength)
        }
        return Packer.Entry(bundle: blobs.map { ($0.id, $0.plaintext.count) }, sealed: data, rawLength: rawLength)
    }

    // MARK: - Scan

    /// Counts files and bytes in the background so progress can show a percentage and an ETA.
    private func startScan(items: [BackupItem], progress: OperationProgress) throws {
        var roots: [(String, ExcludeRules)] = []
        func collect(_ items: [BackupItem]) throws {
            for item in items {
                switch item {
                case .path(let path, _, let excludes): roots.append((path, try ExcludeRules(request.excludes + excludes)))
                case .file(let path, _): roots.append((path, try ExcludeRules([])))
                case .directory(_, let children): try collect(children)
                case .stream: break
                }
            }
        }
        try collect(items)
        let scanned = roots
        Thread.detachNewThread {
            var files = 0
            var bytes: UInt64 = 0
            func walk(_ path: String, relative: String, name: String, excludes: ExcludeRules) {
                guard let status = try? FileStatus(path: path) else { return }
                let kind = status.kind
                if !relative.isEmpty, excludes.excludes(name: name, absolute: path, relative: relative, isDirectory: kind == .directory) { return }
                switch kind {
                case .file:
                    files += 1
                    bytes += status.size
                case .directory:
                    for child in (try? FileSystem.entries(of: path)) ?? [] {
                        walk(path + "/" + child, relative: relative.isEmpty ? child : relative + "/" + child, name: child, excludes: excludes)
                    }
                case .symlink, .fifo, .socket, .characterDevice, .blockDevice:
                    break
                }
            }
            for (path, excludes) in scanned { walk(path, relative: "", name: (path as NSString).lastPathComponent, excludes: excludes) }
            progress.update {
                $0.filesTotal = files
                $0.bytesTotal = bytes
                $0.totalsKnown = true
            }
        }
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
