import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// Service tokens (`bunker token`) on the API: accepted as bearer tokens with their role,
/// refused when revoked or expired, never a signature, and audited as `token:NAME`.
@Suite struct ServiceTokenRoutesTests {
    @Test func aViewerTokenReadsButCannotBackUp() async throws {
        try await withAPI { api in
            let (token, _) = try api.catalog.createServiceToken(named: "dashboard", role: .viewer, expiresAt: nil, by: .system)
            let list = try await api.send(.get, "/api/v1/backups", token: token)
            #expect(list.status == .ok, "\(String(buffer: list.body))")
            #expect(try array(list).isEmpty)
            let metrics = try await api.send(.get, "/api/v1/metrics", token: token)
            #expect(metrics.status == .ok)
            let me = try object(try await api.send(.get, "/api/v1/auth/me", token: token))
            #expect(me["username"] as? String == "token:dashboard" && me["role"] as? String == "VIEWER" && me["id"] == nil)

            let backup = try await api.send(.post, "/api/v1/backup", token: token, json: ["backup_type": "full"])
            #expect(backup.status == .forbidden)
            #expect(try object(backup)["error"] as? String == "forbidden")
            let denied = try #require(try api.catalog.auditRecords().last { $0.action == "backup.write" })
            #expect(denied.actor == "token:dashboard" && denied.outcome == .denied)
            #expect(try api.catalog.backups(limit: 10).isEmpty)
            // Every use is audited under the token's name, reads too: route and status.
            let uses = try api.catalog.auditRecords(AuditFilter(action: "token.use"))
            #expect(uses.allSatisfy { $0.actor == "token:dashboard" }, "\(uses.map(\.actor))")
            #expect(uses.contains { $0.target == "GET /api/v1/auth/me" && $0.outcome == .success && $0.detailValues["status"] == "200" }, "\(uses.map(\.target))")
            #expect(uses.contains { $0.target == "POST /api/v1/backup" && $0.outcome == .failure && $0.detailValues["status"] == "403" }, "\(uses.map(\.target))")
            // An unknown backup: the service's error, answered as 404, is recorded as 404.
            #expect(try await api.send(.get, "/api/v1/backup/deadbeefdeadbeef", token: token).status == .notFound)
            let missing = try #require(try api.catalog.auditRecords(AuditFilter(action: "token.use")).last)
            #expect(missing.target == "GET /api/v1/backup/deadbeefdeadbeef" && missing.detailValues["status"] == "404", "\(missing.detailValues)")
        }
    }

    @Test func anAdministratorTokenBacksUpAuditedUnderItsName() async throws {
        try await withAPI { api in
            let (token, _) = try api.catalog.createServiceToken(named: "ci-upgrade", role: .systemAdmin, expiresAt: nil, by: .system)
            let created = try await api.backup(token, description: "before upgrade 4.2")
            let id = try #require(created["backup_id"] as? String)
            let rows = try api.catalog.auditRecords(AuditFilter(action: "backup"))
            #expect(rows.map(\.outcome) == [.started, .success])
            #expect(rows.allSatisfy { $0.actor == "token:ci-upgrade" })
            let listed = try array(try await api.send(.get, "/api/v1/backups", token: token))
            #expect(listed.first?["id"] as? String == id)
            #expect(listed.first?["created_by_name"] as? String == "token:ci-upgrade")
        }
    }

    @Test func aRevokedOrExpiredOrUnknownTokenGets401() async throws {
        try await withAPI { api in
            let (revoked, _) = try api.catalog.createServiceToken(named: "old-ci", role: .systemAdmin, expiresAt: nil, by: .system)
            #expect(try await api.send(.get, "/api/v1/backups", token: revoked).status == .ok)
            try api.catalog.revokeServiceToken(named: "old-ci", by: .system)
            let afterRevoke = try await api.send(.get, "/api/v1/backups", token: revoked)
            #expect(afterRevoke.status == .unauthorized)
            #expect(try object(afterRevoke)["error"] as? String == "unauthenticated")

            // Made by a catalog whose clock is two hours behind: valid for an hour then, expired now.
            var past = api.catalog.options
            past.now = { Date().addingTimeInterval(-7200) }
            let then = try Catalog(dataDirectory: api.catalog.dataDirectory, options: past)
            let (expired, _) = try then.createServiceToken(named: "short-lived", role: .viewer, expiresAt: Date().addingTimeInterval(-3600), by: .system)
            #expect(try await api.send(.get, "/api/v1/backups", token: expired).status == .unauthorized)

            let unknown = "bkr_" + String(repeating: "ab", count: 32)
            #expect(try await api.send(.get, "/api/v1/backups", token: unknown).status == .unauthorized)
            // The console's cookie never carries a service token.
            let (viewer, _) = try api.catalog.createServiceToken(named: "viewer", role: .viewer, expiresAt: nil, by: .system)
            let cookie = try await api.client.execute(uri: "/api/v1/backups", method: .get, headers: [.cookie: "bunker_session=\(viewer)"], body: nil)
            #expect(cookie.status == .unauthorized)
        }
    }

    @Test func aTokenNeverSignsARestore() async throws {
        try await withAPI { api in
            let (token, _) = try api.catalog.createServiceToken(named: "ci-upgrade", role: .systemAdmin, expiresAt: nil, by: .system)
            let id = try #require(try await api.backup(token)["backup_id"] as? String)
            let note = api.studies + "/studies/2024/patient-001/note-1.txt"
            try Data("changed after the backup".utf8).write(to: URL(fileURLWithPath: note))

            for body: [String: Any] in [["reason": "upgrade failed"], ["password": "alice-password", "reason": "upgrade failed"], ["create_safety_backup": true]] {
                let response = try await api.send(.post, "/api/v1/restore/\(id)", token: token, json: body)
                #expect(response.status == .forbidden)
                #expect(try object(response)["error"] as? String == "signature_required")
            }
            let denied = try api.catalog.auditRecords(AuditFilter(action: "esign"))
            #expect(denied.count == 3 && denied.allSatisfy { $0.actor == "token:ci-upgrade" && $0.outcome == .denied })
            #expect(denied.first?.reason?.contains("service token") == true)
            #expect(try api.catalog.auditRecords(AuditFilter(action: "restore")).isEmpty)
            #expect(try String(contentsOfFile: note, encoding: .utf8) == "changed after the backup")
        }
    }

    @Test func whereSignaturesAreOptionalAnAdministratorTokenRestoresUnsigned() async throws {
        try await withAPI(configure: { $0.server.restoreSignature = .optional }) { api in
            let (token, _) = try api.catalog.createServiceToken(named: "ci-upgrade", role: .systemAdmin, expiresAt: nil, by: .system)
            let id = try #require(try await api.backup(token)["backup_id"] as? String)
            let note = api.studies + "/studies/2024/patient-001/note-1.txt"
            let original = try Data(contentsOf: URL(fileURLWithPath: note))
            try Data("changed after the backup".utf8).write(to: URL(fileURLWithPath: note))

            let withPassword = try await api.send(.post, "/api/v1/restore/\(id)", token: token, json: ["password": "alice-password", "reason": "x"])
            #expect(withPassword.status == .forbidden)
            let response = try await api.send(.post, "/api/v1/restore/\(id)", token: token, json: ["create_safety_backup": true, "reason": "upgrade 4.2 failed"])
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            #expect(try Data(contentsOf: URL(fileURLWithPath: note)) == original)
            let start = try #require(try api.catalog.auditRecords(AuditFilter(action: "restore")).first { $0.outcome == .started })
            #expect(start.actor == "token:ci-upgrade")
            #expect(start.detailValues["signature"] == "none: not signed ([server] restore_signature = optional)")
            #expect(start.detailValues["signed_by"] == nil)
        }
    }
}
