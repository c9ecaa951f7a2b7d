import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Testing

/// `[repository] max_size`: a backup that would pass the budget fails whole, the budget's fill is
/// in health and alerts from 80 %, and the safety copy before a restore is never refused.
@Suite struct SizeBudgetTests {
    @Test func aBackupNeverGrowsTheRepositoryPastItsBudget() async throws {
        try await withTemporaryDirectory { dir in
            var generator = SystemRandomNumberGenerator()
            try FileManager.default.createDirectory(atPath: dir + "/studies", withIntermediateDirectories: true)
            for i in 0..<3 {
                try Data((0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }).write(to: URL(fileURLWithPath: "\(dir)/studies/scan\(i).dcm"))
            }
            let base = try await makeService(in: dir, sources: """
                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/studies"
                """)
            func service(maxSize: UInt64) -> BunkerService {
                var configuration = base.configuration
                configuration.repository.maxSize = maxSize
                return BunkerService(configuration: configuration, repository: base.repository)
            }

            // 3 MiB of incompressible data does not fit in 2 MiB: no snapshot, a clear error.
            let small = service(maxSize: 2 << 20)
            let refused = await #expect(throws: BunkerError.self) { _ = try await small.backup(SourceBackupRequest()) }
            #expect(refused?.code == .storageFull)
            #expect(refused?.message.contains("[repository] max_size") == true, "\(refused?.message ?? "")")
            #expect(try await base.repository.snapshots().isEmpty)

            // Room enough: it backs up, and health is quiet about the budget.
            _ = try await service(maxSize: 64 << 20).backup(SourceBackupRequest())
            let used = try #require(try await service(maxSize: 1).sizeBudget()).used
            #expect(!(await service(maxSize: 64 << 20).healthDetail()).problems.contains { $0.contains("size budget") })

            // 90 % full: a warning in health, and one alert per episode.
            let nearly = service(maxSize: used * 10 / 9)
            let health = await nearly.healthDetail()
            #expect(health.problems.contains { $0.hasPrefix("the repository holds 90% of its size budget") }, "\(health.problems)")
            #expect(!health.criticalProblems.contains { $0.contains("size budget") })
            #expect(await nearly.checkAlerts().filter { $0.kind == .repositoryBudget }.count == 1)
            #expect(await nearly.checkAlerts().filter { $0.kind == .repositoryBudget }.isEmpty)

            // Spent: the next backup is refused before it starts, and health says it is critical.
            let full = service(maxSize: used)
            let spent = await #expect(throws: BunkerError.self) { _ = try await full.backup(SourceBackupRequest()) }
            #expect(spent?.message.contains("its whole size budget") == true, "\(spent?.message ?? "")")
            #expect(await full.healthDetail().criticalProblems.contains { $0.hasSuffix("backups are refused") })
            #expect(try await base.repository.snapshots().count == 1)

            // A restore in place still gets its safety copy.
            try Data("changed".utf8).write(to: URL(fileURLWithPath: dir + "/studies/scan0.dcm"))
            let outcome = try await full.restore(SourceRestoreRequest(snapshot: "latest"))
            #expect(outcome.safetySnapshotID != nil)
            #expect(FileManager.default.contents(atPath: dir + "/studies/scan0.dcm")?.count == 1 << 20)
        }
    }
}
