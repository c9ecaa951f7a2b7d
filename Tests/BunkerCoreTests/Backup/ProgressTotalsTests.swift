import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// What a backup's progress gives as its totals (the percentage `bunker jobs`, the progress line
/// and the console show): a backup without a parent counts its tree; one with a parent takes the
/// parent's totals as an estimate rather than walk the whole tree a second time, and withdraws
/// the estimate once the work passes it.
@Suite struct ProgressTotalsTests {
    @Test func aFirstBackupCountsItsTreeAndALaterOneTakesItsParentsTotalsAsAnEstimate() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/src/sub", withIntermediateDirectories: true)
            for (i, size) in [1000, 20_000, 300_000].enumerated() {
                try TreeGenerator.writeRandomFile(dir + "/src/sub/f\(i)", size: size, seed: UInt64(i))
            }
            let repo = try await TestRepository.create(at: dir + "/repo")
            func backup(_ progress: OperationProgress) async throws -> BackupSummary {
                let result = try await Archiver(repository: repo, request: BackupRequest(paths: [dir + "/src"]), progress: progress).run()
                // A count runs beside the backup and may end after it: give it time to.
                try await Task.sleep(for: .milliseconds(300))
                return try #require(result.snapshot.summary)
            }

            let first = OperationProgress()
            let parent = try await backup(first)
            for _ in 0..<100 where !first.counters.totalsKnown { try await Task.sleep(for: .milliseconds(50)) }
            #expect(first.counters.totalsKnown)
            #expect(first.counters.filesTotal == 3)
            #expect(first.counters.bytesTotal == 321_000)

            // A file removed since: a count would find two files; the estimate is the parent's
            // three, and the backup (two files done) never passes it.
            try FileManager.default.removeItem(atPath: dir + "/src/sub/f0")
            let second = OperationProgress()
            let secondSummary = try await backup(second)
            #expect(second.counters.totalsKnown)
            #expect(second.counters.filesTotal == parent.totalFiles, "the parent's totals, not a count of the tree")
            #expect(second.counters.bytesTotal == parent.totalBytes)
            #expect(second.counters.filesDone == 2)

            // Two files added: four files done pass the estimate of two, which is withdrawn
            // rather than left to show 100 % for the rest of the work.
            try TreeGenerator.writeRandomFile(dir + "/src/sub/f3", size: 4000, seed: 9)
            try TreeGenerator.writeRandomFile(dir + "/src/sub/f4", size: 5000, seed: 10)
            let third = OperationProgress()
            _ = try await backup(third)
            #expect(third.counters.filesDone == 4)
            #expect(!third.counters.totalsKnown)
            #expect(third.counters.filesTotal == secondSummary.totalFiles, "withdrawn, not replaced by a count")
        }
    }

    @Test func anEstimateIsWithdrawnOnceTheWorkPassesItAndACountIsNot() {
        let estimated = OperationProgress()
        estimated.estimateTotals(files: 2, bytes: 100)
        estimated.update {
            $0.filesDone = 2
            $0.bytesDone = 100
        }
        #expect(estimated.counters.totalsKnown, "reaching the estimate is not passing it")
        estimated.update { $0.bytesDone += 1 }
        #expect(!estimated.counters.totalsKnown)
        estimated.update { $0.filesDone += 1 }
        #expect(!estimated.counters.totalsKnown)

        let counted = OperationProgress()
        counted.update {
            $0.filesTotal = 2
            $0.bytesTotal = 100
            $0.totalsKnown = true
        }
        counted.update { $0.bytesDone = 150 }
        #expect(counted.counters.totalsKnown, "a count that finished stays")
    }
}
