import BunkerCore
import BunkerTesting
import Foundation
import Testing

private func restore(_ repo: Repository, _ result: BackupResult, to target: String) async throws {
    let report = try await Restorer(loader: repo).restore(tree: result.snapshot.tree, to: target)
    #expect(report.failures.isEmpty, "\(report.failures)")
}

private func keepLast(_ n: Int) -> RetentionPolicy {
    var policy = RetentionPolicy()
    policy.keepLast = n
    policy.minimumAge = RetentionDuration()
    return policy
}

@Suite struct PrunerTests {
    @Test func pruneAfterForgetFreesSpaceAndKeptSnapshotsRestoreByteIdentically() async throws {
        try await withTemporaryDirectory { dir in
            let clock = TestClock(Date())
            let repo = try await TestRepository.create(at: dir + "/repo", now: clock.now)
            let generations = try await Generations.backUp(repo, clock: clock, in: dir)
            let before = TestRepository.packBytes(at: dir + "/repo")

            let forget = try await repo.forget(policy: keepLast(1))
            #expect(Set(forget.removed) == [generations[0].snapshotID, generations[1].snapshotID])
            var options = PruneOptions()
            options.maxUnused = .percent(0)
            let progress = OperationProgress()
            let report = try await Pruner(repository: repo, options: options, progress: progress).run()
            let after = TestRepository.packBytes(at: dir + "/repo")
            #expect(report.packsRepacked > 0, "generation 0's packs mix kept and forgotten data")
            #expect(progress.counters.filesDone == report.packsRepacked && progress.counters.totalsKnown, "progress counts packs repacked")

            // Two generations' own scans (1.5 MiB each, incompressible) are gone.
            #expect(before - after >= 3 << 20, "freed \(before - after) bytes")
            #expect(report.bytesFreed == Int64(before) - Int64(after), "the report measures what was freed")
            #expect(report.unusedBytesRemaining == 0)
            #expect(report.indexFilesReplaced >= 1)

            let fresh = try await TestRepository.open(at: dir + "/repo")
            let check = try await Checker(repository: fresh).check(readData: true)
            #expect(check.ok, "\(check.errors.map(\.message))")
            #expect(check.warnings.isEmpty, "\(check.warnings)")
            #expect(try await fresh.snapshots().map(\.id) == [generations[2].snapshotID])
            try await restore(fresh, generations[2], to: dir + "/out")
            #expect(compareTrees(dir + "/generation-2", dir + "/out/src", checkDirectoryTimes: false) == [])

            let again = try await Pruner(repository: fresh, options: options).run()
            #expect(again.packsDeleted == 0 && again.packsRepacked == 0 && again.unusedBytes == 0, "nothing is left to clean")
        }
    }

    @Test func heldSnapshotSurvivesForgetAndPruneUntilReleased() async throws {
        try await withTemporaryDirectory { dir in
            let clock = TestClock(Date())
            let repo = try await TestRepository.create(at: dir + "/repo", now: clock.now)
            let generations = try await Generations.backUp(repo, clock: clock, in: dir)
            let hold = try await repo.addHold(to: generations[0].snapshotID.short, reason: "litigation 2026-7")

            let forget = try await repo.forget(policy: keepLast(1))
            #expect(forget.removed == [generations[1].snapshotID])
            let held = try #require(forget.decisions.first { $0.id == generations[0].snapshotID })
            #expect(held.keep && held.reasons.first?.hasPrefix("hold: litigation 2026-7") == true)
            _ = try await Pruner(repository: repo).run()

            // A new process (the catalog gone) still sees the hold: it lives in the repository.
            let fresh = try await TestRepository.open(at: dir + "/repo", now: clock.now)
            #expect(try await fresh.holds().map(\.id) == [hold.id])
            try await restore(fresh, generations[0], to: dir + "/out")
            #expect(compareTrees(dir + "/generation-0", dir + "/out/src", checkDirectoryTimes: false) == [])

            _ = try await fresh.addHold(to: generations[2].snapshotID.short, reason: "second")
            #expect(try await fresh.removeHolds(generations[0].snapshotID.short).map(\.id) == [hold.id])
            let released = try await fresh.forget(policy: keepLast(1))
            #expect(released.removed == [generations[0].snapshotID])
            try await fresh.storage.remove(ObjectHandle(.snapshot, generations[2].snapshotID))
            let check = try await Checker(repository: fresh).check(readData: false)
            #expect(check.ok && check.warnings.contains { $0.contains("which no longer exists") }, "\(check.warnings)")
        }
    }

    @Test func minimumAgeProtectsYoungSnapshotsWhateverThePolicy() async throws {
        try await withTemporaryDirectory { dir in
            let clock = TestClock(Date())
            let repo = try await TestRepository.create(at: dir + "/repo", now: clock.now)
            let generations = try await Generations.backUp(repo, clock: clock, in: dir)
            var policy = keepLast(1)
            policy.minimumAge = .days(5)
            let report = try await repo.forget(policy: policy)
            #expect(report.removed.isEmpty)
            #expect(report.decisions.allSatisfy { $0.keep })
            clock.advance(by: 86400 * 3 - 3600)
            // The first generation is now 6 days old less an hour, the second 5 days less an hour.
            let later = try await repo.forget(policy: policy)
            #expect(later.removed == [generations[0].snapshotID])
        }
    }

    @Test func dryRunsChangeNothing() async throws {
        try await withTemporaryDirectory { dir in
            let clock = TestClock(Date())
            let repo = try await TestRepository.create(at: dir + "/repo", now: clock.now)
            _ = try await Generations.backUp(repo, clock: clock, in: dir)
            let forget = try await repo.forget(policy: keepLast(1), dryRun: true)
            #expect(forget.removeCount == 2 && forget.removed.isEmpty)
            #expect(try await repo.snapshots().count == 3)
            _ = try await repo.forget(policy: keepLast(1))
            let before = TestRepository.packBytes(at: dir + "/repo")
            let indexFiles = Set(try await repo.storage.list(.index).map(\.handle))
            let snapshots = Set(try await repo.storage.list(.snapshot).map(\.handle))
            let memory = (count: repo.index.count, packs: repo.index.packIDs, files: repo.index.indexFileIDs)
            var options = PruneOptions()
            options.dryRun = true
            options.maxUnused = .percent(0)
            let plan = try await Pruner(repository: repo, options: options).run()
            #expect(plan.bytesDeleted > 0 && plan.packsWritten == 0 && plan.packsRepacked > 0)
            #expect(TestRepository.packBytes(at: dir + "/repo") == before)
            #expect(Set(try await repo.storage.list(.index).map(\.handle)) == indexFiles)
            #expect(Set(try await repo.storage.list(.snapshot).map(\.handle)) == snapshots)
            #expect(repo.index.count == memory.count && repo.index.packIDs == memory.packs && repo.index.indexFileIDs == memory.files,
                    "the in-memory index is the one from before")
            #expect(try await repo.locks().isEmpty)
        }
    }

    @Test func pruneRefusesToRunWhenASnapshotIsDamaged() async throws {
        try await withTemporaryDirectory { dir in
            let clock = TestClock(Date())
            let repo = try await TestRepository.create(at: dir + "/repo", now: clock.now)
            let generations = try await Generations.backUp(repo, clock: clock, in: dir)
            let path = dir + "/repo/snapshots/" + generations[1].snapshotID.hex
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            bytes[40] ^= 1
            chmod(path, 0o600)
            try bytes.write(to: URL(fileURLWithPath: path))
            _ = try await repo.forget(policy: keepLast(1))
            let before = TestRepository.packBytes(at: dir + "/repo")
            let error = await #expect(throws: BunkerError.self) { try await Pruner(repository: repo).run() }
            #expect(error?.code == .corruptObject)
            #expect(error?.message.contains("bunker verify") == true)
            #expect(TestRepository.packBytes(at: dir + "/repo") == before, "nothing was deleted")
        }
    }

    @Test func pruneRefusesToRunWhenAPackInUseIsMissing() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let generations = try await Generations.backUp(repo, clock: nil, in: dir)
            _ = try await repo.forget(policy: keepLast(1))
            let tree = try await repo.loadTree(generations[2].snapshot.tree)
            let src = try #require(tree.node(named: "src")?.subtree)
            let scan = try #require(try await repo.loadTree(src).node(named: "scan.dcm"))
            let chunk = try #require(scan.content?.first)
            let pack = try #require(repo.index.lookup(chunk)).pack
            try await repo.storage.remove(ObjectHandle(.pack, pack))
            let before = TestRepository.packBytes(at: dir + "/repo")
            let error = await #expect(throws: BunkerError.self) { try await Pruner(repository: repo).run() }
            #expect(error?.message.contains("1 pack that the index names is neither listed nor found (data/\(pack.hex)") == true, "\(String(describing: error))")
            #expect(TestRepository.packBytes(at: dir + "/repo") == before, "nothing was deleted")
        }
    }

    @Test func unindexedPacksAreDeletedOnlyAfterTheGracePeriod() async throws {
        try await withTemporaryDirectory { dir in
            let clock = TestClock(Date())
            let repo = try await TestRepository.create(at: dir + "/repo", now: clock.now)
            let generations = try await Generations.backUp(repo, clock: clock, in: dir)
            // A backup whose index file and snapshot never made it (its writer died) leaves packs
            // that no index names.
            let indexBefore = Set(try await repo.storage.list(.index).map(\.handle))
            try FileManager.default.createDirectory(atPath: dir + "/stray", withIntermediateDirectories: true)
            try TreeGenerator.writeRandomFile(dir + "/stray/x.bin", size: 300 << 10, seed: 9)
            let result = try await TestRepository.backup(repo, [dir + "/stray"])
            try await repo.storage.remove(ObjectHandle(.snapshot, result.snapshotID))
            for info in try await repo.storage.list(.index) where !indexBefore.contains(info.handle) {
                try await repo.storage.remove(info.handle)
            }

            clock.set(Date())
            let soon = try await TestRepository.open(at: dir + "/repo", now: clock.now)
            let kept = try await Pruner(repository: soon).run()
            #expect(kept.unindexedPacksKept >= 1 && kept.unindexedPacksDeleted == 0, "a young unindexed pack may belong to a live writer")
            clock.advance(by: 2 * 3600)
            let late = try await Pruner(repository: soon).run()
            #expect(late.unindexedPacksDeleted == kept.unindexedPacksKept)
            let check = try await Checker(repository: try await TestRepository.open(at: dir + "/repo")).check(readData: true)
            #expect(check.ok && check.warnings.isEmpty, "\(check.errors.map(\.message)) \(check.warnings)")
            try await restore(soon, generations[2], to: dir + "/out")
            #expect(compareTrees(dir + "/generation-2", dir + "/out/src", checkDirectoryTimes: false) == [])
        }
    }

    /// A process that opened the repository (and read its index) before a prune replaced it must
    /// not deduplicate against packs the prune deleted.
    @Test func backupOpenedBeforeAPruneReadsTheNewIndexOnceLocked() async throws {
        try await withTemporaryDirectory { dir in
            let clock = TestClock(Date())
            let repo = try await TestRepository.create(at: dir + "/repo", now: clock.now)
            let generations = try await Generations.backUp(repo, clock: clock, in: dir)
            let early = try await TestRepository.open(at: dir + "/repo", now: clock.now)

            let pruner = try await TestRepository.open(at: dir + "/repo", now: clock.now)
            _ = try await pruner.forget(policy: keepLast(1))
            var options = PruneOptions()
            options.maxUnused = .percent(0)
            _ = try await Pruner(repository: pruner, options: options).run()

            // generation-0's scan is back: its chunks were pruned, and `early` still indexes them.
            try Generations.copyPreservingTimes(dir + "/generation-0", to: dir + "/again")
            let result = try await early.withLock(exclusive: false) { try await TestRepository.backup(early, [dir + "/again"]) }
            let check = try await Checker(repository: try await TestRepository.open(at: dir + "/repo")).check(readData: true)
            #expect(check.ok, "\(check.errors.map(\.message))")
            let fresh = try await TestRepository.open(at: dir + "/repo")
            try await restore(fresh, result, to: dir + "/out")
            #expect(compareTrees(dir + "/generation-0", dir + "/out/again", checkDirectoryTimes: false) == [])
            _ = generations
        }
    }
}

@Suite struct PrunePlanTests {
    /// Generations 0 and 1 forgotten: their own packs hold no used blob, and the packs shared
    /// with generation 2 hold some unused blobs. Every plan is a dry run on the same repository.
    @Test func maxUnusedAndMaxRepackSizeBoundTheRepacking() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            _ = try await Generations.backUp(repo, clock: nil, in: dir)
            var policy = RetentionPolicy()
            policy.keepLast = 1
            policy.minimumAge = RetentionDuration()
            _ = try await repo.forget(policy: policy)
            func plan(_ configure: (inout PruneOptions) -> Void) async throws -> PruneReport {
                var options = PruneOptions()
                options.dryRun = true
                configure(&options)
                return try await Pruner(repository: repo, options: options).run()
            }

            let unlimited = try await plan { $0.maxUnused = .unlimited }
            #expect(unlimited.packsDeleted > 0 && unlimited.packsRepacked == 0, "unlimited: only wholly unused packs go")
            #expect(unlimited.unusedBytesRemaining > 0)

            let strict = try await plan { $0.maxUnused = .percent(0) }
            #expect(strict.packsRepacked > 0 && strict.unusedBytesRemaining == 0)
            #expect(strict.packsDeleted == unlimited.packsDeleted)

            let bounded = try await plan { $0.maxUnused = .percent(0); $0.maxRepackBytes = 1 }
            #expect(bounded.packsRepacked == 0, "no pack fits in one byte of repacking")
            #expect(bounded.unusedBytesRemaining == unlimited.unusedBytesRemaining)

            let tolerant = try await plan { $0.maxUnused = .bytes(unlimited.unusedBytesRemaining) }
            #expect(tolerant.packsRepacked == 0, "the unused bytes left are within the limit")
            let almost = try await plan { $0.maxUnused = .bytes(unlimited.unusedBytesRemaining - 1) }
            #expect(almost.packsRepacked >= 1, "one byte over the limit repacks")
        }
    }

    @Test(arguments: [("5%", UnusedLimit.percent(5)), ("0%", .percent(0)), ("500M", .bytes(500 << 20)), ("2G", .bytes(2 << 30)), ("unlimited", .unlimited)])
    func unusedLimitsParseLikeRestics(_ text: String, _ expected: UnusedLimit) throws {
        #expect(try UnusedLimit(parsing: text) == expected)
    }

    @Test func aDamagedHoldStopsForgetRatherThanReleaseItsSnapshot() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let generations = try await Generations.backUp(repo, clock: nil, in: dir)
            let hold = try await repo.addHold(to: generations[0].snapshotID.hex, reason: "case 9")
            let path = dir + "/repo/holds/" + hold.id.hex
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            bytes[bytes.count - 1] ^= 1
            chmod(path, 0o600)
            try bytes.write(to: URL(fileURLWithPath: path))
            var policy = RetentionPolicy()
            policy.keepLast = 1
            policy.minimumAge = RetentionDuration()
            await #expect(throws: BunkerError.self) { try await repo.forget(policy: policy) }
            #expect(try await repo.snapshots().count == 3)
            let check = try await Checker(repository: repo).check(readData: false)
            #expect(check.errors.map(\.kind) == ["damaged_hold"], "verify names the hold that blocks forget")
        }
    }
}

@Suite struct YearsOfCleanupTests {
    /// Three years of fortnightly backups, each followed by the scheduled cleanup under the
    /// DermAI retention tiers (one-year compliance period): what stays is exactly what the policy keeps, the
    /// repository verifies, and the oldest survivor restores byte for byte.
    @Test func fortnightlyBackupsAndCleanupsOverThreeYearsKeepTheTiers() async throws {
        try await withTemporaryDirectory { dir in
            let clock = TestClock(TestClock.utc("2023-01-02 23:00"))
            let repo = try await TestRepository.create(at: dir + "/repo", now: clock.now)
            try FileManager.default.createDirectory(atPath: dir + "/src", withIntermediateDirectories: true)
            let policy = RetentionPolicy.standard(complianceDays: 365)
            var options = PruneOptions()
            options.maxUnused = .percent(0)
            options.unindexedGrace = 0
            options.allowShortGrace = true
            var generationOf: [ID: UInt64] = [:]
            var times: [(id: ID, snapshot: Snapshot)] = []
            for generation in UInt64(0)..<78 {
                try TreeGenerator.writeRandomFile(dir + "/src/day.bin", size: 20_000, seed: generation + 1)
                let result = try await TestRepository.backup(repo, [dir + "/src"])
                generationOf[result.snapshotID] = generation
                times.append((result.snapshotID, result.snapshot))
                clock.advance(by: 3600)
                _ = try await repo.forget(policy: policy)
                _ = try await Pruner(repository: repo, options: options).run()
                clock.advance(by: 14 * 86400 - 3600)
            }
            let remaining = try await repo.snapshots()
            let expected = policy.apply(to: times, holds: [], now: clock.now()).filter(\.keep).map(\.id)
            #expect(Set(remaining.map(\.id)) == Set(expected))
            #expect(remaining.count >= 14 && remaining.count <= 20, "about 1 daily, 2 weekly, 12 monthly and 2 yearly: \(remaining.count)")

            let check = try await Checker(repository: try await TestRepository.open(at: dir + "/repo")).check(readData: true)
            #expect(check.ok && check.warnings.isEmpty, "\(check.errors.map(\.message)) \(check.warnings)")
            let oldest = try #require(remaining.first)
            _ = try await Restorer(loader: repo).restore(tree: oldest.snapshot.tree, to: dir + "/out")
            var rng = SeededGenerator(seed: try #require(generationOf[oldest.id]) + 1)
            #expect(FileManager.default.contents(atPath: dir + "/out/src/day.bin") == rng.bytes(20_000))
        }
    }
}
