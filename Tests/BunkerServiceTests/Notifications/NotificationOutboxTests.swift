import BunkerCore
import BunkerService
import BunkerSMTP
import BunkerTesting
import Foundation
import Testing

@Suite(.serialized) struct NotificationOutboxTests {
    let event = NotificationEvent(
        kind: .backupFailed, time: utc("2026-12-02T23:00:05Z"), title: "Backup of app-db failed",
        facts: [.init("Error", "pg_dump exited with 1"), .init("Sources", "app-db")],
        actions: ["Check that the database server is up.", "Run `bunker backup` again."], initiatedBy: "admin")
    let recipients = [MailAddress("admin@clinic.example", name: "Admin"), MailAddress("ops@clinic.example"), MailAddress("ADMIN@clinic.example")]

    @Test func aMailServerThatIsDownDelaysTheMessageAndTheRetryDeliversIt() async throws {
        try await withTemporaryDirectory { dir in
            let port = try freeTCPPort()
            // Made once for its certificate, then down: the first delivery finds nobody there.
            try SMTPTestServer.start(mode: .starttls, in: dir + "/smtp", port: port).stop()
            let clock = ManualClock(utc("2026-12-02T23:00:10Z"))
            let smtp = SMTPSettings(host: "localhost", port: port, security: .starttls, username: "bunker", password: "s3cret-for-tests",
                                    timeout: 5, trustedCertificatesFile: dir + "/smtp/cert.pem")
            let outbox = NotificationOutbox(directory: dir + "/outbox", notifiers: [EmailNotifier(settings: smtp, from: MailAddress("bunker@clinic.example", name: "Bunker"))],
                                            now: { clock.now })
            let ids = outbox.enqueue(event, recipients: recipients)
            #expect(ids.count == 1)

            let first = await outbox.deliverDue()
            #expect(first.map(\.delivered) == [false])
            #expect(first.first?.gaveUp == false, "a server that is down is worth another try")
            #expect(first.first?.error?.contains("Cannot connect") == true)
            #expect(first.first?.nextAttempt == clock.now.addingTimeInterval(60))
            #expect(outbox.pending.count == 1)

            let server = try SMTPTestServer.start(mode: .starttls, in: dir + "/smtp", port: port)
            defer { server.stop() }
            #expect(await outbox.deliverDue().isEmpty, "not before its time")
            clock.advance(by: 61)
            let second = await outbox.deliverDue()
            #expect(second.map(\.delivered) == [true])
            #expect(second.first?.attempts == 2)
            #expect(outbox.pending.isEmpty)

            let (raw, envelope) = try #require(server.messages().first)
            #expect(envelope["to"] as? [String] == ["admin@clinic.example", "ops@clinic.example"], "each address once")
            #expect(raw.contains("Subject: [Bunker] FAILED: Backup of app-db failed"))
            let text = try #require(Data(base64Encoded: raw.components(separatedBy: "base64\r\n\r\n")[1].components(separatedBy: "\r\n--")[0].replacingOccurrences(of: "\r\n", with: "")))
            let body = String(decoding: text, as: UTF8.self)
            #expect(body.contains("Error: pg_dump exited with 1"))
            #expect(body.contains("Recommended actions:\r\n  1. Check that the database server is up."))
            #expect(body.contains("Started by: admin"))
        }
    }

    @Test func aPermanentFailureIsSetAsideWithItsReason() async throws {
        try await withTemporaryDirectory { dir in
            let server = try SMTPTestServer.start(mode: .starttls, in: dir + "/smtp")
            defer { server.stop() }
            let smtp = SMTPSettings(host: "localhost", port: server.port, security: .starttls, username: "bunker", password: "wrong",
                                    timeout: 5, trustedCertificatesFile: server.certificateFile)
            let outbox = NotificationOutbox(directory: dir + "/outbox", notifiers: [EmailNotifier(settings: smtp, from: MailAddress("bunker@clinic.example"))])
            outbox.enqueue(event, recipients: recipients)
            let result = await outbox.deliverDue()
            #expect(result.first?.gaveUp == true)
            #expect(outbox.pending.isEmpty)
            #expect(outbox.failed.count == 1)
            #expect(outbox.failed.first?.lastError?.contains("535") == true)
        }
    }

    @Test func theDelayGrowsAndIsCapped() {
        #expect(NotificationOutbox.delayForTesting(afterAttempt: 1) == 60)
        #expect(NotificationOutbox.delayForTesting(afterAttempt: 3) == 240)
        #expect(NotificationOutbox.delayForTesting(afterAttempt: 20) == 6 * 3600)
    }

    @Test func eventsANotifierDoesNotWantAreNotQueued() async throws {
        try await withTemporaryDirectory { dir in
            let email = EmailNotifier(settings: SMTPSettings(host: "localhost"), from: MailAddress("b@c.d"), events: [.restoreFailed])
            let outbox = NotificationOutbox(directory: dir, notifiers: [email])
            #expect(outbox.enqueue(event, recipients: recipients).isEmpty)
        }
    }
}
