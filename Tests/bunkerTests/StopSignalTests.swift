import Foundation
import Testing

@testable import BunkerSources
@testable import bunker

/// `bunker wal stream` stops on SIGINT or SIGTERM only if libdispatch's handlers for them are in
/// place before anything it starts can disturb them (see ``untilStopped(_:)``).
@Suite struct StopSignalTests {
    /// The work starts with both signals caught, not ignored, and a program spawned meanwhile
    /// (as `pg_receivewal` is) leaves them caught. Before, the signals were set to be ignored
    /// and the work started at once: a spawn then could put the ignoring back over the handler
    /// libdispatch installed in between, and SIGTERM no longer stopped anything.
    @Test func stopSignalsAreCaughtBeforeTheWorkStartsAndStaySoAcrossASpawn() async throws {
        try await untilStopped {
            #expect(isCaught(SIGINT))
            #expect(isCaught(SIGTERM))
            let child = Process()
            child.executableURL = URL(fileURLWithPath: "/bin/true")
            try withStopSignalsUnblocked { try child.run() }
            child.waitUntilExit()
            #expect(isCaught(SIGINT))
            #expect(isCaught(SIGTERM))
        }
    }
}
