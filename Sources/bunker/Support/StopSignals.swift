import Foundation

/// Runs `body` until it ends or the process gets SIGINT or SIGTERM, which cancel it: work that
/// runs until stopped (`bunker wal stream`) then ends as cancelled work does, stopping the
/// programs it started (`pg_receivewal`) instead of leaving them behind.
func untilStopped(_ body: @escaping @Sendable () async throws -> Void) async throws {
    let task = Task { try await body() }
    let sources = [SIGINT, SIGTERM].map { number in
        // The default action would end Bunker at once, before the cancellation runs.
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number)
        source.setEventHandler { task.cancel() }
        source.resume()
        return source
    }
    defer { sources.forEach { $0.cancel() } }
    try await task.value
}
