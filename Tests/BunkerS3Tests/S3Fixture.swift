import BunkerCore
import BunkerS3
import BunkerTesting
import Foundation

/// S3 storages on a test's SeaweedFS server, each under a fresh prefix (so one server serves
/// many empty stores), directly or through a fault proxy.
enum S3Fixture {
    /// Small enough for tests to reach: parts of 5 MiB (S3's minimum) above 6 MiB, listing pages of 3.
    static var smallOptions: S3Storage.Options {
        var options = S3Storage.Options()
        options.multipartThreshold = 6 << 20
        options.partSize = 5 << 20
        options.listPageSize = 3
        return options
    }

    /// A storage under a new prefix of the server's bucket, at `endpoint` (default the server's).
    static func storage(
        _ server: SeaweedFS, endpoint: String? = nil, prefix: String = "repo-" + UUID().uuidString.lowercased(),
        options: S3Storage.Options = S3Storage.Options(), environment: [String: String]? = nil
    ) throws -> S3Storage {
        try S3Storage(
            location: S3Location(parsing: "s3://\(server.bucket)/\(prefix)"),
            settings: S3Settings(endpoint: endpoint ?? server.endpoint, region: "us-east-1"),
            environment: S3Environment(environment ?? server.awsEnvironment), options: options)
    }

    /// Runs `body` with a server and a fault proxy in front of it.
    static func withProxy(_ body: (SeaweedFS, S3FaultProxy) async throws -> Void) async throws {
        try await withSeaweedFS { server in
            let proxy = try S3FaultProxy.start(upstream: server.port, in: server.directory + "/proxy")
            defer { proxy.stop() }
            try await body(server, proxy)
        }
    }

    /// A retry policy that gives up within `budget`, waiting at most 200 ms unless asked for more.
    static func quickRetries(budget: Duration = .seconds(20)) -> RetryPolicy {
        RetryPolicy(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(200), budget: budget)
    }

    static func sample(_ size: Int, seed: UInt64) -> Data {
        var generator = SeededGenerator(seed: seed)
        return generator.bytes(size)
    }
}
