import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Testing

@Suite struct HealthDetailTests {
    @Test func healthSaysWhatIsWrong() async throws {
        try await withTemporaryDirectory { dir in
            try makeDatabase(at: dir + "/app.db", rows: 200)
            let service = try await makeService(in: dir, sources: """
                [[source]]
                name = "app-db"
                kind = "sqlite"
                path = "\(dir)/app.db"
                """)
            var health = await service.healthDetail()
            #expect(health.status == "degraded")
            #expect(health.problems == ["no backup yet"])
            #expect(health.scheduler.map(\.job) == ["backup", "backup", "cleanup", "verify", "drill"], "the seeds' default schedules")
            #expect(health.scheduler.allSatisfy { $0.nextRun != nil })

            let backup = try await service.backup(SourceBackupRequest())
            _ = try await service.verify(readData: true)
            health = await service.healthDetail()
            #expect(health.status == "ok", "\(health.problems)")
            #expect(health.lastBackupID == backup.snapshotID.hex)
            #expect(health.lastVerify?.outcome == "success")
            #expect(health.space != nil, "a local repository reports its free space")

            _ = try damageLargestPack(in: dir + "/repo")
            _ = try await service.verify(readData: true)
            health = await service.healthDetail()
            #expect(health.status == "degraded")
            #expect(health.problems == ["the last verify found problems"])
            #expect(health.lastVerify?.outcome == "failure")
        }
    }
}
