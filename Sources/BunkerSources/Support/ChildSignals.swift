import Foundation

/// Runs `spawn` (a `Process.run()`, which starts the program from the calling thread) so that
/// the program starts able to receive the signals that stop a program: unblocked, and not
/// ignored.
///
/// Swift's concurrency runs on libdispatch's worker threads, which block every asynchronous
/// signal, and a program started from one inherits that mask; a signal Bunker was started
/// ignoring (SIGHUP under `nohup`, SIGINT and SIGQUIT for a shell's background job) stays ignored
/// across `exec` (Foundation resets neither). `pg_receivewal` then ignored the SIGTERM meant to
/// stop it and outlived `bunker wal stream`. PostgreSQL's server resets its own signals; its
/// tools do not.
///
/// For the moment of the spawn an ignored stop signal takes its default action in Bunker too:
/// one that arrives then ends Bunker at once. Only a signal found ignored is touched and set
/// back: a handler (libdispatch's, for a signal source) is left alone, so nothing may install
/// one for these signals while a spawn runs (``untilStopped`` starts its work only once
/// libdispatch has registered its sources).
func withStopSignalsUnblocked<T>(_ spawn: () throws -> T) rethrows -> T {
    let signals = [SIGTERM, SIGINT, SIGHUP, SIGQUIT]
    var stopping = sigset_t()
    sigemptyset(&stopping)
    for signal in signals { sigaddset(&stopping, signal) }
    var previousMask = sigset_t()
    pthread_sigmask(SIG_UNBLOCK, &stopping, &previousMask)
    var ignored: [Int32] = []
    for signal in signals where disposition(of: signal) == .ignored {
        ignored.append(signal)
        Glibc.signal(signal, SIG_DFL)
    }
    defer {
        for signal in ignored { Glibc.signal(signal, SIG_IGN) }
        pthread_sigmask(SIG_SETMASK, &previousMask, nil)
    }
    return try spawn()
}

/// What a signal does when it comes: its default action, nothing, or a handler's work.
enum SignalDisposition {
    case defaultAction, ignored, caught
}

/// What `signal` does now in this process (nil if `sigaction` refuses the number).
func disposition(of signal: Int32) -> SignalDisposition? {
    var current = sigaction()
    guard sigaction(signal, nil, &current) == 0 else { return nil }
    // SIG_DFL and SIG_IGN are the handler addresses 0 and 1 (C macros Swift sees only as values).
    switch withUnsafeBytes(of: current.__sigaction_handler, { $0.load(as: UInt.self) }) {
    case 0: return .defaultAction
    case 1: return .ignored
    default: return .caught
    }
}
