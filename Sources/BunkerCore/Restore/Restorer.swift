import Crypto
import Foundation

/// What a restorer needs from a repository: blobs and trees, nothing else.
public protocol BlobLoader: Sendable {
    /// Loads, authenticates, decompresses and checks one blob.
    func loadBlob(_ id: ID, decompressor: ZstdDecompressor?) async throws -> Data
    /// Loads several blobs, in order; a loader may read neighbours in one request.
    func loadBlobs(_ ids: [ID], decompressor: ZstdDecompressor?) async throws -> [Data]
    /// Loads a file's content blobs as ``loadBlobs(_:decompressor:)`` does, authenticated and
    /// decompressed, but without checking each against its id: ``ContentReader`` checks the
    /// whole content's SHA-256 instead, which catches the same faults, and only when that differs
    /// reads the blobs again, checked, to name the one at fault. The id check is a keyed SHA-256
    /// of every byte, a pass that cost a tenth of a restore's CPU for nothing more.
    func loadContent(_ ids: [ID], decompressor: ZstdDecompressor?) async throws -> [Data]
    /// Loads a directory listing.
    func loadTree(_ id: ID) async throws -> Tree
    /// Loads many listings at once (a restore's plan, one level of folders at a time); one that
    /// cannot be read is left out of the result.
    func loadTrees(_ ids: [ID]) async -> [ID: Tree]
    /// How many reads are worth having in flight at once: a few where each would only add a
    /// disk seek, more where each request mostly waits on a network (an object store).
    var parallelReads: Int { get }
    /// Whether a restore should read every directory listing first and then hand its whole plan
    /// to ``readingAhead(_:)``: where each request waits a round trip (an object store).
    var readsAhead: Bool { get }
    /// A loader that serves `plan` from reads made before it is asked.
    func readingAhead(_ plan: RestorePlan) -> any BlobLoader
}

extension BlobLoader {
    public var parallelReads: Int { 4 }
    public var readsAhead: Bool { false }
    public func readingAhead(_ plan: RestorePlan) -> any BlobLoader { self }
    public func loadContent(_ ids: [ID], decompressor: ZstdDecompressor?) async throws -> [Data] {
        try await loadBlobs(ids, decompressor: decompressor)
    }
}

extension BlobLoader {
    /// One request per listing, up to twice ``parallelReads`` at once.
    public func loadTrees(_ ids: [ID]) async -> [ID: Tree] {
        await withTaskGroup(of: (ID, Tree?).self) { group in
            var trees: [ID: Tree] = [:]
            var running = 0
            for id in Set(ids) {
                if running >= max(8, parallelReads * 2), let (id, tree) = await group.next() {
                    running -= 1
                    trees[id] = tree
                }
                group.addTask { (id, try? await self.loadTree(id)) }
                running += 1
            }
            for await (id, tree) in group { trees[id] = tree }
            return trees
        }
    }

    public func loadBlobs(_ ids: [ID], decompressor: ZstdDecompressor?) async throws -> [Data] {
        var result: [Data] = []
        for id in ids { result.append(try await loadBlob(id, decompressor: decompressor)) }
        return result
    }
}

extension Repository: BlobLoader {
    /// As many as the storage's concurrency limit (an object store's; 8 by default), at least
    /// the four a local directory gets.
    public var parallelReads: Int {
        max(4, storage.capability(ConcurrencyLimitedStorage.self)?.limit ?? 4)
    }
}

/// A file that could not be restored, and why.
public struct RestoreFailure: Sendable, Codable, Equatable {
    public var path: String
    public var message: String
    /// The target's filesystem was full.
    public var storageFull = false
    /// The target was the obstacle (something in the way, no permission, no room), not the
    /// snapshot: its data may be whole.
    public var inTarget = false

    enum CodingKeys: String, CodingKey {
        case path, message
        case storageFull = "storage_full"
        case inTarget = "in_target"
    }
}

/// What a restore did.
public struct RestoreReport: Sendable, Codable {
    public var filesRestored = 0
    public var directoriesRestored = 0
    public var symlinksRestored = 0
    /// FIFOs, sockets and device files re-created (devices need root).
    public var specialFilesRestored = 0
    public var bytesRestored: UInt64 = 0
    /// Files and directories that were not restored; a file listed here is absent from the
    /// target (never left half-written).
    public var failures: [RestoreFailure] = []

    enum CodingKeys: String, CodingKey {
        case filesRestored = "files_restored"
        case directoriesRestored = "directories_restored"
        case symlinksRestored = "symlinks_restored"
        case specialFilesRestored = "special_files_restored"
        case bytesRestored = "bytes_restored"
        case failures
    }
}

/// Restores a tree (a whole snapshot or chosen paths) into a directory.
///
/// Everything is written through directory descriptors: each directory is created with
/// `mkdirat` and opened with `openat(O_DIRECTORY | O_NOFOLLOW)`, each file created with
/// `openat(O_CREAT | O_EXCL | O_NOFOLLOW)` under a temporary name and put in place with `renameat`
/// in the same directory. No name from a snapshot and no symlink (in the snapshot, or placed in
/// the target while the restore runs) can therefore lead a write outside the target: names are
/// checked as bytes (``Node/hasSafeName``) and a symlink is never followed. Names are bytes
/// throughout, so a name that is not UTF-8 is restored exactly.
///
/// Each file's SHA-256 is computed while it is written; only when it matches the one recorded at
/// backup time is it given its mode, owner and mtime and renamed into place. A damaged chunk
/// therefore never leaves a wrong file behind: the file is listed as a failure, naming the blob
/// and pack, and the restore goes on with the rest. Directories get their mode and mtime after
/// their content.
public final class Restorer: Sendable {
    private let loader: any BlobLoader
    private let progress: OperationProgress?
    private let includes: [String]
    private let reader: ContentReader
    private let failures = Mutex<[RestoreFailure]>([])
    private let counters = Mutex(RestoreReport())
    /// Files restored at once: half the loader's parallel reads, since each file keeps a few
    /// batches in flight itself (``ContentReader``).
    private let fileLimiter: AsyncLimiter
    private let isRoot = geteuid() == 0
    /// Bytes written between two flushes of the target in the background (``WriteBack``).
    private let writeBackEvery: Int
    /// The flushes made in the background by the last restore, for tests.
    let backgroundFlushes = Mutex(0)

    /// `includes` are paths inside the snapshot (`studies/2024`, `/studies/a.json`); empty means all.
    public convenience init(loader: any BlobLoader, includes: [String] = [], progress: OperationProgress? = nil) {
        self.init(loader: loader, includes: includes, progress: progress, writeBackEvery: WriteBack.defaultEvery)
    }

    init(loader: any BlobLoader, includes: [String], progress: OperationProgress?, writeBackEvery: Int) {
        self.loader = loader
        self.reader = ContentReader(loader: loader)
        self.fileLimiter = AsyncLimiter(limit: max(2, loader.parallelReads / 2))
        self.progress = progress
        self.includes = includes.map { $0.split(separator: "/").joined(separator: "/") }.filter { !$0.isEmpty }
        self.writeBackEvery = writeBackEvery
    }

    /// Refuses include paths that could not name anything inside a snapshot (`..`, `.`, NUL).
    public static func validateIncludes(_ includes: [String]) throws {
        for include in includes {
            for component in include.utf8.split(separator: 0x2F) where !Node.isSafeName(Array(component)) {
                throw BunkerError(.invalidArgument, "The include path \(include.debugDescription) has a component (\(String(decoding: component, as: UTF8.self).debugDescription)) that cannot name an entry of a snapshot; give paths as `bunker show ID` lists them.")
            }
        }
    }

    /// Restores the tree `root` into `target`, creating it if needed.
    public func restore(tree root: ID, to target: String) async throws -> RestoreReport {
        try Restorer.validateIncludes(includes)
        let target = FileSystem.absolute(target)
        let created = mkdir(target, 0o700) == 0
        if !created && errno != EEXIST {
            throw BunkerError(.invalidArgument, "Cannot create the restore target \(target): \(String(cString: strerror(errno))).")
        }
        do {
            let handle: DirectoryHandle
            do {
                handle = try DirectoryHandle(path: target)
            } catch {
                throw BunkerError(.invalidArgument, "The restore target \(target) is not a directory that can be opened: \(String(cString: strerror(errno))).")
            }
            return try await restore(tree: root, into: handle)
        } catch {
            // A restore that wrote nothing (no path matched, the snapshot could not be read)
            // leaves no empty directory of its own behind; rmdir removes only an empty one.
            if created { rmdir(target) }
            throw error
        }
    }

    /// Restores the tree `root` into an open directory.
    public func restore(tree root: ID, into target: DirectoryHandle) async throws -> RestoreReport {
        try Restorer.validateIncludes(includes)
        let tree = try await loader.loadTree(root)
        if loader.readsAhead {
            let plan = await plan(root: root, tree: tree)
            let planned = Restorer(loader: loader.readingAhead(plan), includes: includes, progress: progress, writeBackEvery: writeBackEvery)
            defer { backgroundFlushes.withLock { $0 = planned.backgroundFlushes.withLock { $0 } } }
            return try await planned.restore(tree: root, into: target)
        }
        // Flushes of the whole file system (started as the restore writes, and one at the end)
        // instead of an fsync per file: as durable when the restore reports success, and
        // thousands of small files restore far faster.
        let fd = target.fd
        let writeBack = WriteBack(every: writeBackEvery) { syncfs(fd) == 0 ? 0 : errno }
        try await restoreChildren(of: tree, in: target, relative: "", writeBack: writeBack)
        try await writeBack.finish()
        backgroundFlushes.withLock { $0 = writeBack.backgroundFlushes }
        var report = counters.withLock { $0 }
        report.failures = failures.withLock { $0 }
        if !includes.isEmpty && report.filesRestored + report.directoriesRestored + report.symlinksRestored + report.specialFilesRestored == 0 && report.failures.isEmpty {
            throw BunkerError(.invalidArgument, "No path in the snapshot matches \(includes.joined(separator: ", ")); `bunker show ID` lists its content.")
        }
        return report
    }

    /// Every listing the restore will open, read many at once level by level, and the blobs of
    /// every file it will write in the order it meets them. A listing that cannot be read is left
    /// out: the restore reads it again when it gets there, and records the failure there.
    private func plan(root: ID, tree: Tree) async -> RestorePlan {
        var plan = RestorePlan()
        plan.trees[root] = tree
        var level: [(tree: Tree, path: String)] = [(tree, "")]
        while !level.isEmpty {
            var wanted: [(id: ID, path: String)] = []
            var seen = Set<ID>()
            for (tree, path) in level where tree.duplicateName == nil {
                for node in tree.nodes where node.type == .directory && node.hasSafeName {
                    let child = path.isEmpty ? node.name : path + "/" + node.name
                    guard let subtree = node.subtree, plan.trees[subtree] == nil, selection(of: child) != .none,
                          seen.insert(subtree).inserted else { continue }
                    wanted.append((subtree, child))
                }
            }
            // Deeper folders come in the next round: their listings are known only from these.
            let loaded = await loader.loadTrees(wanted.map(\.id))
            level = []
            for (id, path) in wanted {
                guard let tree = loaded[id] else { continue }
                plan.trees[id] = tree
                level.append((tree, path))
            }
        }
        func collect(_ tree: Tree, _ path: String) {
            guard tree.duplicateName == nil else { return }
            for node in tree.nodes where node.hasSafeName {
                let child = path.isEmpty ? node.name : path + "/" + node.name
                let selected = selection(of: child)
                switch node.type {
                case .directory where selected != .none:
                    if let subtree = node.subtree, let tree = plan.trees[subtree] { collect(tree, child) }
                case .file where selected == .all:
                    plan.blobs.append(contentsOf: node.content ?? [])
                default:
                    break
                }
            }
        }
        collect(tree, "")
        return plan
    }

    private enum Selection { case none, traverse, all }

    private func selection(of path: String) -> Selection {
        if includes.isEmpty { return .all }
        var traverse = false
        for include in includes {
            if path == include || path.hasPrefix(include + "/") { return .all }
            if include.hasPrefix(path + "/") { traverse = true }
        }
        return traverse ? .traverse : .none
    }

    private func fail(_ path: String, _ message: String, storageFull: Bool = false, inTarget: Bool = false) {
        failures.withLock { $0.append(RestoreFailure(path: path, message: message, storageFull: storageFull, inTarget: inTarget || storageFull)) }
        progress?.update { $0.errors += 1 }
    }

    private func restoreChildren(of tree: Tree, in dir: DirectoryHandle, relative: String, writeBack: WriteBack) async throws {
        if let duplicate = tree.duplicateName {
            fail(relative.isEmpty ? "/" : relative, "The snapshot's listing of this directory names \(duplicate.name.debugDescription) twice; the snapshot is damaged and this directory was not restored.")
            return
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            var running = 0
            for node in tree.nodes {
                let path = relative.isEmpty ? node.name : relative + "/" + node.name
                guard node.hasSafeName else {
                    fail(path, "Refused an entry whose name could escape the target (\(node.name.debugDescription)).")
                    continue
                }
                let selected = selection(of: path)
                if selected == .none { continue }
                // A safe point to stop a cancelled restore: the target holds whole files only
                // (each is written under a temporary name and renamed once checked).
                try Task.checkCancellation()
                if running >= 16 {
                    try await group.next()
                    running -= 1
                }
                group.addTask { try await self.restore(node, in: dir, relative: path, selection: selected, writeBack: writeBack) }
                running += 1
            }
            try await group.waitForAll()
        }
    }

    private func restore(_ node: Node, in dir: DirectoryHandle, relative: String, selection: Selection, writeBack: WriteBack) async throws {
        let name = node.nameBytes
        switch node.type {
        case .directory:
            let created = FileName.with(name) { mkdirat(dir.fd, $0, 0o700) } == 0
            if !created && errno != EEXIST {
                fail(relative, "Cannot create directory: \(String(cString: strerror(errno))).", inTarget: true)
                return
            }
            // An existing directory is reused; anything else there (a symlink above all, which
            // could lead outside the target) is refused: O_NOFOLLOW makes the open fail.
            let handle: DirectoryHandle
            do {
                handle = try dir.openDirectory(name)
            } catch {
                fail(relative, "Something that is not a directory is in the way; move it and restore again.", inTarget: true)
                return
            }
            guard let subtree = node.subtree else {
                fail(relative, "The snapshot records this directory without a listing.")
                return
            }
            let tree: Tree
            do {
                tree = try await loader.loadTree(subtree)
            } catch {
                fail(relative, "Its directory listing cannot be read: \(error)")
                return
            }
            try await restoreChildren(of: tree, in: handle, relative: relative, writeBack: writeBack)
            if selection == .all {
                applyMetadata(node, fd: handle.fd)
                counters.withLock { $0.directoriesRestored += 1 }
            }
        case .symlink:
            guard selection == .all else { return }
            let temp = Restorer.temporaryName()
            let made = FileName.with(node.linkTargetBytes ?? []) { target in
                FileName.with(temp) { symlinkat(target, dir.fd, $0) }
            }
            guard made == 0 else {
                fail(relative, "Cannot create symlink: \(String(cString: strerror(errno))).", inTarget: true)
                return
            }
            applyMetadata(node, in: dir, name: temp)
            guard put(temp, as: name, in: dir, relative: relative, what: "symlink") else { return }
            counters.withLock { $0.symlinksRestored += 1 }
        case .fifo, .socket, .characterDevice, .blockDevice:
            guard selection == .all else { return }
            let temp = Restorer.temporaryName()
            let type: mode_t = switch node.type {
            case .fifo: S_IFIFO
            case .socket: S_IFSOCK
            case .characterDevice: S_IFCHR
            default: S_IFBLK
            }
            let made = FileName.with(temp) { mknodat(dir.fd, $0, type | 0o600, dev_t(node.rdev ?? 0)) }
            guard made == 0 else {
                let err = errno
                fail(relative, "Cannot create the \(node.type.article): \(String(cString: strerror(err)))\(err == EPERM ? " (device files need root)" : "").", inTarget: true)
                return
            }
            applyMetadata(node, in: dir, name: temp)
            guard put(temp, as: name, in: dir, relative: relative, what: node.type.article) else { return }
            counters.withLock { $0.specialFilesRestored += 1 }
        case .file:
            guard selection == .all else { return }
            await fileLimiter.withPermit {
                await restoreFile(node, in: dir, relative: relative, writeBack: writeBack)
            }
        }
    }

    private static func temporaryName() -> [UInt8] {
        Array(".bunker-restore-\(UUID().uuidString)".utf8)
    }

    /// Renames `temp` to `name` in `dir` (replacing a file or symlink there, never following it);
    /// removes `temp` and records a failure if that cannot be done.
    private func put(_ temp: [UInt8], as name: [UInt8], in dir: DirectoryHandle, relative: String, what: String) -> Bool {
        let renamed = FileName.with(temp) { from in FileName.with(name) { renameat(dir.fd, from, dir.fd, $0) } }
        guard renamed == 0 else {
            let message = String(cString: strerror(errno))
            _ = FileName.with(temp) { unlinkat(dir.fd, $0, 0) }
            fail(relative, "Cannot put the \(what) in place: \(message).", inTarget: true)
            return false
        }
        return true
    }

    private func restoreFile(_ node: Node, in dir: DirectoryHandle, relative: String, writeBack: WriteBack) async {
        let temp = Restorer.temporaryName()
        let fd = FileName.with(temp) { openat(dir.fd, $0, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600) }
        guard fd >= 0 else {
            fail(relative, "Cannot create the file: \(String(cString: strerror(errno))).", inTarget: true)
            return
        }
        var keep = false
        defer {
            close(fd)
            if !keep { _ = FileName.with(temp) { unlinkat(dir.fd, $0, 0) } }
        }
        let written: UInt64
        do {
            // Large files around the page cache (``DirectFileWriter``); the failure of a write is
            // recorded under the file's path.
            let writer = DirectFileWriter(fd: fd, path: "the file", size: Int(clamping: node.size ?? 0))
            do {
                written = try await reader.read(node) { data in
                    // A write around the cache waits for the disk: on a thread of its own, not
                    // one of the two that decrypt, decompress and hash.
                    // Only buffered bytes wait in the cache for a flush.
                    if writer.isDirect {
                        try await BlockingIO.run { try writer.write(data) }
                    } else {
                        try writer.write(data)
                        writeBack.wrote(data.count)
                    }
                    progress?.update { $0.bytesDone += UInt64(data.count) }
                }
                if writer.isDirect {
                    try await BlockingIO.run { try writer.finish() }
                } else {
                    try writer.finish()
                }
            } catch let failure as POSIXFailure {
                throw BunkerError.writing(failure)
            }
        } catch let error as BunkerError where error.code == .integrity {
            fail(relative, error.message + " The file was not restored.")
            return
        } catch let error as BunkerError {
            fail(relative, error.message, storageFull: error.code == .storageFull)
            return
        } catch {
            fail(relative, "\(error)")
            return
        }
        applyMetadata(node, fd: fd)
        guard put(temp, as: node.nameBytes, in: dir, relative: relative, what: "file") else { return }
        keep = true
        FaultPoints.hit("restore-file")
        counters.withLock {
            $0.filesRestored += 1
            $0.bytesRestored += written
        }
        progress?.update { $0.filesDone += 1 }
    }

    private func times(of node: Node) -> [timespec] {
        let seconds = node.mtimeNanoseconds / 1_000_000_000
        let nanos = node.mtimeNanoseconds % 1_000_000_000
        let time = timespec(tv_sec: Int(seconds), tv_nsec: Int(nanos))
        return [time, time]
    }

    /// Owner (as root), mode and mtime of an open file or directory.
    private func applyMetadata(_ node: Node, fd: Int32) {
        if isRoot { fchown(fd, node.uid, node.gid) }
        fchmod(fd, mode_t(node.mode))
        var times = times(of: node)
        futimens(fd, &times)
    }

    /// Owner (as root), mode and mtime of an entry that cannot be opened (a symlink, a FIFO, a
    /// device), never following it.
    private func applyMetadata(_ node: Node, in dir: DirectoryHandle, name: [UInt8]) {
        var times = times(of: node)
        FileName.with(name) { path in
            if isRoot { fchownat(dir.fd, path, node.uid, node.gid, AT_SYMLINK_NOFOLLOW) }
            // Linux cannot change a symlink's mode (and fchmodat does not take AT_SYMLINK_NOFOLLOW).
            if node.type != .symlink { fchmodat(dir.fd, path, mode_t(node.mode), 0) }
            utimensat(dir.fd, path, &times, AT_SYMLINK_NOFOLLOW)
        }
    }
}

import Synchronization

/// syncfs(2): glibc declares it only for _GNU_SOURCE, which the Glibc module is not built with.
@_silgen_name("syncfs")
private func syncfs(_ fd: Int32) -> Int32
