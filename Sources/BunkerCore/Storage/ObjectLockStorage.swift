import Foundation

/// A storage whose every write carries an S3 object lock (`x-amz-object-lock-mode` and
/// `-retain-until-date`, now plus the repository's `days`), installed by ``Repository`` when the
/// repository's config asks for object lock: the off-site tier that ransomware holding the
/// credentials cannot erase.
///
/// Lock files and holds are written without retention: a lock must go when its operation ends,
/// and a hold is released by deleting it. Everything else (config, keys, packs, index files,
/// snapshots, audit-trail segments) is retained.
///
/// `remove` deletes every version of the object (a plain DELETE on a versioned bucket only adds
/// a delete marker and the bytes stay), and refuses, with ``BunkerError/Code/objectLocked``,
/// an object whose retention has not ended: callers (prune, forget) check ``lockedUntil(_:)``
/// first and report what the lock keeps.
public struct ObjectLockStorage: StorageWrapper {
    public let base: any Storage
    public let settings: ObjectLockSettings
    let retaining: any RetentionStorage
    let now: @Sendable () -> Date

    /// Wraps `base`; throws when no storage under it can keep objects locked (a local directory).
    public init(_ base: any Storage, settings: ObjectLockSettings, now: @escaping @Sendable () -> Date = { Date() }) throws {
        // Through the retrying and limiting wrappers under this one, like every other request.
        guard let retaining = base.retention else {
            throw BunkerError(.invalidArgument, "Object lock needs an S3 bucket created with object lock enabled; this repository's storage cannot keep objects undeletable. Use an s3:// repository on such a bucket, or create the repository without --object-lock.")
        }
        self.base = base
        self.settings = settings
        self.retaining = retaining
        self.now = now
    }

    /// Whether objects of `kind` are written retained.
    static func isRetained(_ kind: ObjectKind) -> Bool { kind != .lock && kind != .hold }

    public func save(_ handle: ObjectHandle, data: Data) async throws {
        guard Self.isRetained(handle.kind) else { return try await base.save(handle, data: data) }
        try await retaining.save(handle, data: data, retention: settings.retention(from: now()))
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
        if let until = try await lockedUntil(handle) {
            throw BunkerError(.objectLocked, "\(handle) is kept by the object lock until \(until.formatted(.iso8601)); it cannot be deleted before then, and nothing is lost by keeping it.")
        }
        _ = try await base.stat(handle)
        try await retaining.removeAllVersions(of: handle)
    }

    /// When the object's retention ends, if that is still in the future; nil when it may be
    /// deleted now.
    public func lockedUntil(_ handle: ObjectHandle) async throws -> Date? {
        let retention: ObjectRetention?
        do {
            retention = try await retaining.retention(of: handle)
        } catch let error as BunkerError where error.code == .objectNotFound {
            return nil
        }
        guard let retention, retention.until > now() else { return nil }
        return retention.until
    }

    /// Extends the object's retention to `days` from now when less than half of that remains,
    /// and returns whether it did. The rule keeps everything a kept snapshot needs locked at
    /// least `days / 2` after any prune, at one request per object every `days / 2`.
    @discardableResult
    public func keepLocked(_ handle: ObjectHandle) async throws -> Bool {
        guard Self.isRetained(handle.kind) else { return false }
        let current = try await retaining.retention(of: handle)
        let halfway = now().addingTimeInterval(TimeInterval(settings.days) * 86400 / 2)
        if let current, current.until >= halfway { return false }
        try await retaining.extendRetention(of: handle, to: settings.retention(from: now()))
        return true
    }

    /// Writes a probe object under retention and tries to delete its version.
    public func probe() async throws -> ImmutabilityProbe {
        try await retaining.probeImmutability(mode: settings.mode)
    }
}

extension BunkerError.Code {
    /// The object is under an object lock whose retention has not ended.
    public static let objectLocked = BunkerError.Code("object_locked")
}
