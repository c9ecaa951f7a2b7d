import BunkerCore
import BunkerTesting
import Foundation
import Testing

@Suite struct StatsTests {
    @Test func statsCountKindsTagsHoldsAndEachSourcesLastBackup() async throws {
        try await withTemporaryDirectory { dir in
            let clock = TestClock(Date())
            let repo = try await TestRepository.create(at: dir + "/repo", now: clock.now)
            let generations = try await Generations.backUp(repo, clock: clock, in: dir, count: 2)
            try FileManager.default.createDirectory(atPath: dir + "/other", withIntermediateDirectories: true)
            try TreeGenerator.writeRandomFile(dir + "/other/x.bin", size: 10_000, seed: 3)
            let other = try await TestRepository.backup(repo, [dir + "/other"], tags: ["daily"])
            clock.advance(by: 3600)
            _ = try await TestRepository.backup(repo, [dir + "/src"], tags: ["safety"])
            _ = try await repo.addHold(to: generations[0].snapshotID.hex, reason: "audit")

            let stats = try await repo.stats()
            #expect(stats.snapshots == 4)
            #expect(stats.snapshotsByKind == ["paths": 4])
            #expect(stats.snapshotsByTag == ["daily": 1, "safety": 1])
            #expect(stats.heldSnapshots == 1)
            // Times as stored (RFC 3339 with nanoseconds) may differ from the in-memory Date in
            // the last bits of the double.
            let stored = Dictionary(uniqueKeysWithValues: try await repo.snapshots().map { ($0.id.hex, $0.snapshot.time) })
            #expect(stats.sources == [
                SourceLastBackup(name: dir + "/other", kind: "path", lastBackup: stored[other.snapshotID.hex]!, snapshot: other.snapshotID.hex),
                SourceLastBackup(name: dir + "/src", kind: "path", lastBackup: stored[generations[1].snapshotID.hex]!, snapshot: generations[1].snapshotID.hex),
            ], "the safety snapshot is not the source's last backup")
            #expect(stats.oldest == stored[generations[0].snapshotID.hex])
            #expect(stats.deduplicationRatio > 1.3, "shared.bin and the notes are stored once: \(stats.deduplicationRatio)")
            #expect(stats.freeBytes != nil && stats.totalBytes != nil, "local storage reports its filesystem's space")
            #expect(stats.storedBytes >= TestRepository.packBytes(at: dir + "/repo"))
        }
    }
}
