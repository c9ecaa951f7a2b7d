import Foundation
import Synchronization

/// Counters a long operation updates and a front end reads to draw progress.
public final class OperationProgress: Sendable {
    /// A consistent reading of the counters.
    public struct Counters: Sendable, Codable, Equatable {
        public var filesDone = 0
        public var bytesDone: UInt64 = 0
        public var filesTotal = 0
        public var bytesTotal: UInt64 = 0
        /// True once the totals are final (the scan finished).
        public var totalsKnown = false
        public var bytesStored: UInt64 = 0
        public var errors = 0
        public var currentPath = ""

        public init() {}

        enum CodingKeys: String, CodingKey {
            case errors
            case filesDone = "files_done"
            case bytesDone = "bytes_done"
            case filesTotal = "files_total"
            case bytesTotal = "bytes_total"
            case totalsKnown = "totals_known"
            case bytesStored = "bytes_stored"
            case currentPath = "current_path"
        }
    }

    private let state = Mutex(Counters())
    public let started = Date()

    public init() {}

    public var counters: Counters { state.withLock { $0 } }

    public func update(_ body: (inout Counters) -> Void) {
        state.withLock { body(&$0) }
    }
}
