import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// `bunker check`: the server's checks once, for cron and monitoring systems, with the Nagios
/// exit statuses and each alert sent once per episode.
@Suite(.serialized) struct CheckCommandTests {
    @Test func checkExitsByTheWorstProblemAndAlertsOncePerEpisode() async throws {
        try await withTemporaryDirectory { dir in
            let server = try SMTPTestServer.start(mode: .starttls, in: dir + "/smtp")
            defer { server.stop() }
            try FileManager.default.createDirectory(atPath: dir + "/studies", withIntermediateDirectories: true)
            for i in 0..<20 { try Data((0..<30_000).map { UInt8(truncatingIfNeeded: $0 * 31 + i) }).write(to: URL(fileURLWithPath: "\(dir)/studies/s\(i).bin")) }
            func config(minFreePercent: Int) throws {
                try """
                    data_dir = "\(dir)/data"

                    [repository]
                    path = "\(dir)/repo"

                    [smtp]
                    host = "localhost"
                    port = \(server.port)
                    user = "bunker"
                    from_email = "bunker@clinic.example"
                    timeout_seconds = 5
                    ca_file = "\(server.certificateFile)"

                    [notifications]
                    email_to = ["oncall@clinic.example"]
                    min_free_space_percent = \(minFreePercent)

                    [[source]]
                    name = "studies"
                    kind = "files"
                    path = "\(dir)/studies"
                    """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
            }
            // 99 % free wanted: this machine's disk is below it, so the low-space alert fires.
            try config(minFreePercent: 99)
            _ = try await TestRepository.create(at: dir + "/repo")
            let e = ["BUNKER_CONFIG": dir + "/bunker.toml", "BUNKER_PASSWORD": TestRepository.password, "SMTP_PASSWORD": server.password]

            let first = try BunkerProcess.run(["check"], environment: e)
            #expect(first.status == 1, "\(first.stdout) \(first.stderr)")
            #expect(first.stdout.hasPrefix("BUNKER WARNING - no backup yet; only "), "\(first.stdout)")
            #expect(first.stdout.contains("alert sent: low_disk_space"), "\(first.stdout)")
            #expect(server.messages().count == 1)
            #expect(server.messages().first?.message.contains("Warning") == true)

            // Once per episode: the same state, no second message.
            let second = try BunkerProcess.run(["check", "--json"], environment: e)
            #expect(second.status == 1)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(second.stdout.utf8)) as? [String: Any])
            #expect(json["status"] as? String == "warning")
            #expect(json["exit_code"] as? Int == 1)
            #expect((json["alerts_sent"] as? [Any])?.isEmpty == true)
            #expect((json["problems"] as? [[String: Any]])?.map { $0["severity"] as? String } == ["warning", "warning"])
            #expect(server.messages().count == 1)

            try config(minFreePercent: 0)
            #expect(try BunkerProcess.run(["backup"], environment: e).status == 0)
            let healthy = try BunkerProcess.run(["check"], environment: e)
            #expect(healthy.status == 0, "\(healthy.stdout) \(healthy.stderr)")
            #expect(healthy.stdout.hasPrefix("BUNKER OK - backups are healthy; last backup "), "\(healthy.stdout)")
            #expect(healthy.stdout.contains("| last_backup_age_hours=0.0"), "\(healthy.stdout)")

            // A verify that finds damage makes the state critical.
            try damageLargestPack(in: dir + "/repo")
            #expect(try BunkerProcess.run(["verify", "--read-data"], environment: e).status == 7)
            let critical = try BunkerProcess.run(["check", "--no-notify"], environment: e)
            #expect(critical.status == 2, "\(critical.stdout) \(critical.stderr)")
            #expect(critical.stdout.hasPrefix("BUNKER CRITICAL - the last verify found problems"), "\(critical.stdout)")

            // A repository that cannot be opened is critical too: nothing says backups run.
            var wrong = e
            wrong["BUNKER_PASSWORD"] = "not the password"
            let unopened = try BunkerProcess.run(["check"], environment: wrong)
            #expect(unopened.status == 2)
            #expect(unopened.stdout.hasPrefix("BUNKER CRITICAL - cannot open the repository: "), "\(unopened.stdout)")
        }
    }

    /// `bunker verify latest` (the DermAI strategy's `verify latest`) reads one backup's data.
    @Test func verifyOneBackupReadsItsDataAndFindsDamage() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/studies", withIntermediateDirectories: true)
            for i in 0..<10 { try Data((0..<50_000).map { UInt8(truncatingIfNeeded: $0 * 7 + i) }).write(to: URL(fileURLWithPath: "\(dir)/studies/s\(i).bin")) }
            try """
                data_dir = "\(dir)/data"

                [repository]
                path = "\(dir)/repo"

                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/studies"
                """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
            _ = try await TestRepository.create(at: dir + "/repo")
            let e = ["BUNKER_CONFIG": dir + "/bunker.toml", "BUNKER_PASSWORD": TestRepository.password]
            #expect(try BunkerProcess.run(["backup"], environment: e).status == 0)

            let good = try BunkerProcess.run(["verify", "latest", "--json"], environment: e)
            #expect(good.status == 0, "\(good.stdout) \(good.stderr)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(good.stdout.utf8)) as? [String: Any])
            #expect(report["snapshots"] as? Int == 1)
            #expect((report["packs_read"] as? Int ?? 0) > 0, "\(report)")

            try damageLargestPack(in: dir + "/repo")
            let bad = try BunkerProcess.run(["verify", "latest"], environment: e)
            #expect(bad.status == 7, "\(bad.stdout) \(bad.stderr)")
            #expect(bad.stderr.contains("affects snapshot"), "\(bad.stderr)")
            // Said as the backup `latest` is, not as "latest".
            let snapshots = try #require(try JSONSerialization.jsonObject(with: Data(BunkerProcess.run(["snapshots", "--json"], environment: e).stdout.utf8)) as? [[String: Any]])
            let id = try #require(snapshots.first?["id"] as? String)
            #expect(bad.stdout.contains("Checked backup \(id.prefix(8)):"), "\(bad.stdout)")

            let unknown = try BunkerProcess.run(["verify", "deadbeef"], environment: e)
            #expect(unknown.status != 0 && unknown.status != 7, "\(unknown.status) \(unknown.stderr)")
            let both = try BunkerProcess.run(["verify", "latest", "--read-data-subset", "1/2"], environment: e)
            #expect(both.status == 64 && both.stderr.contains("always read whole"), "\(both.stderr)")
        }
    }
}
