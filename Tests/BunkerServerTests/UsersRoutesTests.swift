import BunkerServer
import BunkerService
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The users routes behind the console's Users page: administrators only, audited, and no
/// administrator can lock themselves out.
@Suite struct UsersRoutesTests {
    @Test func anAdministratorListsAddsAndChangesUsers() async throws {
        try await withAPI { api in
            let token = try await api.token("alice")
            let listed = try array(try await api.send(.get, "/api/v1/users", token: token))
            #expect(listed.compactMap { $0["username"] as? String } == ["alice", "olga", "victor"])
            #expect(listed.allSatisfy { $0["password_hash"] == nil && $0.keys.allSatisfy { !$0.contains("password") } })

            let added = try await api.send(.post, "/api/v1/users", token: token, json: [
                "username": "nina", "full_name": "Nina Nurse", "email": "nina@clinic.example", "role": "VIEWER", "password": "nina-password"])
            #expect(added.status == .created, "\(String(buffer: added.body))")
            #expect(try object(added)["role"] as? String == "VIEWER")
            #expect(try await api.token("nina").isEmpty == false, "the new user can log in")

            let promoted = try await api.send(.patch, "/api/v1/users/nina", token: token, json: ["role": "AUDITOR"])
            #expect(promoted.status == .ok)
            #expect(try api.catalog.user(named: "nina")?.role == .auditor)

            let disabled = try await api.send(.patch, "/api/v1/users/nina", token: token, json: ["active": false])
            #expect(try object(disabled)["active"] as? Bool == false)
            let login = try await api.send(.post, "/api/v1/auth/login", json: ["username": "nina", "password": "nina-password"])
            #expect(login.status == .unauthorized, "a disabled user cannot log in")

            let actions = try api.catalog.auditRecords(AuditFilter()).filter { $0.target == "nina" }.map(\.action)
            #expect(actions.contains("user.add") && actions.contains("user.role") && actions.contains("user.disable"))
        }
    }

    @Test func badUsersAreRefusedWithTheReason() async throws {
        try await withAPI { api in
            let token = try await api.token("alice")
            let cases: [[String: Any]] = [
                ["username": "alice", "full_name": "Again", "role": "VIEWER", "password": "long-enough"],
                ["username": "has space", "full_name": "X", "role": "VIEWER", "password": "long-enough"],
                ["username": "short", "full_name": "Short Password", "role": "VIEWER", "password": "short"],
                ["username": "norole", "full_name": "No Role", "role": "ROOT", "password": "long-enough"],
            ]
            for body in cases {
                let response = try await api.send(.post, "/api/v1/users", token: token, json: body)
                #expect(response.status == .badRequest, "\(body)")
            }
            let missing = try await api.send(.patch, "/api/v1/users/nobody", token: token, json: ["active": false])
            #expect(missing.status == .notFound)
            let empty = try await api.send(.patch, "/api/v1/users/olga", token: token, json: [:])
            #expect(empty.status == .badRequest)
        }
    }

    @Test func anAdministratorCannotDemoteOrDisableThemselves() async throws {
        try await withAPI { api in
            let token = try await api.token("alice")
            for body: [String: Any] in [["role": "VIEWER"], ["active": false]] {
                let response = try await api.send(.patch, "/api/v1/users/alice", token: token, json: body)
                #expect(response.status == .conflict, "\(body)")
            }
            #expect(try api.catalog.user(named: "alice")?.role == .systemAdmin)
            #expect(try api.catalog.user(named: "alice")?.active == true)
        }
    }

    @Test func onlyAdministratorsSeeOrChangeUsers() async throws {
        try await withAPI { api in
            for name in ["olga", "victor"] {
                let token = try await api.token(name)
                let list = try await api.send(.get, "/api/v1/users", token: token)
                #expect(list.status == .forbidden)
                let change = try await api.send(.patch, "/api/v1/users/\(name)", token: token, json: ["role": "SYSTEM_ADMIN"])
                #expect(change.status == .forbidden)
            }
            #expect(try api.catalog.user(named: "olga")?.role == .auditor)
        }
    }
}
