import Foundation

/// A storage that refuses every change: for verifying, listing and restoring from a repository
/// that must not be written (a copy under audit, an archive opened for a drill) or cannot be
/// (credentials that may only read). Over it a repository takes no lock (see
/// ``Repository/withLock(exclusive:_:)``).
public struct ReadOnlyStorage: StorageWrapper {
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

    /// The error for something not done because the repository is open read-only.
    public static func refusal(_ what: String) -> BunkerError {
        BunkerError(.permissionDenied, "The repository is open read-only (--read-only, or read_only = true in bunker.toml), so Bunker did not \(what). Run a command that only reads (snapshots, verify, restore to a new place), or open the repository without read-only.")
    }

    private func refusal(_ what: String) -> BunkerError {
        Self.refusal(what)
    }
}
