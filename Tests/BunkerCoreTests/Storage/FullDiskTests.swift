import BunkerCore
import BunkerTesting
import Foundation
import Testing

@Suite struct FullDiskTests {
    @Test(arguments: [100_000, 700_000, 1_500_000])
    func fullDiskFailsClearlyAndLosesNothing(spaceLeft: Int) async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 1 << 20)
            let local = try StorageLocation.storage(for: dir + "/repo", create: true)
            _ = try await TestRepository.create(storage: local)
            // A first snapshot on a healthy disk.
            let healthy = try await TestRepository.open(at: dir + "/repo")
            let first = try await TestRepository.backup(healthy, [dir + "/src/docs"])

            let full = try await Repository.open(storage: FaultyStorage(local, spaceLeft: spaceLeft), password: TestRepository.password)
            await #expect {
                try await TestRepository.backup(full, [dir + "/src"])
            } throws: { error in
                guard let error = error as? BunkerError else { return false }
                return error.code == .storageFull && error.message.contains("full")
            }

            let after = try await TestRepository.open(at: dir + "/repo")
            #expect(try await after.snapshots().map(\.id) == [first.snapshotID])
            let report = try await Checker(repository: after).check(readData: true)
            #expect(report.ok, "\(report.errors.map(\.message))")
            let restore = try await Restorer(loader: after).restore(tree: first.snapshot.tree, to: dir + "/out")
            #expect(restore.failures.isEmpty)
            #expect(compareTrees(dir + "/src/docs", dir + "/out/docs") == [])
            // With space again, the next backup succeeds.
            try await TestRepository.backup(after, [dir + "/src"])
        }
    }
}
