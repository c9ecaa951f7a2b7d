import Foundation
import Synchronization

/// Counters a long operation updates and a front end reads to draw progress.
public final class OperationProgress: Sendable {
    /// A consistent reading of the counters.
    public struct Counters: Sendable, Codable {
        public var filesDone = 0
        public var bytesDone: UInt64 = 0
        public var filesTotal = 0
        public var bytesTotal: UInt64 = 0
        /// True once the totals are final (the scan finished).
        public var totalsKnown = false
        public var bytesStored: UInt64 = 0
        public var errors = 0
        public var currentPath = ""
    }

    private let state = Mutex(Counters())
    public let started = Date()

    public init() {}

    public var counters: Counters { state.withLock { $0 } }

    public func update(_ body: (inout Counters) -> Void) {
        state.withLock { body(&$0) }
    }
}
