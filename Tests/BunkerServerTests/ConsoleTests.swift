@testable import BunkerServer
import BunkerService
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// The web console: its files as kept in console/, served with a strict CSP, and its cookie
/// session (HttpOnly token, CSRF token on every request that changes something).
@Suite struct ConsoleTests {
    static let consoleDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("console")

    /// Logs `username` in to the console; the answer, and the Cookie header the browser would send.
    private func session(_ api: APIFixture, _ username: String, password: String? = nil) async throws -> (TestResponse, String) {
        let response = try await api.send(.post, "/api/v1/auth/session", json: ["username": username, "password": password ?? "\(username)-password"])
        let cookies = response.headers[values: .setCookie].map { $0.split(separator: ";")[0] }.joined(separator: "; ")
        return (response, cookies)
    }

    private func request(_ api: APIFixture, _ method: HTTPRequest.Method, _ uri: String, cookie: String, csrf: String? = nil, json: [String: Any]? = nil) async throws -> TestResponse {
        var headers: HTTPFields = [.cookie: cookie]
        if let csrf { headers[HTTPField.Name("X-CSRF-Token")!] = csrf }
        var body: ByteBuffer?
        if let json {
            headers[.contentType] = "application/json"
            body = ByteBuffer(data: try JSONSerialization.data(withJSONObject: json))
        }
        return try await api.client.execute(uri: uri, method: method, headers: headers, body: body)
    }

    @Test func everyFileInConsoleIsServedAsKept() async throws {
        try await withAPI { api in
            let files = (try FileManager.default.subpathsOfDirectory(atPath: Self.consoleDirectory.path)).filter { !$0.hasSuffix("/") && !(try! Self.consoleDirectory.appendingPathComponent($0).resourceValues(forKeys: [.isDirectoryKey]).isDirectory!) }
            #expect(files.contains("index.html") && files.contains("js/app.js"))
            for file in files {
                let kept = try String(contentsOf: Self.consoleDirectory.appendingPathComponent(file), encoding: .utf8)
                let response = try await api.send(.get, "/console/" + file)
                #expect(response.status == .ok, "\(file)")
                #expect(String(buffer: response.body) == kept, "console/\(file) changed: run scripts/embed-console.sh")
            }
            let index = try await api.send(.get, "/")
            #expect(String(buffer: index.body) == (try String(contentsOf: Self.consoleDirectory.appendingPathComponent("index.html"), encoding: .utf8)))
            #expect(index.headers[.contentType] == "text/html; charset=utf-8")
            let header1 = try await api.send(.get, "/console/js/app.js").headers[.contentType]
            #expect(header1 == "text/javascript; charset=utf-8")
        }
    }

    @Test func pagesCarryAStrictContentSecurityPolicy() async throws {
        try await withAPI { api in
            for uri in ["/", "/console/js/app.js", "/console/console.css"] {
                let response = try await api.send(.get, uri)
                let policy = try #require(response.headers[.contentSecurityPolicy], "\(uri)")
                #expect(policy.contains("default-src 'self'") && policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"))
                #expect(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"))
                #expect(response.headers[.xContentTypeOptions] == "nosniff")
                #expect(response.headers[HTTPField.Name("X-Frame-Options")!] == "DENY")
            }
        }
    }

    @Test func noConsoleFileHasInlineScriptOrStyleOrWritesHTML() throws {
        let index = try String(contentsOf: Self.consoleDirectory.appendingPathComponent("index.html"), encoding: .utf8)
        #expect(!index.contains("<style"))
        #expect(!index.contains(" style="))
        #expect(!index.contains(" on"), "no inline event handler")
        #expect(index.components(separatedBy: "<script").count - 1 == index.components(separatedBy: "<script type=\"module\" src=").count - 1)
        let scripts = (try FileManager.default.subpathsOfDirectory(atPath: Self.consoleDirectory.path)).filter { $0.hasSuffix(".js") }
        #expect(!scripts.isEmpty)
        for script in scripts {
            let text = try String(contentsOf: Self.consoleDirectory.appendingPathComponent(script), encoding: .utf8)
            for forbidden in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "localStorage", "sessionStorage"] {
                #expect(!text.contains(forbidden), "\(script) uses \(forbidden)")
            }
        }
    }

    @Test func unknownConsoleFilesAndOtherMethodsAreNotServed() async throws {
        try await withAPI { api in
            let status2 = try await api.send(.get, "/console/nothing.js").status
            #expect(status2 == .notFound, "api.send(.get, '/console/nothing.js')")
            let status3 = try await api.send(.get, "/console/../docs/openapi.json").status
            #expect(status3 == .notFound, "api.send(.get, '/console/../docs/openapi.json')")
            let status4 = try await api.send(.get, "/console/js/../../Package.swift").status
            #expect(status4 == .notFound, "api.send(.get, '/console/js/../../Package.swift')")
            let status5 = try await api.send(.post, "/").status
            #expect(status5 != .ok, "api.send(.post, '/')")
            // The API still answers beside it.
            let status6 = try await api.send(.get, "/api/v1/health").status
            #expect(status6 == .ok, "api.send(.get, '/api/v1/health')")
        }
    }

    @Test func sessionLoginSetsAnHttpOnlyStrictCookieAndAReadableCSRFCookie() async throws {
        try await withAPI { api in
            let (response, cookie) = try await session(api, "alice")
            #expect(response.status == .ok)
            let body = try object(response)
            #expect(body["role"] as? String == "SYSTEM_ADMIN")
            #expect(body["access_token"] == nil, "the token is never handed to scripts")
            let csrf = try #require(body["csrf_token"] as? String)
            let setCookies = response.headers[values: .setCookie]
            let sessionCookie = try #require(setCookies.first { $0.hasPrefix("bunker_session=") })
            #expect(sessionCookie.contains("HttpOnly") && sessionCookie.contains("SameSite=Strict") && sessionCookie.contains("Path=/"))
            let csrfCookie = try #require(setCookies.first { $0.hasPrefix("bunker_csrf=") })
            #expect(!csrfCookie.contains("HttpOnly") && csrfCookie.contains("SameSite=Strict"))
            #expect(csrfCookie.hasPrefix("bunker_csrf=\(csrf);"))
            // Over plain HTTP the cookies cannot be Secure (the browser would drop them).
            #expect(!sessionCookie.contains("Secure"))

            let me = try await request(api, .get, "/api/v1/auth/me", cookie: cookie)
            #expect(me.status == .ok)
            #expect(try object(me)["username"] as? String == "alice")
        }
    }

    @Test func wrongPasswordSetsNoCookie() async throws {
        try await withAPI { api in
            let (response, cookie) = try await session(api, "alice", password: "wrong")
            #expect(response.status == .unauthorized)
            #expect(cookie.isEmpty)
        }
    }

    @Test func cookieRequestsThatChangeSomethingNeedTheCSRFToken() async throws {
        try await withAPI { api in
            let (login, cookie) = try await session(api, "alice")
            let csrf = try #require(try object(login)["csrf_token"] as? String)
            let backup = ["backup_type": "files", "description": "from the console"]

            let without = try await request(api, .post, "/api/v1/backup", cookie: cookie, json: backup)
            #expect(without.status == .forbidden)
            #expect(try object(without)["error"] as? String == "csrf_failed")
            let forged = try await request(api, .post, "/api/v1/backup", cookie: cookie, csrf: String(csrf.reversed()), json: backup)
            #expect(forged.status == .forbidden)
            #expect(try api.catalog.backups(limit: 10).isEmpty, "a refused request made no backup")

            let with = try await request(api, .post, "/api/v1/backup", cookie: cookie, csrf: csrf, json: backup)
            #expect(with.status == .ok, "\(String(buffer: with.body))")
            #expect(try api.catalog.backups(limit: 10).count == 1)
        }
    }

    @Test func aCSRFTokenBelongsToItsSession() async throws {
        try await withAPI { api in
            let (aliceLogin, _) = try await session(api, "alice")
            let aliceCSRF = try #require(try object(aliceLogin)["csrf_token"] as? String)
            let (_, olgaCookie) = try await session(api, "olga")
            // Olga's session with Alice's CSRF token: refused before the role is even looked at.
            let response = try await request(api, .delete, "/api/v1/jobs/00000000-0000-0000-0000-000000000000", cookie: olgaCookie, csrf: aliceCSRF)
            #expect(response.status == .forbidden)
            #expect(try object(response)["error"] as? String == "csrf_failed")
        }
    }

    @Test func logoutEndsTheSessionsTokenTooEvenAfterARestart() async throws {
        try await withAPI { api in
            let (login, cookie) = try await session(api, "alice")
            let csrf = try #require(try object(login)["csrf_token"] as? String)
            let (_, otherCookie) = try await session(api, "alice")
            let before = try await request(api, .get, "/api/v1/auth/me", cookie: cookie)
            #expect(before.status == .ok)

            // Without the CSRF token (a logout another site starts) nothing is revoked.
            _ = try await request(api, .delete, "/api/v1/auth/session", cookie: cookie)
            let still = try await request(api, .get, "/api/v1/auth/me", cookie: cookie)
            #expect(still.status == .ok)

            let logout = try await request(api, .delete, "/api/v1/auth/session", cookie: cookie, csrf: csrf)
            #expect(logout.status == .noContent)
            let after = try await request(api, .get, "/api/v1/auth/me", cookie: cookie)
            #expect(after.status == .unauthorized, "a copy of the logged-out cookie must not work")
            let other = try await request(api, .get, "/api/v1/auth/me", cookie: otherCookie)
            #expect(other.status == .ok, "another session of the same user goes on")

            // Revocations are in the catalog: a server started again over it (a new router,
            // token service and catalog connection, as after `bunker serve` restarts) still
            // refuses the logged-out token, and still takes the other session.
            let catalog = try Catalog(dataDirectory: api.configuration.dataDirectory, options: api.catalog.options)
            let restarted = try await buildApplication(api.configuration, catalog: catalog, service: api.service)
            try await restarted.test(.router) { client in
                let afterRestart = try await client.execute(uri: "/api/v1/auth/me", method: .get, headers: [.cookie: cookie])
                #expect(afterRestart.status == .unauthorized, "a logged-out session must not come back with a restart")
                let otherAfterRestart = try await client.execute(uri: "/api/v1/auth/me", method: .get, headers: [.cookie: otherCookie])
                #expect(otherAfterRestart.status == .ok, "\(String(buffer: otherAfterRestart.body))")
            }
        }
    }

    @Test func logoutExpiresBothCookies() async throws {
        try await withAPI { api in
            let response = try await api.send(.delete, "/api/v1/auth/session")
            #expect(response.status == .noContent)
            let setCookies = response.headers[values: .setCookie]
            #expect(setCookies.count == 2)
            for name in ["bunker_session=", "bunker_csrf="] {
                let cookie = try #require(setCookies.first { $0.hasPrefix(name) })
                #expect(cookie.contains("Max-Age=0"))
            }
        }
    }

    @Test func theBrowserListsAFolderAndDownloadsAFileWhoseBytesMatch() async throws {
        try await withAPI { api in
            let token = try await api.token("alice")
            let id = try #require(try await api.backup(token, type: "files")["backup_id"] as? String)

            let top = try object(try await api.send(.get, "/api/v1/backup/\(id)/tree", token: token))
            let names = try #require(top["entries"] as? [[String: Any]]).map { $0["name"] as? String }
            #expect(names == ["studies"])

            let folder = try await api.send(.get, "/api/v1/backup/\(id)/tree?path=studies/studies/2025", token: token)
            #expect(folder.status == .ok, "\(String(buffer: folder.body))")
            let entries = try #require(try object(folder)["entries"] as? [[String: Any]])
            let small = try #require(entries.first { $0["name"] as? String == "small-0.bin" })
            #expect(small["type"] as? String == "file")

            let file = try await api.send(.get, "/api/v1/backup/\(id)/file?path=studies/studies/2025/small-0.bin", token: token)
            #expect(file.status == .ok)
            let kept = try Data(contentsOf: URL(fileURLWithPath: api.studies + "/studies/2025/small-0.bin"))
            #expect(Data(buffer: file.body) == kept)
            #expect(small["size"] as? Int == kept.count)
            #expect(file.headers[.contentDisposition]?.hasPrefix("attachment; filename=\"small-0.bin\"") == true)
        }
    }

    @Test func aLargeFolderIsListedInPages() async throws {
        try await withAPI { api in
            let token = try await api.token("alice")
            let id = try #require(try await api.backup(token, type: "files")["backup_id"] as? String)
            let folder = "/api/v1/backup/\(id)/tree?path=studies/studies/2024/patient-001"
            var names: [String] = []
            var offset: Int? = 0
            while let from = offset {
                let page = try object(try await api.send(.get, folder + "&limit=15&offset=\(from)", token: token))
                let entries = try #require(page["entries"] as? [[String: Any]])
                #expect(entries.count <= 15)
                #expect(page["total"] as? Int == 40)
                names += entries.compactMap { $0["name"] as? String }
                offset = page["next_offset"] as? Int
            }
            #expect(names.count == 40)
            #expect(Set(names).count == 40, "no entry twice")
            #expect(names == names.sorted())
            let status = try await api.send(.get, folder + "&limit=0", token: token).status
            #expect(status == .badRequest)
        }
    }

    @Test func chosenFilesAreRestoredIntoANewDirectoryWithASignature() async throws {
        try await withAPI { api in
            let token = try await api.token("alice")
            let id = try #require(try await api.backup(token, type: "files")["backup_id"] as? String)
            let target = api.dir + "/restored-files"
            var body: [String: Any] = [
                "paths": ["studies/studies/2025/small-0.bin", "studies/docs"], "target": target,
                "password": "wrong-password", "reason": "ticket 4711",
            ]
            let refused = try await api.send(.post, "/api/v1/backup/\(id)/restore-files", token: token, json: body)
            #expect(refused.status == .forbidden)
            #expect(!FileManager.default.fileExists(atPath: target), "a refused signature wrote nothing")

            body["password"] = "alice-password"
            let response = try await api.send(.post, "/api/v1/backup/\(id)/restore-files", token: token, json: body)
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            let restored = try Data(contentsOf: URL(fileURLWithPath: target + "/studies/studies/2025/small-0.bin"))
            #expect(restored == (try Data(contentsOf: URL(fileURLWithPath: api.studies + "/studies/2025/small-0.bin"))))
            #expect(FileManager.default.fileExists(atPath: target + "/studies/docs/log.csv"))
            #expect(!FileManager.default.fileExists(atPath: target + "/studies/studies/2024"), "only what was chosen")
            let rows = try api.catalog.auditRecords(AuditFilter()).filter { $0.action == "restore" }
            #expect(rows.contains { $0.detailValues["signed_by"] == "Alice Martin" && $0.detailValues["signature_meaning"] == "approved restore" && $0.reason == "ticket 4711" })
            #expect(rows.contains { $0.outcome == .success })

            let again = try await api.send(.post, "/api/v1/backup/\(id)/restore-files", token: token, json: body)
            #expect(again.status == .conflict, "never over files already there")
            body["target"] = "relative/dir"
            let relative = try await api.send(.post, "/api/v1/backup/\(id)/restore-files", token: token, json: body)
            #expect(relative.status == .badRequest)
        }
    }

    @Test func theBrowserRefusesBadPathsAndOtherRoles() async throws {
        try await withAPI { api in
            let token = try await api.token("alice")
            let id = try #require(try await api.backup(token, type: "files")["backup_id"] as? String)
            let status7 = try await api.send(.get, "/api/v1/backup/\(id)/tree?path=studies/../etc", token: token).status
            #expect(status7 == .badRequest, "api.send(.get, '/api/v1/backup/\(id)/tree?path=studies/../etc', token: token)")
            let status8 = try await api.send(.get, "/api/v1/backup/\(id)/tree?path=nothing-here", token: token).status
            #expect(status8 == .notFound, "api.send(.get, '/api/v1/backup/\(id)/tree?path=nothing-here', token: token)")
            let status9 = try await api.send(.get, "/api/v1/backup/\(id)/file?path=studies", token: token).status
            #expect(status9 == .badRequest, "api.send(.get, '/api/v1/backup/\(id)/file?path=studies', token: token)")
            let status10 = try await api.send(.get, "/api/v1/backup/\(id)/file?path=", token: token).status
            #expect(status10 == .badRequest, "api.send(.get, '/api/v1/backup/\(id)/file?path=', token: token)")
            let auditor = try await api.token("olga")
            let status11 = try await api.send(.get, "/api/v1/backup/\(id)/tree", token: auditor).status
            #expect(status11 == .forbidden, "api.send(.get, '/api/v1/backup/\(id)/tree', token: auditor)")
            let status12 = try await api.send(.get, "/api/v1/backup/\(id)/file?path=studies/studies/2025/small-0.bin", token: auditor).status
            #expect(status12 == .forbidden, "api.send(.get, '/api/v1/backup/\(id)/file?path=studies/studies/2025/small-0.bin', token: auditor)")
        }
    }

    @Test func aDrillOfABackupRestoresItElsewhereAndIsTimed() async throws {
        try await withAPI { api in
            let token = try await api.token("alice")
            let id = try #require(try await api.backup(token)["backup_id"] as? String)
            let response = try await api.send(.post, "/api/v1/backup/\(id)/drill", token: token)
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            let report = try object(response)
            #expect(report["passed"] as? Bool == true)
            #expect((report["duration_seconds"] as? Double ?? 0) > 0)
            let sources = try #require(report["sources"] as? [[String: Any]])
            #expect(Set(sources.compactMap { $0["name"] as? String }) == ["app-db", "studies"])
            #expect(!String(buffer: response.body).contains(api.dir), "no server path in the answer")
            let ended = try api.catalog.auditRecords(AuditFilter()).filter { $0.action == "drill" && $0.outcome == .success }
            #expect(ended.count == 1 && ended.first?.target == id)

            let auditor = try await api.token("olga")
            let refused = try await api.send(.post, "/api/v1/backup/\(id)/drill", token: auditor)
            #expect(refused.status == .forbidden)
        }
    }

    @Test func backupsSayWhetherAHoldKeepsThem() async throws {
        try await withAPI { api in
            let token = try await api.token("alice")
            let first = try #require(try await api.backup(token, type: "files")["backup_id"] as? String)
            let second = try #require(try await api.backup(token, type: "database")["backup_id"] as? String)
            _ = try await api.service.addHold(to: first, reason: "litigation 12")
            let listed = try array(try await api.send(.get, "/api/v1/backups", token: token))
            let held = Dictionary(uniqueKeysWithValues: listed.compactMap { item in (item["id"] as? String).map { ($0, item["held"] as? Bool) } })
            #expect(held[first] == true)
            #expect(held[second] == false)
            let one = try object(try await api.send(.get, "/api/v1/backup/\(first)", token: token))
            #expect(one["held"] as? Bool == true)
        }
    }

    @Test func attachmentNamesCannotBreakTheHeader() {
        #expect(BackupController.attachment("a\"b\\c.txt") == "attachment; filename=\"a_b_c.txt\"; filename*=UTF-8''a%22b%5Cc.txt")
        #expect(BackupController.attachment("ümlaut.txt").hasPrefix("attachment; filename=\"_mlaut.txt\"; filename*=UTF-8''%C3%BCmlaut.txt"))
    }
}
