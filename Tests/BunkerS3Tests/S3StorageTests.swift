import BunkerCore
import BunkerS3
import BunkerTesting
import Foundation
import Testing

/// ``S3Storage`` against a real S3 server (SeaweedFS, started for each test); that requests are
/// signed right is shown by the server accepting them.
@Suite(.serialized) struct S3StorageTests {
    /// The shared conformance suite, each check on a fresh prefix: once with the defaults, once
    /// with small parts, listing pages of 3 and SHA-256 checksums (so that the 9 MiB object goes
    /// up in parts and every listing takes several pages).
    @Test func s3StorageConformsToStorageGuarantees() async throws {
        try await withSeaweedFS { server in
            var small = S3Fixture.smallOptions
            small.checksums = [.sha256]
            var md5 = S3Storage.Options()
            md5.checksums = [.md5]
            for (label, options) in [("default", S3Storage.Options()), ("small parts, sha256", small), ("Content-MD5", md5)] {
                for (name, check) in StorageConformance.checks {
                    do {
                        try await check(S3Fixture.storage(server, options: options))
                    } catch {
                        Issue.record("\(name) (\(label)): \(error)")
                    }
                }
            }
        }
    }

    /// Where the server checks each upload's SHA-256, a pack goes up with the SHA-256 its name
    /// gives (not worked out again), and the server's answer confirms it: one PUT, no HEAD. A
    /// pack whose name is not its SHA-256 is refused and not stored.
    @Test func aPackGoesUpUnderTheSHA256ItsNameGivesAndOneRequest() async throws {
        try await S3Fixture.withProxy { server, proxy in
            let storage = try S3Fixture.storage(server, endpoint: proxy.endpoint)
            #expect(try await storage.serverTraits().checksum == .sha256)
            let data = S3Fixture.sample(300_000, seed: 11)
            let pack = ObjectHandle(.pack, ID.sha256(of: data))
            try await storage.save(pack, data: data)
            let requests = proxy.requests.filter { $0.contains("/data/") }
            #expect(requests.filter { $0.contains(" PUT ") }.count == 1 && !requests.contains { $0.contains(" HEAD ") }, "\(requests)")
            #expect(try await storage.load(pack) == data)

            let misnamed = ObjectHandle(.pack, ID.sha256(of: Data("other bytes".utf8)))
            await #expect(throws: BunkerError.self) { try await storage.save(misnamed, data: data) }
            #expect(try await storage.list(.pack).map(\.handle) == [pack])
        }
    }

    @Test func probeFindsConditionalCreateAndAVerifiedChecksum() async throws {
        try await withSeaweedFS { server in
            let storage = try S3Fixture.storage(server)
            let traits = try await storage.serverTraits()
            #expect(traits.conditionalCreate)
            #expect(traits.checksum == .sha256)
            #expect(traits.checksumVerified)
            var md5 = S3Storage.Options()
            md5.checksums = [.md5]
            #expect(try await S3Fixture.storage(server, options: md5).serverTraits().checksum == .md5)
            // The probe's temporary objects are gone, and no listing ever showed them.
            for kind in ObjectKind.allCases {
                #expect(try await storage.list(kind).isEmpty)
            }
        }
    }

    @Test func s3ListingFollowsContinuationTokens() async throws {
        try await S3Fixture.withProxy { server, proxy in
            var options = S3Storage.Options()
            options.listPageSize = 4
            let storage = try S3Fixture.storage(server, endpoint: proxy.endpoint, options: options)
            var names: Set<String> = []
            for i in 0..<25 {
                let data = S3Fixture.sample(100 + i, seed: UInt64(i + 1))
                let handle = ObjectHandle(.pack, ID.sha256(of: data))
                try await storage.save(handle, data: data)
                names.insert(handle.name)
            }
            let listed = try await storage.list(.pack)
            #expect(Set(listed.map(\.handle.name)) == names)
            #expect(listed.count == 25)
            #expect(listed.allSatisfy { $0.modified != nil && $0.size >= 100 })
            let pages = proxy.requests.filter { $0.contains("list-type=2") }
            #expect(pages.count == 7, "25 keys in pages of 4")
            #expect(pages.dropFirst().allSatisfy { $0.contains("continuation-token=") })
        }
    }

    @Test func largeS3ObjectsGoUpInPartsAndComeBackWhole() async throws {
        try await S3Fixture.withProxy { server, proxy in
            let storage = try S3Fixture.storage(server, endpoint: proxy.endpoint, options: S3Fixture.smallOptions)
            let data = S3Fixture.sample(12 << 20, seed: 77)
            let handle = ObjectHandle(.pack, ID.sha256(of: data))
            try await storage.save(handle, data: data)
            let requests = proxy.requests
            #expect(requests.contains { $0.contains("POST") && $0.contains("uploads") })
            #expect(requests.filter { $0.contains("partNumber=") }.count == 3, "12 MiB in parts of 5 MiB")
            #expect(try await storage.stat(handle).size == 12 << 20)
            #expect(try await storage.load(handle) == data)
            #expect(try await storage.load(handle, range: (10 << 20)..<(10 << 20) + 100) == data[(10 << 20)..<(10 << 20) + 100])
            await #expect(throws: BunkerError.self) { try await storage.save(handle, data: data) }
            // Nothing of an upload that was refused is left behind.
            #expect(try await storage.list(.pack).count == 1)
        }
    }

    @Test func wrongS3CredentialsAreRefusedNamingTheVariables() async throws {
        try await withSeaweedFS { server in
            var environment = server.awsEnvironment
            environment["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
            let storage = try S3Fixture.storage(server, environment: environment)
            do {
                _ = try await storage.list(.snapshot)
                Issue.record("a wrong secret must be refused")
            } catch let error as BunkerError {
                #expect(error.code == .permissionDenied)
                #expect(error.message.contains("AWS_SECRET_ACCESS_KEY"))
                #expect(error.message.contains("AWS_PROFILE"))
            }
            let anonymous = try S3Fixture.storage(server, environment: ["HOME": "/nonexistent"])
            await #expect(throws: BunkerError.self) { _ = try await anonymous.list(.snapshot) }
        }
    }

    @Test func missingS3BucketSaysSo() async throws {
        try await withSeaweedFS { server in
            let storage = try S3Storage(
                location: S3Location(parsing: "s3://no-such-bucket/repo"), settings: S3Settings(endpoint: server.endpoint),
                environment: S3Environment(server.awsEnvironment))
            do {
                try await storage.save(ObjectHandle(.key, "k"), data: Data("x".utf8))
                Issue.record("a missing bucket must be reported")
            } catch let error as BunkerError {
                #expect(error.code == .repositoryNotFound)
                #expect(error.message.contains("no-such-bucket"))
            }
        }
    }

    /// A repository made, backed up into, reopened and checked through the `s3` scheme.
    @Test func repositoryRoundTripsThroughTheS3Scheme() async throws {
        try await withSeaweedFS { server in
            try await withTemporaryDirectory { dir in
                try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 1 << 20)
                let location = "s3://\(server.bucket)/scheme-test"
                let open = { try S3Backend.open(location, environment: S3Environment(server.awsEnvironment)) }
                let repository = try await TestRepository.create(storage: open())
                let result = try await TestRepository.backup(repository, [dir + "/src"])
                let reopened = try await Repository.open(storage: open(), password: TestRepository.password)
                let report = try await Checker(repository: reopened).check(readData: true)
                #expect(report.ok, "\(report)")
                let snapshot = try await reopened.loadSnapshot(result.snapshotID)
                let restored = try await Restorer(loader: reopened).restore(tree: snapshot.tree, to: dir + "/out")
                #expect(restored.failures.isEmpty)
                #expect(compareTrees(dir + "/src", dir + "/out/src") == [])
            }
        }
    }
}
