import BunkerCore
import BunkerTesting
import Foundation
import Synchronization
import Testing

/// A backup into an object store uploads several packs at once (``Packer``'s `parallelWrites`),
/// and a failed upload still fails the backup cleanly.
@Suite struct PackUploadTests {
    /// Counts the pack saves running at once; each takes a little while, as an upload does.
    final class SlowPackStorage: StorageWrapper {
        let base: any Storage
        private let counts = Mutex((running: 0, most: 0, packs: 0))

        init(_ base: any Storage) {
            self.base = base
        }

        var mostAtOnce: Int { counts.withLock { $0.most } }
        var packs: Int { counts.withLock { $0.packs } }

        func save(_ handle: ObjectHandle, data: Data) async throws {
            guard handle.kind == .pack else { return try await base.save(handle, data: data) }
            counts.withLock {
                $0.running += 1
                $0.packs += 1
                $0.most = max($0.most, $0.running)
            }
            defer { counts.withLock { $0.running -= 1 } }
            try await Task.sleep(for: .milliseconds(40))
            try await base.save(handle, data: data)
        }
    }

    /// The sample tree at `dir/src` (a 4 MiB file fills several 512 KiB packs) and an empty
    /// repository at `dir/repo`; returns the repository's local storage.
    static func sampleTreeAndRepository(in dir: String) async throws -> any Storage {
        try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 4 << 20)
        let local = try StorageLocation.storage(for: dir + "/repo", create: true)
        _ = try await TestRepository.create(storage: local)
        return local
    }

    @Test func anObjectStoreGetsSeveralPacksAtOnceAndTheBackupRestoresWhole() async throws {
        try await withTemporaryDirectory { dir in
            let local = try await Self.sampleTreeAndRepository(in: dir)
            let slow = SlowPackStorage(local)
            // The concurrency limit is what marks an object store (8 requests: 4 packs at once).
            let repository = try await Repository.open(storage: ConcurrencyLimitedStorage(slow, limit: 8), password: TestRepository.password)
            let result = try await TestRepository.backup(repository, [dir + "/src"])

            #expect(slow.packs >= 8, "the sample tree fills several packs of 512 KiB")
            #expect(slow.mostAtOnce > 1, "packs were uploaded one at a time")
            #expect(slow.mostAtOnce <= 4, "more packs in flight than half the request limit")

            let reopened = try await TestRepository.open(at: dir + "/repo")
            let report = try await Checker(repository: reopened).check(readData: true)
            #expect(report.ok, "\(report.errors.map(\.message))")
            _ = try await Restorer(loader: reopened).restore(tree: result.snapshot.tree, to: dir + "/out")
            #expect(compareTrees(dir + "/src", dir + "/out/src") == [])
        }
    }

    @Test func aLocalDirectoryGetsOnePackAtATime() async throws {
        try await withTemporaryDirectory { dir in
            let local = try await Self.sampleTreeAndRepository(in: dir)
            let slow = SlowPackStorage(local)
            let repository = try await Repository.open(storage: slow, password: TestRepository.password)
            try await TestRepository.backup(repository, [dir + "/src"])
            #expect(slow.packs >= 8)
            #expect(slow.mostAtOnce == 1)
        }
    }

    /// The disk of an object store fills while packs are in flight: the backup fails with the
    /// upload's error, writes no snapshot, and what it did upload is indexed or left for prune.
    @Test(arguments: [300_000, 1_500_000, 4_000_000])
    func aFailedUploadAmongSeveralFailsTheBackupAndLosesNothing(spaceLeft: Int) async throws {
        try await withTemporaryDirectory { dir in
            let local = try await Self.sampleTreeAndRepository(in: dir)
            let healthy = try await TestRepository.open(at: dir + "/repo")
            let first = try await TestRepository.backup(healthy, [dir + "/src/docs"])

            let full = try await Repository.open(
                storage: ConcurrencyLimitedStorage(FaultyStorage(SlowPackStorage(local), spaceLeft: spaceLeft), limit: 8),
                password: TestRepository.password)
            await #expect {
                try await TestRepository.backup(full, [dir + "/src"])
            } throws: { error in
                (error as? BunkerError)?.code == .storageFull
            }

            let after = try await TestRepository.open(at: dir + "/repo")
            #expect(try await after.snapshots().map(\.id) == [first.snapshotID])
            let report = try await Checker(repository: after).check(readData: true)
            #expect(report.ok, "\(report.errors.map(\.message))")
            // Every pack an index names is on disk whole (checked above); the next backup,
            // with space again, completes and restores.
            let second = try await TestRepository.backup(after, [dir + "/src"])
            _ = try await Restorer(loader: after).restore(tree: second.snapshot.tree, to: dir + "/out")
            #expect(compareTrees(dir + "/src", dir + "/out/src") == [])
        }
    }
}
