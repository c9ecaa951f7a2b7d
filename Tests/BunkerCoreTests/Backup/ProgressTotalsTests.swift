import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// What a backup's progress gives as its totals (the percentage `bunker jobs` and the progress
/// line show): a first backup counts its tree; an incremental one takes its parent's totals
/// rather than walking the whole tree a second time.
@Suite struct ProgressTotalsTests {
    @Test func aFirstBackupCountsItsTreeAndAnIncrementalOneTakesItsParentsTotals() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/src/sub", withIntermediateDirectories: true)
            for (i, size) in [1000, 20_000, 300_000].enumerated() {
                try TreeGenerator.writeRandomFile(dir + "/src/sub/f\(i)", size: size, seed: UInt64(i))
            }
            let repo = try await TestRepository.create(at: dir + "/repo")

            let first = OperationProgress()
            let firstResult = try await Archiver(repository: repo, request: BackupRequest(paths: [dir + "/src"]), progress: first).run()
            // The count runs beside the backup and may end after it: wait for it.
            for _ in 0..<100 where !first.counters.totalsKnown { try await Task.sleep(for: .milliseconds(50)) }
            #expect(first.counters.totalsKnown)
            #expect(first.counters.filesTotal == 3)
            #expect(first.counters.bytesTotal == 321_000)
            let parent = try #require(firstResult.snapshot.summary)
            #expect(parent.totalFiles == 3 && parent.totalBytes == 321_000)

            // A file added since: a count of the tree would find four files; the estimate is the
            // parent's three, known before the backup reads anything.
            try TreeGenerator.writeRandomFile(dir + "/src/sub/f3", size: 4000, seed: 9)
            let second = OperationProgress()
            let secondResult = try await Archiver(repository: repo, request: BackupRequest(paths: [dir + "/src"]), progress: second).run()
            try await Task.sleep(for: .milliseconds(300))
            #expect(second.counters.totalsKnown)
            #expect(second.counters.filesTotal == parent.totalFiles, "the parent's totals, not a count of the tree")
            #expect(second.counters.bytesTotal == parent.totalBytes)
            #expect(second.counters.filesDone == 4)
            #expect(secondResult.snapshot.summary?.totalFiles == 4)
        }
    }
}
