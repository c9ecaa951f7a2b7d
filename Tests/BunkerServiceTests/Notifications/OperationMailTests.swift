import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Testing

/// The e-mails of real operations, as the real mail server (aiosmtpd, AUTH required) receives
/// them: a backup that fails, a restore that succeeds, the Clinical Dashboard's mail settings from
/// the environment, and the overdue threshold as one line of configuration.
extension OperationNotificationTests {
    /// The text body of the one message whose subject is `subject`, with its CRLF line ends as `\n`.
    func mailBody(_ server: SMTPTestServer, subject: String) throws -> String {
        let matching = server.messages().filter { headers($0.message).contains("Subject: \(subject)") }
        try #require(matching.count == 1, "one message \"\(subject)\" among \(server.messages().map { $0.message.prefix(400) })")
        return decodedText(matching[0].message).replacingOccurrences(of: "\r\n", with: "\n")
    }

    /// A raw message's header lines.
    func headers(_ raw: String) -> [String] {
        raw.components(separatedBy: "\r\n\r\n")[0].components(separatedBy: "\r\n")
    }

    /// The numbered lines under `heading` in a text body, without their indentation.
    func listedActions(_ body: String, heading: String) -> [String] {
        guard let start = body.range(of: "\n\(heading):\n") else { return [] }
        return body[start.upperBound...].split(separator: "\n", omittingEmptySubsequences: false)
            .prefix { $0.hasPrefix("  ") }
            .map { String($0.drop { $0 == " " }) }
    }

    @Test func aBackupWhoseSourceIsGoneSendsTheFailureMailWithTheErrorAndTheRecommendedActions() async throws {
        try await withTemporaryDirectory { dir in
            let server = try SMTPTestServer.start(mode: .starttls, in: dir + "/smtp")
            defer { server.stop() }
            let service = try await service(dir, smtpPort: server.port, clock: ManualClock(Date()))
            try FileManager.default.removeItem(atPath: dir + "/studies")

            let error = try await #require(throws: BunkerError.self) {
                try await service.backup(SourceBackupRequest(), by: AuditActor(name: "alice", channel: .cli))
            }
            #expect(error.code == .sourceIO)
            #expect(error.message.contains("\(dir)/studies does not exist"), "the error names the path that is gone: \(error.message)")
            #expect(try await service.repository.snapshots().isEmpty)
            let body = try mailBody(server, subject: "[Bunker] FAILED: Backup of studies failed")
            #expect(body.contains("Error: \(error.message)"), "\(body)")
            #expect(body.contains("Sources: studies"))
            let actions = listedActions(body, heading: "Recommended actions")
            #expect(actions.first?.hasPrefix("1. Check that the database server is up") == true, "\(actions)")
            #expect(actions.first?.contains("the source's folder exists (its volume mounted)") == true, "\(actions)")
            #expect(actions.contains { $0.contains("Run `bunker backup` again once the cause is fixed") }, "\(actions)")
            #expect(actions.contains { $0.contains("Run `bunker verify`") }, "\(actions)")
        }
    }

    @Test func aBackupThatPgDumpRefusesSendsTheFailureMailWithPgDumpsErrorAndWhatToCheck() async throws {
        try await withTemporaryDirectory { dir in
            let server = try SMTPTestServer.start(mode: .starttls, in: dir + "/smtp")
            defer { server.stop() }
            try await withPostgres { cluster in
                try cluster.psql("CREATE DATABASE clinic")
                try cluster.psql("CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'private')", database: "clinic")
                // A login role that may connect but not read the table: the server refuses pg_dump.
                try cluster.psql("CREATE ROLE outsider LOGIN")
                let service = try await service(dir, smtpPort: server.port, extraSource: clinicSource(cluster, user: "outsider"), clock: ManualClock(Date()))

                let error = try await #require(throws: BunkerError.self) {
                    try await service.backup(SourceBackupRequest(type: .database), by: AuditActor(name: "alice", channel: .cli))
                }
                #expect(error.code == .sourceIO)
                #expect(error.message.contains("permission denied"), "pg_dump's own words: \(error.message)")
                #expect(try await service.repository.snapshots().isEmpty)
                let body = try mailBody(server, subject: "[Bunker] FAILED: Backup of clinic failed")
                #expect(body.contains("Error: \(error.message)"), "\(body)")
                #expect(body.contains("Backup type: database"))
                let actions = listedActions(body, heading: "Recommended actions")
                #expect(actions.first?.hasPrefix("1. Check that the database server is up and reachable with the configured user") == true,
                        "what to check first for a source that refused: \(actions)")
                #expect(actions.count == 4, "\(actions)")
            }
        }
    }

    @Test func aSuccessfulRestoreSendsThePostRestoreChecklist() async throws {
        try await withTemporaryDirectory { dir in
            let server = try SMTPTestServer.start(mode: .starttls, in: dir + "/smtp")
            defer { server.stop() }
            let service = try await service(dir, smtpPort: server.port, clock: ManualClock(Date()))
            let backup = try await service.backup(SourceBackupRequest(), by: AuditActor(name: "alice", channel: .cli))
            try Data("overwritten by mistake\n".utf8).write(to: URL(fileURLWithPath: dir + "/studies/notes.txt"))

            var request = SourceRestoreRequest(snapshot: backup.snapshotID.hex)
            request.reason = "ticket 77: notes overwritten"
            let outcome = try await service.restore(request, by: AuditActor(name: "alice", channel: .cli))
            #expect(try String(contentsOfFile: dir + "/studies/notes.txt", encoding: .utf8) == "visit notes\n")
            let safety = try #require(outcome.safetySnapshotID)

            let body = try mailBody(server, subject: "[Bunker] Restore of snapshot \(backup.snapshotID.hex.prefix(8)) succeeded")
            #expect(body.contains("Snapshot restored: \(backup.snapshotID.hex)"), "\(body)")
            #expect(body.contains("Reason: ticket 77: notes overwritten"))
            #expect(body.contains("Safety snapshot: \(safety)"))
            #expect(!body.contains("Recommended actions:"), "a success has a checklist, not remedies")
            let checklist = listedActions(body, heading: "Post-restore checklist")
            #expect(checklist.count == 5, "\(body)")
            #expect(checklist.first == "1. Start the application and confirm it opens the restored data.")
            #expect(checklist.contains { $0.contains("Keep safety snapshot \(safety.prefix(8)) until the restore is confirmed") }, "\(checklist)")
            #expect(checklist.last?.contains("Run `bunker backup` so that the restored state has a fresh backup.") == true)
        }
    }

    @Test func smtpUserAndTheSenderFromTheEnvironmentReachTheMailServer() async throws {
        try await withTemporaryDirectory { dir in
            let server = try SMTPTestServer.start(mode: .starttls, in: dir + "/smtp")
            defer { server.stop() }
            // The file's login is wrong and its sender another: only the variables make the mail go
            // through (the server refuses mail without AUTH, and any other login) and sign it as configured.
            let service = try await service(
                dir, smtpPort: server.port, clock: ManualClock(Date()),
                smtpIdentity: "user = \"nobody\"\nfrom_email = \"file@clinic.example\"\nfrom_name = \"From The File\"",
                environment: ["SMTP_USER": server.user, "EMAILS_FROM_EMAIL": "backups@dermai.example", "EMAILS_FROM_NAME": "DermAI Backups"])
            _ = try await service.backup(SourceBackupRequest(), by: AuditActor(name: "alice", channel: .cli))

            let (raw, envelope) = try #require(server.messages().first)
            #expect(envelope["login"] as? String == server.user, "AUTH was seen, with SMTP_USER: \(envelope)")
            #expect(envelope["tls"] as? Bool == true, "after STARTTLS")
            #expect(envelope["from"] as? String == "backups@dermai.example", "the envelope sender is EMAILS_FROM_EMAIL")
            #expect(headers(raw).contains("From: DermAI Backups <backups@dermai.example>"), "\(headers(raw))")
            #expect(!raw.contains("file@clinic.example"))
            #expect(!raw.contains("From The File"))
        }
    }

    /// The overdue alerts a check raises (a full disk on the test machine may raise others).
    func overdue(_ service: BunkerService) async -> [NotificationEvent] {
        await service.checkAlerts().filter { $0.kind == .backupOverdue }
    }

    @Test func noBackupIn48HoursIsOneLineOfConfiguration() async throws {
        try await withTemporaryDirectory { dir in
            let server = try SMTPTestServer.start(mode: .starttls, in: dir + "/smtp")
            defer { server.stop() }
            for name in ["dermai", "dashboard"] {
                try FileManager.default.createDirectory(atPath: dir + "/\(name)/smtp", withIntermediateDirectories: true)
                try FileManager.default.copyItem(atPath: server.certificateFile, toPath: dir + "/\(name)/smtp/cert.pem")
            }
            let clock = ManualClock(Date())
            let dermai = try await service(dir + "/dermai", smtpPort: server.port, clock: clock)
            let dashboard = try await service(dir + "/dashboard", smtpPort: server.port, clock: clock, notifications: "backup_overdue_hours = 48")
            #expect(dermai.configuration.notifications.backupOverdueHours == 25, "the DermAI backup strategy's default")
            #expect(dashboard.configuration.notifications.backupOverdueHours == 48)
            for service in [dermai, dashboard] {
                _ = try await service.backup(SourceBackupRequest(), by: AuditActor(name: "alice", channel: .cli))
                #expect(await overdue(service).isEmpty)
            }

            clock.advance(by: 30 * 3600)
            #expect(await overdue(dermai).count == 1, "25 h have passed")
            #expect(await overdue(dashboard).isEmpty, "48 h have not")

            clock.advance(by: 19 * 3600)
            let alerts = await overdue(dashboard)
            #expect(alerts.count == 1, "49 h after the backup")
            #expect(alerts.first?.fact("Threshold") == "48 hours")
            let body = try mailBody(server, subject: "[Bunker] Warning: No successful backup for 49.0 hours")
            #expect(body.contains("Threshold: 48 hours"), "the mail says which threshold was passed")
        }
    }
}
