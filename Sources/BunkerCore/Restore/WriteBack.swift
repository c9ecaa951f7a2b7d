import Foundation
import Synchronization

/// Flushes a restore's target file system while the restore still writes, so that the flush it
/// must end with (the restore is not done until its data is on disk) finds little left to do.
///
/// With memory to spare Linux starts writing dirty pages back only after 30 seconds or once a
/// tenth of memory is dirty: a restore of a gigabyte wrote everything first and then waited for
/// the disk, both cores idle, for a quarter of its time (0.85 s of 3.4 s on the benchmark's set).
/// Every `every` bytes written, a `syncfs` runs on a thread of its own, one at a time, while the
/// restore's tasks go on; ``finish()`` makes the last one.
///
/// `syncfs` reports a write-back error once per open descriptor: an error seen by a flush in the
/// background is kept and thrown by ``finish()``, so that it is not lost to the final flush.
final class WriteBack: Sendable {
    private struct State {
        var pending = 0
        var flushing = false
        var error: Int32?
        var flushes = 0
    }

    private let every: Int
    private let flush: @Sendable () -> Int32
    private let state = Mutex(State())
    private let queue = DispatchQueue(label: "bunker.restore-write-back")

    /// 64 MiB: a flush every few hundred milliseconds of writing, few enough that each one's
    /// journal commit costs nothing worth counting.
    static let defaultEvery = 64 << 20

    /// `flush` returns 0 or an errno, as `syncfs` does (it is `syncfs` of the target, except in tests).
    init(every: Int = WriteBack.defaultEvery, flush: @escaping @Sendable () -> Int32) {
        self.every = every
        self.flush = flush
    }

    /// Flushes made in the background so far.
    var backgroundFlushes: Int { state.withLock { $0.flushes } }

    /// Counts `bytes` as written; starts a flush in the background once `every` bytes were
    /// written since the last one started, unless one is still running.
    func wrote(_ bytes: Int) {
        let start = state.withLock { state in
            state.pending += bytes
            guard state.pending >= every, !state.flushing else { return false }
            state.pending = 0
            state.flushing = true
            return true
        }
        guard start else { return }
        queue.async {
            let result = self.flush()
            self.state.withLock { state in
                state.flushing = false
                state.flushes += 1
                if result != 0 && state.error == nil { state.error = result }
            }
        }
    }

    /// The last flush, after the background one in progress (if any): throws when it, or any
    /// flush before it, failed.
    func finish() async throws {
        let final = try await BlockingIO.run { self.queue.sync { self.flush() } }
        if let error = state.withLock({ $0.error }) ?? (final != 0 ? final : nil) {
            throw BunkerError(.sourceIO, "Flushing the restored files to disk failed: \(String(cString: strerror(error))). Check the target's disk; the restore may be incomplete.")
        }
    }
}
