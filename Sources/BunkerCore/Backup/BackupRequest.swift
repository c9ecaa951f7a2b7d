import Foundation

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

/// One entry of an ``EntryStream``: a file, directory or symlink at a path below the stream's
/// directory.
public struct StreamedEntry: Sendable {
    /// The path below the stream's directory, one name per component (`base/5/1259`).
    public var path: [String]
    /// `.file`, `.directory` or `.symlink`.
    public var type: Node.Kind
    public var mode: UInt32
    public var mtimeNanoseconds: Int64
    public var uid: UInt32
    public var gid: UInt32
    /// A symlink's target.
    public var linkTarget: String?
    /// For a file whose content is changed in place a page at a time (a database relation file):
    /// its page size, so that it is cut at page boundaries and an unchanged page is stored once.
    public var pageSize: Int?

    public init(path: [String], type: Node.Kind, mode: UInt32, mtimeNanoseconds: Int64, uid: UInt32, gid: UInt32,
                linkTarget: String? = nil, pageSize: Int? = nil) {
        self.path = path
        self.type = type
        self.mode = mode
        self.mtimeNanoseconds = mtimeNanoseconds
        self.uid = uid
        self.gid = gid
        self.linkTarget = linkTarget
        self.pageSize = pageSize
    }
}

/// A file tree read as a stream of entries (a tar archive from a pipe, say), stored without a
/// copy on disk.
///
/// Read by one task, in order: ``nextEntry()`` returns an entry and, for a file, a stream of its
/// content, which is read to its end before ``nextEntry()`` is called again.
public protocol EntryStream: Sendable {
    /// The next entry and, for a regular file, its content; nil after the last.
    func nextEntry() async throws -> (StreamedEntry, (any ByteStream)?)?
    /// Called once the last entry has been read; throws if the producer failed, and the backup
    /// then fails without writing a snapshot.
    func finish() async throws
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
    /// A directory holding the file tree an ``EntryStream`` yields.
    case entries(any EntryStream, name: String)

    /// The name the item has in the snapshot.
    public var name: String {
        switch self {
        case .path(_, let name, _), .file(_, let name), .stream(_, let name), .directory(let name, _), .entries(_, let name): return name
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
    public var hostname: String = HostIdentity.name
    /// The most stored bytes this backup may add (what is left of the repository's size
    /// budget); past it the backup fails as if the storage were full, and writes no snapshot.
    public var storedBudget: UInt64?
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
