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
        /// True once there are totals to measure against: a count that finished, or an estimate
        /// (``OperationProgress/estimateTotals(files:bytes:)``) that the work has not passed.
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

    private struct State {
        var counters = Counters()
        /// The totals are an estimate, withdrawn once the work passes them.
        var estimated = false
    }

    private let state = Mutex(State())
    public let started = Date()

    public init() {}

    public var counters: Counters { state.withLock { $0.counters } }

    public func update(_ body: (inout Counters) -> Void) {
        state.withLock { state in
            body(&state.counters)
            // On every chunk a backup reads: a few comparisons under the lock already held.
            if state.estimated && state.counters.totalsKnown
                && (state.counters.filesDone > state.counters.filesTotal || state.counters.bytesDone > state.counters.bytesTotal) {
                // Short of what is being done: a percentage would sit at 100 with an ETA of
                // nothing for the rest of the work. Every front end shows what is done so far
                // when there are no totals.
                state.counters.totalsKnown = false
                state.estimated = false
            }
        }
    }

    /// Totals taken from elsewhere (an incremental backup's parent) rather than counted: shown
    /// as totals until the work passes them, then withdrawn.
    public func estimateTotals(files: Int, bytes: UInt64) {
        state.withLock { state in
            state.counters.filesTotal = files
            state.counters.bytesTotal = bytes
            state.counters.totalsKnown = true
            state.estimated = true
        }
    }
}
