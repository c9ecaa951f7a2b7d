import BunkerCore
import Foundation

/// A restore of a file tree over its live copy that replaces only what the safety snapshot holds.
///
/// ## What it guarantees
/// - **Only what the snapshot manages is replaced.** An entry of the live tree is *captured* when
///   the safety snapshot taken just before holds it (same name, same type; for a file also the
///   same size, mtime and inode). Everything else (paths the source excludes, files the safety
///   backup could not read or store, anything created since) is *kept*: linked (`linkat`, the
///   same inode, no copy) into the restored tree at the same path before the swap. A kept entry
///   that the restored snapshot also has, or that has no place in it (its directory is a file
///   there), is a conflict, and the restore refuses before touching anything, naming the paths.
///   Without a safety backup (`--no-safety-backup`), the source's exclude rules decide what is kept.
/// - **Nothing that no snapshot holds is deleted.** After the swap, the old tree is removed entry by
///   entry: an entry goes if the safety snapshot holds it as it is, or if it is a kept entry (the
///   live tree has the same inode at the same path). Anything else (written after the plan was
///   made) is set aside in `.NAME.bunker-kept-ID` and named in the result.
/// - **Crash-safe.** The restore works in a staging directory on the live tree's filesystem, with a
///   journal (`journal.json`) written and flushed before each phase:
///   1. `staging`: the snapshot is restored into `new/` and kept entries are linked into it. The
///      live tree is untouched.
///   2. The swap: `new/` and the live tree are exchanged in one `renameat2(RENAME_EXCHANGE)`, so
///      the live tree is either the old one or the restored one, never a mix. A mount point
///      cannot be renamed, so there the staging directory lies inside it and the swap goes entry
///      by entry (phase `swapping`): each top-level entry moves to `old/`, then its replacement
///      from `new/` into place; a crash in between leaves a mix that the next run completes.
///   3. `cleaning`: the old tree (in `new/` after an exchange, in `old/` for a mount point) is
///      removed as described above.
///   The next restore (or backup) of the source finds the journal and finishes the work: before
///   the swap it drops the staging directory (the live tree is as it was); after it, it completes
///   the swap and the clean-up (the live tree is fully restored).
/// - **Mount points and full disks.** A source that is a mount point is staged inside it, so
///   nothing crosses filesystems (`EXDEV` cannot happen); a mount point *inside* the tree is
///   refused. Staging is the only step that needs space: a full disk fails it, and the live tree
///   is untouched.
struct InPlaceRestore {
    let source: String
    let live: String
    let excludes: [String]
    let context: RestoreContext
    private let rules: ExcludeRules

    init(source: String, live: String, excludes: [String], context: RestoreContext) throws {
        self.source = source
        self.live = live
        self.excludes = excludes
        self.context = context
        self.rules = try ExcludeRules(excludes)
    }

    static let journalName = Array("journal.json".utf8)
    static let newName = Array("new".utf8)
    static let oldName = Array("old".utf8)
    /// Staging directories inside a mount point start with this.
    static let insidePrefix = ".bunker-restore-"

    /// What a restore in place did, beyond the restorer's report.
    struct Outcome {
        var report: RestoreReport
        var kept = 0
        var setAside: String?
    }

    // MARK: - Run

    /// Restores the snapshot's directory `node` (listing `subtree`) over the live tree.
    func run(_ node: Node, subtree: ID) async throws -> Outcome {
        try await InPlaceRestore.recover(live: live, loader: context.loader)
        var liveStatus = stat()
        guard lstat(live, &liveStatus) == 0 else {
            return try await restoreWhereNothingIs(node, subtree: subtree)
        }
        guard liveStatus.st_mode & S_IFMT == S_IFDIR else {
            throw BunkerError(.invalidArgument, "Source \(source): \(live) is not a directory; move it away and restore again.")
        }
        let parentPath = SystemCalls.directory(of: live)
        var parentStatus = stat()
        guard stat(parentPath.isEmpty ? "/" : parentPath, &parentStatus) == 0 else {
            throw BunkerError(.sourceIO, "Cannot read \(parentPath): \(String(cString: strerror(errno))).")
        }
        let mountPoint = parentStatus.st_dev != liveStatus.st_dev || parentStatus.st_ino == liveStatus.st_ino
        let liveRoot = try DirectoryHandle(path: live)

        // 1. Staging, on the live tree's filesystem.
        let token = UUID().uuidString.prefix(8).lowercased()
        let stagingParent = mountPoint ? liveRoot : try DirectoryHandle(path: parentPath.isEmpty ? "/" : parentPath)
        let stagingName = Array((mountPoint ? InPlaceRestore.insidePrefix + token : "." + (live as NSString).lastPathComponent + ".bunker-restore-" + token).utf8)
        guard FileName.with(stagingName, { mkdirat(stagingParent.fd, $0, 0o700) }) == 0 else {
            throw BunkerError(.sourceIO, "Cannot create the staging directory beside \(live): \(String(cString: strerror(errno))).")
        }
        let staging = try stagingParent.openDirectory(stagingName)
        // Held while this restore runs (and dropped by the kernel if the process dies), so that
        // another process's recovery never takes a restore in progress for an interrupted one.
        flock(staging.fd, LOCK_EX)
        var journal = SwapJournal(
            phase: .staging, live: live, mountPoint: mountPoint, liveInode: UInt64(liveStatus.st_ino),
            safetyTree: context.safetyCopy?.node?.subtree?.hex, keeps: [], stagedNames: [])
        var keepStaging = false
        defer { if !keepStaging { try? stagingParent.removeTree(stagingName) } }
        try journal.write(to: staging)
        guard FileName.with(InPlaceRestore.newName, { mkdirat(staging.fd, $0, 0o700) }) == 0 else {
            throw BunkerError(.sourceIO, "Cannot create the staging directory beside \(live): \(String(cString: strerror(errno))).")
        }
        let new = try staging.openDirectory(InPlaceRestore.newName)
        let report = try await stage(subtree, into: new)
        FaultPoints.hit("files-restore-staged")

        // 2. Plan what stays, and refuse before touching anything if it cannot.
        var plan = Plan()
        try await self.plan(liveRoot, safety: try await safetyTree(), staged: .directory(new), relative: [], rootDevice: liveStatus.st_dev, skip: mountPoint ? stagingName : nil, into: &plan)
        guard plan.conflicts.isEmpty else {
            let listed = plan.conflicts.prefix(10).joined(separator: "; ")
            throw BunkerError(.objectExists, "Source \(source) was not restored, and nothing in \(live) was changed: \(plan.conflicts.count) path(s) of the live tree that the restore must keep cannot be kept (\(listed)). Move them elsewhere, or restore with --target DIR.")
        }

        // 3. Link what stays into the restored tree, then swap.
        journal.keeps = plan.keeps.map { $0.map { Data($0) } }
        try journal.write(to: staging)
        try linkKeeps(plan.keeps, from: liveRoot, into: new, mountPoint: mountPoint)
        // The root's mode last: a read-only root would have refused the links.
        fchmod((mountPoint ? liveRoot : new).fd, mode_t(node.mode & 0o7777))
        FaultPoints.hit("files-restore-before-swap")
        keepStaging = true
        if mountPoint {
            journal.phase = .swapping
            journal.stagedNames = try new.entries().map { Data($0) }
            try journal.write(to: staging)
            do {
                try InPlaceRestore.swapEntries(journal, live: liveRoot, staging: staging, skip: stagingName)
            } catch {
                throw BunkerError(.sourceIO, "Source \(source): the swap into \(live) stopped part-way (\(error)); the next restore or backup of the source completes it. Fix the cause and run it again.")
            }
        } else {
            do {
                try SystemCalls.exchange(parentPath + "/" + FileName.display(stagingName) + "/new", live)
            } catch {
                keepStaging = false
                throw BunkerError(.sourceIO, "Source \(source) was not restored, and the live tree is as it was: \(error)")
            }
        }
        FaultPoints.hit("files-restore-after-swap")
        journal.phase = .cleaning
        try journal.write(to: staging)
        FaultPoints.hit("files-restore-before-cleanup")

        // 4. Remove the old tree, keeping what no snapshot holds.
        var outcome = Outcome(report: report, kept: plan.keeps.count)
        outcome.setAside = try await InPlaceRestore.clean(journal, staging: staging, stagingName: stagingName, in: stagingParent, loader: context.loader, excludes: excludes)
        return outcome
    }

    /// The first restore, to a path where nothing is: staged beside it and renamed into place.
    private func restoreWhereNothingIs(_ node: Node, subtree: ID) async throws -> Outcome {
        let parentPath = SystemCalls.directory(of: live)
        try FileManager.default.createDirectory(atPath: parentPath.isEmpty ? "/" : parentPath, withIntermediateDirectories: true)
        let staging = SystemCalls.stagingPath(beside: live)
        defer { try? FileManager.default.removeItem(atPath: staging) }
        guard mkdir(staging, 0o700) == 0 else {
            throw BunkerError(.sourceIO, "Cannot create the staging directory \(staging): \(String(cString: strerror(errno))).")
        }
        let report = try await stage(subtree, into: try DirectoryHandle(path: staging))
        chmod(staging, mode_t(node.mode & 0o7777))
        guard rename(staging, live) == 0 else {
            throw BunkerError(.sourceIO, "Cannot move the restored tree to \(live): \(String(cString: strerror(errno))).")
        }
        return Outcome(report: report)
    }

    /// Restores the snapshot's tree into `dir` and fails if any entry failed.
    private func stage(_ subtree: ID, into dir: DirectoryHandle) async throws -> RestoreReport {
        let report = try await Restorer(loader: context.loader, progress: context.progress).restore(tree: subtree, into: dir)
        guard report.failures.isEmpty else {
            let listed = report.failures.prefix(5).map { "\($0.path): \($0.message)" }.joined(separator: "; ")
            if report.failures.contains(where: \.storageFull) {
                throw BunkerError(.storageFull, "The filesystem holding \(live) has not enough free space to stage the restore of source \(source), so the live tree was not touched (\(listed)). Free space there, or restore elsewhere with --target DIR.")
            }
            throw BunkerError(.integrity, "\(report.failures.count) entries of source \(source) could not be restored, so the live tree was not touched (\(listed)).")
        }
        return report
    }

    private func safetyTree() async throws -> Tree? {
        guard let subtree = context.safetyCopy?.node?.subtree else { return nil }
        return try await context.loader.loadTree(subtree)
    }

    // MARK: - Plan

    struct Plan {
        /// Paths (name components) of live entries that stay.
        var keeps: [[[UInt8]]] = []
        /// Why some cannot stay.
        var conflicts: [String] = []
    }

    /// The restored tree at the same place as a live directory.
    enum Staged {
        case directory(DirectoryHandle)
        /// Absent: a kept entry there gets its directories created.
        case absent
        /// A file where the live tree has a directory: nothing can be kept below.
        case blocked(String)
    }

    /// Walks the live tree beside the safety snapshot's listing and the restored tree.
    private func plan(_ dir: DirectoryHandle, safety: Tree?, staged: Staged, relative: [[UInt8]], rootDevice: dev_t, skip: [UInt8]?, into plan: inout Plan) async throws {
        for name in try dir.entries() {
            if relative.isEmpty, let skip, name == skip { continue }
            guard let st = try dir.status(of: name) else { continue }
            let path = relative + [name]
            let shown = path.map(FileName.display).joined(separator: "/")
            let kind = Node.Kind(mode: st.st_mode)
            if captured(st, path: path, by: safety?.node(nameBytes: name)) {
                guard kind == .directory else { continue }
                if st.st_dev != rootDevice {
                    plan.conflicts.append("\(shown) is a mount point inside the tree (restore it as a source of its own)")
                    continue
                }
                let child = try dir.openDirectory(name)
                var below: Staged = .absent
                if case .directory(let stagedDir) = staged, let stagedStatus = try stagedDir.status(of: name) {
                    below = stagedStatus.st_mode & S_IFMT == S_IFDIR ? .directory(try stagedDir.openDirectory(name)) : .blocked(shown)
                } else if case .blocked(let blocker) = staged {
                    below = .blocked(blocker)
                }
                var subtree: Tree?
                if let sub = safety?.node(nameBytes: name)?.subtree { subtree = try await context.loader.loadTree(sub) }
                try await self.plan(child, safety: subtree, staged: below, relative: path, rootDevice: rootDevice, skip: nil, into: &plan)
                continue
            }
            switch staged {
            case .directory(let stagedDir):
                if try stagedDir.status(of: name) != nil {
                    plan.conflicts.append("\(shown) is in the snapshot too, but the live one is not in the safety snapshot")
                    continue
                }
            case .blocked(let blocker):
                plan.conflicts.append("\(shown) has no place in the restored tree, where \(blocker) is not a directory")
                continue
            case .absent:
                break
            }
            plan.keeps.append(path)
        }
    }

    /// Whether the restore may replace this live entry: the safety snapshot holds it, or (without
    /// a safety backup) the source's rules do not exclude it.
    private func captured(_ st: stat, path: [[UInt8]], by node: Node?) -> Bool {
        guard context.safetyCopy != nil else {
            let relative = path.map(FileName.display).joined(separator: "/")
            let kind = Node.Kind(mode: st.st_mode)
            return !rules.excludes(name: FileName.display(path.last!), absolute: live + "/" + relative, relative: relative, isDirectory: kind == .directory)
        }
        return InPlaceRestore.matches(st, node)
    }

    /// Whether a safety snapshot's node holds this entry as it is now.
    static func matches(_ st: stat, _ node: Node?) -> Bool {
        guard let node, Node.Kind(mode: st.st_mode) == node.type else { return false }
        guard node.type == .file else { return true }
        let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        return node.size == UInt64(st.st_size) && node.mtimeNanoseconds == mtime && node.inode == UInt64(st.st_ino)
    }

    // MARK: - Link and swap

    /// Links every kept entry into the restored tree: the same inodes under the same paths, so
    /// the live tree is untouched until the swap. A kept directory is re-created and its content
    /// linked; a file that cannot be linked (a hard link limit, a protected link) is copied.
    private func linkKeeps(_ keeps: [[[UInt8]]], from liveRoot: DirectoryHandle, into new: DirectoryHandle, mountPoint: Bool) throws {
        for keep in keeps {
            // In a mount point the top level is swapped entry by entry: kept entries there stay.
            if mountPoint && keep.count == 1 { continue }
            let liveParent = try InPlaceRestore.open(keep.dropLast(), in: liveRoot)
            let newParent = try InPlaceRestore.makeDirectories(keep.dropLast(), in: new, likeThoseIn: liveRoot)
            try InPlaceRestore.link(keep.last!, from: liveParent, to: newParent)
            FaultPoints.hit("files-restore-link")
        }
        try new.sync()
    }

    /// Links (or, for a directory, re-creates and fills) the entry `name` of `from` into `to`.
    static func link(_ name: [UInt8], from: DirectoryHandle, to: DirectoryHandle) throws {
        guard let st = try from.status(of: name) else { return }
        if st.st_mode & S_IFMT == S_IFDIR {
            guard FileName.with(name, { mkdirat(to.fd, $0, 0o700) }) == 0 else { throw FileName.error(errno, "create the directory", name) }
            let source = try from.openDirectory(name)
            let copy = try to.openDirectory(name)
            for entry in try source.entries() { try link(entry, from: source, to: copy) }
            fchown(copy.fd, st.st_uid, st.st_gid)
            fchmod(copy.fd, mode_t(st.st_mode & 0o7777))
            var times = [st.st_atim, st.st_mtim]
            futimens(copy.fd, &times)
            return
        }
        let linked = FileName.with(name) { path in linkat(from.fd, path, to.fd, path, 0) }
        guard linked != 0 else { return }
        let err = errno
        guard st.st_mode & S_IFMT == S_IFREG, err == EPERM || err == EMLINK else { throw FileName.error(err, "keep", name) }
        try copyFile(name, from: from, to: to, status: st)
    }

    /// Copies a regular file that cannot be linked, with its owner, mode and times.
    private static func copyFile(_ name: [UInt8], from: DirectoryHandle, to: DirectoryHandle, status st: stat) throws {
        let input = FileName.with(name) { openat(from.fd, $0, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) }
        guard input >= 0 else { throw FileName.error(errno, "keep", name) }
        defer { close(input) }
        let output = FileName.with(name) { openat(to.fd, $0, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600) }
        guard output >= 0 else { throw FileName.error(errno, "keep", name) }
        defer { close(output) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw FileName.error(errno, "keep", name) }
            if n == 0 { break }
            try writeAll(Data(buffer[0..<n]), to: output, path: FileName.display(name))
        }
        fchown(output, st.st_uid, st.st_gid)
        fchmod(output, mode_t(st.st_mode & 0o7777))
        var times = [st.st_atim, st.st_mtim]
        futimens(output, &times)
    }

    /// Opens the directory at `path` below `root`, following no symlink.
    static func open(_ path: ArraySlice<[UInt8]>, in root: DirectoryHandle) throws -> DirectoryHandle {
        var dir = root
        for component in path { dir = try dir.openDirectory(component) }
        return dir
    }

    /// Opens (creating what is missing, with the modes of the same directories in `model`) the
    /// directory at `path` below `root`.
    static func makeDirectories(_ path: ArraySlice<[UInt8]>, in root: DirectoryHandle, likeThoseIn model: DirectoryHandle) throws -> DirectoryHandle {
        var dir = root
        var modelDir: DirectoryHandle? = model
        for component in path {
            let modelStatus = try modelDir?.status(of: component)
            if try dir.status(of: component) == nil {
                let mode = modelStatus.map { mode_t($0.st_mode & 0o7777) } ?? 0o700
                guard FileName.with(component, { mkdirat(dir.fd, $0, 0o700) }) == 0 else {
                    throw FileName.error(errno, "create the directory", component)
                }
                let created = try dir.openDirectory(component)
                fchmod(created.fd, mode | 0o700)
            }
            dir = try dir.openDirectory(component)
            modelDir = try modelDir.flatMap { try $0.status(of: component) != nil ? $0.openDirectory(component) : nil }
        }
        return dir
    }

    /// The entry-by-entry swap of a mount point; safe to run again after a crash.
    static func swapEntries(_ journal: SwapJournal, live: DirectoryHandle, staging: DirectoryHandle, skip: [UInt8]) throws {
        if try staging.status(of: oldName) == nil {
            guard FileName.with(oldName, { mkdirat(staging.fd, $0, 0o700) }) == 0 else {
                throw FileName.error(errno, "create the directory", oldName)
            }
        }
        let old = try staging.openDirectory(oldName)
        let new = try staging.openDirectory(newName)
        let staged = journal.stagedNames.map { Array($0) }
        let topKeeps = Set(journal.keeps.filter { $0.count == 1 }.map { Array($0[0]) })
        // Each replaced entry: the old one into old/, then the new one into place.
        for name in staged where try new.status(of: name) != nil {
            if try live.status(of: name) != nil { try live.move(name, to: old) }
            try new.move(name, to: live)
            FaultPoints.hit("files-restore-swap-entry")
        }
        // Entries the snapshot does not have (and that are not kept) go to old/ too.
        let stagedSet = Set(staged)
        for name in try live.entries() where name != skip && !stagedSet.contains(name) && !topKeeps.contains(name) {
            try live.move(name, to: old)
        }
        try live.sync()
        try old.sync()
    }

    // MARK: - Clean

    /// Removes the old tree left by the swap, entry by entry against the safety snapshot; what
    /// it does not hold is set aside. Returns where, if anything was.
    static func clean(_ journal: SwapJournal, staging: DirectoryHandle, stagingName: [UInt8], in parent: DirectoryHandle, loader: any BlobLoader, excludes: [String]) async throws -> String? {
        let oldRoot = journal.mountPoint ? oldName : newName
        var setAside = false
        if try staging.status(of: oldRoot) != nil {
            let old = try staging.openDirectory(oldRoot)
            let live = try DirectoryHandle(path: journal.live)
            if let hex = journal.safetyTree, let id = ID(hex: hex) {
                setAside = try await clean(old, safety: try await loader.loadTree(id), live: live, loader: loader)
            } else {
                // No safety backup was taken: the user chose to lose what the restore replaced.
                for name in try old.entries() { try old.removeTree(name) }
            }
            if !setAside { try staging.removeTree(oldRoot) }
        }
        if try staging.status(of: newName) != nil && journal.mountPoint {
            // Left empty by the swap.
            try staging.removeTree(newName)
        }
        guard setAside else {
            try parent.removeTree(stagingName)
            try parent.sync()
            return nil
        }
        _ = FileName.with(journalName) { unlinkat(staging.fd, $0, 0) }
        let keptName = Array(String(decoding: stagingName, as: UTF8.self).replacingOccurrences(of: "bunker-restore-", with: "bunker-kept-").utf8)
        try parent.move(stagingName, to: parent, as: keptName)
        try parent.sync()
        let base = journal.mountPoint ? journal.live : SystemCalls.directory(of: journal.live)
        return base + "/" + FileName.display(keptName) + "/" + FileName.display(oldRoot)
    }

    /// Removes from the old tree `dir` what the safety snapshot holds and what the live tree
    /// `live` (the same place in the restored tree) kept under the same inode; true when
    /// something was left.
    private static func clean(_ dir: DirectoryHandle, safety: Tree?, live: DirectoryHandle?, loader: any BlobLoader) async throws -> Bool {
        var left = false
        for name in try dir.entries() {
            guard let st = try dir.status(of: name) else { continue }
            let node = safety?.node(nameBytes: name)
            let liveStatus = try live?.status(of: name)
            let isDirectory = st.st_mode & S_IFMT == S_IFDIR
            let kept = !isDirectory && liveStatus.map { $0.st_ino == st.st_ino && $0.st_dev == st.st_dev } == true
            guard matches(st, node) || kept || (isDirectory && liveStatus.map { $0.st_mode & S_IFMT == S_IFDIR } == true) else {
                left = true
                continue
            }
            if isDirectory {
                let child = try dir.openDirectory(name)
                fchmod(child.fd, 0o700)
                var subtree: Tree?
                if let sub = node?.subtree, node?.type == .directory { subtree = try await loader.loadTree(sub) }
                let liveChild = liveStatus.map { $0.st_mode & S_IFMT == S_IFDIR } == true ? try live?.openDirectory(name) : nil
                if try await clean(child, safety: subtree, live: liveChild, loader: loader) {
                    left = true
                    continue
                }
                guard FileName.with(name, { unlinkat(dir.fd, $0, AT_REMOVEDIR) }) == 0 else {
                    throw FileName.error(errno, "remove the directory", name)
                }
            } else {
                guard FileName.with(name, { unlinkat(dir.fd, $0, 0) }) == 0 else {
                    throw FileName.error(errno, "remove", name)
                }
            }
        }
        return left
    }

    // MARK: - Recovery

    /// Finishes or undoes restores in place of `live` that a crash interrupted.
    ///
    /// With a `loader`, the old tree of a finished swap is cleaned too; without one (a backup
    /// starting), only what touches the live tree is done.
    static func recover(live: String, loader: (any BlobLoader)?) async throws {
        let parentPath = SystemCalls.directory(of: live)
        let base = "." + (live as NSString).lastPathComponent + ".bunker-restore-"
        var places: [(DirectoryHandle, [UInt8])] = []
        if let parent = try? DirectoryHandle(path: parentPath.isEmpty ? "/" : parentPath) {
            for name in try parent.entries() where FileName.display(name).hasPrefix(base) { places.append((parent, name)) }
        }
        if let inside = try? DirectoryHandle(path: live) {
            for name in try inside.entries() where FileName.display(name).hasPrefix(insidePrefix) { places.append((inside, name)) }
        }
        for (parent, name) in places {
            guard let staging = try? parent.openDirectory(name) else { continue }
            guard let journal = try SwapJournal.read(from: staging), journal.live == live else {
                // A restore killed before its first journal was written left its staging
                // directory (named as ours) empty, or holding only `journal.tmp`: nothing was
                // staged or swapped, and it goes. Anything else without a journal is not ours
                // and is never touched.
                let temp = Array("journal.tmp".utf8)
                if try staging.entries().allSatisfy({ $0 == temp }), flock(staging.fd, LOCK_EX | LOCK_NB) == 0 {
                    _ = FileName.with(temp) { unlinkat(staging.fd, $0, 0) }
                    _ = FileName.with(name) { unlinkat(parent.fd, $0, AT_REMOVEDIR) }
                }
                continue
            }
            // A restore still running holds the lock: its work is not interrupted.
            guard flock(staging.fd, LOCK_EX | LOCK_NB) == 0 else { continue }
            try await recover(journal, staging: staging, name: name, in: parent, loader: loader)
        }
    }

    private static func recover(_ journal: SwapJournal, staging: DirectoryHandle, name: [UInt8], in parent: DirectoryHandle, loader: (any BlobLoader)?) async throws {
        var journal = journal
        let liveRoot = try DirectoryHandle(path: journal.live)
        switch journal.phase {
        case .staging:
            // An exchange that happened before the journal said so: `new/` is the old live root.
            if !journal.mountPoint, let new = try? staging.openDirectory(newName), try new.status().st_ino == journal.liveInode {
                journal.phase = .cleaning
                try journal.write(to: staging)
            } else {
                try parent.removeTree(name)
                return
            }
        case .swapping:
            try swapEntries(journal, live: liveRoot, staging: staging, skip: name)
            journal.phase = .cleaning
            try journal.write(to: staging)
        case .cleaning:
            break
        }
        guard let loader else { return }
        _ = try await clean(journal, staging: staging, stagingName: name, in: parent, loader: loader, excludes: [])
    }
}

/// The journal of one restore in place of a file tree (`journal.json` in its staging directory).
struct SwapJournal: Codable {
    enum Phase: String, Codable { case staging, swapping, cleaning }

    var phase: Phase
    /// The live tree's path.
    var live: String
    /// Whether the live tree is a mount point (staged inside it, swapped entry by entry).
    var mountPoint: Bool
    /// The live root directory's inode before the swap: after the exchange, `new/` has it.
    var liveInode: UInt64
    /// The source's directory listing in the safety snapshot (hex id), when one was taken.
    var safetyTree: String?
    /// Live entries that the restore keeps, as name components.
    var keeps: [[Data]]
    /// (Mount points) the top-level names of the restored tree.
    var stagedNames: [Data]

    enum CodingKeys: String, CodingKey {
        case phase, live, keeps
        case mountPoint = "mount_point"
        case liveInode = "live_inode"
        case safetyTree = "safety_tree"
        case stagedNames = "staged_names"
    }

    /// Writes the journal whole (temporary file, fsync, rename, fsync the directory).
    func write(to dir: DirectoryHandle) throws {
        let data = try JSONEncoder().encode(self)
        let temp = Array("journal.tmp".utf8)
        let fd = FileName.with(temp) { openat(dir.fd, $0, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600) }
        guard fd >= 0 else { throw BunkerError(.sourceIO, "Cannot write the restore journal: \(String(cString: strerror(errno))).") }
        defer { close(fd) }
        try writeAll(data, to: fd, path: "the restore journal")
        guard fsync(fd) == 0 else { throw BunkerError(.sourceIO, "Cannot flush the restore journal: \(String(cString: strerror(errno))).") }
        let renamed = FileName.with(temp) { from in FileName.with(InPlaceRestore.journalName) { renameat(dir.fd, from, dir.fd, $0) } }
        guard renamed == 0 else { throw BunkerError(.sourceIO, "Cannot write the restore journal: \(String(cString: strerror(errno))).") }
        try dir.sync()
    }

    /// The journal in `dir`, or nil when there is none.
    static func read(from dir: DirectoryHandle) throws -> SwapJournal? {
        let fd = FileName.with(InPlaceRestore.journalName) { openat(dir.fd, $0, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = Glibc.read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            data.append(contentsOf: buffer[0..<n])
        }
        return try? JSONDecoder().decode(SwapJournal.self, from: data)
    }
}
