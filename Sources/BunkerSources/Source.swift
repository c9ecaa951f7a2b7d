import BunkerCore
import Foundation

/// What kind of data a source holds: the `kind` of its `[[source]]` table and of its snapshot
/// records.
///
/// An open set, like NIO's error codes: each kind names itself in its own file
/// (`extension SourceKind { static let files = … }`), and a snapshot may hold a kind this version
/// does not know (written by a newer Bunker), which is then no database and cannot be restored.
public struct SourceKind: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String

    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    public var description: String { rawValue }

    /// Databases are what `--type database` selects; file trees (and kinds this version does
    /// not know) what `--type files` selects.
    public var isDatabase: Bool { SourceKinds.definition(of: self)?.holdsDatabase ?? false }
}

extension SnapshotSource {
    /// The kind the record names (one this version may not know).
    public var sourceKind: SourceKind { SourceKind(rawValue: kind) }
}

/// Where a restore puts a source's data.
public enum RestoreDestination: Sendable, Equatable {
    /// Over the live data, staged beside it, checked, then swapped in.
    case live
    /// Somewhere else on disk: a directory for files, a database file for SQLite, an SQL file
    /// for PostgreSQL. The live data is not touched.
    case path(String)
    /// Another PostgreSQL database on the same server (created if missing).
    case database(String)
}

/// What restoring one source did.
public struct SourceRestoreResult: Sendable, Codable {
    public var source: String
    public var kind: SourceKind
    /// Where the data went: a path, or a database name.
    public var destination: String
    public var files = 0
    public var bytes: UInt64 = 0
    /// The checks the restore ran on the staged data before it went live.
    public var checks: [String] = []
    /// What the user should know: entries set aside, say.
    public var warnings: [String] = []
    /// Kind-specific facts for the report: a point-in-time restore's target, the last
    /// transaction it replayed, the command that starts the restored server.
    public var details: [String: String] = [:]

    public init(source: String, kind: SourceKind, destination: String) {
        self.source = source
        self.kind = kind
        self.destination = destination
    }
}

/// One check of a restore drill.
public struct DrillCheck: Sendable, Codable, Equatable {
    public var name: String
    public var passed: Bool
    public var detail: String

    public init(name: String, passed: Bool, detail: String) {
        self.name = name
        self.passed = passed
        self.detail = detail
    }
}

/// A consistent view of a source, made for one backup.
public struct PreparedBackup: Sendable {
    /// What to store, named by the source.
    public let item: BackupItem
    /// What the snapshot records; called after the item is stored (a dump's row counts are known
    /// only once it has been read to its end).
    public let record: @Sendable () throws -> SnapshotSource
    /// Removes temporary copies and stops helper processes; called whatever happened.
    public let cleanup: @Sendable () -> Void

    public init(item: BackupItem, record: @escaping @Sendable () throws -> SnapshotSource, cleanup: @escaping @Sendable () -> Void) {
        self.item = item
        self.record = record
        self.cleanup = cleanup
    }
}

/// What a source needs to read a snapshot back: the repository's blobs, and a scratch directory.
public struct RestoreContext: Sendable {
    public let loader: any BlobLoader
    /// A private directory for temporary files (database copies, dumps).
    public let scratch: String
    public let progress: OperationProgress?
    /// For a restore in place: what the safety snapshot taken just before holds of this source.
    /// A restore replaces only what is there; anything else in the live data stays.
    public var safetyCopy: SafetyCopy?
    /// For a physical base backup of PostgreSQL: how recovery is set up and whether the server
    /// is started (see ``RecoveryOptions``); nil replays all archived WAL and starts nothing.
    public var recovery: RecoveryOptions?

    public init(loader: any BlobLoader, scratch: String, progress: OperationProgress? = nil, safetyCopy: SafetyCopy? = nil, recovery: RecoveryOptions? = nil) {
        self.loader = loader
        self.scratch = scratch
        self.progress = progress
        self.safetyCopy = safetyCopy
        self.recovery = recovery
    }
}

/// A source's part of the safety snapshot taken before a restore in place.
public struct SafetyCopy: Sendable {
    /// The safety snapshot's id.
    public var snapshotID: String
    /// The source's directory in that snapshot; nil when the source had no live data then.
    public var node: Node?

    public init(snapshotID: String, node: Node?) {
        self.snapshotID = snapshotID
        self.node = node
    }
}

/// Something Bunker backs up and restores: a file tree, an SQLite database, a PostgreSQL database.
///
/// Each source is stored in a snapshot as one directory at the root, named by the source. The
/// guarantees every source gives:
/// - ``prepareBackup(scratch:)`` yields a consistent view (a database as of one moment, never a
///   copy of a file being written), and a failure to read it whole fails the backup.
/// - ``restore(_:record:to:context:)`` to ``RestoreDestination/live`` checks the restored data
///   (SHA-256 of every file, `PRAGMA integrity_check`, a single-transaction load) before the live
///   data changes, and leaves the live data as it was if any step fails.
/// - ``drill(_:record:context:)`` restores into a scratch place, runs the same checks plus a
///   comparison with what the backup recorded, and removes the scratch place.
///
/// A source type is also its kind's ``SourceKindDefinition``, listed in ``SourceKinds/all``:
/// everything that differs from kind to kind is behind these two protocols.
public protocol Source: Sendable {
    var name: String { get }
    var kind: SourceKind { get }
    /// Where the data lives, as recorded in snapshots; never holds a secret.
    var origin: String { get }

    /// Whether there is live data to lose (a safety backup skips a source that has none yet).
    /// Throws when it cannot tell (a server that does not answer): a restore then stops rather
    /// than overwrite data it could not first back up.
    func liveDataExists() async throws -> Bool

    /// Whether restoring to `destination` overwrites this source's live data, so that the
    /// restore takes a safety backup first: ``RestoreDestination/live``, and any other name for
    /// the same place.
    func overwritesLiveData(_ destination: RestoreDestination) -> Bool

    /// Makes a consistent view of the source for one backup.
    func prepareBackup(scratch: String) async throws -> PreparedBackup

    /// Restores this source's directory `node` of a snapshot.
    func restore(_ node: Node, record: SnapshotSource?, to destination: RestoreDestination, context: RestoreContext) async throws -> SourceRestoreResult

    /// Restores into a scratch place, checks the result, and cleans up.
    func drill(_ node: Node, record: SnapshotSource?, context: RestoreContext) async throws -> [DrillCheck]

    /// Where `bunker restore --target DIR` puts this source of a snapshot's `record`, creating
    /// the directories it goes into: a file tree as `DIR/NAME`, a database's file in `DIR/NAME/`.
    func directoryDestination(in directory: String, record: SnapshotSource) throws -> RestoreDestination

    /// Adds this source's directory `node` of a snapshot to an export archive in the layout of
    /// the Clinical Dashboard API (a file tree as it is; a database as its SQL text).
    func export(_ node: Node, record: SnapshotSource, to archive: some SourceExportArchive) async throws

    /// The directory tree a restore in place replaces whole, if the source is one: Bunker's data
    /// directory and a local repository must lie outside it, or a restore would replace them.
    var replacedTree: String? { get }
}

extension Source {
    public func overwritesLiveData(_ destination: RestoreDestination) -> Bool {
        destination == .live
    }

    public var replacedTree: String? { nil }

    /// A file tree's part of an export: the tree under the source's name.
    public func export(_ node: Node, record: SnapshotSource, to archive: some SourceExportArchive) async throws {
        try await archive.addTree(node)
    }

    /// The single regular file in a database source's directory (its copy or its dump).
    func databaseFile(in node: Node, loader: any BlobLoader, preferred: String?) async throws -> Node {
        guard node.type == .directory, node.subtree != nil else {
            throw BunkerError(.corruptObject, "The snapshot's entry for source \(name) is not a directory.")
        }
        guard let file = try await storedDatabaseFile(in: node, loader: loader, preferred: preferred) else {
            throw BunkerError(.corruptObject, "The snapshot holds no database file for source \(name).")
        }
        return file
    }

    /// The database file in a source's directory: the one the record names, else the first
    /// regular file; nil when the entry holds none (an export then leaves the source out).
    func storedDatabaseFile(in node: Node, loader: any BlobLoader, preferred: String?) async throws -> Node? {
        guard let subtree = node.subtree else { return nil }
        let tree = try await loader.loadTree(subtree)
        if let preferred, let file = tree.node(named: preferred), file.type == .file { return file }
        return tree.nodes.first { $0.type == .file }
    }

    /// A database's file for `--target DIR`: `DIR/NAME/FILE`, the file named as the record
    /// names it (`fallback` for snapshots that name none).
    ///
    /// `NAME` inside the target must be a directory of its own, never a symbolic link: one
    /// placed there (by anyone who can write the target, or left by an earlier restore) would
    /// take the database outside the target. The file itself is created with `O_EXCL`, which
    /// follows no link either.
    func databaseDestination(in directory: String, record: SnapshotSource, fallback: String) throws -> RestoreDestination {
        let folder = directory + "/" + name
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if mkdir(folder, 0o700) != 0 && errno != EEXIST {
            throw BunkerError(.permissionDenied, "Cannot create \(folder): \(String(cString: strerror(errno))).")
        }
        var info = stat()
        guard lstat(folder, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw BunkerError(.objectExists, "\(folder) is in the way: it is not a directory (a symbolic link, say), and a restore never writes through one. Nothing was restored: move it away, or restore into an empty directory.")
        }
        return .path(folder + "/" + (record.details?["file"] ?? fallback))
    }
}
