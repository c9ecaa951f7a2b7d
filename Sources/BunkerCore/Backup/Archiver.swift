import Foundation
import Synchronization

/// Backs up file trees, files and streams into one snapshot.
///
/// The archiver walks the items depth-first in name order and builds the snapshot's trees
/// bottom-up; the work on the way is split like restic's archiver:
/// - ``BackupScanner`` counts files and bytes on a thread of its own, for progress only, when
///   there is no parent snapshot whose totals stand for them;
/// - ``FileSaver`` reads and chunks a file (up to ``FileSaver/workers`` at once);
/// - ``BlobSaver`` skips chunks the repository has, compresses, seals and packs the rest;
/// - ``TreeSaver`` stores each directory listing once its entries are saved;
/// - ``WriteSession`` owns this backup's claims in the shared index and settles them, whether the
///   backup finishes, fails or is cancelled.
///
/// Files whose size, mtime and inode match the parent snapshot's node reuse its chunk list
/// without being read. The snapshot is written only after every pack and the index.
public final class Archiver: Sendable {
    private let repository: Repository
    private let request: BackupRequest
    private let progress: OperationProgress?
    private let level: Int
    private let summary = Mutex(BackupSummary())
    private let warnings = Mutex<[String]>([])

    /// The savers of one run of ``run()``, made afresh for it.
    private struct Savers: Sendable {
        let session: WriteSession
        let blobs: BlobSaver
        let files: FileSaver
        let trees: TreeSaver

        init(repository: Repository, level: Int, budget: UInt64?, progress: OperationProgress?) {
            session = WriteSession(repository: repository)
            blobs = BlobSaver(session: session, repository: repository, compressionLevel: level, budget: budget, progress: progress)
            files = FileSaver(blobs: blobs, repository: repository, progress: progress)
            trees = TreeSaver(blobs: blobs, beforeStreaming: { [files] in files.releaseIdleBuffers() })
        }
    }

    public init(repository: Repository, request: BackupRequest, progress: OperationProgress? = nil) throws {
        self.repository = repository
        self.request = request
        self.progress = progress
        _ = try ExcludeRules(request.excludes)
        let level = request.compressionLevel ?? repository.config.compressionLevel
        try validateCompressionLevel(level)
        self.level = level
    }

    /// Runs the backup and writes the snapshot.
    public func run() async throws -> BackupResult {
        let started = repository.now()
        let clock = ContinuousClock.now
        guard !request.items.isEmpty else {
            throw BunkerError(.invalidArgument, "Nothing to back up: name at least one path.")
        }
        // Before any file is read: the first pack would be refused anyway. (A backup of
        // configured sources refuses before it prepares them.)
        if repository.isReadOnly { throw ReadOnlyStorage.refusal("back up") }
        try validate(request.items, origin: "the snapshot")
        let (parentID, parentTree, parentSummary) = try await findParent(paths: request.paths)
        let savers = Savers(repository: repository, level: level, budget: request.storedBudget, progress: progress)

        if let progress {
            if let totals = parentSummary {
                // The parent's totals are the estimate: the same paths, backed up last time (an
                // estimate the backup passes, after excludes were dropped say, is withdrawn).
                // Walking the whole tree a second time only to count it took a tenth of a
                // no-change backup's time on the benchmark (0.28-0.31 s without the count,
                // 0.31-0.34 s with). The files are those the progress counts as done: regular
                // files and streams.
                progress.estimateTotals(files: totals.filesNew + totals.filesChanged + totals.filesUnmodified, bytes: totals.totalBytes)
            } else {
                try BackupScanner(items: request.items, excludes: request.excludes).start(reporting: progress)
            }
        }

        let rootID: ID
        do {
            var nodes: [Node] = []
            for item in request.items {
                try Task.checkCancellation()
                if let node = try await saveItem(item, parent: parentTree?.node(named: item.name), savers: savers) {
                    nodes.append(node)
                }
            }
            rootID = try await savers.trees.save(Tree(nodes: nodes))
            try await savers.blobs.flush()
            try await savers.session.finish()
        } catch {
            await savers.blobs.abandon()
            await savers.session.settleAfterFailure()
            throw error
        }
        let sources = try request.describeSources?()
        FaultPoints.hit("backup-before-snapshot")

        var final = summary.withLock { $0 }
        savers.blobs.count(into: &final)
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
            case .entries(_, let name):
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

    /// The parent snapshot: its id, its tree and what it recorded of its backup.
    private func findParent(paths: [String]) async throws -> (ID?, Tree?, BackupSummary?) {
        let chosen: ID?
        switch request.parent {
        case .none:
            return (nil, nil, nil)
        case .snapshot(let id):
            chosen = id
        case .automatic:
            let wanted = paths.sorted()
            chosen = try await repository.snapshots().last { $0.snapshot.hostname == request.hostname && $0.snapshot.paths == wanted }?.id
        }
        guard let chosen else { return (nil, nil, nil) }
        let snapshot = try await repository.loadSnapshot(chosen)
        // A parent whose tree cannot be read only costs speed: read every file instead.
        guard let tree = try? await repository.loadTree(snapshot.tree) else { return (nil, nil, nil) }
        return (chosen, tree, snapshot.summary)
    }

    // MARK: - Items

    private func saveItem(_ item: BackupItem, parent: Node?, savers: Savers) async throws -> Node? {
        switch item {
        case .path(let path, let name, let excludes):
            let rules = try ExcludeRules(request.excludes + excludes)
            return try await saveEntry(at: EntryLocation(directory: nil, name: Array(path.utf8)), path: EntryPath(root: path), name: Array(name.utf8), parent: parent, excludes: rules, savers: savers)?.node
        case .file(let path, let name):
            let location = EntryLocation(directory: nil, name: Array(path.utf8))
            let status = FileStatus(try location.status())
            guard status.kind == .file else {
                throw BunkerError(.sourceIO, "\(path) is not a regular file.")
            }
            var node = Node(name: name, type: .file, mode: status.mode, mtimeNanoseconds: status.mtimeNanoseconds, uid: status.uid, gid: status.gid)
            record(try await savers.files.saveFile(at: location, expecting: status, path: path), in: &node)
            countNewFile(size: node.size ?? 0, isNew: parent?.type != .file)
            return node
        case .stream(let stream, let name):
            var node = madeNode(name: name, type: .file, mode: 0o600)
            record(try await savers.files.saveStream(stream, name: name), in: &node)
            countNewFile(size: node.size ?? 0, isNew: parent?.type != .file)
            return node
        case .directory(let name, let children):
            var node = madeNode(name: name, type: .directory, mode: 0o700)
            let parentTree = await listing(of: parent)
            var nodes: [Node] = []
            for child in children {
                if let saved = try await saveItem(child, parent: parentTree?.node(named: child.name), savers: savers) {
                    nodes.append(saved)
                }
            }
            node.subtree = try await savers.trees.save(Tree(nodes: nodes))
            summary.withLock { $0.directories += 1 }
            return node
        case .entries(let stream, let name):
            return try await saveEntries(stream, name: name, savers: savers)
        }
    }

    /// Stores the tree an entry stream yields as the directory `name`.
    ///
    /// File contents are stored as they arrive; the listings are kept in memory (one node per
    /// entry, not the data) and stored bottom-up once the stream has ended. A directory the
    /// stream names only through its entries' paths is made like a ``BackupItem/directory(name:_:)``.
    private func saveEntries(_ stream: any EntryStream, name: String, savers: Savers) async throws -> Node {
        var root = EntryDirectory(node: madeNode(name: name, type: .directory, mode: 0o700))
        while let (entry, content) = try await stream.nextEntry() {
            try Task.checkCancellation()
            guard let last = entry.path.last,
                  entry.path.allSatisfy({ Node(name: $0, type: .file, mode: 0, mtimeNanoseconds: 0, uid: 0, gid: 0).hasSafeName }) else {
                throw BunkerError(.sourceIO, "Stream \(name) holds an entry named \(entry.path.joined(separator: "/").debugDescription), which cannot be stored: a name must not be empty, . or .., nor contain /.")
            }
            var node = Node(name: last, type: entry.type, mode: entry.mode, mtimeNanoseconds: entry.mtimeNanoseconds, uid: entry.uid, gid: entry.gid)
            switch entry.type {
            case .file:
                guard let content else {
                    throw BunkerError(.sourceIO, "Stream \(name) gave no content for the file \(entry.path.joined(separator: "/")).")
                }
                let path = name + "/" + entry.path.joined(separator: "/")
                record(try await savers.files.saveStream(content, name: path, pageSize: entry.pageSize), in: &node)
                countNewFile(size: node.size ?? 0, isNew: true)
            case .symlink:
                node.linkTarget = entry.linkTarget ?? ""
                summary.withLock { $0.totalFiles += 1 }
            default:
                break
            }
            root.insert(node, at: entry.path[...], made: { madeNode(name: $0, type: .directory, mode: 0o700) })
        }
        try await stream.finish()
        return try await root.save(with: savers.trees) { self.summary.withLock { $0.directories += 1 } }
    }

    /// The parent snapshot's listing of a directory, whose nodes let unchanged files be skipped;
    /// nil if the parent had no directory there, or its listing cannot be read (which only costs
    /// speed: every file is read).
    private func listing(of parent: Node?) async -> Tree? {
        guard let sub = parent?.subtree, parent?.type == .directory else { return nil }
        return try? await repository.loadTree(sub)
    }

    /// A node for something the backup made rather than found: owned by this process, timed now.
    private func madeNode(name: String, type: Node.Kind, mode: UInt32) -> Node {
        let now = repository.now().timeIntervalSince1970
        return Node(name: name, type: type, mode: mode, mtimeNanoseconds: Int64(now * 1e9), uid: geteuid(), gid: getegid())
    }

    /// Puts a stored file's content into its node.
    private func record(_ content: FileSaver.Content, in node: inout Node) {
        node.content = content.chunks
        node.sha256 = content.sha256
        node.size = content.size
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
    ///
    /// `parent` is the parent snapshot's node for the entry, consumed: the entry's directory no
    /// longer holds its chunk list (see ``Tree/takeNode(nameBytes:)``), and a changed file lets
    /// it go before it is read again.
    private func saveEntry(at location: EntryLocation, path: EntryPath, name: [UInt8], parent: consuming Node?, excludes: ExcludeRules, savers: Savers) async throws -> SavedEntry? {
        switch try examine(at: location, path: path, name: name, parent: parent, excludes: excludes) {
        case .settled(let saved):
            return saved
        case .pending(let work):
            return try await finish(work, at: location, path: path, excludes: excludes, savers: savers)
        }
    }

    /// What ``examine(at:path:name:parent:excludes:)`` made of an entry: settled there,
    /// or work that reads a file or a directory, which may take long.
    private enum Examined: Sendable {
        case settled(SavedEntry?)
        case pending(PendingEntry)
    }

    /// An entry whose saving has to read it: a directory (with the parent snapshot's node for
    /// it, which holds no chunk list) or a file that is new or changed.
    private enum PendingEntry: Sendable {
        case directory(FileStatus, Node, parent: Node?)
        case file(FileStatus, Node, isNew: Bool)

        var status: FileStatus {
            switch self {
            case .directory(let status, _, _), .file(let status, _, _): status
            }
        }
    }

    /// The part of saving an entry that never waits: its `lstat`, the excludes, and everything
    /// but directories and files to read, which are left to ``finish(_:at:path:excludes:savers:)``.
    ///
    /// Most entries of a backup with a parent snapshot end here (unchanged files), so that
    /// ``saveChildren(of:path:relative:entries:parentTree:excludes:savers:)`` runs it in line:
    /// a task for each file cost a fifth of a no-change backup's time on the benchmark (0.28-0.31 s
    /// with one, 0.22-0.23 s without: task allocation, malloc arenas locked across threads,
    /// wake-ups), more than the `lstat` it ran.
    private func examine(at location: EntryLocation, path: EntryPath, name: [UInt8], parent: consuming Node?, excludes: ExcludeRules) throws -> Examined {
        let status: FileStatus
        do {
            status = FileStatus(try location.status())
        } catch let error as BunkerError {
            warn(error.message)
            return .settled(nil)
        }
        if !path.isRoot, !excludes.isEmpty,
           excludes.excludes(name: FileName.display(name), absolute: path.absolute, relative: path.relative, isDirectory: status.kind == .directory) {
            return .settled(nil)
        }
        let storesRawNames = repository.config.storesRawNames
        if !storesRawNames {
            if status.kind.isSpecial {
                warn("Skipped \(path.absolute): this repository (format version \(repository.config.version)) cannot record sockets, pipes and device files; a repository made by `bunker init` now can.")
                return .settled(nil)
            }
            if String(validating: name, as: UTF8.self) == nil {
                warn("Skipped \(path.absolute): its name is not valid UTF-8, which this repository (format version \(repository.config.version)) cannot store; a repository made by `bunker init` now can.")
                return .settled(nil)
            }
        }
        var node: Node
        if let parent, parent.rawName == nil, parent.hasName(name) {
            // The parent snapshot's node lends its name: making and validating a String for each
            // of half a million names took 5 % of a no-change backup's CPU. Only a name kept as
            // text, which is then exactly what `Node(nameBytes:)` would make of these bytes.
            node = Node(name: parent.name, type: status.kind, mode: status.mode, mtimeNanoseconds: status.mtimeNanoseconds, uid: status.uid, gid: status.gid)
        } else {
            node = Node(nameBytes: name, type: status.kind, mode: status.mode, mtimeNanoseconds: status.mtimeNanoseconds, uid: status.uid, gid: status.gid)
        }
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
                    warn("Skipped \(path.absolute): its target is not valid UTF-8, which this repository (format version \(repository.config.version)) cannot store.")
                    return .settled(nil)
                }
                node.linkTargetBytes = target
            } catch let error as BunkerError {
                warn(error.message)
                return .settled(nil)
            }
        case .directory:
            return .pending(.directory(status, node, parent: parent))
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
                return .settled(SavedEntry(node: node, sameAsParent: node == parent))
            }
            // A changed file's old chunk list goes now, before the file is read again.
            return .pending(.file(status, node, isNew: parent?.type != .file))
        }
        return .settled(SavedEntry(node: node, sameAsParent: parent != nil && node == parent))
    }

    /// Reads a directory or file that ``examine(at:path:name:parent:excludes:)`` left.
    private func finish(_ work: consuming PendingEntry, at location: EntryLocation, path: EntryPath, excludes: ExcludeRules, savers: Savers) async throws -> SavedEntry? {
        switch consume work {
        case .directory(let status, var node, let parent):
            let parentTree = await listing(of: parent)
            let handle: DirectoryHandle
            let entries: [[UInt8]]
            do {
                handle = try location.openDirectory(expecting: status)
                entries = try handle.entries()
            } catch let error as BunkerError {
                warn("\(path.absolute): \(error.message)")
                return nil
            }
            // The parent snapshot's listing is handed to the children node by node, and the new
            // one is not held past its encoding (`TreeSaver` consumes it): for a folder holding a
            // 4 GiB database each names half a million chunks (18 MB), beside the 38 MB of JSON
            // being stored.
            let (nodes, sameAsParent) = try await saveChildren(of: handle, path: path.absolute, relative: path.relative, entries: entries, parentTree: consume parentTree, excludes: excludes, savers: savers)
            let tree = Tree(nodes: consume nodes)
            let previous = parent?.subtree
            let unchanged = sameAsParent && previous != nil && repository.index.contains(previous!)
            if unchanged, let previous {
                // Unchanged since the parent snapshot: its listing is stored already. Encoding it
                // again only to arrive at the same id cost a pass over every directory, and for a
                // folder holding a 4 GiB database (half a million chunk ids) 40 MB at once.
                node.subtree = previous
            } else {
                node.subtree = try await savers.trees.save(consume tree)
            }
            summary.withLock { $0.directories += 1 }
            return SavedEntry(node: node, sameAsParent: parent != nil && node == parent)
        case .file(let status, var node, let isNew):
            do {
                record(try await savers.files.saveFile(at: location, expecting: status, path: path.absolute), in: &node)
            } catch let error as BunkerError where error.code == .sourceIO {
                warn(error.message)
                return nil
            }
            countNewFile(size: node.size ?? 0, isNew: isNew)
            // Read again, so not taken as unchanged even if it came out the same: its
            // directory's listing is then stored again, which is only slower.
            return SavedEntry(node: node, sameAsParent: false)
        }
    }

    /// `work` if its entry is still what its `lstat` found, else the entry examined again.
    private func recheck(_ work: PendingEntry, at location: EntryLocation, path: EntryPath, name: [UInt8], excludes: ExcludeRules) throws -> Examined {
        let before = work.status
        if let now = try? FileStatus(location.status()), now.kind == before.kind, now.device == before.device,
           now.inode == before.inode, now.size == before.size, now.mtimeNanoseconds == before.mtimeNanoseconds {
            return .pending(work)
        }
        switch work {
        case .directory(_, _, let parent):
            return try examine(at: location, path: path, name: name, parent: parent, excludes: excludes)
        case .file(_, _, let isNew):
            // The parent's node is gone (a file to read lets go of its chunk list): the file is
            // read whatever it is now, and counted as new or changed as it was first.
            let again = try examine(at: location, path: path, name: name, parent: nil, excludes: excludes)
            if case .pending(.file(let status, let node, _)) = again { return .pending(.file(status, node, isNew: isNew)) }
            return again
        }
    }

    /// An entry's path, absolute and below the backed-up directory, spelled out only when a
    /// message, an exclude rule or a file's reading needs it: a no-change backup settles most
    /// entries with an `lstat` and a look at the parent snapshot, and building two strings for
    /// each of half a million files cost more than that look.
    private struct EntryPath: Sendable {
        /// The containing directory's absolute path, or a backup item's whole path.
        private let directory: String
        /// The containing directory's path below the backed-up one; nil for a backup item.
        private let directoryRelative: String?
        private let name: [UInt8]

        /// A backup item: the directory or file the user named.
        init(root path: String) {
            directory = path
            directoryRelative = nil
            name = []
        }

        /// The entry `name` in the directory at `path` (`relative` below the backed-up one).
        init(in path: String, relative: String, name: [UInt8]) {
            directory = path
            directoryRelative = relative
            self.name = name
        }

        var isRoot: Bool { directoryRelative == nil }

        var absolute: String {
            isRoot ? directory : directory + "/" + FileName.display(name)
        }

        /// Empty for a backup item.
        var relative: String {
            guard let directoryRelative else { return "" }
            let text = FileName.display(name)
            return directoryRelative.isEmpty ? text : directoryRelative + "/" + text
        }
    }

    /// Set by the first task of a directory that fails.
    private final class FailureFlag: Sendable {
        private let raised = Atomic<Bool>(false)

        var isRaised: Bool { raised.load(ordering: .relaxed) }

        func raise() { raised.store(true, ordering: .relaxed) }
    }

    /// An entry as saved, and whether it is exactly the parent snapshot's node for it: a
    /// directory whose entries all are, and which lost none, keeps its stored listing.
    private struct SavedEntry: Sendable {
        var node: Node
        var sameAsParent: Bool
    }

    /// The entries' nodes, and whether the listing they make is exactly `parentTree`.
    ///
    /// Each entry is examined here, in line; only directories and files to read get a task of
    /// their own, up to `window` at once, so that both cores work on a tree of many folders or
    /// on a folder of many changed files.
    private func saveChildren(
        of dir: DirectoryHandle, path: String, relative: String, entries: [[UInt8]], parentTree: consuming Tree?, excludes: ExcludeRules, savers: Savers
    ) async throws -> (nodes: [Node], sameAsParent: Bool) {
        var results = [SavedEntry?](repeating: nil, count: entries.count)
        let window = 16
        let parentCount = parentTree?.nodes.count
        var parentTree = consume parentTree
        // Raised by a task that fails, so that the loop stops at the next entry instead of
        // examining the rest of a large listing first: a task's error reaches the loop only
        // through `group.next()`, which it calls only when the window is full.
        let failed = FailureFlag()
        try await withThrowingTaskGroup(of: (Int, SavedEntry?).self) { group in
            var inFlight = 0
            for i in entries.indices {
                try Task.checkCancellation()
                if failed.isRaised {
                    while let (done, saved) = try await group.next() { results[done] = saved }
                }
                let name = entries[i]
                let childPath = EntryPath(in: path, relative: relative, name: name)
                let location = EntryLocation(directory: dir, name: name)
                var step = try examine(at: location, path: childPath, name: name, parent: parentTree?.takeNode(nameBytes: name), excludes: excludes)
                if case .pending(let work) = step, inFlight >= window {
                    if let (done, saved) = try await group.next() {
                        results[done] = saved
                        inFlight -= 1
                    }
                    // The wait can be long (16 folders being walked): an entry changed meanwhile
                    // is taken as it is now, not refused as swapped when it is opened.
                    FaultPoints.hit("backup-window-wait")
                    step = try recheck(work, at: location, path: childPath, name: name, excludes: excludes)
                }
                switch step {
                case .settled(let saved):
                    results[i] = saved
                case .pending(let work):
                    group.addTask {
                        do {
                            return (i, try await self.finish(work, at: location, path: childPath, excludes: excludes, savers: savers))
                        } catch {
                            failed.raise()
                            throw error
                        }
                    }
                    inFlight += 1
                }
            }
            while let (done, saved) = try await group.next() {
                results[done] = saved
            }
        }
        var nodes: [Node] = []
        nodes.reserveCapacity(results.count)
        var allSameAsParent = true
        for case let saved? in consume results {
            nodes.append(saved.node)
            allSameAsParent = allSameAsParent && saved.sameAsParent
        }
        // Each saved entry that is the parent's node took a name the parent has, so as many
        // of them as the parent has nodes make the same listing.
        return (nodes, nodes.count == parentCount && allSameAsParent)
    }
}

/// A directory of an entry stream while it is read: its node, and its entries by name.
private struct EntryDirectory {
    var node: Node
    var files: [String: Node] = [:]
    var directories: [String: EntryDirectory] = [:]

    /// Puts `entry` at `path` (whose last name is the entry's), making missing directories with
    /// `made`; a directory's own entry, read after its content, only sets its node.
    mutating func insert(_ entry: Node, at path: ArraySlice<String>, made: (String) -> Node) {
        let first = path.first!
        if path.count == 1 {
            if entry.type == .directory {
                directories[first, default: EntryDirectory(node: entry)].node = entry
            } else {
                files[first] = entry
            }
            return
        }
        directories[first, default: EntryDirectory(node: made(first))].insert(entry, at: path.dropFirst(), made: made)
    }

    /// Stores the listings bottom-up and returns the directory's node.
    func save(with trees: TreeSaver, counting: @Sendable () -> Void) async throws -> Node {
        var nodes = Array(files.filter { directories[$0.key] == nil }.values)
        for directory in directories.values {
            nodes.append(try await directory.save(with: trees, counting: counting))
        }
        var node = node
        node.subtree = try await trees.save(Tree(nodes: nodes))
        counting()
        return node
    }
}
