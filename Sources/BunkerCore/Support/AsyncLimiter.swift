import Foundation
import Synchronization

/// A counting semaphore for async code: at most `limit` holders at once.
public final class AsyncLimiter: Sendable {
    private struct State {
        var available: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state: Mutex<State>

    public init(limit: Int) {
        state = Mutex(State(available: max(1, limit)))
    }

    /// Runs `body` while holding one permit, on the caller's actor if it has one.
    public func withPermit<R>(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> R) async rethrows -> R {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { s -> Bool in
                if s.available > 0 {
                    s.available -= 1
                    return true
                }
                s.waiters.append(continuation)
                return false
            }
            if granted { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiters.isEmpty {
                s.available += 1
                return nil
            }
            return s.waiters.removeFirst()
        }
        next?.resume()
    }
}

/// A pool of non-thread-safe workers (compression contexts, buffers), each used by one task at a
/// time; at most eight idle ones are kept.
final class WorkerPool<Worker>: @unchecked Sendable {
    private let make: () -> Worker
    private let lock = NSLock()
    private var idle: [Worker] = []

    init(make: @escaping () -> Worker) {
        self.make = make
    }

    func with<R>(_ body: (Worker) throws -> R) rethrows -> R {
        let worker = take()
        defer { put(worker) }
        return try body(worker)
    }

    /// Takes a worker for use across suspension points; give it back with ``put(_:)``.
    func take() -> Worker {
        lock.withLock { idle.popLast() } ?? make()
    }

    func put(_ worker: Worker) {
        lock.withLock { if idle.count < 8 { idle.append(worker) } }
    }

    /// Lets go of the idle workers; the next ``take()`` makes a new one.
    func dropIdle() {
        let dropped = lock.withLock { () -> [Worker] in
            defer { idle = [] }
            return idle
        }
        _ = consume dropped
    }
}
