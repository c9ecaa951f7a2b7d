import BunkerCore
import BunkerServer
import BunkerService
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// Every route × every role: who may call it, and that a refusal is a 403 in the audit trail.
@Suite struct RoleMatrixTests {
    /// A route, called so that an allowed caller gets past the role check cheaply (an unknown
    /// backup, a body the route then rejects), and the roles that may call it.
    struct Route: Sendable, CustomTestStringConvertible {
        var method: HTTPRequest.Method
        var uri: String
        var body: String?
        var allowed: Set<Role>
        /// What an allowed caller gets with this call.
        var allowedStatus: Int

        var testDescription: String { "\(method) \(uri)" }
    }

    static let admin: Set<Role> = [.systemAdmin]
    static let readers: Set<Role> = [.systemAdmin, .auditor]
    static let everyone: Set<Role> = [.systemAdmin, .auditor, .viewer]
    static let unknown = "deadbeefdeadbeef"
    static let unknownUser = "nobody-in-the-matrix"

    static let routes: [Route] = [
        Route(method: .post, uri: "/api/v1/backup", body: "{\"backup_type\": \"nope\"}", allowed: admin, allowedStatus: 400),
        Route(method: .post, uri: "/api/v1/restore/\(unknown)", body: "{\"password\": \"x\", \"reason\": \"matrix\"}", allowed: admin, allowedStatus: 404),
        Route(method: .get, uri: "/api/v1/backup/\(unknown)/download", allowed: admin, allowedStatus: 404),
        Route(method: .post, uri: "/api/v1/backup/\(unknown)/verify", allowed: admin, allowedStatus: 404),
        Route(method: .post, uri: "/api/v1/cleanup", body: "{\"dry_run\": \"yes\"}", allowed: admin, allowedStatus: 400),
        Route(method: .get, uri: "/api/v1/backups", allowed: everyone, allowedStatus: 200),
        Route(method: .get, uri: "/api/v1/backup/\(unknown)", allowed: everyone, allowedStatus: 404),
        Route(method: .get, uri: "/api/v1/jobs", allowed: readers, allowedStatus: 200),
        Route(method: .get, uri: "/api/v1/jobs/00000000-0000-4000-8000-000000000000", allowed: readers, allowedStatus: 404),
        Route(method: .delete, uri: "/api/v1/jobs/00000000-0000-4000-8000-000000000000", allowed: admin, allowedStatus: 404),
        Route(method: .get, uri: "/api/v1/stats", allowed: everyone, allowedStatus: 200),
        Route(method: .get, uri: "/api/v1/health/detail", allowed: readers, allowedStatus: 200),
        Route(method: .get, uri: "/api/v1/metrics", allowed: everyone, allowedStatus: 200),
        Route(method: .get, uri: "/api/v1/audit", allowed: readers, allowedStatus: 200),
        Route(method: .get, uri: "/api/v1/audit/verify", allowed: readers, allowedStatus: 200),
        Route(method: .get, uri: "/api/v1/audit/export?format=jsonl", allowed: readers, allowedStatus: 200),
        Route(method: .get, uri: "/api/v1/auth/me", allowed: everyone, allowedStatus: 200),
        Route(method: .get, uri: "/api/v1/backup/\(unknown)/tree", allowed: admin, allowedStatus: 404),
        Route(method: .get, uri: "/api/v1/backup/\(unknown)/file?path=studies/a.txt", allowed: admin, allowedStatus: 404),
        Route(method: .post, uri: "/api/v1/backup/\(unknown)/drill", allowed: admin, allowedStatus: 404),
        Route(method: .post, uri: "/api/v1/backup/\(unknown)/restore-files", body: "{\"paths\": [\"a\"], \"target\": \"/nonexistent/x\", \"password\": \"x\", \"reason\": \"matrix\"}", allowed: admin, allowedStatus: 404),
        Route(method: .get, uri: "/api/v1/users", allowed: admin, allowedStatus: 200),
        Route(method: .post, uri: "/api/v1/users", body: "{\"username\": \"no fields\"}", allowed: admin, allowedStatus: 400),
        Route(method: .patch, uri: "/api/v1/users/\(unknownUser)", body: "{\"active\": true}", allowed: admin, allowedStatus: 404),
    ]

    @Test(arguments: routes)
    func eachRoleGetsInOnlyWhereAllowedAndRefusalsAreAudited(_ route: Route) async throws {
        try await withAPI { api in
            for (name, role) in APIFixture.users {
                let token = try await api.token(name)
                let before = try api.catalog.auditRecords(AuditFilter(limit: 1000)).filter { $0.outcome == .denied }.count
                let response = try await api.send(route.method, route.uri, token: token, raw: route.body)
                let denied = try api.catalog.auditRecords(AuditFilter(limit: 1000)).filter { $0.outcome == .denied }
                if route.allowed.contains(role) {
                    #expect(response.status.code == route.allowedStatus, "\(role.rawValue): \(String(buffer: response.body))")
                    #expect(denied.count == before, "\(role.rawValue) was let in without a denied row")
                } else {
                    #expect(response.status == .forbidden, "\(role.rawValue)")
                    #expect(try object(response)["error"] as? String == "forbidden")
                    #expect(denied.count == before + 1, "\(role.rawValue)'s refusal is audited")
                    #expect(denied.last?.actor == name)
                }
            }
            let anonymous = try await api.send(route.method, route.uri, raw: route.body)
            #expect(anonymous.status == .unauthorized)
        }
    }

    @Test func everyProtectedRouteIsInTheMatrix() async throws {
        try await withAPI { api in
            let router = try await buildRouter(api.service.configuration, catalog: api.catalog, service: api.service)
            let open: Set<String> = [
                "POST /api/v1/auth/login", "GET /api/v1/health", "GET /api/v1/openapi.json",
                "POST /api/v1/auth/session", "DELETE /api/v1/auth/session",
            ]
            let registered = Set(router.routes.map { "\($0.method) \($0.path.description)" }).subtracting(open)
            let matrix = Set(Self.routes.map { route in
                let path = String(route.uri.split(separator: "?")[0])
                    .replacingOccurrences(of: Self.unknown, with: "{backup_id}")
                    .replacingOccurrences(of: "00000000-0000-4000-8000-000000000000", with: "{job_id}")
                    .replacingOccurrences(of: Self.unknownUser, with: "{username}")
                return "\(route.method) \(path)"
            })
            #expect(registered == matrix)
        }
    }
}
