import BunkerCore
import BunkerService
import BunkerSMTP
import BunkerTesting
import Crypto
import Foundation
import Testing

/// Backups and restores tell people by e-mail (a real aiosmtpd) and webhooks (a real HTTP
/// receiver), and a mail server that is down never fails the backup.
@Suite(.serialized) struct OperationNotificationTests {
    /// `smtpIdentity` replaces the `[smtp]` login and sender lines, `notifications` is added to
    /// `[notifications]`, and `environment` goes over the file as the process environment would.
    func service(
        _ dir: String, smtpPort: Int, webhook: String? = nil, extraSource: String = "", clock: ManualClock,
        smtpIdentity: String = "user = \"bunker\"\nfrom_email = \"bunker@clinic.example\"",
        notifications: String = "", environment extraEnvironment: [String: String] = [:]
    ) async throws -> BunkerService {
        try FileManager.default.createDirectory(atPath: dir + "/studies", withIntermediateDirectories: true)
        try Data("visit notes\n".utf8).write(to: URL(fileURLWithPath: dir + "/studies/notes.txt"))
        var text = """
            data_dir = "\(dir)/data"

            [repository]
            path = "\(dir)/repo"

            [[source]]
            name = "studies"
            kind = "files"
            path = "\(dir)/studies"
            \(extraSource)

            [smtp]
            host = "localhost"
            port = \(smtpPort)
            tls = "starttls"
            \(smtpIdentity)
            password_env = "BUNKER_TEST_SMTP_PASSWORD"
            timeout_seconds = 5
            ca_file = "\(dir)/smtp/cert.pem"

            [notifications]
            email_to = ["oncall@clinic.example"]
            \(notifications)
            """
        if let webhook {
            text += """

                [[webhook]]
                name = "ops"
                url = "\(webhook)"
                secret_env = "BUNKER_TEST_WEBHOOK_SECRET"
                events = ["backup_succeeded", "restore_failed"]
                """
        }
        let environment = ["BUNKER_TEST_SMTP_PASSWORD": "s3cret-for-tests", "BUNKER_TEST_WEBHOOK_SECRET": "hook-secret"].merging(extraEnvironment) { $1 }
        setenv("BUNKER_TEST_SMTP_PASSWORD", "s3cret-for-tests", 1)
        setenv("BUNKER_TEST_WEBHOOK_SECRET", "hook-secret", 1)
        let configuration = try Configuration(text: text, file: dir + "/bunker.toml", environment: environment)
        let repository = try await TestRepository.create(at: dir + "/repo", now: { clock.now })
        let service = BunkerService(configuration: configuration, repository: repository)
        let catalog = try service.catalog()
        _ = try catalog.addUser(NewUser(username: "alice", fullName: "Alice Admin", email: "alice@clinic.example", role: .systemAdmin, password: "correct horse battery"), by: .system)
        _ = try catalog.addUser(NewUser(username: "victor", fullName: "Victor Viewer", email: "victor@clinic.example", role: .viewer, password: "correct horse battery"), by: .system)
        _ = try catalog.addUser(NewUser(username: "olga", fullName: "Olga Operator", email: "olga@clinic.example", role: .systemAdmin, password: "correct horse battery"), by: .system)
        _ = try catalog.setActive("olga", false, by: .system)
        return service
    }

    @Test func aBackupSucceedsWhileTheMailServerIsDownAndTheMailArrivesLater() async throws {
        try await withTemporaryDirectory { dir in
            let port = try freeTCPPort()
            try SMTPTestServer.start(mode: .starttls, in: dir + "/smtp", port: port).stop()
            let clock = ManualClock(Date())
            let service = try await service(dir, smtpPort: port, clock: clock)

            let backup = try await service.backup(SourceBackupRequest(), by: AuditActor(name: "victor", channel: .cli))
            #expect(try await service.repository.snapshots().count == 1, "the backup itself succeeded")
            let outbox = try #require(service.notificationOutbox())
            #expect(outbox.pending.map(\.kind) == [.backupSucceeded])
            let audit = try service.catalog().auditRecords().filter { $0.action == "notify" }
            #expect(audit.last?.outcome == .failure, "the failed delivery is audited")

            let server = try SMTPTestServer.start(mode: .starttls, in: dir + "/smtp", port: port)
            defer { server.stop() }
            clock.advance(by: 61)
            let delivered = await service.deliverNotifications()
            #expect(delivered.map(\.delivered) == [true])
            let (raw, envelope) = try #require(server.messages().first)
            #expect(Set(envelope["to"] as? [String] ?? []) == ["victor@clinic.example", "alice@clinic.example", "oncall@clinic.example"],
                    "the initiator, every active SYSTEM_ADMIN (not a disabled one) and the configured address")
            #expect(raw.contains("Subject: [Bunker] Backup of studies succeeded"))
            let body = decodedText(raw)
            #expect(body.contains("Snapshot: \(backup.snapshotID.hex)"))
            #expect(body.contains("Snapshot tree (content address; not the ZIP checksum): \(backup.snapshot.tree.hex)"))
            #expect(!body.contains("Checksum"), "a mail that says checksum would be compared with sha256sum of the ZIP")
            #expect(body.contains("Started by: victor"))
            #expect(try service.catalog().auditRecords().filter { $0.action == "notify" }.last?.outcome == .success)
        }
    }

    /// The DermAI strategy's `verify latest` from cron: a damaged backup is told, as a failed
    /// verify of the repository is; a reference that names no backup is not a failed check.
    @Test func aFailedVerifyOfOneBackupIsNotified() async throws {
        try await withTemporaryDirectory { dir in
            let port = try freeTCPPort()
            // Started once for its certificate, then stopped: the events wait in the outbox.
            try SMTPTestServer.start(mode: .starttls, in: dir + "/smtp", port: port).stop()
            let clock = ManualClock(Date())
            let service = try await service(dir, smtpPort: port, clock: clock)
            let backup = try await service.backup(SourceBackupRequest(), by: .system)
            // Waiting in the outbox (entries made in the same millisecond come in any order).
            let verifyEvents = { (service.notificationOutbox()?.pending ?? []).filter { $0.kind == .verifyFailed }.count }
            _ = try damageLargestPack(in: dir + "/repo")

            let report = try await service.verify(snapshot: "latest", by: .system)
            #expect(!report.ok)
            #expect(verifyEvents() == 1)
            let row = try #require(try service.catalog().auditRecords(AuditFilter(action: "verify")).last)
            #expect(row.target == backup.snapshotID.hex, "the audit trail names the backup, not `latest`")

            await #expect(throws: BunkerError.self) { try await service.verify(snapshot: "ffffffff", by: .system) }
            #expect(verifyEvents() == 1, "a reference to no backup is not a failed verify")
        }
    }

    @Test func aFailedRestoreSendsACriticalMailNamingTheSafetySnapshotAndASignedWebhook() async throws {
        try await withTemporaryDirectory { dir in
            let server = try SMTPTestServer.start(mode: .starttls, in: dir + "/smtp")
            defer { server.stop() }
            let receiver = try WebhookTestReceiver.start(in: dir + "/hook", failFirst: 1)
            defer { receiver.stop() }
            try await withPostgres { cluster in
            try cluster.psql("CREATE DATABASE clinic")
            try cluster.psql("CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT i, 'n' || i FROM generate_series(1, 50) i", database: "clinic")
            let clock = ManualClock(Date())
            let service = try await service(dir, smtpPort: server.port, webhook: receiver.url, extraSource: clinicSource(cluster), clock: clock)
            let backup = try await service.backup(SourceBackupRequest(type: .database), by: AuditActor(name: "alice", channel: .cli))

            // A view the dump does not know depends on a table the load must drop: the load
            // fails after the safety backup, and rolls back.
            try cluster.psql("CREATE VIEW blocker AS SELECT * FROM notes", database: "clinic")
            var request = SourceRestoreRequest(snapshot: backup.snapshotID.hex)
            request.type = .database
            request.reason = "ticket 42"
            await #expect(throws: BunkerError.self) { try await service.restore(request, by: AuditActor(name: "alice", channel: .cli)) }

            let mails = server.messages()
            let critical = try #require(mails.first { $0.message.contains("Subject: [Bunker] CRITICAL: Restore of snapshot") })
            let body = decodedText(critical.message)
            let safety = try #require(try await service.repository.snapshots().first { $0.snapshot.tags.contains("safety") })
            #expect(body.contains("Safety snapshot: \(safety.id.hex)"), "\(body)")
            #expect(body.contains("`bunker restore \(safety.id.hex.prefix(8))` puts it back"))
            #expect(mails.filter { $0.message.contains("Subject: [Bunker] Backup of clinic succeeded") }.count == 1,
                    "one mail for the backup; the safety copy is told about in the restore's mail, not in one of its own")

            // The webhook: backup_succeeded first answered 503 and waits; restore_failed went through.
            var posts = receiver.posts()
            #expect(posts.map(\.status) == [503, 200])
            let restorePost = try #require(posts.last)
            #expect(restorePost.headers["x-bunker-event"] == "restore_failed")
            #expect(restorePost.headers["x-bunker-signature"] == WebhookNotifier.signature(of: Data(restorePost.body.utf8), secret: "hook-secret"))
            let json = try #require(try JSONSerialization.jsonObject(with: Data(restorePost.body.utf8)) as? [String: Any])
            #expect(json["event"] as? String == "restore_failed")
            #expect(json["severity"] as? String == "critical")
            #expect((json["text"] as? String)?.hasPrefix("*Restore of snapshot") == true, "a Slack-compatible text field")
            #expect((json["facts"] as? [String: String])?["Safety snapshot"] == safety.id.hex)

            let waiting = try #require(service.notificationOutbox()?.pending.first { $0.channel == "webhook:ops" })
            #expect(waiting.lastError?.contains("http://127.0.0.1:\(receiver.port)/…") == true, "\(waiting.lastError ?? "")")
            #expect(waiting.lastError?.contains("/hooks/bunker") == false, "the URL's path (a secret for chats) is never shown")

            clock.advance(by: 61)
            await service.deliverNotifications()
            posts = receiver.posts()
            #expect(posts.map(\.status) == [503, 200, 200], "the backup's post is retried and delivered")
            #expect(posts.last?.headers["x-bunker-event"] == "backup_succeeded")

            // A forged signature is what a receiver must refuse.
            #expect(WebhookNotifier.signature(of: Data(restorePost.body.utf8), secret: "other") != restorePost.headers["x-bunker-signature"])
            }
        }
    }

    /// `[[source]] clinic`: the database `clinic` of `cluster`, dumped as `user` (the superuser by default).
    func clinicSource(_ cluster: PostgresCluster, user: String? = nil) -> String {
        """

            [[source]]
            name = "clinic"
            kind = "postgres"
            host = "\(cluster.socketDirectory)"
            port = \(cluster.port)
            database = "clinic"
            user = "\(user ?? cluster.user)"
            """
    }

    func decodedText(_ raw: String) -> String {
        let part = raw.components(separatedBy: "Content-Transfer-Encoding: base64\r\n\r\n")[1].components(separatedBy: "\r\n--")[0]
        return String(decoding: Data(base64Encoded: part.replacingOccurrences(of: "\r\n", with: "")) ?? Data(), as: UTF8.self)
    }
}
