import Foundation
import Testing

@testable import BunkerSources
@testable import bunker

/// `bunker wal stream` stops on SIGINT or SIGTERM only if libdispatch's handlers for them are in
/// place before anything it starts can disturb them (see ``untilStopped(_:)``).
@Suite(.serialized) struct StopSignalTests {
    /// The work starts with both signals caught, not ignored, and a program spawned meanwhile
    /// (as `pg_receivewal` is) leaves them caught. Before, the signals were set to be ignored
    /// and the work started at once: a spawn then could put the ignoring back over the handler
    /// libdispatch installed in between, and SIGTERM no longer stopped anything.
    @Test func stopSignalsAreCaughtBeforeTheWorkStartsAndStaySoAcrossASpawn() async throws {
        let saved = Self.save([SIGINT, SIGTERM])
        defer { Self.restore(saved) }
        try await untilStopped {
            #expect(disposition(of: SIGINT) == .caught)
            #expect(disposition(of: SIGTERM) == .caught)
            let child = Process()
            child.executableURL = URL(fileURLWithPath: "/bin/true")
            try withStopSignalsUnblocked { try child.run() }
            child.waitUntilExit()
            #expect(disposition(of: SIGINT) == .caught)
            #expect(disposition(of: SIGTERM) == .caught)
        }
    }

    /// A spawn sets a stop signal the process was started ignoring to its default action for the
    /// child, and back to ignored after; one that is caught it leaves alone.
    @Test func aSpawnResetsOnlyTheStopSignalsItFindsIgnored() throws {
        let saved = Self.save([SIGHUP])
        defer { Self.restore(saved) }
        signal(SIGHUP, SIG_IGN)
        var seen: [SignalDisposition?] = []
        try withStopSignalsUnblocked { seen = [disposition(of: SIGHUP), disposition(of: SIGQUIT)] }
        #expect(seen == [.defaultAction, disposition(of: SIGQUIT)])
        #expect(disposition(of: SIGHUP) == .ignored)
    }

    /// What the signals do now, to be put back after a test: libdispatch leaves its handlers
    /// installed once its sources are gone, and with no source to take them SIGINT and SIGTERM
    /// would be held pending, so that this test process no longer stopped on Ctrl-C or on a
    /// timeout's SIGTERM.
    static func save(_ signals: [Int32]) -> [(Int32, sigaction)] {
        signals.map { number in
            var current = sigaction()
            sigaction(number, nil, &current)
            return (number, current)
        }
    }

    static func restore(_ saved: [(Int32, sigaction)]) {
        for (number, action) in saved {
            var action = action
            sigaction(number, &action, nil)
        }
    }
}
