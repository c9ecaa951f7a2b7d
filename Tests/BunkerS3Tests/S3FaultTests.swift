import BunkerCore
import BunkerS3
import BunkerTesting
import Foundation
import Testing

/// Faults a real S3 server does not show on its own, injected by a proxy in front of SeaweedFS:
/// every one is either survived (retried) or reported, never taken for a good answer.
@Suite(.serialized) struct S3FaultTests {
    /// The storage stack `s3://` locations get (retries around a concurrency limit), through the proxy.
    static func stack(_ server: SeaweedFS, _ proxy: S3FaultProxy, budget: Duration = .seconds(20)) throws -> any Storage {
        try S3Backend.open(
            "s3://\(server.bucket)/repo-\(UUID().uuidString.lowercased())",
            settings: S3Settings(endpoint: proxy.endpoint, region: "us-east-1"),
            environment: S3Environment(server.awsEnvironment), retry: S3Fixture.quickRetries(budget: budget))
    }

    @Test func s3SlowDownWithRetryAfterIsWaitedOutAndRetried() async throws {
        try await S3Fixture.withProxy { server, proxy in
            let storage = try Self.stack(server, proxy)
            let data = S3Fixture.sample(3000, seed: 1)
            let handle = ObjectHandle(.index, ID.sha256(of: data))
            try await storage.save(handle, data: data)
            try proxy.inject([.init(id: "slow", method: "GET", path: "/index/", action: .status, status: 503, code: "SlowDown", retryAfter: "1", times: 2)])
            let start = ContinuousClock.now
            #expect(try await storage.load(handle) == data)
            #expect(ContinuousClock.now - start >= .milliseconds(1900), "two Retry-After: 1 were honoured")
            #expect(proxy.hits("slow").count == 2)
        }
    }

    @Test func s3DroppedConnectionsAreRetried() async throws {
        try await S3Fixture.withProxy { server, proxy in
            let storage = try Self.stack(server, proxy)
            try proxy.inject([
                .init(id: "drop", method: "PUT", path: "/data/", action: .drop, times: 1),
                // The request reaches the server, its answer is lost: the retry finds the name
                // taken and the same bytes stored.
                .init(id: "lost", method: "PUT", path: "/snapshots/", action: .forwardThenDrop, times: 1),
            ])
            let pack = S3Fixture.sample(5000, seed: 2)
            let packHandle = ObjectHandle(.pack, ID.sha256(of: pack))
            try await storage.save(packHandle, data: pack)
            let snapshot = S3Fixture.sample(700, seed: 3)
            let snapshotHandle = ObjectHandle(.snapshot, ID.sha256(of: snapshot))
            try await storage.save(snapshotHandle, data: snapshot)
            #expect(proxy.hits("drop").count == 1)
            #expect(proxy.hits("lost").count == 1)
            #expect(try await storage.load(packHandle) == pack)
            #expect(try await storage.load(snapshotHandle) == snapshot)
        }
    }

    @Test func s3TruncatedBodiesAreNeverTakenForTheObject() async throws {
        try await S3Fixture.withProxy { server, proxy in
            let storage = try S3Fixture.storage(server, endpoint: proxy.endpoint)
            let data = S3Fixture.sample(64 << 10, seed: 4)
            let handle = ObjectHandle(.pack, ID.sha256(of: data))
            try await storage.save(handle, data: data)
            try proxy.inject([.init(id: "cut", method: "GET", path: "/data/", action: .truncate, times: 2)])
            for range in [nil, 1000..<40000] as [Range<Int>?] {
                do {
                    let loaded = try await storage.load(handle, range: range)
                    Issue.record("a cut body was returned (\(loaded.count) bytes)")
                } catch let error as BunkerError {
                    #expect(error.code == .storageUnavailable, "\(error)")
                }
            }
            #expect(proxy.hits("cut").count == 2)
            #expect(try await storage.load(handle) == data, "read again, the object is whole")

            // Behind the retrying stack, a cut body is read again.
            let retried = try Self.stack(server, proxy)
            try await retried.save(handle, data: data)
            try proxy.inject([.init(id: "cut-again", method: "GET", path: "/data/", action: .truncate, times: 1)])
            #expect(try await retried.load(handle) == data)
            #expect(proxy.hits("cut-again").count == 1)
        }
    }

    /// Prune must never act on a partial listing: one that says it is truncated but gives no way
    /// on fails instead of returning the first page.
    @Test func s3ListingCutShortFailsRatherThanReturningAPage() async throws {
        try await S3Fixture.withProxy { server, proxy in
            var options = S3Storage.Options()
            options.listPageSize = 2
            let storage = try S3Fixture.storage(server, endpoint: proxy.endpoint, options: options)
            for i in 0..<5 {
                let data = S3Fixture.sample(50, seed: UInt64(10 + i))
                try await storage.save(ObjectHandle(.index, ID.sha256(of: data)), data: data)
            }
            try proxy.inject([.init(id: "cut-list", method: "GET", query: "list-type=2", action: .dropContinuationToken, times: 1)])
            do {
                let listed = try await storage.list(.index)
                Issue.record("a listing cut short returned \(listed.count) objects")
            } catch let error as BunkerError {
                #expect(error.code == .storageIO)
                #expect(error.message.contains("truncated"))
            }
            #expect(proxy.hits("cut-list").count == 1)
            #expect(try await storage.list(.index).count == 5)
        }
    }

    @Test func s3RetriesRunOutWithAClearError() async throws {
        try await S3Fixture.withProxy { server, proxy in
            let storage = try Self.stack(server, proxy, budget: .seconds(1))
            try proxy.inject([.init(id: "down", method: "GET", path: "/snapshots/", action: .status, status: 503, code: "ServiceUnavailable")])
            let start = ContinuousClock.now
            do {
                _ = try await storage.load(ObjectHandle(.snapshot, ID.sha256(of: Data("s".utf8))))
                Issue.record("a storage that never answers must fail")
            } catch let error as BunkerError {
                #expect(error.code == .storageUnavailable)
                #expect(error.message.contains("did not answer"))
                #expect(error.message.contains("503"))
            }
            #expect(ContinuousClock.now - start < .seconds(10))
            #expect(proxy.hits("down").count >= 2)
        }
    }

    @Test func s3WithoutConditionalCreateChecksBeforeWriting() async throws {
        try await S3Fixture.withProxy { server, proxy in
            try proxy.inject([.init(id: "no-condition", header: "if-none-match", action: .status, status: 501, code: "NotImplemented")])
            let storage = try S3Fixture.storage(server, endpoint: proxy.endpoint)
            #expect(try await storage.serverTraits().conditionalCreate == false)
            let neverOverwrites = try #require(StorageConformance.checks.first { $0.0 == "saveNeverOverwrites" }?.1)
            try await neverOverwrites(storage)
            #expect(proxy.hits("no-condition").count == 1, "only the probe asked for a conditional create")
            let puts = proxy.requests.filter { $0.contains(" PUT ") && $0.contains("/snapshots/") }
            #expect(puts.count == 1, "the second save stopped at its HEAD")
        }
    }

    @Test func s3ChecksumProbeSkipsAHeaderTheServerRefuses() async throws {
        try await S3Fixture.withProxy { server, proxy in
            try proxy.inject([.init(id: "no-sha", method: "PUT", header: "x-amz-checksum-sha256", action: .status, status: 400, code: "InvalidArgument")])
            let storage = try S3Fixture.storage(server, endpoint: proxy.endpoint)
            let traits = try await storage.serverTraits()
            #expect(traits.checksum == .md5)
            #expect(traits.checksumVerified)
            let data = S3Fixture.sample(2000, seed: 5)
            let handle = ObjectHandle(.key, ID.sha256(of: data))
            try await storage.save(handle, data: data)
            #expect(try await storage.load(handle) == data)
            #expect(proxy.hits("no-sha").count == 1)
        }
    }
}
