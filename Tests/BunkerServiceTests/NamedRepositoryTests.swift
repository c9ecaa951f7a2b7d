import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Synchronization
import Testing

/// `[repositories.NAME]`: other repositories by name, each with its own location, password file
/// and retention, and `[[schedule]] job = "copy"` into one of them.
@Suite struct NamedRepositoryTests {
    @Test func aNamedRepositoryHasItsOwnLocationPasswordAndRetention() throws {
        let config = try Configuration(text: """
            [repository]
            path = "/var/backups/bunker"
            [repositories.offsite]
            url = "s3://clinic-backups/bunker"
            endpoint = "https://s3.eu-central-1.amazonaws.com"
            password_file = "offsite-password"
            object_lock = { mode = "compliance", days = 2555 }
            [repositories.offsite.retention]
            keep_weekly = 8
            keep_monthly = 12
            [repositories.usb]
            path = "/mnt/usb/bunker"
            [[schedule]]
            job = "copy"
            cron = "0 4 * * 0"
            to = "offsite"
            """, file: "/etc/bunker/bunker.toml", environment: [:])
        let offsite = try config.namedRepository("offsite")
        #expect(offsite.settings.url == "s3://clinic-backups/bunker")
        #expect(offsite.settings.endpoint == "https://s3.eu-central-1.amazonaws.com")
        #expect(offsite.settings.passwordFile == "/etc/bunker/offsite-password")
        #expect(offsite.retention?.keepWeekly == 8 && offsite.retention?.keepMonthly == 12)
        #expect(offsite.settings.objectLock == ObjectLockSettings(mode: .compliance, days: 2555))
        #expect(try config.namedRepository("usb").settings.objectLock == nil)
        #expect(config.schedules?.first?.job == .copy && config.schedules?.first?.destination == "offsite")

        let selected = try config.selecting(repository: "offsite")
        #expect(selected.repository.location == "s3://clinic-backups/bunker")
        #expect(selected.retention.keepWeekly == 8)
        // A repository without a policy of its own keeps the primary's.
        #expect(try config.selecting(repository: "usb").retention == config.retention)
        #expect(try config.selecting(repository: "usb").repository.location == "/mnt/usb/bunker")

        #expect(throws: BunkerError.self) { try config.selecting(repository: "cloud") }
        do {
            _ = try config.namedRepository("cloud")
        } catch let error as BunkerError {
            #expect(error.message.contains("offsite, usb"), "\(error.message)")
        }
    }

    @Test(arguments: [
        ("[repositories.offsite]\npassword_file = \"p\"\n", "path"),
        ("[repositories.offsite]\npath = \"/x\"\nsecret_access_key = \"s\"\n", "credentials"),
        ("[repositories.offsite]\npath = \"/x\"\nkeep_weekly = 3\n", "unknown key"),
        ("[repositories.\"off site\"]\npath = \"/x\"\n", "letters, digits"),
        ("[repositories.offsite]\npath = \"/x\"\nobject_lock = { mode = \"compliance\", days = 30 }\n", "url = \\\"s3://"),
        ("[repositories.offsite]\nurl = \"s3://b/p\"\nobject_lock = { mode = \"forever\", days = 30 }\n", "not an object-lock mode"),
        ("[repositories.offsite]\nurl = \"s3://b/p\"\nobject_lock = { mode = \"compliance\" }\n", "days is required"),
        ("[repositories.offsite]\nurl = \"s3://b/p\"\nobject_lock = { mode = \"compliance\", days = 0 }\n", "days"),
        ("[[schedule]]\njob = \"copy\"\ncron = \"@daily\"\n", "to = \\\"NAME\\\""),
        ("[[schedule]]\njob = \"copy\"\ncron = \"@daily\"\nto = \"cloud\"\n", "names no repository"),
        ("[repositories.offsite]\npath = \"/x\"\n[[schedule]]\njob = \"copy\"\ncron = \"@daily\"\nto = \"offsite\"\n", "password_file"),
        ("[repositories.offsite]\npath = \"/x\"\npassword_file = \"p\"\n[[schedule]]\njob = \"verify\"\ncron = \"@daily\"\nto = \"offsite\"\n", "copy\\\" only"),
    ])
    func mistakesAreNamedWithTheirLine(text: String, expected: String) {
        #expect {
            _ = try Configuration(text: text, file: "/etc/bunker.toml", environment: [:])
        } throws: { error in
            let message = (error as? BunkerError)?.message ?? ""
            return message.contains("/etc/bunker.toml:") && message.contains(expected.replacingOccurrences(of: "\\\"", with: "\""))
        }
    }

    @Test func aScheduledCopyFillsTheNamedRepositoryAndIsAudited() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/tree", largeFileSize: 1 << 20)
            try (TestRepository.password + "\n").write(toFile: dir + "/offsite-password", atomically: true, encoding: .utf8)
            _ = try await TestRepository.create(at: dir + "/offsite")
            let service = try await makeService(in: dir, sources: """
                [repositories.offsite]
                path = "\(dir)/offsite"
                password_file = "\(dir)/offsite-password"

                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/tree"
                """)
            _ = try await service.backup(SourceBackupRequest(type: .full))
            // A clock that moves two minutes each time it is read: the schedule is due at once.
            let reads = Atomic(0)
            let start = Date()
            let scheduler = service.makeScheduler(
                schedules: [Schedule(job: .copy, cron: try CronExpression("* * * * *"), destination: "offsite")],
                now: { start.addingTimeInterval(Double(reads.add(1, ordering: .relaxed).newValue) * 120) })
            let ran = await scheduler.runDue()
            #expect(ran.map(\.schedule.job) == [.copy])

            let offsite = try await service.openRepository(named: "offsite")
            let copies = try await offsite.snapshots()
            #expect(copies.count == 1 && copies.first?.snapshot.original != nil, "\(copies.map(\.snapshot.original))")
            let rows = try service.catalog().auditRecords(AuditFilter(action: "copy"))
            #expect(rows.map(\.outcome) == [.started, .success], "\(rows.map(\.outcome))")
            #expect(rows.allSatisfy { $0.actor == "scheduler" && $0.target == "offsite" })
            let stats = try await service.stats(repository: "offsite")
            #expect(stats.snapshots == 1)
        }
    }
}
