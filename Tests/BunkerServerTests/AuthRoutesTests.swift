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
private func withServer(limits: ServerLimits = ServerLimits(), _ test: @escaping @Sendable (any TestClientProtocol, Catalog, Clock) async throws -> Void) async throws {
    try await withServer(limits: limits) { client, catalog, clock, _ in try await test(client, catalog, clock) }
}

/// The same, also telling the test its temporary directory.
private func withServer(limits: ServerLimits = ServerLimits(), _ test: @escaping @Sendable (any TestClientProtocol, Catalog, Clock, String) async throws -> Void) async throws {
    try await withTemporaryDirectory { dir in
        var configuration = try Configuration(text: "data_dir = \"\(dir)/data\"\n", file: dir + "/bunker.toml", environment: [:])
        configuration.server.listen = "127.0.0.1:0"
        let clock = Clock()
        var options = Catalog.Options()
        options.bcryptCost = 4
        options.now = { clock.now }
        let catalog = try Catalog(dataDirectory: configuration.dataDirectory, options: options)
        try catalog.addUser(NewUser(username: "alice", fullName: "Alice Martin", role: .systemAdmin, password: "alice-password"), by: .system)
        let app = try await buildApplication(configuration, catalog: catalog, limits: limits)
        try await app.test(.live) { client in try await test(client, catalog, clock, dir) }
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

    @Test func loginAnswersTheClinicalDashboardShapeAndTheTokenIdentifiesTheUser() async throws {
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
            // One character in the middle of the signature changed: the last character of a
            // base64url HS256 signature carries two padding bits, so changing it may change nothing.
            var characters = Array(token)
            let position = characters.count - 8
            characters[position] = characters[position] == "A" ? "B" : "A"
            let forged = String(characters)
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

    @Test func anEmptyOrOverlongUserNameIsA400AndNoAttempt() async throws {
        try await withServer { client, catalog, _ in
            let rows = try catalog.auditRecords().count
            for name in ["", String(repeating: "a", count: 65), String(repeating: "é", count: 33)] {
                let response = try await login(client, name, "whatever-password")
                #expect(response.status == .badRequest, "a name of \(name.utf8.count) bytes")
                #expect(try json(response.body).keys.sorted() == ["error", "message"])
            }
            #expect(try catalog.auditRecords().count == rows, "a name no user can have is not an attempt, and writes no row")
            let longest = try await login(client, String(repeating: "a", count: 64), "whatever-password")
            #expect(longest.status == .unauthorized, "64 bytes is a name a user can have")
            #expect(try catalog.auditRecords().count == rows + 1)
        }
    }

    @Test func failedLoginRowsKeepTheTriedNameEscapedAndBounded() async throws {
        try await withServer { client, catalog, _ in
            let hostile = "root\u{1B}[2J\nadmin\\é"
            #expect(try await login(client, hostile, "whatever-password").status == .unauthorized)
            let row = try #require(try catalog.auditRecords().last)
            #expect(row.action == "auth.login" && row.outcome == .denied)
            #expect(row.target == "root\\x1b[2J\\x0aadmin\\x5c\\xc3\\xa9", "\(row.target ?? "")")
            #expect(row.actor == row.target)

            let bells = String(repeating: "\u{7}", count: 64)
            #expect(try await login(client, bells, "whatever-password").status == .unauthorized)
            let cut = try #require(try catalog.auditRecords().last?.target)
            #expect(cut.count <= AuditText.maxLength && cut.hasSuffix("…") && cut.hasPrefix("\\x07\\x07"), "\(cut)")
            #expect(!cut.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F })
        }
    }

    @Test func failedLoginsFromOneAddressAreAnswered429WithRetryAfterAndStopAddingRows() async throws {
        var limits = ServerLimits()
        limits.maxFailedLogins = 3
        limits.failedLoginWindow = 60
        try await withServer(limits: limits) { client, catalog, clock in
            for index in 1...3 {
                clock.advance(by: 1)
                #expect(try await login(client, "guess-\(index)", "whatever-password").status == .unauthorized)
            }
            let rows = try catalog.auditRecords().count
            for _ in 1...5 {
                let refused = try await login(client, "alice", "alice-password")
                #expect(refused.status == .tooManyRequests)
                #expect(refused.headers[.retryAfter] == "58", "the first failure leaves the window in 58 s")
                #expect(try json(refused.body)["error"] as? String == "rate_limited")
            }
            let added = try catalog.auditRecords().dropFirst(rows)
            #expect(added.count == 1, "one row for the refusals, none for each: \(added.map(\.reason))")
            #expect(added.first?.outcome == .denied && added.first?.reason?.contains("too many failed logins from 127.0.0.1") == true)

            clock.advance(by: 58)
            #expect(try await login(client, "alice", "alice-password").status == .ok, "the window moved on")
            #expect(try await login(client, "guess-4", "whatever-password").status == .unauthorized)
            #expect(try await login(client, "guess-5", "whatever-password").status == .tooManyRequests)
        }
    }

    @Test func errorAnswersNeverNameTheServersPaths() async throws {
        try await withServer { client, catalog, _, dir in
            // The audit trail cannot be written (as on a full disk): the login fails with the
            // catalog's error, whose message names the catalog's file.
            let block = try shell("sqlite3 '\(catalog.path)' \"CREATE TRIGGER refuse BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;\"")
            #expect(block.status == 0, "\(block.output)")
            let response = try await login(client, "alice", "alice-password")
            #expect(response.status == .internalServerError)
            let message = try #require(try json(response.body)["message"] as? String)
            #expect(!message.contains(dir) && !message.contains("catalog.sqlite"), "\(message)")
            #expect(message.contains("[server path]"), "\(message)")
        }
    }

    @Test func reenablingADisabledUserDoesNotReviveTokensIssuedBeforeTheDisable() async throws {
        try await withServer { client, catalog, _ in
            let token = try #require(try json(try await login(client, "alice", "alice-password").body)["access_token"] as? String)
            try catalog.setActive("alice", false, by: .system)
            try catalog.setActive("alice", true, by: .system)
            #expect(try await me(client, token: token).status == .unauthorized)
            let fresh = try #require(try json(try await login(client, "alice", "alice-password").body)["access_token"] as? String)
            #expect(try await me(client, token: fresh).status == .ok)
        }
    }

    @Test func aPasswordChangeEndsTokensIssuedEarlierInTheSameSecond() async throws {
        try await withServer { client, catalog, clock in
            clock.advance(by: 0.2)
            let token = try #require(try json(try await login(client, "alice", "alice-password").body)["access_token"] as? String)
            clock.advance(by: 0.5)
            try catalog.setPassword("alice", "alice-new-password", by: .system)
            #expect(try await me(client, token: token).status == .unauthorized, "issued 0.5 s before the change, in the same second")
            let renewed = try #require(try json(try await login(client, "alice", "alice-new-password").body)["access_token"] as? String)
            #expect(try await me(client, token: renewed).status == .ok, "issued just after the change, in the same second")
        }
    }
}
