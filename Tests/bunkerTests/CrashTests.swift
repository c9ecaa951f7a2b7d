import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// A backup killed with SIGKILL at the named moment must leave a repository that verifies, from
/// which every earlier snapshot restores, and on which the next backup succeeds.
@Suite(.serialized) struct CrashTests {
    static let killPoints = [
        "backup-after-pack:1",
        "backup-after-pack:4",
        "storage-before-rename:3",
        "backup-before-snapshot",
    ]

    @Test(arguments: killPoints)
    func backupKilledWithSIGKILLLosesNothing(at point: String) async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 2 << 20)
            let repo = try await TestRepository.create(at: dir + "/repo")
            let earlier = try await TestRepository.backup(repo, [dir + "/src/docs"])
            let e = ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password]

            let killed = try BunkerProcess.run(["backup", dir + "/src"], environment: e.merging(["BUNKER_FAULT_KILL": point]) { $1 })
            #expect(killed.killed && killed.status == SIGKILL, "the backup was killed at \(point): \(killed.stderr)")

            let after = try await TestRepository.open(at: dir + "/repo")
            #expect(try await after.snapshots().map(\.id) == [earlier.snapshotID], "no half-written snapshot is listed")
            let verify = try BunkerProcess.run(["verify", "--read-data", "--json"], environment: e)
            #expect(verify.status == 0, "verify after a crash at \(point): \(verify.stdout) \(verify.stderr)")

            let restore = try BunkerProcess.run(["restore", earlier.snapshotID.hex, "--target", dir + "/out"], environment: e)
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(compareTrees(dir + "/src/docs", dir + "/out/docs") == [])

            let next = try BunkerProcess.run(["backup", dir + "/src", "--json"], environment: e)
            #expect(next.status == 0, "\(next.stderr)")
            let final = try await TestRepository.open(at: dir + "/repo")
            let latest = try #require(try await final.snapshots().last)
            _ = try await Restorer(loader: final).restore(tree: latest.snapshot.tree, to: dir + "/out2")
            #expect(compareTrees(dir + "/src", dir + "/out2/src") == [])
            #expect(try await final.locks().isEmpty, "the finished backup removed its lock")
        }
    }

    @Test func lockOfAKilledBackupDoesNotBlockTheNextOne() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 1 << 20)
            _ = try await TestRepository.create(at: dir + "/repo")
            let e = ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password]
            _ = try BunkerProcess.run(["backup", dir + "/src"], environment: e.merging(["BUNKER_FAULT_KILL": "backup-after-pack:2"]) { $1 })
            let repo = try await TestRepository.open(at: dir + "/repo")
            #expect(try await repo.locks().count == 1, "the dead process's lock is still there")
            let prune = try await TestRepository.open(at: dir + "/repo")
            // An exclusive lock is only possible if the dead process's lock is seen as stale.
            try await prune.withLock(exclusive: true) {}
            #expect(try await repo.locks().isEmpty)
        }
    }
}
