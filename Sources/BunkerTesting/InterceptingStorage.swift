import BunkerCore
import Foundation

/// Wraps a storage and intercepts it at exact moments: a hook runs before every save (to run
/// another operation between two packs of a backup, or to make saves of one kind fail, as a
/// lock that can no longer be refreshed), and listings can leave objects out, as an eventually
/// consistent object store's may (`load`, `stat` and `remove` still find them).
public final class InterceptingStorage: Storage {
    private let base: any Storage
    private let beforeSave: @Sendable (ObjectHandle) async throws -> Void
    private let hidden: @Sendable (ObjectHandle) -> Bool

    /// `beforeSave` runs before each save, which fails with its error if it throws; `list`
    /// omits every object `hiding` picks.
    public init(
        _ base: any Storage,
        beforeSave: @escaping @Sendable (ObjectHandle) async throws -> Void = { _ in },
        hiding hidden: @escaping @Sendable (ObjectHandle) -> Bool = { _ in false }
    ) {
        self.base = base
        self.hidden = hidden
        self.beforeSave = beforeSave
    }

    public func save(_ handle: ObjectHandle, data: Data) async throws {
        try await beforeSave(handle)
        try await base.save(handle, data: data)
    }

    public func load(_ handle: ObjectHandle, range: Range<Int>?) async throws -> Data {
        try await base.load(handle, range: range)
    }

    public func stat(_ handle: ObjectHandle) async throws -> ObjectInfo {
        try await base.stat(handle)
    }

    public func list(_ kind: ObjectKind) async throws -> [ObjectInfo] {
        try await base.list(kind).filter { !hidden($0.handle) }
    }

    public func remove(_ handle: ObjectHandle) async throws {
        try await base.remove(handle)
    }
}
