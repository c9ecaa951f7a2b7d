import BunkerCore
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// Sends mail to one server over SMTP (RFC 5321): EHLO, STARTTLS or implicit TLS, AUTH PLAIN or
/// LOGIN, MAIL FROM, RCPT TO for each recipient, DATA, QUIT.
///
/// Every step waits at most ``SMTPSettings/timeout`` for the server. A failure throws a
/// ``BunkerError`` with code `network` that says which step failed and what the server said;
/// the caller decides whether to retry (``SMTPFailure/isTransient``: 4xx replies and connection
/// problems are worth retrying, 5xx replies are not).
public struct SMTPClient: Sendable {
    public let settings: SMTPSettings
    private let group: any EventLoopGroup
    /// Seconds to wait for the reply to the end of a message (RFC 5321 §4.5.3.2.6), when the
    /// settings' timeout for every other reply is shorter.
    static let endOfDataTimeout: Double = 600

    public init(settings: SMTPSettings, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.settings = settings
        self.group = group
    }

    /// Delivers `message` to every recipient the server accepts, or throws; recipients that are
    /// not addresses are left out, and so are those the server refuses for good, as long as one
    /// is accepted.
    public func send(_ message: MailMessage) async throws {
        var message = message
        message.to = message.to.filter(\.isValid)
        guard !message.to.isEmpty else {
            throw SMTPFailure.error("The message has no recipient with a valid e-mail address.", transient: false)
        }
        for address in [message.from] where !address.isValid {
            throw SMTPFailure.error("\"\(address.email)\" is not an e-mail address; correct it in the user's profile or in EMAILS_FROM_EMAIL.", transient: false)
        }
        if settings.username != nil && settings.security == .none {
            throw SMTPFailure.error("Refusing to send the SMTP password unencrypted: set tls = \"starttls\" or \"tls\" (SMTP_TLS), or remove the user.", transient: false)
        }
        let tls = try makeTLSContext()
        let session = try await SMTPSession.connect(settings: settings, group: group, implicitTLS: settings.security == .tls ? tls : nil)
        do {
            try await session.expect(220, "the greeting")
            var features = try await session.command("EHLO \(settings.clientName)", expect: 250, "EHLO")
            if settings.security == .starttls {
                guard features.contains(where: { $0.uppercased().hasPrefix("STARTTLS") }) else {
                    throw SMTPFailure.error("\(settings.host):\(settings.port) does not offer STARTTLS; set tls = \"tls\" for port 465, or check the server.", transient: false)
                }
                _ = try await session.command("STARTTLS", expect: 220, "STARTTLS")
                try await session.startTLS(tls!, serverHostname: settings.host)
                features = try await session.command("EHLO \(settings.clientName)", expect: 250, "EHLO after STARTTLS")
            }
            if let user = settings.username {
                try await authenticate(session, user: user, password: settings.password ?? "", features: features)
            }
            _ = try await session.command("MAIL FROM:<\(message.from.email)>", expect: 250, "MAIL FROM")
            // A recipient the server refuses for good (an unknown mailbox) does not stop the
            // message to the others; a temporary refusal fails the attempt, to be retried whole.
            var refused: [String] = []
            for recipient in message.to {
                do {
                    _ = try await session.command("RCPT TO:<\(recipient.email)>", expect: [250, 251], "RCPT TO \(recipient.email)")
                } catch let refusal as SMTPRefusal where !refusal.isTransient {
                    refused.append("\(recipient.email) (\(refusal.error.message))")
                }
            }
            guard refused.count < message.to.count else {
                throw SMTPFailure.error("The mail server refused every recipient: \(refused.joined(separator: "; "))", transient: false)
            }
            _ = try await session.command("DATA", expect: 354, "DATA")
            // The server may check the whole message (spam and virus filters) before it answers:
            // RFC 5321 §4.5.3.2.6 asks clients to wait 10 minutes for this reply.
            _ = try await session.command(Self.dotStuffed(message.rendered()) + ".", expect: [250], "the message",
                                          timeout: max(settings.timeout, SMTPClient.endOfDataTimeout))
            _ = try? await session.command("QUIT", expect: 221, "QUIT")
            await session.close()
        } catch let refusal as SMTPRefusal {
            await session.close()
            throw refusal.error
        } catch {
            await session.close()
            throw error
        }
    }

    private func authenticate(_ session: SMTPSession, user: String, password: String, features: [String]) async throws {
        let auth = features.first { $0.uppercased().hasPrefix("AUTH") }?.uppercased().split(separator: " ").map(String.init) ?? []
        func b64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }
        if auth.contains("PLAIN") || !auth.contains("LOGIN") {
            _ = try await session.command("AUTH PLAIN " + b64("\u{0}\(user)\u{0}\(password)"), expect: 235, "AUTH PLAIN", secret: true)
        } else {
            _ = try await session.command("AUTH LOGIN", expect: 334, "AUTH LOGIN")
            _ = try await session.command(b64(user), expect: 334, "AUTH LOGIN (user)", secret: true)
            _ = try await session.command(b64(password), expect: 235, "AUTH LOGIN (password)", secret: true)
        }
    }

    private func makeTLSContext() throws -> NIOSSLContext? {
        guard settings.security != .none else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let file = settings.trustedCertificatesFile {
            do {
                let extra = try NIOSSLCertificate.fromPEMFile(file)
                configuration.additionalTrustRoots = [.certificates(extra)]
            } catch {
                throw SMTPFailure.error("Cannot read the trusted certificates in \(file): \(error).", transient: false)
            }
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw SMTPFailure.error("Cannot set up TLS: \(error).", transient: false)
        }
    }

    /// ``dotStuffed(_:)``, for tests.
    public static func dotStuffedForTesting(_ text: String) -> String { dotStuffed(text) }

    /// Doubles a leading dot on every line, and makes sure the text ends with CRLF.
    static func dotStuffed(_ text: String) -> String {
        var out = text.replacingOccurrences(of: "\r\n.", with: "\r\n..")
        if out.hasPrefix(".") { out = "." + out }
        if !out.hasSuffix("\r\n") { out += "\r\n" }
        return out
    }
}

/// Why a delivery failed, for the retry decision.
public enum SMTPFailure {
    /// The error SMTP failures are reported with; `transient` says whether a retry may help.
    static func error(_ message: String, transient: Bool) -> BunkerError {
        BunkerError(.network, message, cause: transient ? Transient() : nil)
    }

    struct Transient: Error, CustomStringConvertible, Sendable {
        var description: String { "temporary" }
    }

    /// Whether a retry may succeed: connection problems, timeouts and 4xx replies.
    public static func isTransient(_ error: any Error) -> Bool {
        guard let error = error as? BunkerError else { return true }
        return error.cause is Transient
    }
}

/// A reply of the server other than the one a command expects, thrown by ``SMTPSession`` and
/// turned into the ``BunkerError`` callers see when it leaves ``SMTPClient/send(_:)``, so that the
/// client decides on the reply's code (a recipient refused for good), never on a message's wording.
struct SMTPRefusal: Error, Sendable {
    /// The server's reply code.
    let code: Int
    /// The server's host, the step that was refused and what the server said.
    let host: String
    let step: String
    let said: String

    /// 4xx replies: the server may accept later.
    var isTransient: Bool { (400..<500).contains(code) }

    var error: BunkerError {
        SMTPFailure.error("The mail server \(host) refused \(step): \(said)", transient: isTransient)
    }
}

/// One connection: the channel, and the server's reply lines as they arrive.
final class SMTPSession: Sendable {
    private let channel: any Channel
    private let lines: LineQueue
    private let settings: SMTPSettings

    private init(channel: any Channel, lines: LineQueue, settings: SMTPSettings) {
        self.channel = channel
        self.lines = lines
        self.settings = settings
    }

    static func connect(settings: SMTPSettings, group: any EventLoopGroup, implicitTLS: NIOSSLContext?) async throws -> SMTPSession {
        let lines = LineQueue()
        let host = settings.host
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.milliseconds(Int64(settings.timeout * 1000)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let implicitTLS {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: implicitTLS, serverHostname: Self.sniName(host)))
                    }
                    try channel.pipeline.syncOperations.addHandler(ReplyLineHandler(lines: lines))
                }
            }
        do {
            let channel = try await bootstrap.connect(host: settings.host, port: settings.port).get()
            return SMTPSession(channel: channel, lines: lines, settings: settings)
        } catch {
            throw SMTPFailure.error("Cannot connect to the mail server \(settings.host):\(settings.port): \(error). Check SMTP_HOST and SMTP_PORT, and that the server is up.", transient: true)
        }
    }

    /// SNI takes host names only, not addresses.
    static func sniName(_ host: String) -> String? {
        host.contains(":") || host.allSatisfy({ $0.isNumber || $0 == "." }) ? nil : host
    }

    /// Sends a command line and reads the reply; throws unless its code is one of `codes`.
    @discardableResult
    func command(_ line: String, expect codes: Set<Int>, _ step: String, secret: Bool = false, timeout: Double? = nil) async throws -> [String] {
        do {
            try await channel.writeAndFlush(ByteBuffer(string: line + "\r\n"))
        } catch {
            throw SMTPFailure.error("The mail server \(settings.host) closed the connection before \(step): \(error).", transient: true)
        }
        return try await expect(codes, step, timeout: timeout)
    }

    func command(_ line: String, expect code: Int, _ step: String, secret: Bool = false) async throws -> [String] {
        try await command(line, expect: [code], step, secret: secret)
    }

    /// Reads one reply (all its lines) within `timeout` seconds (the settings' by default);
    /// throws unless its code is one of `codes`.
    @discardableResult
    func expect(_ codes: Set<Int>, _ step: String, timeout: Double? = nil) async throws -> [String] {
        var texts: [String] = []
        let timeout = timeout ?? settings.timeout
        let deadline = channel.eventLoop.scheduleTask(in: .milliseconds(Int64(timeout * 1000))) { [lines, channel] in
            lines.markTimedOut()
            channel.close(promise: nil)
        }
        defer { deadline.cancel() }
        while true {
            guard let line = await lines.next() else {
                let why = lines.timedOut ? "did not answer within \(Int(timeout)) s" : "closed the connection"
                throw SMTPFailure.error("The mail server \(settings.host):\(settings.port) \(why) at \(step)\(lines.failure.map { " (\($0))" } ?? "").", transient: true)
            }
            guard line.count >= 3, let code = Int(line.prefix(3)) else {
                throw SMTPFailure.error("The mail server \(settings.host) sent a line that is not SMTP at \(step): \(line.prefix(100))", transient: false)
            }
            texts.append(String(line.dropFirst(4)))
            if line.count == 3 || line[line.index(line.startIndex, offsetBy: 3)] == " " {
                guard codes.contains(code) else {
                    let said = "\(code) \(texts.joined(separator: " "))"
                    throw SMTPRefusal(code: code, host: settings.host, step: step, said: said)
                }
                return texts
            }
        }
    }

    func expect(_ code: Int, _ step: String) async throws {
        try await expect([code], step)
    }

    /// Puts TLS under the connection (after the server's 220 to STARTTLS).
    ///
    /// Anything the server sent after its 220 and before TLS began would be read as the first
    /// reply under TLS: a man in the middle can inject replies that way (CVE-2011-0411), so such
    /// data ends the session instead.
    func startTLS(_ context: NIOSSLContext, serverHostname: String) async throws {
        let name = Self.sniName(serverHostname)
        let host = settings.host
        try await channel.eventLoop.submit { [channel, lines] in
            let reader = try channel.pipeline.syncOperations.handler(type: ReplyLineHandler.self)
            guard !lines.hasPending, !reader.hasPartialLine else {
                throw SMTPFailure.error("The mail server \(host) sent data after agreeing to STARTTLS and before TLS began, as a man in the middle would; the session was ended. Check the network path to the server.", transient: false)
            }
            let handler = try NIOSSLClientHandler(context: context, serverHostname: name)
            try channel.pipeline.syncOperations.addHandler(handler, position: .first)
        }.get()
    }

    func close() async {
        try? await channel.close()
    }
}

/// Reply lines from the channel handler to the session, in order.
final class LineQueue: Sendable {
    private struct State {
        var lines: [String] = []
        var waiter: CheckedContinuation<String?, Never>?
        var finished = false
        var timedOut = false
        var failure: String?
    }
    private let state = NIOLockedValueBox(State())

    func push(_ line: String) {
        let waiter = state.withLockedValue { s -> CheckedContinuation<String?, Never>? in
            if let w = s.waiter { s.waiter = nil; return w }
            s.lines.append(line)
            return nil
        }
        waiter?.resume(returning: line)
    }

    func finish(failure: String? = nil) {
        let waiter = state.withLockedValue { s -> CheckedContinuation<String?, Never>? in
            s.finished = true
            if s.failure == nil { s.failure = failure }
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: nil)
    }

    func markTimedOut() { state.withLockedValue { $0.timedOut = true } }
    /// Whether lines arrived that nobody has read yet.
    var hasPending: Bool { state.withLockedValue { !$0.lines.isEmpty } }
    var timedOut: Bool { state.withLockedValue { $0.timedOut } }
    var failure: String? { state.withLockedValue { $0.failure } }

    /// The next line, or nil once the connection is closed and every line was read.
    func next() async -> String? {
        await withCheckedContinuation { continuation in
            let ready = state.withLockedValue { s -> String?? in
                if !s.lines.isEmpty { return .some(s.lines.removeFirst()) }
                if s.finished { return .some(nil) }
                s.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// Splits the server's bytes into CRLF-terminated lines.
final class ReplyLineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let lines: LineQueue
    private var pending: [UInt8] = []

    init(lines: LineQueue) {
        self.lines = lines
    }

    /// Whether bytes of an unfinished line are waiting (call on the channel's event loop).
    var hasPartialLine: Bool { !pending.isEmpty }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        pending += buffer.readBytes(length: buffer.readableBytes) ?? []
        while let end = pending.firstIndex(of: UInt8(ascii: "\n")) {
            var line = Array(pending[..<end])
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            pending.removeSubrange(...end)
            lines.push(String(decoding: line, as: UTF8.self))
        }
        if pending.count > 64 << 10 {
            lines.finish(failure: "a reply line longer than 64 KiB")
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        lines.finish(failure: "\(error)")
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        lines.finish()
        context.fireChannelInactive()
    }
}
