import Foundation

/// One backup: what was backed up, when, by whom, and the root of its tree.
///
/// Stored sealed as JSON under `snapshots/<sha256>`; the snapshot's id is that name.
public struct Snapshot: Codable, Sendable {
    public var time: Date
    public var hostname: String
    public var username: String
    /// The absolute paths backed up; the root tree holds one node per path, named by its last
    /// component.
    public var paths: [String]
    public var tags: [String]
    public var description: String?
    public var tree: ID
    public var parent: ID?
    public var programVersion: String
    public var summary: BackupSummary?
    /// The backup type of the Clinical Dashboard API: `full`, `database` or `files`; nil for a backup of plain paths.
    public var backupType: String?
    /// The configured sources this snapshot holds, one root directory each; nil for a backup of
    /// plain paths.
    public var sources: [SnapshotSource]?
    /// For a copy made by `bunker copy`: the snapshot it copies, by its id in the repository it
    /// was first made in, so that copying again (or copying a copy) finds it already there.
    public var original: ID?

    public init(
        time: Date, hostname: String, username: String, paths: [String], tags: [String] = [], description: String? = nil,
        tree: ID, parent: ID? = nil, programVersion: String = "bunker \(bunkerVersion)", summary: BackupSummary? = nil,
        backupType: String? = nil, sources: [SnapshotSource]? = nil
    ) {
        self.time = time
        self.hostname = hostname
        self.username = username
        self.paths = paths
        self.tags = tags
        self.description = description
        self.tree = tree
        self.parent = parent
        self.programVersion = programVersion
        self.summary = summary
        self.backupType = backupType
        self.sources = sources
    }

    enum CodingKeys: String, CodingKey {
        case time, hostname, username, paths, tags, description, tree, parent, summary, sources, original
        case programVersion = "program_version"
        case backupType = "backup_type"
    }

    /// The record of the source stored under `name`.
    public func source(named name: String) -> SnapshotSource? {
        sources?.first { $0.name == name }
    }
}

/// What a snapshot records about one source: where it came from and what it held, so that a
/// restore knows how to put it back and a drill what to compare against.
public struct SnapshotSource: Codable, Sendable, Equatable {
    /// The source's name, which is also its directory at the snapshot's root.
    public var name: String
    /// `files`, `sqlite` or `postgres`.
    public var kind: String
    /// Where it was read: a directory, a database file, or a `postgres://` address (never a password).
    public var origin: String
    /// Rows per table at backup time, for databases.
    public var rowCounts: [String: Int]?
    /// Kind-specific facts: page size, server version, dump format.
    public var details: [String: String]?

    public init(name: String, kind: String, origin: String, rowCounts: [String: Int]? = nil, details: [String: String]? = nil) {
        self.name = name
        self.kind = kind
        self.origin = origin
        self.rowCounts = rowCounts
        self.details = details
    }

    enum CodingKeys: String, CodingKey {
        case name, kind, origin, details
        case rowCounts = "row_counts"
    }
}

extension SnapshotSource {
    /// Why a restore must not build a path from this record, if it must not: its name, and the
    /// file name it records, must each be one plain name (not empty, `.` or `..`, no `/` or NUL).
    public var pathProblem: String? {
        if !Node.isSafeName(name) {
            return "names a source \(name.debugDescription), which is not a plain name and could lead a restore outside its target"
        }
        if let file = details?["file"], !Node.isSafeName(file) {
            return "records the file of source \(name) as \(file.debugDescription), which is not a plain name and could lead a restore outside its target"
        }
        return nil
    }
}

/// What a backup did, recorded in its snapshot.
public struct BackupSummary: Codable, Sendable, Equatable {
    public var filesNew = 0
    public var filesChanged = 0
    public var filesUnmodified = 0
    public var directories = 0
    public var totalFiles = 0
    public var totalBytes: UInt64 = 0
    /// Bytes of file content read from disk (unchanged files are not read).
    public var bytesRead: UInt64 = 0
    public var blobsAdded = 0
    /// Plaintext bytes of the blobs this backup added.
    public var dataAdded: UInt64 = 0
    /// Bytes this backup added to the repository's storage (after compression and encryption).
    public var dataAddedStored: UInt64 = 0
    public var warnings = 0
    public var durationSeconds = 0.0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case filesNew = "files_new"
        case filesChanged = "files_changed"
        case filesUnmodified = "files_unmodified"
        case directories
        case totalFiles = "total_files"
        case totalBytes = "total_bytes"
        case bytesRead = "bytes_read"
        case blobsAdded = "blobs_added"
        case dataAdded = "data_added"
        case dataAddedStored = "data_added_stored"
        case warnings
        case durationSeconds = "duration_seconds"
    }
}

/// The version recorded in snapshots and printed by `bunker --version`.
public let bunkerVersion = "0.1.0"
