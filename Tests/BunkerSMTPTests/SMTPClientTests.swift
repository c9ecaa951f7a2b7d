import BunkerCore
import BunkerSMTP
import BunkerTesting
import Foundation
import Testing

/// Sends real mail to a real SMTP server (aiosmtpd) on loopback.
@Suite(.serialized) struct SMTPClientTests {
    func message(to: [String] = ["admin@clinic.example", "Dr. Müller <ops@clinic.example>"]) -> MailMessage {
        MailMessage(
            from: MailAddress("bunker@clinic.example", name: "Bunker Backups"),
            to: to.map { text in
                if let open = text.firstIndex(of: "<") {
                    return MailAddress(String(text[text.index(after: open)..<text.index(before: text.endIndex)]), name: String(text[..<open]).trimmingCharacters(in: .whitespaces))
                }
                return MailAddress(text)
            },
            subject: "Backup succeeded – app-db, 12.5 MB",
            text: "Snapshot 1a2b3c4d\n.a line that starts with a dot\nChecksum: sha256:00ff",
            html: "<p>Snapshot <b>1a2b3c4d</b></p>")
    }

    func settings(_ server: SMTPTestServer, _ security: SMTPSettings.Security, password: String? = nil) -> SMTPSettings {
        SMTPSettings(host: "localhost", port: server.port, security: security, username: server.mode == .plain ? nil : server.user,
                     password: password ?? server.password, timeout: 5, trustedCertificatesFile: server.certificateFile)
    }

    /// The body parts of a MIME message, decoded.
    func decodedParts(_ raw: String) -> [String] {
        raw.components(separatedBy: "Content-Transfer-Encoding: base64\r\n\r\n").dropFirst().compactMap { part in
            let base64 = part.components(separatedBy: "\r\n--")[0].replacingOccurrences(of: "\r\n", with: "")
            return Data(base64Encoded: base64).map { String(decoding: $0, as: UTF8.self) }
        }
    }

    @Test(arguments: [SMTPTestServer.Mode.starttls, .tls])
    func deliversToEveryRecipientOverTLSWithAuth(mode: SMTPTestServer.Mode) async throws {
        try await withTemporaryDirectory { dir in
            let server = try SMTPTestServer.start(mode: mode, in: dir)
            defer { server.stop() }
            try await SMTPClient(settings: settings(server, mode == .tls ? .tls : .starttls)).send(message())

            let received = server.messages()
            #expect(received.count == 1)
            let (raw, envelope) = try #require(received.first)
            #expect(envelope["to"] as? [String] == ["admin@clinic.example", "ops@clinic.example"])
            #expect(envelope["from"] as? String == "bunker@clinic.example")
            #expect(envelope["login"] as? String == "bunker", "the client authenticated")
            #expect(envelope["tls"] as? Bool == true, "over TLS")
            #expect(raw.contains("Subject: =?utf-8?b?"), "a non-ASCII subject is encoded")
            #expect(raw.contains("From: Bunker Backups <bunker@clinic.example>"))
            let parts = decodedParts(raw)
            #expect(parts.count == 2)
            #expect(parts.first == "Snapshot 1a2b3c4d\r\n.a line that starts with a dot\r\nChecksum: sha256:00ff")
            #expect(parts.last == "<p>Snapshot <b>1a2b3c4d</b></p>")
        }
    }

    @Test func aWrongPasswordIsRefusedAndNotWorthRetrying() async throws {
        try await withTemporaryDirectory { dir in
            let server = try SMTPTestServer.start(mode: .starttls, in: dir)
            defer { server.stop() }
            do {
                try await SMTPClient(settings: settings(server, .starttls, password: "wrong")).send(message())
                Issue.record("a wrong password was accepted")
            } catch let error as BunkerError {
                #expect(error.code == .network)
                #expect(error.message.contains("refused AUTH"), "\(error.message)")
                #expect(error.message.contains("535"), "the server's reply is quoted: \(error.message)")
                #expect(!SMTPFailure.isTransient(error))
                #expect(!error.message.contains(server.password), "the password is never in a message")
            }
            #expect(server.messages().isEmpty)
        }
    }

    @Test func anUntrustedCertificateIsRefused() async throws {
        try await withTemporaryDirectory { dir in
            let server = try SMTPTestServer.start(mode: .tls, in: dir)
            defer { server.stop() }
            var untrusted = settings(server, .tls)
            untrusted.trustedCertificatesFile = nil
            await #expect(throws: BunkerError.self) { try await SMTPClient(settings: untrusted).send(message()) }
            #expect(server.messages().isEmpty)
        }
    }

    @Test func aServerThatIsDownIsATransientError() async throws {
        let port = try freeTCPPort()
        do {
            try await SMTPClient(settings: SMTPSettings(host: "127.0.0.1", port: port, security: .starttls, timeout: 2)).send(message())
            Issue.record("sent to a server that is not there")
        } catch let error as BunkerError {
            #expect(error.code == .network)
            #expect(error.message.contains("Cannot connect to the mail server 127.0.0.1:\(port)"), "\(error.message)")
            #expect(SMTPFailure.isTransient(error))
        }
    }

    @Test func aServerThatSaysNothingTimesOut() async throws {
        // A listener that accepts and never speaks.
        let (fd, port) = try listeningSocket()
        defer { close(fd) }
        do {
            try await SMTPClient(settings: SMTPSettings(host: "127.0.0.1", port: port, security: .starttls, timeout: 1)).send(message())
            Issue.record("a silent server was taken for a working one")
        } catch let error as BunkerError {
            #expect(error.message.contains("did not answer within 1 s at the greeting"), "\(error.message)")
            #expect(SMTPFailure.isTransient(error))
        }
    }

    @Test func theReplyToTheMessageMayTakeLongerThanTheTimeout() async throws {
        // A server that checks the message for two seconds before it accepts it, with a client
        // timeout of one: RFC 5321 gives this reply ten minutes.
        let (listener, port) = try listeningSocket(backlog: 1)
        defer { close(listener) }
        ScriptedConnection.serveOnce(listener) { connection in
            connection.say("220 slow ESMTP\r\n")
            while true {
                let heard = connection.hear(until: "\r\n")
                if heard.isEmpty || heard.hasPrefix("QUIT") {
                    connection.say("221 bye\r\n")
                    return
                } else if heard.hasPrefix("DATA") {
                    connection.say("354 go ahead\r\n")
                    _ = connection.hear(until: "\r\n.\r\n")
                    Thread.sleep(forTimeInterval: 2)
                    connection.say("250 queued\r\n")
                } else {
                    connection.say("250 ok\r\n")
                }
            }
        }
        try await SMTPClient(settings: SMTPSettings(host: "127.0.0.1", port: port, security: .none, timeout: 1)).send(message())
    }

    @Test func thePasswordIsNeverSentUnencrypted() async throws {
        let settings = SMTPSettings(host: "127.0.0.1", port: 1, security: .none, username: "u", password: "p")
        await #expect {
            try await SMTPClient(settings: settings).send(message())
        } throws: { error in
            (error as? BunkerError)?.message.hasPrefix("Refusing to send the SMTP password unencrypted") == true
        }
    }

    @Test func dataInjectedBeforeTLSBeginsEndsTheSession() async throws {
        // A "server" (a man in the middle) that agrees to STARTTLS and, in the same packet,
        // slips in a reply meant to be read as if it came under TLS.
        let (listener, port) = try listeningSocket(backlog: 1)
        defer { close(listener) }
        ScriptedConnection.serveOnce(listener) { connection in
            connection.say("220 mitm ESMTP\r\n")
            _ = connection.hear(until: "\r\n")  // EHLO
            connection.say("250-mitm\r\n250 STARTTLS\r\n")
            _ = connection.hear(until: "\r\n")  // STARTTLS
            connection.say("220 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n")
            _ = connection.hear(until: "\r\n")
        }
        do {
            try await SMTPClient(settings: SMTPSettings(host: "127.0.0.1", port: port, security: .starttls, timeout: 5)).send(message())
            Issue.record("the client went on after data injected before TLS")
        } catch let error as BunkerError {
            #expect(error.message.contains("sent data after agreeing to STARTTLS"), "\(error.message)")
            #expect(!SMTPFailure.isTransient(error))
        }
    }

    /// A server that refuses `nobody@` for good (550) and `later@` for now (450), and accepts
    /// everyone else and the message; what the client sent is collected in `heard`.
    private func refusingServer(_ listener: Int32, heard: Heard) {
        ScriptedConnection.serveOnce(listener) { connection in
            connection.say("220 picky ESMTP\r\n")
            while true {
                let line = connection.hear(until: "\r\n")
                heard.add(line)
                if line.isEmpty || line.hasPrefix("QUIT") {
                    connection.say("221 bye\r\n")
                    return
                } else if line.hasPrefix("RCPT TO:<nobody@") {
                    connection.say("550 5.1.1 no such mailbox\r\n")
                } else if line.hasPrefix("RCPT TO:<later@") {
                    connection.say("450 4.2.1 mailbox busy, try again\r\n")
                } else if line.hasPrefix("DATA") {
                    connection.say("354 go ahead\r\n")
                    heard.add(connection.hear(until: "\r\n.\r\n"))
                    connection.say("250 queued\r\n")
                } else {
                    connection.say("250 ok\r\n")
                }
            }
        }
    }

    @Test func aRecipientRefusedForGoodIsLeftOutAndTheOthersGetTheMessage() async throws {
        let (listener, port) = try listeningSocket(backlog: 1)
        defer { close(listener) }
        let heard = Heard()
        refusingServer(listener, heard: heard)
        try await SMTPClient(settings: SMTPSettings(host: "127.0.0.1", port: port, security: .none, timeout: 5))
            .send(message(to: ["nobody@clinic.example", "admin@clinic.example"]))
        let lines = heard.lines
        #expect(lines.contains("RCPT TO:<nobody@clinic.example>\r\n"))
        #expect(lines.contains("RCPT TO:<admin@clinic.example>\r\n"))
        #expect(lines.contains("DATA\r\n"), "the message went to the recipient the server accepted")
    }

    @Test func aRecipientRefusedForNowFailsTheAttemptWorthRetrying() async throws {
        let (listener, port) = try listeningSocket(backlog: 1)
        defer { close(listener) }
        let heard = Heard()
        refusingServer(listener, heard: heard)
        do {
            try await SMTPClient(settings: SMTPSettings(host: "127.0.0.1", port: port, security: .none, timeout: 5))
                .send(message(to: ["admin@clinic.example", "later@clinic.example"]))
            Issue.record("a temporary refusal was taken for a delivery")
        } catch let error as BunkerError {
            #expect(error.code == .network)
            #expect(error.message.contains("refused RCPT TO later@clinic.example: 450"), "\(error.message)")
            #expect(SMTPFailure.isTransient(error))
        }
        #expect(!heard.lines.contains("DATA\r\n"), "no message is sent while a recipient may still accept it")
    }

    @Test func everyRecipientRefusedForGoodIsAFailureNotWorthRetrying() async throws {
        let (listener, port) = try listeningSocket(backlog: 1)
        defer { close(listener) }
        refusingServer(listener, heard: Heard())
        do {
            try await SMTPClient(settings: SMTPSettings(host: "127.0.0.1", port: port, security: .none, timeout: 5))
                .send(message(to: ["nobody@clinic.example"]))
            Issue.record("a refused recipient was taken for a delivery")
        } catch let error as BunkerError {
            #expect(error.message.hasPrefix("The mail server refused every recipient: nobody@clinic.example ("), "\(error.message)")
            #expect(error.message.contains("550 5.1.1 no such mailbox"), "\(error.message)")
            #expect(!SMTPFailure.isTransient(error))
        }
    }

    @Test func dotsAtTheStartOfALineAreDoubled() {
        #expect(SMTPClient.dotStuffedForTesting(".a\r\nb\r\n.c") == "..a\r\nb\r\n..c\r\n")
    }
}

/// One connection of a fake server, accepted on a thread of its own and driven by a script.
private struct ScriptedConnection {
    let fd: Int32

    /// Accepts one connection on `listener` and runs `script` on it in a new thread.
    static func serveOnce(_ listener: Int32, _ script: @escaping @Sendable (ScriptedConnection) -> Void) {
        Thread {
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { return }
            defer { close(fd) }
            script(ScriptedConnection(fd: fd))
        }.start()
    }

    func say(_ text: String) { _ = text.withCString { write(fd, $0, strlen($0)) } }

    /// What the client sends until it ends with `end` (or closes: then what came, maybe "").
    func hear(until end: String) -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var heard = ""
        while !heard.hasSuffix(end) {
            let n = read(fd, &buffer, buffer.count)
            guard n > 0 else { break }
            heard += String(decoding: buffer[0..<n], as: UTF8.self)
        }
        return heard
    }
}

/// What a scripted server heard, read by the test after the client is done.
private final class Heard: @unchecked Sendable {
    private let lock = NSLock()
    private var collected: [String] = []

    func add(_ line: String) { lock.withLock { collected.append(line) } }
    var lines: [String] { lock.withLock { collected } }
}
