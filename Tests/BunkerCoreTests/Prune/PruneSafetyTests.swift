import BunkerCore
import BunkerTesting
import Foundation
import Synchronization
import Testing

/// A value tests share with the hooks of a wrapped storage.
private final class Shared<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    func get() -> Value { value.withLock { $0 } }
    func set(_ new: Value) { value.withLock { $0 = new } }
    func update<R: Sendable>(_ body: (inout Value) -> R) -> R { value.withLock { body(&$0) } }
}

private func keepLast(_ n: Int) -> RetentionPolicy {
    var policy = RetentionPolicy()
    policy.keepLast = n
    policy.minimumAge = RetentionDuration()
    return policy
}

private func verifyAndRestore(_ path: String, _ result: BackupResult, item: String, original: String, to target: String) async throws {
    let fresh = try await TestRepository.open(at: path)
    let check = try await Checker(repository: fresh).check(readData: true)
    #expect(check.ok, "\(check.errors.map(\.message))")
    let report = try await Restorer(loader: fresh).restore(tree: result.snapshot.tree, to: target)
    #expect(report.failures.isEmpty, "\(report.failures)")
    #expect(compareTrees(original, target + "/" + item, checkDirectoryTimes: false) == [])
}

/// Faults that made prune (or a backup beside it) lose data, each injected on purpose.
@Suite struct PruneSafetyTests {
    /// A dry run takes only a shared lock, so in the server it runs beside backups of the same
    /// process whose packs are not indexed yet: it must not touch the in-memory index.
    @Test func dryRunBesideABackupOfTheSameProcessLosesNoneOfItsPacks() async throws {
        try await withTemporaryDirectory { dir in
            let local = try StorageLocation.storage(for: dir + "/repo", create: true)
            _ = try await TestRepository.create(storage: local)
            let repository = Shared<Repository?>(nil)
            let packsSaved = Shared(-1)
            let dryRuns = Shared(0)
            let storage = InterceptingStorage(local) { handle in
                guard handle.kind == .pack, packsSaved.update({ (n: inout Int) -> Int in if n >= 0 { n += 1 }; return n }) == 3,
                      let repo = repository.get() else { return }
                // Two packs of the backup are written and not yet indexed.
                #expect(repo.index.count > 0)
                var options = PruneOptions()
                options.dryRun = true
                _ = try await Pruner(repository: repo, options: options).run()
                dryRuns.update { $0 += 1 }
            }
            let repo = try await Repository.open(storage: storage, password: TestRepository.password)
            repository.set(repo)
            _ = try await Generations.backUp(repo, clock: nil, in: dir, count: 1)

            try FileManager.default.createDirectory(atPath: dir + "/big", withIntermediateDirectories: true)
            try TreeGenerator.writeRandomFile(dir + "/big/a.bin", size: 3 << 20, seed: 77)
            packsSaved.set(0)
            let result = try await repo.withLock(exclusive: false) { try await TestRepository.backup(repo, [dir + "/big"]) }
            #expect(dryRuns.get() == 1, "the dry run ran in the middle of the backup")
            try await verifyAndRestore(dir + "/repo", result, item: "big", original: dir + "/big", to: dir + "/out")
            // The same process restores too.
            let again = try await Restorer(loader: repo).restore(tree: result.snapshot.tree, to: dir + "/out-same")
            #expect(again.failures.isEmpty, "\(again.failures)")
        }
    }

    /// A long-lived process whose backup failed after writing packs, then another process's prune
    /// (past the grace period), then a backup of the same data in the first process: the new
    /// snapshot must not point at the packs the prune deleted.
    @Test(arguments: [true, false])
    func backupAfterAFailedBackupAndAnotherProcesssPruneRestores(indexWritableAfterFailure: Bool) async throws {
        try await withTemporaryDirectory { dir in
            let clock = TestClock(Date())
            let local = try StorageLocation.storage(for: dir + "/repo", create: true)
            _ = try await TestRepository.create(storage: local)
            // The disk fills after two packs (a hook, not FaultyStorage, so that the index file that
            // would name them can be made to fit or not).
            let packsLeft = Shared<Int?>(nil)
            let storage = InterceptingStorage(local) { handle in
                guard let left = packsLeft.get() else { return }
                if handle.kind == .index && indexWritableAfterFailure { return }
                if handle.kind == .pack || handle.kind == .index, packsLeft.update({ (n: inout Int?) -> Int in n = (n ?? 0) - 1; return n! }) < 0 {
                    throw BunkerError(.storageFull, "The repository's storage is full while writing \(handle) (injected, \(left)).")
                }
            }
            let server = try await Repository.open(storage: storage, password: TestRepository.password, now: clock.now)
            _ = try await Generations.backUp(server, clock: nil, in: dir, count: 1)

            try FileManager.default.createDirectory(atPath: dir + "/big", withIntermediateDirectories: true)
            try TreeGenerator.writeRandomFile(dir + "/big/a.bin", size: 3 << 20, seed: 78)
            packsLeft.set(2)
            await #expect(throws: BunkerError.self) {
                try await server.withLock(exclusive: false) { try await TestRepository.backup(server, [dir + "/big"]) }
            }
            packsLeft.set(nil)

            // Another process prunes once the failed backup's packs are past the grace period.
            clock.advance(by: 2 * 3600)
            let other = try await TestRepository.open(at: dir + "/repo", now: clock.now)
            let pruned = try await Pruner(repository: other).run()
            #expect(pruned.packsDeleted + pruned.unindexedPacksDeleted >= 2, "the failed backup's packs are gone: \(pruned)")

            let result = try await server.withLock(exclusive: false) { try await TestRepository.backup(server, [dir + "/big"]) }
            try await verifyAndRestore(dir + "/repo", result, item: "big", original: dir + "/big", to: dir + "/out")
        }
    }

    /// Two backups of the same process store the same new data; the one that reserved a chunk
    /// first fails before writing it. The other must not have counted on it.
    @Test func backupBesideAFailingBackupOfTheSameDataStoresWhatTheOtherNeverWrote() async throws {
        try await withTemporaryDirectory { dir in
            let local = try StorageLocation.storage(for: dir + "/repo", create: true)
            _ = try await TestRepository.create(storage: local)
            try FileManager.default.createDirectory(atPath: dir + "/big", withIntermediateDirectories: true)
            try TreeGenerator.writeRandomFile(dir + "/big/a.bin", size: 3 << 20, seed: 79)
            let repository = Shared<Repository?>(nil)
            let packsSaved = Shared(0)
            let other = Shared<BackupResult?>(nil)
            let storage = InterceptingStorage(local) { handle in
                guard handle.kind == .pack, packsSaved.update({ (n: inout Int) -> Int in n += 1; return n }) == 2,
                      let repo = repository.get() else { return }
                // The second pack of the first backup is on its way: its chunks are reserved and
                // not stored. A second backup of the same file runs to its end, then the first fails.
                other.set(try await TestRepository.backup(repo, [dir + "/big"]))
                throw BunkerError(.storageFull, "The repository's storage is full while writing \(handle) (injected).")
            }
            let repo = try await Repository.open(storage: storage, password: TestRepository.password)
            repository.set(repo)
            await #expect(throws: BunkerError.self) { try await TestRepository.backup(repo, [dir + "/big"]) }
            let result = try #require(other.get())
            try await verifyAndRestore(dir + "/repo", result, item: "big", original: dir + "/big", to: dir + "/out")
        }
    }

    /// With `snapshots/` gone, a listing that read as empty made prune delete every pack.
    @Test func pruneFailsWhenTheSnapshotsDirectoryIsMissing() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            _ = try await Generations.backUp(repo, clock: nil, in: dir, count: 2)
            let before = TestRepository.packBytes(at: dir + "/repo")
            try FileManager.default.moveItem(atPath: dir + "/repo/snapshots", toPath: dir + "/snapshots-aside")
            var options = PruneOptions()
            options.unindexedGrace = 0
            options.allowShortGrace = true
            let error = await #expect(throws: BunkerError.self) { try await Pruner(repository: repo, options: options).run() }
            #expect(error?.code == .storageIO && error?.message.contains("/repo/snapshots is missing") == true, "\(String(describing: error))")
            #expect(TestRepository.packBytes(at: dir + "/repo") == before, "nothing was deleted")

            // Only holds/ may be missing (repositories made before holds existed).
            try FileManager.default.moveItem(atPath: dir + "/snapshots-aside", toPath: dir + "/repo/snapshots")
            try FileManager.default.removeItem(atPath: dir + "/repo/holds")
            #expect(try await repo.storage.list(.hold).isEmpty)
            try FileManager.default.removeItem(atPath: dir + "/repo/locks")
            await #expect(throws: BunkerError.self) { try await repo.storage.list(.lock) }
        }
    }

    /// An entry the listing cannot `stat` (here a symlink loop) fails the listing instead of
    /// being left out silently.
    @Test func listingFailsOnAnEntryItCannotStat() async throws {
        try await withTemporaryDirectory { dir in
            let storage = LocalStorage(path: dir + "/repo")
            try storage.create()
            let name = String(repeating: "ab", count: 32)
            #expect(symlink(dir + "/repo/snapshots/" + name, dir + "/repo/snapshots/" + name) == 0)
            let error = await #expect(throws: BunkerError.self) { try await storage.list(.snapshot) }
            #expect(error?.message.contains(name) == true, "\(String(describing: error))")
        }
    }

    /// A store whose listing misses every snapshot: prune refuses unless told the repository is
    /// meant to be empty.
    @Test func pruneRefusesToEmptyARepositoryWhoseSnapshotsItCannotSee() async throws {
        try await withTemporaryDirectory { dir in
            let local = try StorageLocation.storage(for: dir + "/repo", create: true)
            let repo = try await TestRepository.create(storage: local)
            _ = try await Generations.backUp(repo, clock: nil, in: dir, count: 2)
            let before = TestRepository.packBytes(at: dir + "/repo")
            let blind = try await Repository.open(storage: InterceptingStorage(local, hiding: { $0.kind == .snapshot }), password: TestRepository.password)
            let error = await #expect(throws: BunkerError.self) { try await Pruner(repository: blind).run() }
            #expect(error?.code == .integrity && error?.message.contains("--allow-empty") == true, "\(String(describing: error))")
            var dry = PruneOptions()
            dry.dryRun = true
            await #expect(throws: BunkerError.self) { try await Pruner(repository: blind, options: dry).run() }
            #expect(TestRepository.packBytes(at: dir + "/repo") == before, "nothing was deleted")

            // Told so, prune empties a repository whose snapshots were all removed on purpose.
            for info in try await local.list(.snapshot) { try await local.remove(info.handle) }
            var empty = PruneOptions()
            empty.allowEmpty = true
            let report = try await Pruner(repository: repo, options: empty).run()
            #expect(report.packsDeleted > 0 && TestRepository.packBytes(at: dir + "/repo") == 0)
        }
    }

    @Test func aGraceShorterThanAnHourNeedsTheUnsafeFlag() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            _ = try await Generations.backUp(repo, clock: nil, in: dir, count: 1)
            var options = PruneOptions()
            options.unindexedGrace = 0
            let error = await #expect(throws: BunkerError.self) { try await Pruner(repository: repo, options: options).run() }
            #expect(error?.code == .invalidArgument && error?.message.contains("--unsafe-short-grace") == true, "\(String(describing: error))")
            options.unindexedGrace = 3599
            await #expect(throws: BunkerError.self) { try await Pruner(repository: repo, options: options).run() }
            options.allowShortGrace = true
            _ = try await Pruner(repository: repo, options: options).run()
            options.allowShortGrace = false
            options.unindexedGrace = 3600
            _ = try await Pruner(repository: repo, options: options).run()
        }
    }

    /// A file whose content is byte for byte a directory listing of the same snapshot has that
    /// tree's id; prune must still walk the tree, or the files under it look unused.
    @Test func aFileWithTheBytesOfATreeDoesNotHideThatTreesData() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            try FileManager.default.createDirectory(atPath: dir + "/src/sub", withIntermediateDirectories: true)
            try TreeGenerator.writeRandomFile(dir + "/src/sub/only-here.bin", size: 900 << 10, seed: 5)
            try TreeGenerator.writeRandomFile(dir + "/src/other.bin", size: 900 << 10, seed: 6)
            let first = try await TestRepository.backup(repo, [dir + "/src"])
            let src = try #require(try await repo.loadTree(first.snapshot.tree).node(named: "src")?.subtree)
            let sub = try #require(try await repo.loadTree(src).node(named: "sub")?.subtree)
            // "a-copy" sorts before "sub", so its content is met first in the walk.
            try await repo.loadBlob(sub).write(to: URL(fileURLWithPath: dir + "/src/a-copy"))
            let second = try await TestRepository.backup(repo, [dir + "/src"])
            let srcAgain = try #require(try await repo.loadTree(second.snapshot.tree).node(named: "src")?.subtree)
            let tree = try await repo.loadTree(srcAgain)
            #expect(tree.node(named: "sub")?.subtree == sub && tree.node(named: "a-copy")?.content == [sub],
                    "the copy and the tree share one id")

            _ = try await repo.forget(policy: keepLast(1))
            var options = PruneOptions()
            options.maxUnused = .percent(0)
            _ = try await Pruner(repository: repo, options: options).run()
            try await verifyAndRestore(dir + "/repo", second, item: "src", original: dir + "/src", to: dir + "/out")
        }
    }
}
