import BunkerCore
import BunkerServer
import BunkerService
import BunkerTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// A live server over a fresh repository with two configured sources (an SQLite database
/// `app-db` and a file tree `studies`) and three users: `alice` (SYSTEM_ADMIN, Alice Martin),
/// `olga` (AUDITOR) and `victor` (VIEWER); each one's password is `<name>-password`.
struct APIFixture: Sendable {
    let dir: String
    /// What the server was built from (a test that restarts it builds it again).
    let configuration: Configuration
    let catalog: Catalog
    let service: BunkerService
    let client: any TestClientProtocol
    /// The server's port in `.live` mode.
    var port: Int? { client.port }

    static let users: [(String, Role)] = [("alice", .systemAdmin), ("olga", .auditor), ("victor", .viewer)]

    var studies: String { dir + "/studies" }

    /// Logs `username` in; the token.
    func token(_ username: String) async throws -> String {
        let response = try await send(.post, "/api/v1/auth/login", json: ["username": username, "password": "\(username)-password"])
        return try #require(try object(response)["access_token"] as? String)
    }

    /// A request with an optional bearer token and JSON body.
    func send(_ method: HTTPRequest.Method, _ uri: String, token: String? = nil, json: [String: Any]? = nil, raw: String? = nil) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        if let token { headers[.authorization] = "Bearer \(token)" }
        var body: ByteBuffer?
        if let json {
            headers[.contentType] = "application/json"
            body = ByteBuffer(data: try JSONSerialization.data(withJSONObject: json))
        } else if let raw {
            headers[.contentType] = "application/json"
            body = ByteBuffer(string: raw)
        }
        return try await client.execute(uri: uri, method: method, headers: headers, body: body)
    }

    /// A backup through the API, waited for; its answer.
    func backup(_ token: String, description: String = "test", type: String = "full") async throws -> [String: Any] {
        let response = try await send(.post, "/api/v1/backup", token: token, json: ["description": description, "backup_type": type])
        #expect(response.status == .ok, "\(String(buffer: response.body))")
        return try object(response)
    }
}

func object(_ response: TestResponse) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any], "\(String(buffer: response.body))")
}

func array(_ response: TestResponse) throws -> [[String: Any]] {
    try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [[String: Any]], "\(String(buffer: response.body))")
}

/// Runs `test` against the server: by default through the router (no socket, and no client
/// timeout to trip when the whole suite loads the machine), or `.live` on a free loopback port.
/// `largeFileSize` makes backups take longer (the concurrency test needs them to overlap);
/// `limits` are the server's timeouts and login limit; `configure` changes the configuration read
/// from the fixture's bunker.toml.
func withAPI(
    _ mode: TestingSetup = .router, largeFileSize: Int = 256 << 10, limits: ServerLimits = ServerLimits(),
    configure: (inout Configuration) -> Void = { _ in },
    _ test: @escaping @Sendable (APIFixture) async throws -> Void
) async throws {
    try await withTemporaryDirectory { dir in
        try TreeGenerator.makeSampleTree(at: dir + "/studies", largeFileSize: largeFileSize)
        let db = try shell("sqlite3 '\(dir)/app.db' 'PRAGMA journal_mode=wal; CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT NOT NULL); INSERT INTO patients (name) VALUES (\"Ada\"), (\"Grace\");'")
        try #require(db.status == 0, "sqlite3: \(db.output)")
        let text = """
            data_dir = "\(dir)/data"

            [repository]
            path = "\(dir)/repo"

            [[source]]
            name = "app-db"
            kind = "sqlite"
            path = "\(dir)/app.db"

            [[source]]
            name = "studies"
            kind = "files"
            path = "\(dir)/studies"
            """
        var configuration = try Configuration(text: text, file: dir + "/bunker.toml", environment: [:])
        configuration.server.listen = "127.0.0.1:0"
        configure(&configuration)
        var options = Catalog.Options()
        options.bcryptCost = 4
        let catalog = try Catalog(dataDirectory: configuration.dataDirectory, options: options)
        for (name, role) in APIFixture.users {
            let fullName = name == "alice" ? "Alice Martin" : name.capitalized
            try catalog.addUser(NewUser(username: name, fullName: fullName, email: "\(name)@clinic.example", role: role, password: "\(name)-password"), by: .system)
        }
        let repository = try await TestRepository.create(at: dir + "/repo")
        let service = BunkerService(configuration: configuration, repository: repository, catalog: catalog)
        let app = try await buildApplication(configuration, catalog: catalog, service: service, limits: limits)
        let built = configuration
        try await app.test(mode) { client in
            try await test(APIFixture(dir: dir, configuration: built, catalog: catalog, service: service, client: client))
        }
    }
}
