import Foundation

/// The repository's parameters, stored encrypted as the `config` object.
public struct RepositoryConfig: Codable, Sendable {
    /// The format version this build gives new repositories; see docs/repository-format.md.
    /// Version 2 adds bundles of small data blobs; version 3 adds names and symlink targets that
    /// are not UTF-8 (stored as bytes) and special files (FIFOs, sockets, devices) recorded as what
    /// they are. An older repository is read whole and written without what its version lacks, so
    /// that older Bunker builds keep reading it.
    public static let currentVersion = 3
    /// The first version whose packs and index files may hold bundles.
    static let bundlesSince = 2
    /// The first version whose trees may hold `name_bytes`, `link_target_bytes`, special files and `rdev`.
    public static let rawNamesSince = 3

    /// Whether trees of this repository may hold names that are not UTF-8 and special files.
    public var storesRawNames: Bool { version >= RepositoryConfig.rawNamesSince }

    public var version: Int
    /// A random id, unique per repository.
    public var id: String
    public var chunker: ChunkerParameters
    /// The zstd level used when a backup names none (1–19).
    public var compressionLevel: Int
    /// Packs are closed once they reach this many bytes.
    public var packSize: Int
    public var created: Date
    /// The S3 object lock every object is written under (`object_lock`, absent for none); see
    /// ``ObjectLockStorage``. Readers that predate it ignore it; writers that predate it would
    /// write unlocked objects, which verify's probe and `bunker stats` do not report as locked.
    public var objectLock: ObjectLockSettings?

    enum CodingKeys: String, CodingKey {
        case version, id, chunker, created
        case objectLock = "object_lock"
        case compressionLevel = "compression_level"
        case packSize = "pack_size"
    }

    /// The parameters for a new repository.
    public static func new(compressionLevel: Int = 3, chunker: ChunkerParameters = .standard(), packSize: Int = 8 << 20, objectLock: ObjectLockSettings? = nil, now: Date = Date()) -> RepositoryConfig {
        RepositoryConfig(
            version: currentVersion, id: ID.sha256(of: Array(UUID().uuidString.utf8)).hex,
            chunker: chunker, compressionLevel: compressionLevel, packSize: packSize, created: now, objectLock: objectLock)
    }
}

/// zstd levels Bunker accepts.
public let compressionLevels = 1...19

/// Checks a compression level and says what is allowed.
public func validateCompressionLevel(_ level: Int) throws {
    guard compressionLevels.contains(level) else {
        throw BunkerError(.invalidArgument, "Compression level \(level) is out of range; use 1 (fastest) to 19 (smallest), 3 is the default.")
    }
}
