import Foundation

/// The kinds of object a repository keeps, each in its own namespace.
public enum ObjectKind: String, Sendable, CaseIterable, Codable {
    /// The single repository configuration object (name `config`).
    case config
    /// Key files: the master key wrapped under a password.
    case key = "keys"
    /// Packs of encrypted blobs.
    case pack = "data"
    /// Index files naming which pack holds which blob.
    case index
    /// Snapshot manifests.
    case snapshot = "snapshots"
    /// Lock files.
    case lock = "locks"
    /// Holds: a snapshot that retention must keep until the hold is removed (legal hold).
    case hold = "holds"
    /// What the service layer keeps beside the data so that the repository alone rebuilds it on
    /// a new machine: sealed, append-only segments of the audit trail. Neither prune nor
    /// forget ever removes them.
    case catalog = "catalog"
    /// PostgreSQL's archived WAL files, one self-contained sealed object per file (see
    /// ``WalObject``): not packed and not chunked, since WAL deduplicates poorly.
    case wal = "wal"

    /// Kinds added after the first repositories were made: their directories appear with their
    /// first object, and a repository without them lists none.
    var isLateAddition: Bool { self == .hold || self == .catalog || self == .wal }
}

/// A named object of one kind.
public struct ObjectHandle: Hashable, Sendable, CustomStringConvertible {
    public let kind: ObjectKind
    public let name: String

    public init(_ kind: ObjectKind, _ name: String) {
        self.kind = kind
        self.name = name
    }

    /// The handle of an object named by an ``ID``.
    public init(_ kind: ObjectKind, _ id: ID) {
        self.init(kind, id.hex)
    }

    /// The handle of the repository's configuration.
    public static let config = ObjectHandle(.config, "config")

    public var description: String { kind == .config ? "config" : "\(kind.rawValue)/\(name)" }
}

/// What ``Storage/stat(_:)`` and ``Storage/list(_:)`` report about an object.
public struct ObjectInfo: Hashable, Sendable {
    public let handle: ObjectHandle
    public let size: Int
    /// When the object was written, if the storage can tell; prune deletes a pack that no index
    /// names only when this is known and older than its grace period.
    public let modified: Date?

    public init(handle: ObjectHandle, size: Int, modified: Date? = nil) {
        self.handle = handle
        self.size = size
        self.modified = modified
    }
}

/// Where a repository's objects live: a local directory, or an S3 bucket (`S3Storage` in BunkerS3).
///
/// Every implementation gives these guarantees, which the rest of Bunker relies on and the
/// shared conformance suite (`StorageConformance` in BunkerTesting) checks:
/// - **Whole or nothing.** After `save` returns, the object is durable and complete; if `save`
///   throws or the process dies, the object is either absent or complete, never partial.
/// - **Never overwritten.** `save` of a name that exists throws ``BunkerError/Code/objectExists``
///   and leaves the existing object untouched.
/// - **Read after write.** Once `save` returns, `load`, `stat` and `list` see the object; once
///   `remove` returns, they no longer do.
/// - **Ranges.** `load` with a range returns exactly those bytes, or throws
///   ``BunkerError/Code/corruptObject`` when the object is shorter than the range.
/// - **Missing objects** make `load`, `stat` and `remove` throw ``BunkerError/Code/objectNotFound``.
/// - `list` may be incomplete on eventually-consistent stores; callers never delete on the
///   strength of a listing alone.
public protocol Storage: Sendable {
    /// Stores `data` under `handle`, durably and atomically; fails if the name exists.
    func save(_ handle: ObjectHandle, data: Data) async throws
    /// Reads the object, or only `range` of its bytes.
    func load(_ handle: ObjectHandle, range: Range<Int>?) async throws -> Data
    /// The object's size.
    func stat(_ handle: ObjectHandle) async throws -> ObjectInfo
    /// Every complete object of one kind, in no particular order.
    func list(_ kind: ObjectKind) async throws -> [ObjectInfo]
    /// The complete objects of one kind whose names start with `prefix`, in no particular order.
    ///
    /// A finder's call (`bunker wal fetch` looks one WAL file up among hundreds of thousands):
    /// a backend answers it without listing the whole kind where it can (S3's `prefix=`); the
    /// default filters ``list(_:)``. The same completeness caveat as ``list(_:)`` holds.
    func list(_ kind: ObjectKind, prefix: String) async throws -> [ObjectInfo]
    /// Deletes the object.
    func remove(_ handle: ObjectHandle) async throws
}

extension Storage {
    public func list(_ kind: ObjectKind, prefix: String) async throws -> [ObjectInfo] {
        try await list(kind).filter { $0.handle.name.hasPrefix(prefix) }
    }

    /// Reads the whole object.
    public func load(_ handle: ObjectHandle) async throws -> Data {
        try await load(handle, range: nil)
    }

    /// Whether the object exists.
    public func exists(_ handle: ObjectHandle) async throws -> Bool {
        do {
            _ = try await stat(handle)
            return true
        } catch let error as BunkerError where error.code == .objectNotFound {
            return false
        }
    }
}

/// A storage that can tell how much room its filesystem has left (``LocalStorage`` via
/// `statvfs`); `bunker stats` and low-space alerts use it when the storage offers it.
public protocol SpaceReporting: Sendable {
    /// Free bytes available to this process, and the filesystem's total size.
    func space() -> (free: UInt64, total: UInt64)?
}

/// A storage whose interrupted writes can leave temporary files behind (``LocalStorage``'s
/// `.tmp-*`). Only a holder of the exclusive lock may call it: another writer's temporary file
/// would otherwise vanish under it.
public protocol TemporaryFileCleaning: Sendable {
    /// Deletes every writer's temporary file and returns how many there were.
    func removeTemporaryFiles() throws -> Int
}
