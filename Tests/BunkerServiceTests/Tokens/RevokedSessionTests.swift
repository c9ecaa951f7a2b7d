import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Testing

/// Console sessions ended by a logout: kept in the catalog (so a restart does not undo a logout)
/// by hash only, and forgotten once their tokens have expired.
@Suite struct RevokedSessionTests {
    @Test func aRevokedSessionIsKeptByHashUntilItsTokenExpires() async throws {
        try await withTemporaryDirectory { dir in
            let clock = TestClock()
            let catalog = try makeCatalog(in: dir, clock: clock)
            let first = "eyJ.first-session-token", second = "eyJ.second-session-token"
            try catalog.revokeSession(first, expiresAt: clock.now.addingTimeInterval(3600))
            #expect(try catalog.isRevokedSession(first))
            #expect(try catalog.isRevokedSession(second) == false)

            // The catalog opened again (a restart) still knows it, and holds only its hash.
            let reopened = try makeCatalog(in: dir, clock: clock)
            #expect(try reopened.isRevokedSession(first))
            let rows = try sqlite3(catalog.path, "SELECT token_hash FROM revoked_sessions;").output
            #expect(!rows.contains("first-session") && rows.trimmingCharacters(in: .whitespacesAndNewlines).count == 64)

            // Once the first token has expired, the next logout forgets it.
            clock.advance(by: 3601)
            try catalog.revokeSession(second, expiresAt: clock.now.addingTimeInterval(3600))
            #expect(try catalog.isRevokedSession(first) == false)
            #expect(try catalog.isRevokedSession(second))
            #expect(try sqlite3(catalog.path, "SELECT COUNT(*) FROM revoked_sessions;").output.trimmingCharacters(in: .whitespacesAndNewlines) == "1")
        }
    }
}
