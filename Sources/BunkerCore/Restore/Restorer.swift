import Crypto
import Foundation

/// What a restorer needs from a repository: blobs and trees, nothing else.
public protocol BlobLoader: Sendable {
    /// Loads, authenticates, decompresses and checks one blob.
    func loadBlob(_ id: ID, decompressor: ZstdDecompressor?) async throws -> Data
    /// Loads several blobs, in order; a loader may read neighbours in one request.
    func loadBlobs(_ ids: [ID], decompressor: ZstdDecompressor?) async throws -> [Data]
    /// Loads a directory listing.
    func loadTree(_ id: ID) async throws -> Tree
}

extension BlobLoader {
    public func loadBlobs(_ ids: [ID], decompressor: ZstdDecompressor?) async throws -> [Data] {
        var result: [Data] = []
        for id in ids { result.append(try await loadBlob(id, decompressor: decompressor)) }
        return result
    }
}

extension Repository: BlobLoader {}

/// A file that could not be restored, and why.
public struct RestoreFailure: Sendable, Codable, Equatable {
    public var path: String
    public var message: String
}

/// What a restore did.
public struct RestoreReport: Sendable, Codable {
    public var filesRestored = 0
    public var directoriesRestored = 0
    public var symlinksRestored = 0
    public var bytesRestored: UInt64 = 0
    /// Files and directories that were not restored; a file listed here is absent from the
    /// target (never left half-written).
    public var failures: [RestoreFailure] = []

    enum CodingKeys: String, CodingKey {
        case filesRestored = "files_restored"
        case directoriesRestored = "directories_restored"
        case symlinksRestored = "symlinks_restored"
        case bytesRestored = "bytes_restored"
        case failures
    }
}

/// Restores a tree (a whole snapshot or chosen paths) into a directory.
///
/// Each file is written to a temporary name beside its final one while its SHA-256 is computed;
/// only when the hash matches the one recorded at backup time is it given its mode, owner and
/// mtime and renamed into place. A damaged chunk therefore never leaves a wrong file behind: the
/// file is listed as a failure, naming the blob and pack, and the restore goes on with the rest.
/// Directories get their mode and mtime after their content.
public final class Restorer: Sendable {
    private let loader: any BlobLoader
    private let progress: OperationProgress?
    private let includes: [String]
    private let reader: ContentReader
    private let failures = Mutex<[RestoreFailure]>([])
    private let counters = Mutex(RestoreReport())
    private let fileLimiter = AsyncLimiter(limit: 2)
    private let isRoot = geteuid() == 0

    /// `includes` are paths inside the snapshot (`studies/2024`, `/studies/a.json`); empty means all.
    public init(loader: any BlobLoader, includes: [String] = [], progress: OperationProgress? = nil) {
        self.loader = loader
        self.reader = ContentReader(loader: loader)
        self.progress = progress
        self.includes = includes.map { $0.split(separator: "/").joined(separator: "/") }.filter { !$0.isEmpty }
    }

    /// Restores the tree `root` into `target`, creating it if needed.
    public func restore(tree root: ID, to target: String) async throws -> RestoreReport {
        let target = FileSystem.absolute(target)
        if mkdir(target, 0o700) != 0 && errno != EEXIST {
            throw BunkerError(.invalidArgument, "Cannot create the restore target \(target): \(String(cString: strerror(errno))).")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw BunkerError(.invalidArgument, "The restore target \(target) is not a directory.")
        }
        let tree = try await loader.loadTree(root)
        try await restoreChildren(of: tree, into: target, relative: "")
        // One flush of the whole filesystem at the end instead of an fsync per file: as durable
        // when the restore reports success, and thousands of small files restore far faster.
        let fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            defer { close(fd) }
            if syncfs(fd) != 0 {
                throw BunkerError(.sourceIO, "Flushing the restored files to disk failed: \(String(cString: strerror(errno))). Check the target's disk; the restore may be incomplete.")
            }
        }
        var report = counters.withLock { $0 }
        report.failures = failures.withLock { $0 }
        if !includes.isEmpty && report.filesRestored + report.directoriesRestored + report.symlinksRestored == 0 && report.failures.isEmpty {
            throw BunkerError(.invalidArgument, "No path in the snapshot matches \(includes.joined(separator: ", ")); `bunker show ID` lists its content.")
        }
        return report
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

    private func fail(_ path: String, _ message: String) {
        failures.withLock { $0.append(RestoreFailure(path: path, message: message)) }
        progress?.update { $0.errors += 1 }
    }

    private func restoreChildren(of tree: Tree, into dir: String, relative: String) async throws {
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
                if running >= 16 {
                    try await group.next()
                    running -= 1
                }
                group.addTask { try await self.restore(node, into: dir, relative: path, selection: selected) }
                running += 1
            }
            try await group.waitForAll()
        }
    }

    private func restore(_ node: Node, into dir: String, relative: String, selection: Selection) async throws {
        let final = dir + "/" + node.name
        switch node.type {
        case .directory:
            if mkdir(final, 0o700) != 0 {
                let err = errno
                var st = stat()
                // An existing directory is reused; anything else there (a symlink above all,
                // which could lead outside the target) is refused.
                guard err == EEXIST, lstat(final, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
                    fail(relative, err == EEXIST ? "Something that is not a directory is in the way; move it and restore again." : "Cannot create directory: \(String(cString: strerror(err))).")
                    return
                }
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
            try await restoreChildren(of: tree, into: final, relative: relative)
            if selection == .all {
                applyMetadata(node, path: final, fd: nil)
                counters.withLock { $0.directoriesRestored += 1 }
            }
        case .symlink:
            guard selection == .all else { return }
            let temp = dir + "/.bunker-restore-" + UUID().uuidString
            guard symlink(node.linkTarget ?? "", temp) == 0 else {
                fail(relative, "Cannot create symlink: \(String(cString: strerror(errno))).")
                return
            }
            applyMetadata(node, path: temp, fd: nil)
            guard rename(temp, final) == 0 else {
                let message = String(cString: strerror(errno))
                unlink(temp)
                fail(relative, "Cannot put the symlink in place: \(message).")
                return
            }
            counters.withLock { $0.symlinksRestored += 1 }
        case .file:
            guard selection == .all else { return }
            await fileLimiter.withPermit {
                await restoreFile(node, final: final, dir: dir, relative: relative)
            }
        }
    }

    private func restoreFile(_ node: Node, final: String, dir: String, relative: String) async {
        let temp = dir + "/.bunker-restore-" + UUID().uuidString
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            fail(relative, "Cannot create the file: \(String(cString: strerror(errno))).")
            return
        }
        var keep = false
        defer {
            close(fd)
            if !keep { unlink(temp) }
        }
        let written: UInt64
        do {
            written = try await reader.read(node) { data in
                try write(fd: fd, data, path: relative)
                progress?.update { $0.bytesDone += UInt64(data.count) }
            }
        } catch let error as BunkerError where error.code == .integrity {
            fail(relative, error.message + " The file was not restored.")
            return
        } catch let error as BunkerError {
            fail(relative, error.message)
            return
        } catch {
            fail(relative, "\(error)")
            return
        }
        applyMetadata(node, path: temp, fd: fd)
        guard rename(temp, final) == 0 else {
            fail(relative, "Cannot put the file in place: \(String(cString: strerror(errno))).")
            return
        }
        keep = true
        counters.withLock {
            $0.filesRestored += 1
            $0.bytesRestored += written
        }
        progress?.update { $0.filesDone += 1 }
    }

    private func write(fd: Int32, _ data: Data, path: String) throws {
        try data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
            var done = 0
            while done < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw BunkerError(errno == ENOSPC ? .storageFull : .sourceIO, "Cannot write: \(String(cString: strerror(errno))).")
                }
                done += n
            }
        }
    }

    private func applyMetadata(_ node: Node, path: String, fd: Int32?) {
        if isRoot {
            if node.type == .symlink {
                lchown(path, node.uid, node.gid)
            } else {
                chown(path, node.uid, node.gid)
            }
        }
        if node.type != .symlink { chmod(path, mode_t(node.mode)) }
        let seconds = node.mtimeNanoseconds / 1_000_000_000
        let nanos = node.mtimeNanoseconds % 1_000_000_000
        var times = [
            timespec(tv_sec: Int(seconds), tv_nsec: Int(nanos)),
            timespec(tv_sec: Int(seconds), tv_nsec: Int(nanos)),
        ]
        utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW)
    }
}

import Synchronization

/// syncfs(2): glibc declares it only for _GNU_SOURCE, which the Glibc module is not built with.
@_silgen_name("syncfs")
private func syncfs(_ fd: Int32) -> Int32
