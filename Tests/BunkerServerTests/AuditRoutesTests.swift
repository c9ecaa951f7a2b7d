import BunkerCore
import BunkerServer
import BunkerService
import BunkerTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// A live server whose catalog has an administrator, an auditor and a viewer.
private func withServer(_ test: @escaping @Sendable (any TestClientProtocol, Catalog) async throws -> Void) async throws {
    try await withServer { client, catalog, _ in try await test(client, catalog) }
}

/// The same, also telling the test its temporary directory.
private func withServer(_ test: @escaping @Sendable (any TestClientProtocol, Catalog, String) async throws -> Void) async throws {
    try await withTemporaryDirectory { dir in
        var configuration = try Configuration(text: "data_dir = \"\(dir)/data\"\n", file: dir + "/bunker.toml", environment: [:])
        configuration.server.listen = "127.0.0.1:0"
        var options = Catalog.Options()
        options.bcryptCost = 4
        let catalog = try Catalog(dataDirectory: configuration.dataDirectory, options: options)
        for (name, role) in [("ada", Role.systemAdmin), ("aud", .auditor), ("vic", .viewer)] {
            try catalog.addUser(NewUser(username: name, fullName: name.uppercased(), role: role, password: "\(name)-password"), by: .system)
        }
        let app = try await buildApplication(configuration, catalog: catalog)
        try await app.test(.live) { client in try await test(client, catalog, dir) }
    }
}

private func token(_ client: any TestClientProtocol, _ username: String) async throws -> String {
    let body = try JSONSerialization.data(withJSONObject: ["username": username, "password": "\(username)-password"])
    let response = try await client.execute(uri: "/api/v1/auth/login", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(data: body))
    let json = try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
    return try #require(json["access_token"] as? String)
}

private func get(_ client: any TestClientProtocol, _ uri: String, as username: String) async throws -> TestResponse {
    try await client.execute(uri: uri, method: .get, headers: [.authorization: "Bearer \(try await token(client, username))"])
}

@Suite struct AuditRoutesTests {
    static let routes = ["/api/v1/audit", "/api/v1/audit/verify", "/api/v1/audit/export?format=csv"]

    @Test(arguments: routes)
    func auditorsAndAdministratorsReadTheTrailViewersGetAnAudited403(_ route: String) async throws {
        try await withServer { client, catalog in
            #expect(try await client.execute(uri: route, method: .get).status == .unauthorized)
            #expect(try await get(client, route, as: "aud").status == .ok)
            #expect(try await get(client, route, as: "ada").status == .ok)
            let denied = try await get(client, route, as: "vic")
            #expect(denied.status == .forbidden)
            let error = try #require(try JSONSerialization.jsonObject(with: Data(buffer: denied.body)) as? [String: String])
            #expect(error["error"] == "forbidden")
            let row = try #require(try catalog.auditRecords().last)
            #expect(row.action == "audit.read" && row.outcome == .denied && row.actor == "vic" && row.requestID != nil)
            #expect(row.reason == "role VIEWER is not AUDITOR or SYSTEM_ADMIN")
        }
    }

    @Test func listPagesAndFiltersVerifyAndExportMatchTheCatalog() async throws {
        try await withServer { client, catalog in
            let page = try await get(client, "/api/v1/audit?action=user&limit=2", as: "aud")
            let first = try #require(try JSONSerialization.jsonObject(with: Data(buffer: page.body)) as? [String: Any])
            let items = try #require(first["items"] as? [[String: Any]])
            #expect(items.map { $0["seq"] as? Int } == [1, 2])
            #expect(first["next_after"] as? Int == 2)
            let next = try await get(client, "/api/v1/audit?action=user&limit=2&after=2", as: "aud")
            let second = try #require(try JSONSerialization.jsonObject(with: Data(buffer: next.body)) as? [String: Any])
            #expect((second["items"] as? [[String: Any]])?.map { $0["seq"] as? Int } == [3])
            #expect(second["next_after"] == nil || second["next_after"] is NSNull)
            #expect(try await get(client, "/api/v1/audit?since=yesterday", as: "aud").status == .badRequest)
            #expect(try await get(client, "/api/v1/audit?limit=many", as: "aud").status == .badRequest)

            let verify = try await get(client, "/api/v1/audit/verify", as: "aud")
            let result = try #require(try JSONSerialization.jsonObject(with: Data(buffer: verify.body)) as? [String: Any])
            #expect(result["ok"] as? Bool == true)

            let export = try await get(client, "/api/v1/audit/export", as: "ada")
            #expect(export.headers[.contentType] == "application/x-ndjson")
            var expected = ""
            try catalog.exportAudit(format: .jsonl) { expected += $0 }
            #expect(String(buffer: export.body) == expected)
            #expect(try await get(client, "/api/v1/audit/export?format=xml", as: "ada").status == .badRequest)
        }
    }

    @Test func verifyNamesARowAppendedWithoutTheKeyButNoPathOfTheServer() async throws {
        try await withServer { client, catalog, dir in
            let head = try #require(try catalog.auditRecords().last)
            var forged = head
            forged.seq = head.seq + 1
            forged.actor = "mallory"
            forged.prevHash = head.hash
            forged.hash = forged.computedHash(previous: forged.prevHash)
            let append = try shell("""
                sqlite3 '\(catalog.path)' <<'SQL'
                DROP TRIGGER audit_mac_required;
                INSERT INTO audit (seq, timestamp, actor, action, target, outcome, details, prev_hash, hash)
                VALUES (\(forged.seq), '\(forged.timestamp)', 'mallory', '\(forged.action)', '\(forged.target ?? "")', 'success', '\(forged.details ?? "{}")', '\(forged.prevHash)', '\(forged.hash)');
                SQL
                """)
            #expect(append.status == 0, "\(append.output)")
            let verify = try await get(client, "/api/v1/audit/verify", as: "aud")
            let result = try #require(try JSONSerialization.jsonObject(with: Data(buffer: verify.body)) as? [String: Any])
            #expect(result["ok"] as? Bool == false && result["first_bad_seq"] as? Int == Int(forged.seq))
            let problem = try #require(result["problem"] as? String)
            #expect(problem.contains("carries no MAC") && !problem.contains(dir), "\(problem)")
        }
    }
}
