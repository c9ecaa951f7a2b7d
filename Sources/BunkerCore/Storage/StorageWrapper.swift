import Foundation

/// A storage that adds one feature (retries, a concurrency limit, read-only, lock checks) around
/// another, as restic's `retry/` and `sema/` backends and Kopia's `retrying/` and `readonly/`
/// storages do. Wrappers stack; a capability of the innermost storage (``SpaceReporting``,
/// ``TemporaryFileCleaning``) is found through them with ``Storage/capability(_:)``.
public protocol StorageWrapper: Storage {
    /// The storage this one wraps.
    var base: any Storage { get }
}

extension Storage {
    /// The innermost storage under any wrappers: the backend itself.
    public var backend: any Storage {
        var current: any Storage = self
        while let wrapper = current as? any StorageWrapper { current = wrapper.base }
        return current
    }

    /// The first storage, from this one inwards, that offers capability `T`.
    public func capability<T>(_ type: T.Type) -> T? {
        var current: any Storage = self
        while true {
            if let found = current as? T { return found }
            guard let wrapper = current as? any StorageWrapper else { return nil }
            current = wrapper.base
        }
    }
}

/// A wrapper whose feature applies to the object-lock calls of the storage under it too: retries
/// and the concurrency limit do, since a `PutObjectRetention` meets the same 503s and the same
/// server limits as a `PutObject`.
public protocol RetentionWrapping: StorageWrapper {
    /// `retention` (the object-lock calls of a storage under this one) with this wrapper's
    /// feature applied.
    func wrapping(_ retention: any RetentionStorage) -> any RetentionStorage
}

extension Storage {
    /// The object-lock calls of the innermost storage that offers them, through every wrapper
    /// on the way that applies to them (``RetentionWrapping``); nil when no storage under this
    /// one can keep objects locked (a local directory).
    public var retention: (any RetentionStorage)? {
        var wrappers: [any RetentionWrapping] = []
        var current: any Storage = self
        while true {
            if let found = current as? any RetentionStorage {
                // The wrapper nearest the backend applies first, as it does for other calls.
                return wrappers.reversed().reduce(found) { $1.wrapping($0) }
            }
            guard let wrapper = current as? any StorageWrapper else { return nil }
            if let applying = wrapper as? any RetentionWrapping { wrappers.append(applying) }
            current = wrapper.base
        }
    }
}

/// What a wrapper does not change it passes to its base unchanged: a wrapper that adds one
/// feature implements only the calls that feature touches.
extension StorageWrapper {
    public func save(_ handle: ObjectHandle, data: Data) async throws {
        try await base.save(handle, data: data)
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

    public func list(_ kind: ObjectKind, prefix: String) async throws -> [ObjectInfo] {
        try await base.list(kind, prefix: prefix)
    }

    public func remove(_ handle: ObjectHandle) async throws {
        try await base.remove(handle)
    }
}
