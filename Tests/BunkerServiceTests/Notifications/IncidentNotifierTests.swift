import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Testing

/// PagerDuty (Events API v2) and Slack (incoming webhook), each against a real local HTTP
/// receiver: a failure triggers an incident that the next success resolves, under one dedup key.
@Suite(.serialized) struct IncidentNotifierTests {
    @Test func aFailedBackupTriggersAnIncidentThatTheNextBackupResolves() async throws {
        try await withTemporaryDirectory { dir in
            let pagerDuty = try WebhookTestReceiver.start(in: dir + "/pagerduty")
            defer { pagerDuty.stop() }
            let slack = try WebhookTestReceiver.start(in: dir + "/slack")
            defer { slack.stop() }
            try "R0UTINGKEY-for-tests\n".write(toFile: dir + "/pagerduty.key", atomically: true, encoding: .utf8)
            try (slack.url + "/T000/B000/XXXX\n").write(toFile: dir + "/slack.url", atomically: true, encoding: .utf8)
            try FileManager.default.createDirectory(atPath: dir + "/studies", withIntermediateDirectories: true)
            try Data("visit notes\n".utf8).write(to: URL(fileURLWithPath: dir + "/studies/notes.txt"))
            let service = try await makeService(in: dir, sources: """
                [[source]]
                name = "clinic-db"
                kind = "sqlite"
                path = "\(dir)/gone/app.db"

                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/studies"

                [pagerduty]
                routing_key_file = "\(dir)/pagerduty.key"
                url = "\(pagerDuty.url)"

                [slack]
                webhook_url_file = "\(dir)/slack.url"
                """)

            // The database is gone: the backup fails, for real.
            await #expect(throws: BunkerError.self) { _ = try await service.backup(SourceBackupRequest()) }
            let triggers = try pagerDuty.posts().map { try json($0.body) }
            #expect(triggers.count == 1)
            let trigger = try #require(triggers.first)
            let host = ProcessInfo.processInfo.hostName
            #expect(trigger["routing_key"] as? String == "R0UTINGKEY-for-tests")
            #expect(trigger["event_action"] as? String == "trigger")
            #expect(trigger["dedup_key"] as? String == "bunker/\(host)/backup")
            let payload = try #require(trigger["payload"] as? [String: Any])
            #expect(payload["severity"] as? String == "error")
            #expect(payload["source"] as? String == host)
            #expect((payload["summary"] as? String)?.hasPrefix("Backup of clinic-db, studies failed") == true, "\(payload)")
            #expect((payload["custom_details"] as? [String: String])?["What to do"] != nil)

            let messages = try slack.posts().map { try json($0.body) }
            #expect(slack.posts().first?.path == "/hooks/bunker/T000/B000/XXXX")
            let blocks = try #require(messages.first?["blocks"] as? [[String: Any]])
            #expect(blocks.map { $0["type"] as? String } == ["header", "section", "section", "context"])
            #expect(((blocks[0]["text"] as? [String: Any])?["text"] as? String) == "❌ Backup of clinic-db, studies failed")
            #expect(messages.first?["text"] as? String == "❌ Backup of clinic-db, studies failed")

            // The database is back: the backup succeeds and resolves the incident.
            try FileManager.default.createDirectory(atPath: dir + "/gone", withIntermediateDirectories: true)
            try makeDatabase(at: dir + "/gone/app.db", rows: 5)
            _ = try await service.backup(SourceBackupRequest())
            let resolve = try #require(try pagerDuty.posts().last.map { try json($0.body) })
            #expect(pagerDuty.posts().count == 2)
            #expect(resolve["event_action"] as? String == "resolve")
            #expect(resolve["dedup_key"] as? String == "bunker/\(host)/backup")
            #expect(resolve["payload"] == nil)
            #expect(slack.posts().count == 2, "Slack says the backup succeeded")

            // A verify that passes is quiet: it resolves a verify incident, and Slack is not told.
            _ = try await service.verify(readData: true)
            let verify = try #require(try pagerDuty.posts().last.map { try json($0.body) })
            #expect(verify["event_action"] as? String == "resolve")
            #expect(verify["dedup_key"] as? String == "bunker/\(host)/verify")
            #expect(slack.posts().count == 2)
            let delivered = try service.catalog().auditRecords(AuditFilter(action: "notify")).filter { $0.outcome == .success }.compactMap(\.target)
            #expect(delivered.filter { $0 == "pagerduty" }.count == 3 && delivered.filter { $0 == "slack" }.count == 2, "\(delivered)")
        }
    }

    @Test func secretsAreNeverWrittenInTheConfiguration() throws {
        for (table, key) in [("pagerduty", "routing_key"), ("slack", "webhook_url")] {
            #expect {
                _ = try Configuration(text: "[\(table)]\n\(key) = \"abc\"\n", file: "/tmp/bunker.toml", environment: [:])
            } throws: { error in
                (error as? BunkerError)?.message.contains("never written in the configuration") == true
            }
        }
        // Without a secret the notifier is off, and says why.
        let configuration = try Configuration(text: "[pagerduty]\n[slack]\nwebhook_url_env = \"NO_SUCH_VARIABLE\"\n", file: "/tmp/bunker.toml", environment: [:])
        let (notifiers, problems) = configuration.makeNotifiers(environment: [:])
        #expect(notifiers.isEmpty)
        #expect(problems == ["PagerDuty is off: its variable PAGERDUTY_ROUTING_KEY is not set", "Slack is off: its variable NO_SUCH_VARIABLE is not set"])
    }

    private func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }
}
