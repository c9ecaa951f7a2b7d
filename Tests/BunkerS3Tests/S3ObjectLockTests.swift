import BunkerCore
import BunkerS3
import BunkerTesting
import Foundation
import Testing

/// Object lock against a real SeaweedFS bucket created with object lock enabled (SeaweedFS 4.48
/// enforces COMPLIANCE), and through a proxy that strips the lock headers: a server that accepts
/// a retention and ignores it.
@Suite(.serialized) struct S3ObjectLockTests {
    static let lockedBucket = "bunker-locked"

    /// A storage under a new prefix of a lock-enabled bucket, created on first use.
    private func lockedStorage(_ server: SeaweedFS, endpoint: String? = nil, prefix: String = "repo-" + UUID().uuidString.lowercased(),
                               options: S3Storage.Options = .init()) async throws -> S3Storage {
        let storage = try S3Storage(
            location: S3Location(parsing: "s3://\(Self.lockedBucket)/\(prefix)"),
            settings: S3Settings(endpoint: endpoint ?? server.endpoint, region: "us-east-1"),
            environment: S3Environment(server.awsEnvironment), options: options)
        if endpoint == nil { _ = try? await storage.createBucket(objectLock: true) }
        return storage
    }

    @Test func lockedRepositoryWritesRetainedObjectsAndTheProbeFindsItEnforced() async throws {
        try await withSeaweedFS { server in
            try await withTemporaryDirectory { dir in
                let storage = try await lockedStorage(server)
                let probe = try await storage.probeImmutability(mode: .compliance)
                #expect(probe.enforced, "\(probe.detail)")

                try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 256 << 10)
                let settings = ObjectLockSettings(mode: .compliance, days: 2, enforced: probe.enforced)
                let repository = try await Repository.create(
                    storage: storage, password: TestRepository.password,
                    config: .new(chunker: TestRepository.smallChunks, packSize: 512 << 10, objectLock: settings))
                _ = try await TestRepository.backup(repository, [dir + "/src"])

                // Every pack carries the retention: HEAD shows the mode and the date.
                let packs = try await storage.list(.pack)
                #expect(!packs.isEmpty)
                for pack in packs {
                    let retention = try #require(try await storage.retention(of: pack.handle))
                    #expect(retention.mode == .compliance)
                    #expect(retention.until > Date().addingTimeInterval(86400))
                }
                // A lock file is not retained: it must go when its operation ends.
                #expect(try await storage.list(.lock).isEmpty)

                // The bucket refuses to delete a locked version, and Bunker never tries.
                let locked = ObjectHandle(.pack, packs[0].handle.name)
                await #expect(throws: BunkerError.self) { try await storage.removeAllVersions(of: locked) }
                let wrapped = try #require(repository.storage.capability(ObjectLockStorage.self))
                let refusal = await #expect(throws: BunkerError.self) { try await wrapped.remove(locked) }
                #expect(refusal?.code == .objectLocked)

                let reopened = try await Repository.open(storage: storage, password: TestRepository.password)
                #expect(reopened.config.objectLock == settings)
                #expect(try await reopened.stats().objectLock?.immutable == true)
                let check = try await Checker(repository: reopened).check(readData: true)
                #expect(check.ok, "\(check.errors)")
                #expect(check.objectLock?.enforced == true)
            }
        }
    }

    /// Snapshot A is written with a clock set back so that its lock ends in a few seconds;
    /// snapshot B shares A's pack. The first prune extends the pack's lock (B needs it); after
    /// A's lock ends, forget removes A, and prune drops the pack but cannot delete it: kept by
    /// the lock, not counted as freed, and the repository still verifies.
    @Test func forgetAndPruneLeaveLockedDataReportedAsKeptAndNeverFreed() async throws {
        try await withSeaweedFS { server in
            try await withTemporaryDirectory { dir in
                let storage = try await lockedStorage(server)
                let settings = ObjectLockSettings(mode: .compliance, days: 2, enforced: true)
                let lockEnds = Date().addingTimeInterval(40)
                let shortClock: @Sendable () -> Date = { Date().addingTimeInterval(lockEnds.timeIntervalSinceNow - 2 * 86400) }
                try FileManager.default.createDirectory(atPath: dir + "/src", withIntermediateDirectories: true)
                try TreeGenerator.writeRandomFile(dir + "/src/kept", size: 64 << 10, seed: 1)
                try TreeGenerator.writeRandomFile(dir + "/src/dropped", size: 64 << 10, seed: 2)

                let early = try await Repository.create(
                    storage: storage, password: TestRepository.password,
                    config: .new(chunker: TestRepository.smallChunks, packSize: 512 << 10, objectLock: settings), now: shortClock)
                _ = try await TestRepository.backup(early, [dir + "/src"])
                try FileManager.default.removeItem(atPath: dir + "/src/dropped")

                let repository = try await Repository.open(storage: storage, password: TestRepository.password)
                _ = try await TestRepository.backup(repository, [dir + "/src"])
                let first = try await Pruner(repository: repository).run()
                #expect(first.locksExtended > 0)

                try await Task.sleep(for: .seconds(max(0, lockEnds.timeIntervalSinceNow) + 3))
                var policy = RetentionPolicy()
                policy.keepLast = 1
                let forget = try await repository.forget(policy: policy)
                #expect(forget.removed.count == 1, "\(forget.keptByLock)")

                var options = PruneOptions()
                options.maxUnused = .percent(0)
                // A dry run says beforehand what the lock will keep.
                var dry = options
                dry.dryRun = true
                let planned = try await Pruner(repository: repository, options: dry).run()
                #expect(planned.objectsKeptByLock > 0 && planned.bytesKeptByLock > 0, "\(planned)")
                #expect(planned.bytesDeleted == 0 && planned.bytesFreed <= 0, "\(planned)")
                let report = try await Pruner(repository: repository, options: options).run()
                #expect(report.objectsKeptByLock == planned.objectsKeptByLock)
                #expect(report.objectsKeptByLock > 0)
                #expect(report.bytesKeptByLock > 0)
                #expect(report.keptByLockUntil.map { $0 > Date().addingTimeInterval(86400) } == true)
                // The kept pack's bytes are not freed: prune wrote the used part again.
                #expect(report.bytesFreed <= 0)
                #expect(report.bytesDeleted == 0)
                let check = try await Checker(repository: repository).check(readData: true)
                #expect(check.ok, "\(check.errors)")
            }
        }
    }

    /// A key file is retained like the data it unlocks: removing one, or changing a password,
    /// is refused before anything changes, saying until when and what to do instead.
    @Test func aLockedKeyIsNeverHalfRemoved() async throws {
        try await withSeaweedFS { server in
            let storage = try await lockedStorage(server)
            let repository = try await Repository.create(
                storage: storage, password: TestRepository.password,
                config: .new(chunker: TestRepository.smallChunks, objectLock: ObjectLockSettings(mode: .compliance, days: 1, enforced: true)))
            let added = try await repository.addKey(password: "second password", kdf: .testing)
            let removal = await #expect(throws: BunkerError.self) { try await repository.removeKey(added) }
            #expect(removal?.code == .objectLocked && removal?.message.contains("bunker key add") == true, "\(String(describing: removal))")
            let change = await #expect(throws: BunkerError.self) { try await repository.changePassword(to: "third password", kdf: .testing) }
            #expect(change?.code == .objectLocked)
            #expect(try await repository.listKeys().count == 2, "nothing was added or removed")
        }
    }

    /// Some S3-compatible servers take object-lock headers only beside a `Content-MD5`: a locked
    /// upload, single or each part of a multipart one, carries one even where the SHA-256
    /// checksum is used, and a plain upload does not (the proxy answers 503 to a pack upload that
    /// carries a `Content-MD5`, and counts it).
    @Test func aLockedUploadCarriesContentMD5BesideItsSHA256() async throws {
        try await S3Fixture.withProxy { server, proxy in
            _ = try await lockedStorage(server)
            let storage = try await lockedStorage(server, endpoint: proxy.endpoint, options: S3Fixture.smallOptions)
            #expect(try await storage.serverTraits().checksum == .sha256)

            try proxy.inject([.init(id: "md5", method: "PUT", path: "/data/", header: "content-md5", action: .status, status: 503, code: "SlowDown")])
            // Single uploads, and multipart ones (7 MiB, above the 6 MiB threshold: parts of 5 MiB).
            for (size, label) in [(4000, "single"), (7 << 20, "multipart")] {
                let earlier = proxy.hits("md5").count
                let plain = S3Fixture.sample(size, seed: 1)
                try await storage.save(ObjectHandle(.pack, ID.sha256(of: plain)), data: plain)
                #expect(proxy.hits("md5").count == earlier, "a plain \(label) upload carried a Content-MD5")

                let locked = S3Fixture.sample(size, seed: 2)
                let retention = ObjectRetention(mode: .compliance, until: Date().addingTimeInterval(86400))
                await #expect(throws: BunkerError.self) { try await storage.save(ObjectHandle(.pack, ID.sha256(of: locked)), data: locked, retention: retention) }
                #expect(proxy.hits("md5").count == earlier + 1, "\(label): \(proxy.requests)")
            }
        }
    }

    @Test func aBucketThatIgnoresRetentionIsNeverCalledImmutable() async throws {
        try await S3Fixture.withProxy { server, proxy in
            _ = try await lockedStorage(server)
            try proxy.inject([.stripRetention(signingFor: server)])
            let storage = try await lockedStorage(server, endpoint: proxy.endpoint)
            let probe = try await storage.probeImmutability(mode: .compliance)
            #expect(!probe.enforced)
            #expect(!proxy.hits("strip-retention").isEmpty)

            let repository = try await Repository.create(
                storage: storage, password: TestRepository.password,
                config: .new(chunker: TestRepository.smallChunks, objectLock: ObjectLockSettings(mode: .compliance, days: 2, enforced: probe.enforced)))
            #expect(try await repository.stats().objectLock?.immutable == false)
            let check = try await Checker(repository: repository).check(readData: false)
            #expect(!check.ok)
            #expect(check.errors.map(\.kind) == ["lock_not_enforced"])
        }
    }

    /// Opened read-only, a locked repository writes nothing: the object-lock calls, which
    /// the lock wrapper writes through, refuse as plain saves do, and verify does not probe.
    @Test func aLockedRepositoryOpenedReadOnlyWritesNothing() async throws {
        try await withSeaweedFS { server in
            try await withTemporaryDirectory { dir in
                let storage = try await lockedStorage(server)
                try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 256 << 10)
                let repository = try await Repository.create(
                    storage: storage, password: TestRepository.password,
                    config: .new(chunker: TestRepository.smallChunks, packSize: 512 << 10, objectLock: ObjectLockSettings(mode: .compliance, days: 1, enforced: true)))
                _ = try await TestRepository.backup(repository, [dir + "/src"])
                let before = try await storage.list(.key).count

                let readOnly = try await Repository.open(storage: ReadOnlyStorage(storage), password: TestRepository.password)
                #expect(readOnly.isReadOnly && readOnly.storage.capability(ObjectLockStorage.self) != nil)
                let write = await #expect(throws: BunkerError.self) {
                    try await readOnly.storage.save(ObjectHandle(.key, String(repeating: "ab", count: 32)), data: Data("key".utf8))
                }
                #expect(write?.code == .permissionDenied && write?.message.contains("read-only") == true, "\(String(describing: write))")
                let extend = await #expect(throws: BunkerError.self) {
                    try await readOnly.storage.retention?.extendRetention(of: ObjectHandle(.key, "x"), to: ObjectRetention(mode: .compliance, until: Date()))
                }
                #expect(extend?.code == .permissionDenied)
                #expect(try await storage.list(.key).count == before)

                let check = try await Checker(repository: readOnly).check(readData: true)
                #expect(check.ok, "\(check.errors)")
                #expect(check.objectLock == nil)
                #expect(check.warnings.contains { $0.contains("not probed") }, "\(check.warnings)")
            }
        }
    }

    @Test func objectLockOnALocalDirectoryIsRefused() async throws {
        try await withTemporaryDirectory { dir in
            let storage = LocalStorage(path: dir + "/repo")
            let error = await #expect(throws: BunkerError.self) {
                _ = try await Repository.create(storage: storage, password: TestRepository.password,
                                                config: .new(objectLock: ObjectLockSettings(mode: .compliance, days: 7)))
            }
            #expect(error?.message.contains("s3://") == true)
        }
    }
}
