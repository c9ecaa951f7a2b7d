import BunkerCore
import Foundation

/// One entry of a folder in a snapshot, as the snapshot browser shows it.
public struct SnapshotEntry: Sendable, Codable, Equatable {
    public var name: String
    /// `dir`, `file`, `symlink`, or the kind of a special file (`dev`, `fifo`, …).
    public var type: String
    /// Bytes, for a file.
    public var size: UInt64?
    public var modifiedAt: Date
    /// The SHA-256 of a file's whole content, as backed up.
    public var sha256: String?
    public var linkTarget: String?

    enum CodingKeys: String, CodingKey {
        case name, type, size, sha256
        case modifiedAt = "modified_at"
        case linkTarget = "link_target"
    }
}

/// One folder of a snapshot.
public struct SnapshotFolder: Sendable, Codable {
    public var snapshotID: String
    /// The folder's path in the snapshot, `/`-separated, without a leading slash ("" is the top,
    /// where each source is one entry).
    public var path: String
    /// Folders first, then by name: the page asked for.
    public var entries: [SnapshotEntry]
    /// How many entries the folder has in all.
    public var total: Int
    /// The offset of the next page; nil on the last one.
    public var nextOffset: Int?

    enum CodingKeys: String, CodingKey {
        case snapshotID = "snapshot_id"
        case path, entries, total
        case nextOffset = "next_offset"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(snapshotID, forKey: .snapshotID)
        try c.encode(path, forKey: .path)
        try c.encode(entries, forKey: .entries)
        try c.encode(total, forKey: .total)
        try c.encode(nextOffset, forKey: .nextOffset)
    }
}

extension BunkerService {
    /// The entries of one folder of a snapshot: one tree object is read per level of `path`, so a
    /// folder opens in about the same time whatever the size of the snapshot.
    ///
    /// `path` is `/`-separated; empty names and `.` are skipped, `..` is refused. A missing name is
    /// `objectNotFound`, a name that is not a folder `invalidArgument`. Only `limit` entries from
    /// `offset` on are described, so that a folder of tens of thousands of files answers in pages.
    public func listFolder(snapshot reference: String, path: String, offset: Int = 0, limit: Int = .max) async throws -> SnapshotFolder {
        let names = try Self.pathComponents(path)
        let (id, treeID) = try await folderID(snapshot: reference, names: names)
        let folder = try await sortedFolders.sorted(treeID) { [repository] in
            SortedFolder(try await repository.loadTreeOutline(treeID))
        }
        let page = folder.order.dropFirst(offset).prefix(limit)
        let end = min(folder.count, offset + page.count)
        return SnapshotFolder(
            snapshotID: id.hex, path: names.joined(separator: "/"), entries: page.map { Self.entry(folder.outline.node(at: $0)) },
            total: folder.count, nextOffset: end < folder.count ? end : nil)
    }

    /// The entry of the file at `path` in a snapshot: `objectNotFound` when there is nothing,
    /// `invalidArgument` when it is not a regular file. What ``readFile(snapshot:path:by:output:)``
    /// would send, known before its first byte.
    public func fileEntry(snapshot reference: String, path: String) async throws -> SnapshotEntry {
        Self.entry(try await fileNode(snapshot: reference, path: path).1)
    }

    /// Streams one file of a snapshot into `output`, a piece at a time, under a shared lock of the
    /// repository (a prune cannot delete what it reads). The SHA-256 of the whole content is
    /// checked against the one recorded at backup time when it ends (``ContentReader``):
    /// `integrity` if it differs, so that a caller can cut off a download that went wrong.
    /// Audited as `export` of the snapshot, with the file's path.
    public func readFile(snapshot reference: String, path: String, by actor: AuditActor = .localUser(), output: @escaping @Sendable (Data) async throws -> Void) async throws {
        let shown = try Self.pathComponents(path).joined(separator: "/")
        try await audited("export", target: reference, by: actor, details: ["path": shown, "file": "-"]) {
            try await repository.withLock(exclusive: false) {
                let (_, node) = try await self.fileNode(snapshot: reference, path: path)
                try await ContentReader(loader: self.repository).read(node, output)
            }
        } describe: { _ in
            AuditedResult(details: ["path": shown, "file": "-"])
        }
    }

    private func fileNode(snapshot reference: String, path: String) async throws -> (ID, Node) {
        var names = try Self.pathComponents(path)
        guard let name = names.popLast() else {
            throw BunkerError(.invalidArgument, "Name a file of the backup in path (like studies/2025/note-1.txt).")
        }
        let shown = (names + [name]).joined(separator: "/")
        let (id, treeID) = try await folderID(snapshot: reference, names: names)
        guard let node = try Self.node(named: name, in: try await repository.loadTreeOutline(treeID)) else {
            throw BunkerError(.objectNotFound, "Backup \(id.short) has nothing at \(shown).")
        }
        guard node.type == .file else {
            throw BunkerError(.invalidArgument, "\(shown) in backup \(id.short) is a \(node.type.rawValue), not a file: open it in the browser instead.")
        }
        return (id, node)
    }

    /// Restores the files and folders `paths` of a snapshot (as the browser names them) into
    /// `target`, a directory on the server that does not exist yet or is empty: "to another
    /// place", never over anything (the live data is restored in place by ``restore(_:by:progress:)``,
    /// with its safety backup). Audited as `restore`, with the signature.
    public func restoreFiles(
        snapshot reference: String, paths: [String], into target: String, by actor: AuditActor, reason: String,
        signature: ElectronicSignature? = nil, progress: OperationProgress? = nil
    ) async throws -> RestoreReport {
        let includes = try paths.map { try Self.pathComponents($0).joined(separator: "/") }
        guard !includes.isEmpty, !includes.contains("") else {
            throw BunkerError(.invalidArgument, "Choose at least one file or folder of the backup to restore (not its top).")
        }
        guard target.hasPrefix("/"), !target.split(separator: "/").contains("..") else {
            throw BunkerError(.invalidArgument, "The place to restore to must be an absolute directory path on the server without \"..\", like /srv/restores/ticket-4711.")
        }
        try configuration.checkRestoreTargetIsOutsideLiveData(target, repository: (repository.storage.backend as? LocalStorage)?.root)
        if let existing = try? FileManager.default.contentsOfDirectory(atPath: target), !existing.isEmpty {
            throw BunkerError(.objectExists, "\(target) already holds files: restore into a new or empty directory, so that nothing is overwritten.")
        }
        return try await restoreTree(snapshot: reference, includes: includes, to: target, by: actor, reason: reason, signature: signature, progress: progress)
    }

    /// The snapshot's id and the tree id of the folder at `names`: every level above it is read
    /// (as an outline: a name is found in a folder of 100,000 files without decoding them all),
    /// the folder itself is not.
    private func folderID(snapshot reference: String, names: [String]) async throws -> (ID, treeID: ID) {
        let (id, snapshot) = try await snapshotByReference(reference)
        var treeID = snapshot.tree
        for (depth, name) in names.enumerated() {
            let shown = names[...depth].joined(separator: "/")
            guard let node = try Self.node(named: name, in: try await repository.loadTreeOutline(treeID)) else {
                throw BunkerError(.objectNotFound, "Backup \(id.short) has nothing at \(shown).")
            }
            guard node.type == .directory, let subtree = node.subtree else {
                throw BunkerError(.invalidArgument, "\(shown) in backup \(id.short) is not a folder: download it instead.")
            }
            treeID = subtree
        }
        return (id, treeID)
    }

    private static func entry(_ node: Node) -> SnapshotEntry {
        SnapshotEntry(
            name: node.name, type: node.type.rawValue, size: node.type == .file ? (node.size ?? 0) : nil,
            modifiedAt: Date(timeIntervalSince1970: Double(node.mtimeNanoseconds) / 1e9), sha256: node.sha256, linkTarget: node.linkTarget)
    }

    /// A snapshot by its full id (one read) or any other reference (a prefix, `latest`).
    ///
    /// The browser reads without a lock, so nothing reloads the index a long-running server read
    /// at its start: a snapshot another process (a CLI or cron backup) wrote since has its blobs
    /// in index files this process has not read. Its root listing unknown is the sign (a
    /// snapshot is written after the index files of everything it holds), and the index is read
    /// again then.
    private func snapshotByReference(_ reference: String) async throws -> (ID, Snapshot) {
        let (id, snapshot): (ID, Snapshot)
        if reference.count == 64, let full = ID(hex: reference) {
            (id, snapshot) = (full, try await repository.loadSnapshot(full))
        } else {
            let found = try await repository.findSnapshot(reference)
            (id, snapshot) = (found.id, found.snapshot)
        }
        if repository.index.lookup(snapshot.tree) == nil {
            try await repository.reloadIndexIfChanged()
        }
        return (id, snapshot)
    }

    /// The entry of a folder the browser names `name`, as its listing shows it: by its bytes, or
    /// for a name that is not UTF-8 by the readable form the listing gives (U+FFFD for each bad
    /// byte), when that form belongs to one entry alone. Only a name holding U+FFFD that no
    /// entry has byte for byte looks at every entry.
    static func node(named name: String, in outline: TreeOutline) throws -> Node? {
        if let node = outline.node(named: name) { return node }
        guard name.contains("\u{FFFD}") else { return nil }
        var found: Node?
        for index in 0..<outline.count {
            let node = outline.node(at: index)
            guard node.rawName != nil, node.name == name else { continue }
            guard found == nil else {
                throw BunkerError(.invalidArgument, "Several entries of this folder show as \(name) (their names are not UTF-8 and differ only in the bytes shown as \u{FFFD}); restore the folder to another place instead.")
            }
            found = node
        }
        return found
    }

    /// `path`'s names, without empty ones and `.`; `..` is refused (the browser goes down only).
    static func pathComponents(_ path: String) throws -> [String] {
        let names = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init).filter { $0 != "." }
        if names.contains("..") {
            throw BunkerError(.invalidArgument, "A path in a backup may not contain \"..\": give it from the top, like studies/2025.")
        }
        return names
    }
}

/// A folder in the order the snapshot browser shows it: its outline (nodes decoded a page at a
/// time) and the order of their indices.
struct SortedFolder: Sendable {
    let outline: TreeOutline
    /// Indices into the outline: folders first, then the rest.
    let order: [Int]

    /// A tree lists its nodes by the bytes of their names, so folders first, then the rest, each
    /// in that order, is a partition of indices by kind, not a sort, and needs no node decoded.
    init(_ outline: TreeOutline) {
        self.outline = outline
        let kinds = outline.kinds
        order = kinds.indices.filter { kinds[$0] == .directory } + kinds.indices.filter { kinds[$0] != .directory }
    }

    var count: Int { order.count }
}

/// The folders the snapshot browser opened last, by tree id (a tree never changes, so an entry
/// is never stale): the next page of a folder of 100,000 files, and the same folder opened
/// again, skip reading, authenticating and checking its blob.
final class SortedFolderCache: Sendable {
    private let recent = Mutex<[(id: ID, folder: SortedFolder)]>([])
    private let limit: Int

    init(limit: Int = 8) {
        self.limit = limit
    }

    func sorted(_ id: ID, _ make: () async throws -> SortedFolder) async rethrows -> SortedFolder {
        if let hit = recent.withLock({ $0.first { $0.id == id }?.folder }) { return hit }
        let folder = try await make()
        recent.withLock { recent in
            recent.removeAll { $0.id == id }
            recent.append((id, folder))
            if recent.count > limit { recent.removeFirst() }
        }
        return folder
    }
}

import Synchronization
