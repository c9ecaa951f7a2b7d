import Foundation

/// A storage that refuses every change: for verifying, listing and restoring from a repository
/// that must not be written (a copy under audit, an archive opened for a drill).
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

    private func refusal(_ what: String) -> BunkerError {
        BunkerError(.permissionDenied, "The repository is open read-only, so Bunker did not \(what). Run a command that only reads (verify, snapshots, restore), or open the repository without read-only.")
    }
}
