import BunkerCore
import BunkerTesting
import Foundation
import Testing

private func keepLast(_ n: Int) -> RetentionPolicy {
    var policy = RetentionPolicy()
    policy.keepLast = n
    policy.minimumAge = RetentionDuration()
    return policy
}

/// A prune killed with SIGKILL at the named moment must leave a repository that verifies, from
/// which the kept snapshot restores byte-identically, and on which the next prune completes.
@Suite(.serialized) struct PruneCrashTests {
    static let killPoints = [
        "storage-before-rename:2",       // a new pack half-written (the lock was the first save)
        "prune-after-pack:1",            // new packs, no new index yet
        "prune-after-index",             // new index written, old ones not yet deleted
        "prune-after-index-delete:1",    // some old index files deleted
        "prune-after-pack-delete:1",     // some dropped packs deleted
    ]

    @Test(arguments: killPoints)
    func pruneKilledWithSIGKILLLosesNothingAndTheNextPruneCompletes(at point: String) async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let generations = try await Generations.backUp(repo, clock: nil, in: dir)
            let kept = generations[2]
            _ = try await repo.forget(policy: keepLast(1))
            let e = ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password]

            let killed = try BunkerProcess.run(["prune", "--max-unused", "0%"], environment: e.merging(["BUNKER_FAULT_KILL": point]) { $1 })
            #expect(killed.killed && killed.status == SIGKILL, "the prune was killed at \(point): \(killed.stdout) \(killed.stderr)")

            let verify = try BunkerProcess.run(["verify", "--read-data", "--json"], environment: e)
            #expect(verify.status == 0, "verify after a prune killed at \(point): \(verify.stdout) \(verify.stderr)")
            let restore = try BunkerProcess.run(["restore", kept.snapshotID.hex, "--target", dir + "/out"], environment: e)
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(compareTrees(dir + "/generation-2", dir + "/out/src", checkDirectoryTimes: false) == [])

            let next = try BunkerProcess.run(["prune", "--max-unused", "0%", "--json"], environment: e)
            #expect(next.status == 0, "the next prune completes: \(next.stderr)")
            let again = try BunkerProcess.run(["verify", "--read-data", "--json"], environment: e)
            #expect(again.status == 0, "\(again.stdout)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/out2"))
            let restored = try BunkerProcess.run(["restore", kept.snapshotID.hex, "--target", dir + "/out2"], environment: e)
            #expect(restored.status == 0, "\(restored.stderr)")
            #expect(compareTrees(dir + "/generation-2", dir + "/out2/src", checkDirectoryTimes: false) == [])

            // Once the killed prune's own packs are past the grace period, a prune leaves nothing
            // unused, unindexed or temporary behind.
            let later = try await TestRepository.open(at: dir + "/repo", now: { Date() + 7200 })
            var options = PruneOptions()
            options.maxUnused = .percent(0)
            _ = try await Pruner(repository: later, options: options).run()
            let check = try await Checker(repository: try await TestRepository.open(at: dir + "/repo")).check(readData: true)
            #expect(check.ok && check.warnings.isEmpty, "\(check.errors.map(\.message)) \(check.warnings)")
            let plan = try await Pruner(repository: later, options: { var o = options; o.dryRun = true; return o }()).run()
            #expect(plan.unusedBytes == 0 && plan.unindexedPacksKept == 0, "clean: \(plan)")
            let leftovers = (FileManager.default.enumerator(atPath: dir + "/repo")?.allObjects as? [String] ?? []).filter { $0.contains(".tmp-") }
            #expect(leftovers == [])
            #expect(try await later.locks().isEmpty)
        }
    }
}

/// A cleanup killed between two snapshot deletions leaves whole snapshots; the next one finishes.
@Suite(.serialized) struct CleanupCrashTests {
    @Test func cleanupKilledWhileForgettingLeavesWholeSnapshotsAndTheNextCleanupFinishes() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let generations = try await Generations.backUp(repo, clock: nil, in: dir)
            let e = ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password, "BUNKER_DATA_DIR": dir + "/.bunker"]
            let arguments = ["cleanup", "--keep-last", "1", "--min-age", "0", "--max-unused", "0%"]

            let killed = try BunkerProcess.run(arguments, environment: e.merging(["BUNKER_FAULT_KILL": "forget-after-remove:1"]) { $1 })
            #expect(killed.killed && killed.status == SIGKILL, "\(killed.stderr)")
            let left = try await TestRepository.open(at: dir + "/repo").snapshots().map(\.id)
            #expect(left.count == 2 && left.contains(generations[2].snapshotID), "one snapshot removed, the kept one still there")
            #expect(try BunkerProcess.run(["verify", "--read-data"], environment: e).status == 0)

            let next = try BunkerProcess.run(arguments, environment: e)
            #expect(next.status == 0, "\(next.stderr)")
            #expect(try await TestRepository.open(at: dir + "/repo").snapshots().map(\.id) == [generations[2].snapshotID])
            let restore = try BunkerProcess.run(["restore", generations[2].snapshotID.hex, "--target", dir + "/out"], environment: e)
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(compareTrees(dir + "/generation-2", dir + "/out/src", checkDirectoryTimes: false) == [])
        }
    }
}

/// Backup and prune at the same time: one of them is refused with "repository is busy" (exit 6)
/// or both succeed one after the other; nothing is lost either way.
@Suite(.serialized) struct PruneConcurrencyTests {
    @Test func backupWhilePruneHoldsTheLockFailsClearlyAndChangesNothing() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            _ = try await Generations.backUp(repo, clock: nil, in: dir, count: 1)
            let e = ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password]
            let outcome = try await repo.withLock(exclusive: true) {
                try BunkerProcess.run(["backup", dir + "/src"], environment: e)
            }
            #expect(outcome.status == 6, "\(outcome.stderr)")
            #expect(outcome.stderr.contains("repository is busy"))
            #expect(try await repo.snapshots().count == 1)

            let prune = try await repo.withLock(exclusive: false) {
                try BunkerProcess.run(["prune", "--json"], environment: e)
            }
            #expect(prune.status == 6, "a prune waits for no backup: it fails clearly")
            #expect(prune.stdout.contains("\"error\" : \"repository_locked\""), "\(prune.stdout)")
        }
    }

    @Test func backupWithRetryLockWaitsForThePruneToFinish() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            _ = try await Generations.backUp(repo, clock: nil, in: dir, count: 1)
            let e = ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password]
            let holder = Task { try await repo.withLock(exclusive: true) { try await Task.sleep(for: .seconds(2)) } }
            while try await repo.locks().isEmpty { try await Task.sleep(for: .milliseconds(20)) }
            let started = ContinuousClock.now
            let outcome = try await Task.detached { try BunkerProcess.run(["backup", dir + "/src", "--retry-lock", "60s"], environment: e) }.value
            try await holder.value
            #expect(outcome.status == 0, "\(outcome.stderr)")
            #expect(ContinuousClock.now - started > .seconds(1), "the backup waited for the exclusive lock")
            #expect(try await repo.snapshots().count == 2)

            let impatient = try await repo.withLock(exclusive: true) {
                try BunkerProcess.run(["backup", dir + "/src", "--retry-lock", "1s"], environment: e)
            }
            #expect(impatient.status == 6 && impatient.stderr.contains("Waited 1 s"), "\(impatient.stderr)")
        }
    }

    /// Rounds of a backup and a prune started at the same moment, until both kinds have really
    /// run at least once (not merely been told "busy"); every snapshot written must then restore
    /// the very bytes of its round.
    @Test func backupsAndPrunesStartedTogetherLoseNothing() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let generations = try await Generations.backUp(repo, clock: nil, in: dir)
            _ = try await repo.forget(policy: keepLast(1))
            let e = ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password]
            var written: [(id: String, round: Int)] = []
            var backupsRan = 0
            var prunesRan = 0
            var round = 0
            while round < 3 || ((backupsRan == 0 || prunesRan == 0) && round < 12) {
                try TreeGenerator.writeRandomFile(dir + "/src/round.bin", size: 400 << 10, seed: UInt64(round + 50))
                try Generations.copyPreservingTimes(dir + "/src", to: dir + "/round-\(round)")
                // Started together; in odd rounds the prune gets a head start of a few milliseconds,
                // so that each kind wins the race now and then whatever their start-up costs.
                let pruneFirst = round % 2 == 1
                async let backup = Task.detached {
                    if pruneFirst { try await Task.sleep(for: .milliseconds(60)) }
                    return try BunkerProcess.run(["backup", dir + "/src", "--json"], environment: e)
                }.value
                async let prune = Task.detached { try BunkerProcess.run(["prune", "--max-unused", "0%"], environment: e) }.value
                for outcome in [try await backup, try await prune] {
                    // (--json prints the error on standard output.)
                    #expect(outcome.status == 0 || (outcome.status == 6 && (outcome.stderr + outcome.stdout).contains("repository is busy")),
                            "either it ran or it was told the repository is busy: \(outcome.status) \(outcome.stdout) \(outcome.stderr)")
                }
                let b = try await backup
                if b.status == 0 {
                    backupsRan += 1
                    let json = try #require(try JSONSerialization.jsonObject(with: Data(b.stdout.utf8)) as? [String: Any])
                    written.append((try #require(json["snapshot_id"] as? String), round))
                }
                if try await prune.status == 0 { prunesRan += 1 }
                round += 1
            }
            #expect(backupsRan > 0 && prunesRan > 0, "both ran at least once in \(round) rounds: \(backupsRan) backups, \(prunesRan) prunes")

            let verify = try BunkerProcess.run(["verify", "--read-data"], environment: e)
            #expect(verify.status == 0, "\(verify.stdout)")
            let fresh = try await TestRepository.open(at: dir + "/repo")
            let ids = try await fresh.snapshots().map(\.id.hex)
            #expect(Set(written.map(\.id) + [generations[2].snapshotID.hex]).isSubset(of: Set(ids)))
            let restore = try BunkerProcess.run(["restore", generations[2].snapshotID.hex, "--target", dir + "/out"], environment: e)
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(compareTrees(dir + "/generation-2", dir + "/out/src", checkDirectoryTimes: false) == [])
            for (id, round) in written {
                let target = dir + "/check-\(id.prefix(8))"
                let r = try BunkerProcess.run(["restore", id, "--target", target], environment: e)
                #expect(r.status == 0, "snapshot \(id.prefix(8)) restores: \(r.stderr)")
                #expect(compareTrees(dir + "/round-\(round)", target + "/src", checkDirectoryTimes: false) == [],
                        "snapshot \(id.prefix(8)) holds round \(round)'s files")
            }
        }
    }
}
