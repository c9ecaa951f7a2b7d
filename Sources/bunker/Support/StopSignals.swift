import Foundation
import Synchronization

/// Runs `body` until it ends or the process gets SIGINT or SIGTERM, which cancel it: work that
/// runs until stopped (`bunker wal stream`) then ends as cancelled work does, stopping the
/// programs it started (`pg_receivewal`) instead of leaving them behind.
///
/// On Linux, libdispatch catches a signal source's signal with a handler of its own, installed
/// once per signal when its manager thread registers the source, a moment after `resume()`.
/// The signals are not set to be ignored first (as Darwin's kqueue would want): an ignored signal
/// is dropped before any handler or signalfd sees it, and ``withStopSignalsUnblocked(_:)``, which
/// spawns `pg_receivewal`, put back the ignoring it found over the handler libdispatch had
/// installed meanwhile. `bunker wal stream` then ignored every SIGTERM (a test run hung on it).
/// `body` starts only once both sources are registered, so that a stop signal either ends Bunker
/// before it has started anything or cancels `body`.
func untilStopped(_ body: @escaping @Sendable () async throws -> Void) async throws {
    // The work once started, and whether a stop signal came before it was.
    let state = Mutex<(stopped: Bool, task: Task<Void, any Error>?)>((false, nil))
    var sources: [any DispatchSourceSignal] = []
    defer { sources.forEach { $0.cancel() } }
    for number in [SIGINT, SIGTERM] {
        let source = DispatchSource.makeSignalSource(signal: number)
        source.setEventHandler {
            state.withLock { state in
                state.stopped = true
                state.task?.cancel()
            }
        }
        await withCheckedContinuation { (registered: CheckedContinuation<Void, Never>) in
            source.setRegistrationHandler { registered.resume() }
            source.resume()
        }
        sources.append(source)
    }
    let task = Task { try await body() }
    state.withLock { state in
        state.task = task
        if state.stopped { task.cancel() }
    }
    try await withTaskCancellationHandler { try await task.value } onCancel: { task.cancel() }
}
