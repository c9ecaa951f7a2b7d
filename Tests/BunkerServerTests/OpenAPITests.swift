import BunkerServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The OpenAPI document: complete, and the one kept in the repository.
@Suite struct OpenAPITests {
    static let docsFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/openapi.json")

    @Test func everyRegisteredRouteIsDocumentedAndEveryDocumentedRouteExists() async throws {
        try await withAPI { api in
            let router = try await buildRouter(api.service.configuration, catalog: api.catalog, service: api.service)
            let registered = Set(router.routes.map { "\($0.method) \($0.path.description)" })
            let document = try object(try await api.send(.get, "/api/v1/openapi.json"))
            #expect(document["openapi"] as? String == "3.1.0")
            let paths = try #require(document["paths"] as? [String: [String: Any]])
            let documented = Set(paths.flatMap { path, operations in operations.keys.map { "\($0.uppercased()) \(path)" } })
            #expect(registered.subtracting(documented).isEmpty, "registered but not documented")
            #expect(documented.subtracting(registered).isEmpty, "documented but not registered")
            #expect(registered.count >= 16)
        }
    }

    @Test func theServedDocumentIsTheOneInDocs() async throws {
        try await withAPI { api in
            let served = try JSONSerialization.jsonObject(with: Data(buffer: try await api.send(.get, "/api/v1/openapi.json").body))
            let kept = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.docsFile))
            #expect(NSDictionary(dictionary: try #require(served as? [String: Any])) == NSDictionary(dictionary: try #require(kept as? [String: Any])),
                    "docs/openapi.json changed: run scripts/embed-openapi.sh")
        }
    }
}
