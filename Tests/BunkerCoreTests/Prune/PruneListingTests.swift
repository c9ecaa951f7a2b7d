import BunkerCore
import BunkerTesting
import Foundation
import Synchronization
import Testing

/// Prune decides from a listing and deletes on the storage's word; neither is trusted further
/// than it can be checked.
@Suite struct PruneListingTests {
    private static func keepLast(_ n: Int) -> RetentionPolicy {
        var policy = RetentionPolicy()
        policy.keepLast = n
        policy.minimumAge = RetentionDuration()
        return policy
    }

    /// Options under which the forgotten generations' data is all deleted or repacked.
    private static var thorough: PruneOptions {
        var options = PruneOptions()
        options.maxUnused = .percent(0)
        return options
    }

    /// A repository of three generations, two of them forgotten: prune has packs to delete.
    private static func repositoryWithGarbage(in dir: String) async throws -> (storage: any Storage, repository: Repository) {
        let local = try StorageLocation.storage(for: dir + "/repo", create: true)
        let repo = try await TestRepository.create(storage: local)
        _ = try await Generations.backUp(repo, clock: nil, in: dir, count: 3)
        _ = try await repo.forget(policy: keepLast(1))
        return (local, repo)
    }

    private static func expectVerifies(_ path: String) async throws {
        let check = try await Checker(repository: try await TestRepository.open(at: path)).check(readData: true)
        #expect(check.ok, "\(check.errors.map(\.message))")
    }

    /// A listing that lacks packs the index names (an eventually consistent store, a page lost)
    /// makes prune delete nothing at all, and say to run again.
    @Test func pruneDeletesNothingWhenTheListingLacksIndexedPacks() async throws {
        try await withTemporaryDirectory { dir in
            let (local, _) = try await Self.repositoryWithGarbage(in: dir)
            let packs = try await local.list(.pack).map(\.handle.name).sorted()
            let hidden = Set(packs.prefix(2))
            let before = TestRepository.packBytes(at: dir + "/repo")
            let blind = try await Repository.open(storage: InterceptingStorage(local, hiding: { $0.kind == .pack && hidden.contains($0.name) }), password: TestRepository.password)
            let error = await #expect(throws: BunkerError.self) { try await Pruner(repository: blind, options: Self.thorough).run() }
            #expect(error?.code == .storageIO, "\(String(describing: error))")
            #expect(error?.message.contains("listing of data/ lacks 2 packs") == true && error?.message.contains("Run prune again") == true, "\(String(describing: error))")
            #expect(TestRepository.packBytes(at: dir + "/repo") == before, "nothing was deleted")
            #expect(try await local.list(.pack).map(\.handle.name).sorted() == packs)
            try await Self.expectVerifies(dir + "/repo")

            // With a whole listing, the same prune deletes.
            let report = try await Pruner(repository: try await TestRepository.open(at: dir + "/repo"), options: Self.thorough).run()
            #expect(report.packsDeleted + report.packsRepacked > 0, "\(report)")
            #expect(TestRepository.packBytes(at: dir + "/repo") < before)
            try await Self.expectVerifies(dir + "/repo")
        }
    }

    /// An indexed pack that is neither listed nor found by name: the repository is damaged, and
    /// prune sends the user to verify instead of taking the index for the truth.
    @Test func pruneStopsOnAnIndexedPackThatIsGone() async throws {
        try await withTemporaryDirectory { dir in
            let (local, repo) = try await Self.repositoryWithGarbage(in: dir)
            // A pack of file data only: one holding directory listings would stop prune earlier,
            // when it reads the snapshots (a refusal too, but not the one under test).
            let dataOnly = Set(repo.index.blobsByPack().filter { $0.value.allSatisfy { $0.type == .data } }.keys)
            let victim = try #require(try await local.list(.pack).first { ID(hex: $0.handle.name).map(dataOnly.contains) ?? false })
            try await local.remove(victim.handle)
            let before = TestRepository.packBytes(at: dir + "/repo")
            let error = await #expect(throws: BunkerError.self) { try await Pruner(repository: repo, options: Self.thorough).run() }
            #expect(error?.code == .corruptObject, "\(String(describing: error))")
            #expect(error?.message.contains("neither listed nor found (data/\(victim.handle.name)") == true, "\(String(describing: error))")
            #expect(error?.message.contains("bunker verify") == true)
            #expect(TestRepository.packBytes(at: dir + "/repo") == before, "nothing was deleted")
        }
    }

    /// A storage that answers success to deletions and deletes nothing: prune reports the packs,
    /// counts none of their bytes as freed, and a later prune on an honest storage removes them.
    @Test func deletesTheStorageDidNotCarryOutAreReportedNotFreed() async throws {
        try await withTemporaryDirectory { dir in
            let (local, _) = try await Self.repositoryWithGarbage(in: dir)
            let liar = DeleteIgnoringStorage(local, ignoring: { $0.kind == .pack })
            let repo = try await Repository.open(storage: liar, password: TestRepository.password)
            let before = TestRepository.packBytes(at: dir + "/repo")
            let report = try await Pruner(repository: repo, options: Self.thorough).run()
            #expect(!liar.ignored.isEmpty)
            #expect(report.packsNotDeleted.sorted() == liar.ignored.map(\.name).sorted(), "\(report)")
            #expect(report.bytesNotFreed > 0 && report.bytesDeleted == 0, "\(report)")
            #expect(report.packsDeleted == 0 && report.unindexedPacksDeleted == 0)
            #expect(report.bytesFreed <= 0, "nothing was given back: \(report.bytesFreed)")
            #expect(TestRepository.packBytes(at: dir + "/repo") >= before)
            try await Self.expectVerifies(dir + "/repo")

            // The packs are left unindexed; an honest storage past the grace period removes them.
            var options = Self.thorough
            options.unindexedGrace = 0
            options.allowShortGrace = true
            let again = try await Pruner(repository: try await TestRepository.open(at: dir + "/repo"), options: options).run()
            #expect(again.unindexedPacksDeleted == report.packsNotDeleted.count && again.packsNotDeleted.isEmpty, "\(again)")
            #expect(TestRepository.packBytes(at: dir + "/repo") < before)
            try await Self.expectVerifies(dir + "/repo")
        }
    }

    /// An index file whose deletion is not carried out stops prune before any pack is deleted;
    /// the next prune takes it for superseded and finishes.
    @Test func anIndexFileThatStaysStopsPruneBeforeAnyPackIsDeleted() async throws {
        try await withTemporaryDirectory { dir in
            let (local, _) = try await Self.repositoryWithGarbage(in: dir)
            let liar = DeleteIgnoringStorage(local, ignoring: { $0.kind == .index })
            let repo = try await Repository.open(storage: liar, password: TestRepository.password)
            let packs = try await local.list(.pack).count
            let error = await #expect(throws: BunkerError.self) { try await Pruner(repository: repo, options: Self.thorough).run() }
            #expect(error?.code == .storageIO && error?.message.contains("before deleting any pack") == true, "\(String(describing: error))")
            #expect(try await local.list(.pack).count >= packs, "no pack was deleted")
            try await Self.expectVerifies(dir + "/repo")

            var options = Self.thorough
            options.unindexedGrace = 0
            options.allowShortGrace = true
            let report = try await Pruner(repository: try await TestRepository.open(at: dir + "/repo"), options: options).run()
            #expect(report.unindexedPacksDeleted > 0, "the packs the first prune dropped: \(report)")
            #expect(try await local.list(.index).count == 1)
            try await Self.expectVerifies(dir + "/repo")
        }
    }

    /// A backup's packs are written before the index that names them. A prune that runs in
    /// between (it took the backup's lock for stale, as another host may after a long pause)
    /// keeps them: they are younger than the grace period.
    @Test func packsOfARunningBackupSurviveAPruneBeforeTheyAreIndexed() async throws {
        try await withTemporaryDirectory { dir in
            let local = try StorageLocation.storage(for: dir + "/repo", create: true)
            _ = try await TestRepository.create(storage: local)
            let armed = Box(false)
            let kept = Box(-1)
            let storage = InterceptingStorage(local) { handle in
                guard handle.kind == .index, armed.take(false) else { return }
                let unindexed = try await local.list(.pack).count
                #expect(unindexed > 0, "the backup has written packs")
                // Through a plain wrapper: this prune leaves `.tmp-*` files alone, as one on
                // another host, which cannot reach them, would.
                let other = try await Repository.open(storage: InterceptingStorage(local), password: TestRepository.password)
                let report = try await Pruner(repository: other, options: Self.thorough).run(lockHeld: true)
                _ = kept.take(report.unindexedPacksKept)
                #expect(report.unindexedPacksDeleted == 0)
                #expect(try await local.list(.pack).count == unindexed, "no pack of the backup was deleted")
            }
            let repo = try await Repository.open(storage: storage, password: TestRepository.password)
            try FileManager.default.createDirectory(atPath: dir + "/big", withIntermediateDirectories: true)
            try TreeGenerator.writeRandomFile(dir + "/big/a.bin", size: 3 << 20, seed: 91)
            _ = armed.take(true)
            let result = try await repo.withLock(exclusive: false) { try await TestRepository.backup(repo, [dir + "/big"]) }
            #expect(kept.take(0) > 0, "the prune ran and kept the backup's packs")
            try await Self.expectVerifies(dir + "/repo")
            let restored = try await Restorer(loader: try await TestRepository.open(at: dir + "/repo")).restore(tree: result.snapshot.tree, to: dir + "/out")
            #expect(restored.failures.isEmpty, "\(restored.failures)")
            #expect(compareTrees(dir + "/big", dir + "/out/big", checkDirectoryTimes: false) == [])
        }
    }
}

/// A value a test shares with a storage hook.
private final class Box<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    /// Puts `new` in, returns what was there.
    func take(_ new: Value) -> Value { value.withLock { old in defer { old = new }; return old } }
}
