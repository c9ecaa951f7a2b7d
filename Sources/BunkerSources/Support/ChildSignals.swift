import Foundation

/// Runs `spawn` (a `Process.run()`, which starts the program from the calling thread) with the
/// signals that stop a program unblocked on this thread, so that the program starts with them
/// unblocked.
///
/// Swift's concurrency runs on libdispatch's worker threads, which block every asynchronous
/// signal, and a program started from one inherits that mask: `pg_receivewal` ignored the
/// SIGTERM meant to stop it and outlived `bunker wal stream`. PostgreSQL's server resets its own
/// mask; its tools do not.
func withStopSignalsUnblocked<T>(_ spawn: () throws -> T) rethrows -> T {
    var stopping = sigset_t()
    sigemptyset(&stopping)
    for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT] { sigaddset(&stopping, signal) }
    var previous = sigset_t()
    pthread_sigmask(SIG_UNBLOCK, &stopping, &previous)
    defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
    return try spawn()
}
