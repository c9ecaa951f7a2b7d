import BunkerCore
import Foundation
import Synchronization

/// Wraps a storage whose deletions of the objects it picks answer success and delete nothing,
/// as some S3-compatible servers do with `DeleteObjects`; every other call passes through
/// (``StorageWrapper``'s defaults).
public final class DeleteIgnoringStorage: StorageWrapper {
    public let base: any Storage
    private let ignores: @Sendable (ObjectHandle) -> Bool
    private let ignoredSoFar = Mutex<[ObjectHandle]>([])

    /// `remove` of every object `ignoring` picks succeeds and leaves the object where it is.
    public init(_ base: any Storage, ignoring ignores: @escaping @Sendable (ObjectHandle) -> Bool) {
        self.base = base
        self.ignores = ignores
    }

    /// The deletions answered with success and not carried out, in order.
    public var ignored: [ObjectHandle] { ignoredSoFar.withLock { $0 } }

    public func remove(_ handle: ObjectHandle) async throws {
        if ignores(handle) {
            ignoredSoFar.withLock { $0.append(handle) }
            return
        }
        try await base.remove(handle)
    }
}
