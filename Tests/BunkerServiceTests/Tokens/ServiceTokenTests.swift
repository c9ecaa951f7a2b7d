import BunkerCore
import BunkerService
import BunkerTesting
import Crypto
import Foundation
import Testing

@Suite struct ServiceTokenTests {
    @Test func aTokenIsStoredOnlyAsItsHashAndAuthenticatesWithItsRole() async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalog(in: dir)
            let (token, record) = try catalog.createServiceToken(named: "prometheus", role: .viewer, expiresAt: nil, by: testAdmin)
            #expect(token.hasPrefix("bkr_") && token.count == 68)
            #expect(Catalog.looksLikeServiceToken(token))
            let sha = SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
            #expect(record.tokenHash == sha)

            // Neither the token nor its secret part is anywhere in the catalog's files.
            let secret = String(token.dropFirst(4))
            for file in [catalog.path, catalog.path + "-wal"] {
                let bytes = (try? Data(contentsOf: URL(fileURLWithPath: file))) ?? Data()
                #expect(bytes.range(of: Data(secret.utf8)) == nil, "the token is in \(file)")
            }
            let stored = try sqlite3(catalog.path, "SELECT token_hash FROM service_tokens WHERE name = 'prometheus';").output
            #expect(stored.trimmingCharacters(in: .whitespacesAndNewlines) == sha)

            let found = try #require(try catalog.serviceToken(authenticating: token))
            #expect(found.name == "prometheus" && found.role == .viewer && found.actorName == "token:prometheus")
            // One changed digit, a JWT-looking string, or the hash itself are no token.
            let last = token.last == "0" ? "1" : "0"
            #expect(try catalog.serviceToken(authenticating: String(token.dropLast()) + last) == nil)
            #expect(try catalog.serviceToken(authenticating: "eyJhbGciOiJIUzI1NiJ9.e30.x") == nil)
            #expect(try catalog.serviceToken(authenticating: "bkr_" + sha) == nil)
            #expect(try catalog.serviceToken(authenticating: sha) == nil)
        }
    }

    @Test func tokensAreListedRevokedAndAudited() async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalog(in: dir)
            let (ci, _) = try catalog.createServiceToken(named: "ci-upgrade", role: .systemAdmin, expiresAt: nil, by: testAdmin)
            let (scrape, _) = try catalog.createServiceToken(named: "prometheus", role: .viewer, expiresAt: nil, by: testAdmin)
            #expect(ci != scrape)
            #expect(try catalog.serviceTokens().map(\.name) == ["ci-upgrade", "prometheus"])

            let revoked = try catalog.revokeServiceToken(named: "ci-upgrade", by: testAdmin)
            #expect(revoked.revokedAt != nil && revoked.revokedBy == "test-admin")
            #expect(try catalog.serviceToken(authenticating: ci) == nil)
            #expect(try catalog.serviceToken(authenticating: scrape)?.name == "prometheus")
            #expect(try catalog.serviceTokens().map { $0.state(at: Date()) } == ["revoked", "active"])

            // A second revoke, an unknown name, and a reused name are errors that change nothing.
            #expect(throws: BunkerError.self) { try catalog.revokeServiceToken(named: "ci-upgrade", by: testAdmin) }
            let unknown = #expect(throws: BunkerError.self) { try catalog.revokeServiceToken(named: "nobody", by: testAdmin) }
            #expect(unknown?.code == .tokenNotFound)
            #expect(throws: BunkerError.self) { try catalog.createServiceToken(named: "CI-UPGRADE", role: .viewer, expiresAt: nil, by: testAdmin) }
            #expect(throws: BunkerError.self) { try catalog.createServiceToken(named: "token:x", role: .viewer, expiresAt: nil, by: testAdmin) }

            let rows = try catalog.auditRecords()
            #expect(rows.map(\.action) == ["token.create", "token.create", "token.revoke"])
            #expect(rows.map(\.target) == ["ci-upgrade", "prometheus", "ci-upgrade"])
            #expect(rows.allSatisfy { $0.actor == "test-admin" && $0.outcome == .success })
            #expect(rows[0].detailValues["role"] == "SYSTEM_ADMIN")
            #expect(!rows.contains { ($0.details ?? "").contains(String(ci.dropFirst(4))) }, "no token in the trail")
            #expect(try catalog.verifyAudit().ok)

            // The schema keeps tokens: no deletion, no un-revoking, no new hash.
            #expect(try sqlite3(catalog.path, "DELETE FROM service_tokens WHERE name = 'prometheus';").output.contains("never deleted"))
            #expect(try sqlite3(catalog.path, "UPDATE service_tokens SET revoked_at = NULL, revoked_by = NULL WHERE name = 'ci-upgrade';").output.contains("stays revoked"))
            #expect(try sqlite3(catalog.path, "UPDATE service_tokens SET role = 'SYSTEM_ADMIN' WHERE name = 'prometheus';").output.contains("only ever revoked"))
            #expect(try catalog.serviceTokens().count == 2)
        }
    }

    @Test func anExpiredTokenIsRefused() async throws {
        try await withTemporaryDirectory { dir in
            let clock = TestClock()
            let catalog = try makeCatalog(in: dir, clock: clock)
            let (token, record) = try catalog.createServiceToken(named: "nightly", role: .auditor, expiresAt: clock.now.addingTimeInterval(3600), by: testAdmin)
            #expect(record.expiresAt == clock.now.addingTimeInterval(3600))
            #expect(try catalog.serviceToken(authenticating: token)?.name == "nightly")
            clock.advance(by: 3599)
            #expect(try catalog.serviceToken(authenticating: token) != nil)
            clock.advance(by: 1)
            #expect(try catalog.serviceToken(authenticating: token) == nil)
            #expect(try catalog.serviceTokens().first?.state(at: clock.now) == "expired")
            #expect(throws: BunkerError.self) { try catalog.createServiceToken(named: "late", role: .viewer, expiresAt: clock.now, by: testAdmin) }
        }
    }
}
