import Foundation

/// A storage that refuses every change: for verifying, listing and restoring from a repository
/// that must not be written (a copy under audit, an archive opened for a drill) or cannot be
/// (credentials that may only read). Over it a repository takes no lock (see
/// ``Repository/withLock(exclusive:_:)``).
public struct ReadOnlyStorage: RetentionWrapping {
    public let base: any Storage

    public init(_ base: any Storage) {
        self.base = base
    }

    public func save(_ handle: ObjectHandle, data: Data) async throws {
        throw refusal("write \(handle)")
    }

    public func load(_ handle: ObjectHandle, range: Range<Int>?) async throws -> Data {
        try await base.load(handle, range: range)
    }

    public func stat(_ handle: ObjectHandle) async throws -> ObjectInfo {
        try await base.stat(handle)
    }

    public func list(_ kind: ObjectKind) async throws -> [ObjectInfo] {
        try await base.list(kind)
    }

    public func remove(_ handle: ObjectHandle) async throws {
        throw refusal("delete \(handle)")
    }

    /// The object-lock calls under this storage refuse every change too: an
    /// ``ObjectLockStorage`` over it writes through them, not through ``save(_:data:)``.
    public func wrapping(_ retention: any RetentionStorage) -> any RetentionStorage {
        ReadOnlyRetention(base: retention)
    }

    /// The error for something not done because the repository is open read-only.
    public static func refusal(_ what: String) -> BunkerError {
        BunkerError(.permissionDenied, "The repository is open read-only (--read-only, or read_only = true in bunker.toml), so Bunker did not \(what). Run a command that only reads (snapshots, verify, restore to a new place), or open the repository without read-only.")
    }

    private func refusal(_ what: String) -> BunkerError {
        Self.refusal(what)
    }
}

/// The object-lock calls of a storage opened read-only: reads pass, changes are refused.
struct ReadOnlyRetention: RetentionStorage {
    let base: any RetentionStorage

    func save(_ handle: ObjectHandle, data: Data, retention: ObjectRetention) async throws {
        throw ReadOnlyStorage.refusal("write \(handle)")
    }

    func retention(of handle: ObjectHandle) async throws -> ObjectRetention? {
        try await base.retention(of: handle)
    }

    func extendRetention(of handle: ObjectHandle, to retention: ObjectRetention) async throws {
        throw ReadOnlyStorage.refusal("extend the retention of \(handle)")
    }

    func versions(of handle: ObjectHandle) async throws -> [ObjectVersion] {
        try await base.versions(of: handle)
    }

    func removeAllVersions(of handle: ObjectHandle) async throws {
        throw ReadOnlyStorage.refusal("delete \(handle)")
    }

    func probeImmutability(mode: ObjectLockMode) async throws -> ImmutabilityProbe {
        throw ReadOnlyStorage.refusal("probe whether the bucket enforces object lock (the probe writes an object)")
    }
}
