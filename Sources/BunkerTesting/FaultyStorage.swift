import BunkerCore
import Foundation
import Synchronization

/// Wraps a storage and injects the faults a real disk shows rarely: it fills up after a byte
/// budget, or fails saves of one kind. Reads pass through.
public final class FaultyStorage: StorageWrapper {
    public let base: any Storage
    private let remaining: Mutex<Int?>

    /// Saves fail with "no space left" once `spaceLeft` bytes have been written; nil means never.
    public init(_ base: any Storage, spaceLeft: Int?) {
        self.base = base
        self.remaining = Mutex(spaceLeft)
    }

    public func save(_ handle: ObjectHandle, data: Data) async throws {
        let allowed = remaining.withLock { left -> Bool in
            guard let current = left else { return true }
            if data.count > current { return false }
            left = current - data.count
            return true
        }
        guard allowed else {
            throw BunkerError(.storageFull, "The repository's storage is full while writing \(handle). Free space or move the repository; nothing was committed by the failed operation.",
                              cause: POSIXFailure(errno: ENOSPC, operation: "write", path: handle.description))
        }
        try await base.save(handle, data: data)
    }
}
