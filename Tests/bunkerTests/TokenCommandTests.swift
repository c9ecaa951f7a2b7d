import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Testing

private func json(_ run: BunkerProcess.Outcome) throws -> Any {
    #expect(run.status == 0, "\(run.stderr)")
    return try JSONSerialization.jsonObject(with: Data(run.stdout.utf8))
}

@Suite(.serialized) struct TokenCommandTests {
    @Test func tokensAreCreatedOnceListedWithoutTheTokenAndRevoked() async throws {
        try await withTemporaryDirectory { dir in
            try "data_dir = \"\(dir)/data\"\n".write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
            let e = ["BUNKER_CONFIG": dir + "/bunker.toml"]

            let created = try #require(try json(BunkerProcess.run(["token", "create", "prometheus", "--role", "VIEWER", "--expires", "30d", "--json"], environment: e)) as? [String: Any])
            let token = try #require(created["token"] as? String)
            #expect(token.hasPrefix("bkr_") && token.count == 68)
            #expect(created["name"] as? String == "prometheus" && created["role"] as? String == "VIEWER")
            let expires = try #require(created["expires_at"] as? String)
            let expiresAt = try #require(Timestamp.parse(expires))
            #expect(abs(expiresAt.timeIntervalSinceNow - 30 * 86400) < 300, "expires_at \(expires)")

            let forever = try #require(try json(BunkerProcess.run(["token", "create", "ci-upgrade", "--role", "SYSTEM_ADMIN", "--expires", "never", "--json"], environment: e)) as? [String: Any])
            #expect(forever["expires_at"] is NSNull)
            let quiet = try BunkerProcess.run(["token", "create", "nightly", "--role", "AUDITOR", "-q"], environment: e)
            #expect(quiet.status == 0, "\(quiet.stderr)")
            #expect(Catalog.looksLikeServiceToken(quiet.stdout.trimmingCharacters(in: .newlines)), "\(quiet.stdout)")

            let listRun = try BunkerProcess.run(["token", "list", "--json"], environment: e)
            #expect(!listRun.stdout.contains(token.dropFirst(4)), "the list shows no token")
            let list = try #require(try json(listRun) as? [[String: Any]])
            #expect(list.map { $0["name"] as? String } == ["prometheus", "ci-upgrade", "nightly"])
            #expect(list.map { $0["role"] as? String } == ["VIEWER", "SYSTEM_ADMIN", "AUDITOR"])
            #expect(list.allSatisfy { $0["state"] as? String == "active" && $0["token"] == nil && $0["token_hash"] == nil })

            let revoked = try #require(try json(BunkerProcess.run(["token", "revoke", "prometheus", "--json"], environment: e)) as? [String: Any])
            #expect(revoked["state"] as? String == "revoked" && revoked["revoked_by"] as? String == AuditActor.localUser().name)
            let again = try BunkerProcess.run(["token", "list", "--json"], environment: e)
            #expect(try #require(try json(again) as? [[String: Any]]).map { $0["state"] as? String } == ["revoked", "active", "active"])

            // Wrong input: an unknown token, a reused name, a bad duration, a bad role.
            let unknown = try BunkerProcess.run(["token", "revoke", "nobody", "--json"], environment: e)
            #expect(unknown.status != 0 && unknown.stdout.contains("token_not_found"), "\(unknown.stdout)")
            #expect(try BunkerProcess.run(["token", "create", "prometheus", "--role", "VIEWER"], environment: e).status != 0)
            #expect(try BunkerProcess.run(["token", "create", "x", "--role", "VIEWER", "--expires", "soon"], environment: e).status == 64)
            #expect(try BunkerProcess.run(["token", "create", "x", "--role", "VIEWER", "--expires", "0d"], environment: e).status == 64)
            // Durations as everywhere else in Bunker: m is months, not minutes; years and weeks work.
            let months = try #require(try json(BunkerProcess.run(["token", "create", "half-year", "--role", "VIEWER", "--expires", "6m", "--json"], environment: e)) as? [String: Any])
            let sixMonths = try #require((months["expires_at"] as? String).flatMap(Timestamp.parse))
            #expect(sixMonths.timeIntervalSinceNow > 180 * 86400 && sixMonths.timeIntervalSinceNow < 185 * 86400, "\(months)")
            let year = try BunkerProcess.run(["token", "create", "yearly", "--role", "VIEWER", "--expires", "1y"], environment: e)
            #expect(year.status == 0, "\(year.stderr)")
            #expect(try BunkerProcess.run(["token", "create", "x", "--role", "ROOT"], environment: e).status != 0)

            let audit = try #require(try json(BunkerProcess.run(["audit", "list", "--json"], environment: e)) as? [[String: Any]])
            #expect(audit.map { $0["action"] as? String } == ["token.create", "token.create", "token.create", "token.revoke", "token.create", "token.create"])
            #expect(audit.allSatisfy { $0["actor"] as? String == AuditActor.localUser().name })
        }
    }
}
