import BunkerCore
import Foundation
import Synchronization

/// Counts the reads of packs, with their ranges, and can slow them down (so that concurrent
/// readers overlap) or fail the first few reads larger than a size (a server whose retries ran
/// out).
public final class LoadCountingStorage: StorageWrapper {
    public let base: any Storage
    private let delay: Duration
    private let loads = Mutex<[(pack: String, range: Range<Int>?)]>([])
    private let reading = Mutex<(now: Int, most: Int)>((0, 0))
    private let failuresLeft: Mutex<Int>
    private let failingSize: Int

    public init(_ base: any Storage, delay: Duration = .zero, failFirst: Int = 0, largerThan: Int = 0) {
        self.base = base
        self.delay = delay
        self.failuresLeft = Mutex(failFirst)
        self.failingSize = largerThan
    }

    /// Each pack read as `NAME@OFFSET` (`NAME@all` for a whole pack), in order.
    public var packLoads: [String] {
        loads.withLock { $0.map { "\($0.pack)@\($0.range.map { "\($0.lowerBound)" } ?? "all")" } }
    }

    /// The most pack reads that were in flight at once.
    public var mostReadsAtOnce: Int { reading.withLock { $0.most } }

    /// Each pack read with its range (nil for a whole pack), in order.
    public var packRanges: [(pack: String, range: Range<Int>?)] { loads.withLock { $0 } }

    public func load(_ handle: ObjectHandle, range: Range<Int>?) async throws -> Data {
        guard handle.kind == .pack else { return try await base.load(handle, range: range) }
        loads.withLock { $0.append((handle.name, range)) }
        reading.withLock {
            $0.now += 1
            $0.most = max($0.most, $0.now)
        }
        defer { reading.withLock { $0.now -= 1 } }
        if delay > .zero { try await Task.sleep(for: delay) }
        let fail = failuresLeft.withLock { left -> Bool in
            guard left > 0, (range?.count ?? Int.max) > failingSize else { return false }
            left -= 1
            return true
        }
        if fail { throw BunkerError(.storageUnavailable, "Injected: the server did not answer reading \(handle).") }
        return try await base.load(handle, range: range)
    }
}
