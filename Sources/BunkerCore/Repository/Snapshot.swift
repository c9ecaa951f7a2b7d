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

    enum CodingKeys: String, CodingKey {
        case time, hostname, username, paths, tags, description, tree, parent, summary
        case programVersion = "program_version"
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
