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

                # The repository shares the host's disk: how full that is must not decide this test.
                [notifications]
                min_free_space_percent = 0
                """)
            var health = await service.healthDetail()
            #expect(health.status == "degraded")
            #expect(health.problems == ["no backup yet"])
            #expect(health.scheduler.map(\.job) == ["backup", "backup", "cleanup", "verify", "drill"], "Bunker's default schedules")
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

@Suite struct VerifyRotationTests {
    @Test func scheduledVerifiesReadEachSeventhInTurn() async throws {
        try await withTemporaryDirectory { dir in
            let service = try await makeService(in: dir, sources: "")
            let parts = (0..<8).map { _ in "\(service.nextVerifyPart())" }
            #expect(parts == ["1/7", "2/7", "3/7", "4/7", "5/7", "6/7", "7/7", "1/7"])
        }
    }
}

@Suite struct LockoutAlertTests {
    @Test func aLockedAccountIsToldAboutOnce() async throws {
        try await withTemporaryDirectory { dir in
            let service = try await makeService(in: dir, sources: "")
            let catalog = try service.catalog()
            _ = try catalog.addUser(NewUser(username: "mallory", fullName: "Mal Lory", email: "m@clinic.example", role: .viewer, password: "a long enough password"), by: .system)
            #expect(await service.checkAlerts().filter { $0.kind == .accountLocked }.isEmpty, "the first look takes the past as known")
            for _ in 0..<5 {
                #expect(throws: BunkerError.self) { _ = try catalog.authenticate(username: "mallory", password: "guess") }
            }
            let alerts = await service.checkAlerts().filter { $0.kind == .accountLocked }
            #expect(alerts.map(\.title) == ["Account mallory locked after repeated wrong passwords"])
            // Attempts on the locked account are refused (and audited) but are not new lockouts.
            for _ in 0..<3 {
                #expect(throws: BunkerError.self) { _ = try catalog.authenticate(username: "mallory", password: "a long enough password") }
            }
            #expect(await service.checkAlerts().filter { $0.kind == .accountLocked }.isEmpty, "once per lockout")
            #expect(try catalog.auditRecords(AuditFilter(action: "alert")).contains { $0.target == "account_locked" }, "the alert is audited")
        }
    }
}
