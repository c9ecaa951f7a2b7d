import BunkerCore
import BunkerServer
import BunkerService
import BunkerTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

/// A clock the tests move by hand (token expiry, lockout).
private final class Clock: Sendable {
    private let current = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
    var now: Date { current.withLock { $0 } }
    func advance(by seconds: TimeInterval) { current.withLock { $0 = $0.addingTimeInterval(seconds) } }
}

/// A live server on a free loopback port over a fresh data directory with one administrator.
private func withServer(_ test: @escaping @Sendable (any TestClientProtocol, Catalog, Clock) async throws -> Void) async throws {
    try await withTemporaryDirectory { dir in
        var configuration = try Configuration(text: "data_dir = \"\(dir)/data\"\n", file: dir + "/bunker.toml", environment: [:])
        configuration.server.listen = "127.0.0.1:0"
        let clock = Clock()
        var options = Catalog.Options()
        options.bcryptCost = 4
        options.now = { clock.now }
        let catalog = try Catalog(dataDirectory: configuration.dataDirectory, options: options)
        try catalog.addUser(NewUser(username: "alice", fullName: "Alice Martin", role: .systemAdmin, password: "alice-password"), by: .system)
        let app = try await buildApplication(configuration, catalog: catalog)
        try await app.test(.live) { client in try await test(client, catalog, clock) }
    }
}

private func json(_ buffer: ByteBuffer) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(buffer: buffer)) as? [String: Any])
}

private func login(_ client: any TestClientProtocol, _ username: String, _ password: String) async throws -> TestResponse {
    let body = try JSONSerialization.data(withJSONObject: ["username": username, "password": password])
    return try await client.execute(uri: "/api/v1/auth/login", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(data: body))
}

private func me(_ client: any TestClientProtocol, token: String) async throws -> TestResponse {
    try await client.execute(uri: "/api/v1/auth/me", method: .get, headers: [.authorization: "Bearer \(token)"])
}

@Suite struct AuthRoutesTests {
    @Test func healthAnswersWithoutLoginAndWithoutDetails() async throws {
        try await withServer { client, _, _ in
            let response = try await client.execute(uri: "/api/v1/health", method: .get)
            #expect(response.status == .ok)
            #expect(try json(response.body).keys.sorted() == ["status"])
        }
    }

    @Test func loginAnswersTheSeedsShapeAndTheTokenIdentifiesTheUser() async throws {
        try await withServer { client, catalog, clock in
            let response = try await login(client, "alice", "alice-password")
            #expect(response.status == .ok)
            let body = try json(response.body)
            #expect(body.keys.sorted() == ["access_token", "expires_at", "token_type"])
            #expect(body["token_type"] as? String == "bearer")
            let expires = try #require(ISO8601DateFormatter().date(from: body["expires_at"] as? String ?? ""))
            #expect(expires == clock.now.addingTimeInterval(3600))
            let token = try #require(body["access_token"] as? String)
            #expect(token.split(separator: ".").count == 3)
            let header = try #require(Data(base64Encoded: String(token.split(separator: ".")[0]) + "=="))
            #expect(String(decoding: header, as: UTF8.self).contains("HS256"))

            let who = try await me(client, token: token)
            #expect(who.status == .ok)
            let identity = try json(who.body)
            #expect(identity["username"] as? String == "alice" && identity["role"] as? String == "SYSTEM_ADMIN")

            let rows = try catalog.auditRecords()
            #expect(rows.last?.action == "auth.login" && rows.last?.outcome == .success && rows.last?.requestID != nil)
        }
    }

    @Test func wrongPasswordsAre401sAndTheFifthLocksTheAccount() async throws {
        try await withServer { client, catalog, _ in
            for _ in 1...4 {
                let wrong = try await login(client, "alice", "not-her-password")
                #expect(wrong.status == .unauthorized)
                #expect(try json(wrong.body)["error"] as? String == "authentication_failed")
            }
            #expect(try await login(client, "nobody", "whatever-password").status == .unauthorized)
            _ = try await login(client, "alice", "not-her-password")
            let locked = try await login(client, "alice", "alice-password")
            let unknown = try await login(client, "nobody", "alice-password")
            #expect(locked.status == .unauthorized, "a locked account answers like an unknown name")
            #expect(try json(locked.body)["error"] as? String == "authentication_failed")
            #expect(try json(locked.body)["message"] as? String == json(unknown.body)["message"] as? String)
            #expect(try catalog.auditRecords().last { $0.target == "alice" }?.reason?.hasPrefix("account locked until") == true)
            #expect(try catalog.auditRecords().filter { $0.action == "auth.login" && $0.outcome == .denied }.count == 8)
        }
    }

    @Test func badTokensExpiredTokensAndDisabledUsersAreRefused() async throws {
        try await withServer { client, catalog, clock in
            let body = try json(try await login(client, "alice", "alice-password").body)
            let token = try #require(body["access_token"] as? String)
            #expect(try await client.execute(uri: "/api/v1/auth/me", method: .get).status == .unauthorized)
            var forged = token
            forged.removeLast(2)
            forged += forged.hasSuffix("A") ? "BB" : "AA"
            #expect(try await me(client, token: forged).status == .unauthorized)

            clock.advance(by: 3601)
            let expired = try await me(client, token: token)
            #expect(expired.status == .unauthorized)
            #expect(try json(expired.body)["error"] as? String == "unauthenticated")

            let fresh = try #require(try json(try await login(client, "alice", "alice-password").body)["access_token"] as? String)
            #expect(try await me(client, token: fresh).status == .ok)
            clock.advance(by: 1)
            try catalog.setPassword("alice", "alice-new-password", by: .system)
            #expect(try await me(client, token: fresh).status == .unauthorized, "a token issued before a password change stops working")
            let renewed = try #require(try json(try await login(client, "alice", "alice-new-password").body)["access_token"] as? String)
            #expect(try await me(client, token: renewed).status == .ok)
            try catalog.setActive("alice", false, by: .system)
            #expect(try await me(client, token: renewed).status == .unauthorized, "a deactivated user's token stops working at once")
        }
    }

    @Test func malformedRequestsGetAJSONErrorNeverA500() async throws {
        try await withServer { client, _, _ in
            let bodies = ["{", "[]", "{\"username\": 5, \"password\": \"x\"}", "{\"username\": \"alice\"}", ""]
            for text in bodies {
                let response = try await client.execute(uri: "/api/v1/auth/login", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: text))
                #expect(response.status == .badRequest, "body \(text)")
                #expect(try json(response.body)["error"] as? String == "invalid_request", "body \(text)")
            }
            let huge = ByteBuffer(repeating: UInt8(ascii: "a"), count: 2 << 20)
            #expect(try await client.execute(uri: "/api/v1/auth/login", method: .post, body: huge).status == .contentTooLarge)
            let unknown = try await client.execute(uri: "/api/v1/../etc/passwd", method: .get)
            #expect(unknown.status == .notFound)
            #expect(try json(unknown.body)["error"] as? String == "not_found")
        }
    }
}
