import Foundation
import Synchronization

/// Runs `body` until it ends or the process gets SIGINT or SIGTERM, which cancel it: work that
/// runs until stopped (`bunker wal stream`) then ends as cancelled work does, stopping the
/// programs it started (`pg_receivewal`) instead of leaving them behind.
///
/// On Linux, libdispatch catches a signal source's signal with a handler of its own, installed
/// when the manager thread registers the source, a moment after `resume()`. The signals are
/// not set to be ignored first (as Darwin's kqueue would want): an ignored signal is dropped
/// before any handler or signalfd sees it, and ``withStopSignalsUnblocked(_:)``, which spawns
/// `pg_receivewal`, put back the ignoring it found over the handler libdispatch had installed
/// meanwhile. `bunker wal stream` then ignored every SIGTERM (caught by a test run that hung).
/// `body` starts only once both handlers are in place, so that a stop signal either ends Bunker
/// before it has started anything or cancels `body`.
func untilStopped(_ body: @escaping @Sendable () async throws -> Void) async throws {
    let signals = [SIGINT, SIGTERM]
    let started = Mutex<Task<Void, any Error>?>(nil)
    let stopped = Atomic<Bool>(false)
    let sources = signals.map { number in
        let source = DispatchSource.makeSignalSource(signal: number)
        source.setEventHandler {
            stopped.store(true, ordering: .relaxed)
            started.withLock { $0?.cancel() }
        }
        source.resume()
        return source
    }
    defer { sources.forEach { $0.cancel() } }
    var waited = 0
    while !signals.allSatisfy(isCaught), waited < 2_000 {
        try await Task.sleep(for: .milliseconds(1))
        waited += 1
    }
    let task = Task { try await body() }
    started.withLock { $0 = task }
    if stopped.load(ordering: .relaxed) { task.cancel() }
    try await task.value
}

/// Whether `signal` has a handler (neither its default action nor ignored).
func isCaught(_ signal: Int32) -> Bool {
    var current = sigaction()
    guard sigaction(signal, nil, &current) == 0 else { return false }
    // SIG_DFL and SIG_IGN are the handler addresses 0 and 1 (C macros Swift sees only as values).
    return withUnsafeBytes(of: current.__sigaction_handler, { $0.load(as: UInt.self) }) > 1
}
