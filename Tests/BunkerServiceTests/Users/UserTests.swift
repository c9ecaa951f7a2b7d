import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import HummingbirdBcrypt
import Testing

@Suite struct UserTests {
    @Test func userChangesUseBcryptAndAreEachAudited() async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalog(in: dir)
            let added = try catalog.addUser(NewUser(username: "alice", fullName: "Alice Martin", email: "alice@example.org", role: .systemAdmin, password: "first-password"), by: testAdmin)
            #expect(added.passwordHash.hasPrefix("$2b$04$"))
            #expect(Bcrypt.verify("first-password", hash: added.passwordHash))
            #expect(!Bcrypt.verify("first-passwore", hash: added.passwordHash))
            #expect(try catalog.authenticate(username: "alice", password: "first-password").role == .systemAdmin)

            try catalog.setActive("alice", false, by: testAdmin)
            #expect(throws: BunkerError.self) { try catalog.authenticate(username: "alice", password: "first-password") }
            try catalog.setActive("alice", true, by: testAdmin)
            #expect(try catalog.setRole("alice", .auditor, by: testAdmin).role == .auditor)
            let changed = try catalog.setPassword("alice", "second-password", by: testAdmin)
            #expect(Bcrypt.verify("second-password", hash: changed.passwordHash))
            #expect(!Bcrypt.verify("first-password", hash: changed.passwordHash))
            #expect(throws: BunkerError.self) { try catalog.authenticate(username: "alice", password: "first-password") }
            #expect(try catalog.authenticate(username: "alice", password: "second-password").username == "alice")

            let rows = try catalog.auditRecords()
            #expect(rows.map(\.action) == ["user.add", "auth.login", "user.disable", "auth.login", "user.enable", "user.role", "user.passwd", "auth.login", "auth.login"])
            #expect(rows.map(\.outcome) == [.success, .success, .success, .denied, .success, .success, .success, .denied, .success])
            #expect(rows[3].reason == "user deactivated")
            #expect(rows[5].detailValues["from"] == "SYSTEM_ADMIN" && rows[5].detailValues["to"] == "AUDITOR")
            #expect(rows.allSatisfy { $0.target == "alice" })
            #expect(!rows.contains { ($0.details ?? "").contains("password") && $0.action != "auth.login" }, "no password in the trail")
            #expect(try catalog.verifyAudit().ok)
        }
    }

    @Test func usersAreNeverDeletedOrRenamedAndNamesAreUnique() async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalog(in: dir)
            try catalog.addUser(NewUser(username: "bob", fullName: "Bob", role: .viewer, password: "bob-password"), by: testAdmin)
            #expect(throws: BunkerError.self) {
                try catalog.addUser(NewUser(username: "BOB", fullName: "Other Bob", role: .viewer, password: "bob-password"), by: testAdmin)
            }
            #expect(throws: BunkerError.self) {
                try catalog.addUser(NewUser(username: "carl", fullName: "Carl", role: .viewer, password: "short"), by: testAdmin)
            }
            #expect(try sqlite3(catalog.path, "DELETE FROM users WHERE username = 'bob';").output.contains("never deleted"))
            #expect(try sqlite3(catalog.path, "UPDATE users SET username = 'robert' WHERE username = 'bob';").output.contains("never renamed"))
            #expect(try catalog.users().map(\.username) == ["bob"])
            #expect(try catalog.auditRecords().count == 1, "refused changes write no success row")
        }
    }

    @Test func theFirstAdministratorIsCreatedOnceWithAGeneratedPassword() async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalog(in: dir)
            let (admin, generated) = try #require(try catalog.ensureFirstAdministrator(username: "admin", password: nil, email: nil))
            let password = try #require(generated)
            #expect(password.count == 20 && admin.role == .systemAdmin)
            #expect(try catalog.authenticate(username: "admin", password: password).id == admin.id)
            #expect(try catalog.ensureFirstAdministrator(username: "root", password: "given-password", email: nil) == nil)
            #expect(try catalog.auditRecords().first?.actor == "bunker")
        }
    }

    @Test func theServersLoginRunsOnTheThreadPoolWithTheSameChecksAndRows() async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalog(in: dir)
            let added = try catalog.addUser(NewUser(username: "alice", fullName: "Alice Martin", role: .viewer, password: "first-password"), by: testAdmin)
            #expect(try await catalog.authenticateOnThreadPool(username: "alice", password: "first-password").id == added.id)
            await #expect(throws: BunkerError.self) { try await catalog.authenticateOnThreadPool(username: "alice", password: "wrong-password") }
            #expect(try catalog.auditRecords().map(\.outcome) == [.success, .success, .denied])
        }
    }

    @Test func fiveFailedLoginsLockTheAccountForTheConfiguredTime() async throws {
        try await withTemporaryDirectory { dir in
            let clock = TestClock()
            let catalog = try makeCatalog(in: dir, clock: clock)
            try catalog.addUser(NewUser(username: "dana", fullName: "Dana", role: .viewer, password: "dana-password"), by: testAdmin)
            for attempt in 1...5 {
                #expect(throws: BunkerError.self, "attempt \(attempt)") { try catalog.authenticate(username: "dana", password: "wrong-password") }
            }
            #expect(try catalog.user(named: "dana")?.isLocked(at: clock.now) == true)
            clock.advance(by: 14 * 60)
            do {
                _ = try catalog.authenticate(username: "dana", password: "dana-password")
                Issue.record("a locked account logged in")
            } catch let error as BunkerError {
                // The same answer as an unknown name, so that a lock does not reveal that the name exists.
                #expect(error.code == .authenticationFailed && error.message == "Wrong user name or password.")
            }
            do {
                _ = try catalog.authenticate(username: "nobody", password: "dana-password")
                Issue.record("an unknown user logged in")
            } catch let error as BunkerError {
                #expect(error.code == .authenticationFailed && error.message == "Wrong user name or password.")
            }
            clock.advance(by: 2 * 60)
            #expect(try catalog.authenticate(username: "dana", password: "dana-password").failedLogins == 0)
            let denied = try catalog.auditRecords().filter { $0.outcome == .denied }
            #expect(denied.count == 7)
            #expect(denied[4].reason?.contains("locked until") == true)
            #expect(denied[5].reason?.hasPrefix("account locked until") == true, "the lock stays visible in the audit trail")
            #expect(denied[6].reason == "unknown user")
        }
    }
}
