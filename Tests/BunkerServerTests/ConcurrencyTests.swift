import BunkerCore
import BunkerService
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// One writer per repository.
@Suite struct ConcurrencyTests {
    @Test func twoConcurrentBackupsOneRunsTheOtherGets409AndTheRepositoryVerifies() async throws {
        // Large files, so that the first backup is still running when the second arrives.
        try await withAPI(.live, largeFileSize: 24 << 20) { api in
            // Two connections (one would carry the requests one after the other), with a timeout
            // that a loaded machine does not trip.
            let port = try #require(api.client.port)
            let clients = (0..<2).map { _ in TestClient(host: "127.0.0.1", port: port, configuration: .init(timeout: .seconds(600))) }
            for client in clients { client.connect() }
            let login = try await clients[0].execute(TestClient.Request(
                "/api/v1/auth/login", method: .post, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"username": "alice", "password": "alice-password"}"#)))
            let token = try #require(try JSONSerialization.jsonObject(with: Data(buffer: login.body ?? ByteBuffer())) as? [String: Any])["access_token"] as? String
            let headers: HTTPFields = [.authorization: "Bearer \(try #require(token))", .contentType: "application/json"]
            async let first = clients[0].execute(TestClient.Request("/api/v1/backup", method: .post, headers: headers, body: ByteBuffer(string: #"{"description": "one"}"#)))
            async let second = clients[1].execute(TestClient.Request("/api/v1/backup", method: .post, headers: headers, body: ByteBuffer(string: #"{"description": "two"}"#)))
            let responses = try await [first, second]
            let statuses = responses.map(\.status.code).sorted()
            #expect(statuses == [200, 409])
            let refused = try #require(responses.first { $0.status == .conflict })
            let body = try #require(try JSONSerialization.jsonObject(with: Data(buffer: refused.body ?? ByteBuffer())) as? [String: Any])
            #expect(body.keys.sorted() == ["error", "message"])
            #expect(body["error"] as? String == "repository_locked")
            #expect((body["message"] as? String)?.contains("a backup by alice is running") == true)

            #expect(try api.catalog.backups().count == 1)
            let report = try await api.service.verify(readData: true, by: .system)
            #expect(report.ok, "\(report.errors.map(\.message))")

            // The gate is free again: a third backup runs.
            let third = try await clients[1].execute(TestClient.Request("/api/v1/backup", method: .post, headers: headers, body: ByteBuffer(string: #"{"description": "three"}"#)))
            #expect(third.status == .ok)
            #expect(try api.catalog.backups().count == 2)
            for client in clients { try await client.shutdown() }
        }
    }
}
