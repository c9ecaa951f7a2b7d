import Foundation

/// A storage that lets at most `limit` requests run at once: object stores slow down (503
/// `SlowDown`) or refuse connections past a point, and a local disk gains nothing from more.
public struct ConcurrencyLimitedStorage: StorageWrapper {
    public let base: any Storage
    /// Requests allowed at once.
    public let limit: Int
    private let limiter: AsyncLimiter

    /// The default for object storage: 8 requests at once.
    public static let defaultLimit = 8

    public init(_ base: any Storage, limit: Int = ConcurrencyLimitedStorage.defaultLimit) {
        self.base = base
        self.limit = max(1, limit)
        self.limiter = AsyncLimiter(limit: max(1, limit))
    }

    public func save(_ handle: ObjectHandle, data: Data) async throws {
        try await limiter.withPermit { try await base.save(handle, data: data) }
    }

    public func load(_ handle: ObjectHandle, range: Range<Int>?) async throws -> Data {
        try await limiter.withPermit { try await base.load(handle, range: range) }
    }

    public func stat(_ handle: ObjectHandle) async throws -> ObjectInfo {
        try await limiter.withPermit { try await base.stat(handle) }
    }

    public func list(_ kind: ObjectKind) async throws -> [ObjectInfo] {
        try await limiter.withPermit { try await base.list(kind) }
    }

    public func list(_ kind: ObjectKind, prefix: String) async throws -> [ObjectInfo] {
        try await limiter.withPermit { try await base.list(kind, prefix: prefix) }
    }

    public func remove(_ handle: ObjectHandle) async throws {
        try await limiter.withPermit { try await base.remove(handle) }
    }
}

extension ConcurrencyLimitedStorage: RetentionWrapping {
    public func wrapping(_ retention: any RetentionStorage) -> any RetentionStorage {
        LimitedRetention(base: retention, limiter: limiter)
    }
}

/// The object-lock calls of a storage, each holding one of the same permits as the other
/// requests. `removeAllVersions` and the probe make several requests under one permit.
private struct LimitedRetention: RetentionStorage {
    let base: any RetentionStorage
    let limiter: AsyncLimiter

    func save(_ handle: ObjectHandle, data: Data, retention: ObjectRetention) async throws {
        try await limiter.withPermit { try await base.save(handle, data: data, retention: retention) }
    }

    func retention(of handle: ObjectHandle) async throws -> ObjectRetention? {
        try await limiter.withPermit { try await base.retention(of: handle) }
    }

    func extendRetention(of handle: ObjectHandle, to retention: ObjectRetention) async throws {
        try await limiter.withPermit { try await base.extendRetention(of: handle, to: retention) }
    }

    func versions(of handle: ObjectHandle) async throws -> [ObjectVersion] {
        try await limiter.withPermit { try await base.versions(of: handle) }
    }

    func removeAllVersions(of handle: ObjectHandle) async throws {
        try await limiter.withPermit { try await base.removeAllVersions(of: handle) }
    }

    func probeImmutability(mode: ObjectLockMode) async throws -> ImmutabilityProbe {
        try await limiter.withPermit { try await base.probeImmutability(mode: mode) }
    }
}
