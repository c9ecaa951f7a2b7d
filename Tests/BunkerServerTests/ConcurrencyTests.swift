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
        try await withAPI(largeFileSize: 24 << 20) { api in
            let alice = try await api.token("alice")
            // Two connections: the test client's one would send the requests one after the other.
            let clients = try (0..<2).map { _ in TestClient(host: "127.0.0.1", port: try #require(api.client.port)) }
            for client in clients { client.connect() }
            let headers: HTTPFields = [.authorization: "Bearer \(alice)", .contentType: "application/json"]
            async let first = clients[0].execute(TestClient.Request("/api/v1/backup", method: .post, headers: headers, body: ByteBuffer(string: #"{"description": "one"}"#)))
            async let second = clients[1].execute(TestClient.Request("/api/v1/backup", method: .post, headers: headers, body: ByteBuffer(string: #"{"description": "two"}"#)))
            let responses = try await [first, second]
            for client in clients { try await client.shutdown() }
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
            _ = try await api.backup(alice, description: "three")
            #expect(try api.catalog.backups().count == 2)
        }
    }
}
