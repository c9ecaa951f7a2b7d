import AsyncHTTPClient
import BunkerCore
import BunkerSMTP
import Crypto
import Foundation
import NIOCore
import NIOHTTP1

/// A JSON POST per event to a configured URL (a chat, an incident tool, a script).
///
/// The body carries the event's fields and a Slack-compatible `text`. With a secret, the header
/// `X-Bunker-Signature: sha256=<hex>` is the HMAC-SHA-256 of the exact body bytes under the
/// secret, so the receiver can tell the post came from this Bunker; `X-Bunker-Delivery` is unique
/// per post, and the body's `time` lets a receiver refuse old replays. A 2xx answer delivers;
/// a connection problem, a timeout, 429 or 5xx is retried by the outbox; any other answer is not.
public struct WebhookNotifier: Notifier {
    public let name: String
    public let url: String
    let secret: String?
    public let events: Set<NotificationEvent.Kind>?
    public let timeout: Double

    public init(name: String, url: String, secret: String?, events: Set<NotificationEvent.Kind>? = nil, timeout: Double = 10) {
        self.name = name
        self.url = url
        self.secret = secret
        self.events = events
        self.timeout = timeout
    }

    public var channel: String { "webhook:\(name)" }

    /// The URL as errors, logs and the audit trail show it: scheme, host and port only, since a
    /// chat's incoming-webhook path is itself a secret.
    var shownURL: String {
        guard let parts = URLComponents(string: url), let scheme = parts.scheme, let host = parts.host else { return "(the configured URL)" }
        return "\(scheme)://\(host)\(parts.port.map { ":\($0)" } ?? "")/…"
    }

    public func wants(_ kind: NotificationEvent.Kind) -> Bool {
        events?.contains(kind) ?? true
    }

    /// The body posted for `event`.
    public static func body(for event: NotificationEvent, host: String = ProcessInfo.processInfo.hostName) -> Data {
        struct Body: Encodable {
            var event: String
            var severity: String
            var time: String
            var host: String
            var title: String
            var text: String
            var facts: [String: String]
            var actions: [String]
            var initiated_by: String?
        }
        let lines = ["*\(event.title)*"] + event.facts.map { "\($0.label): \($0.value)" }
        let body = Body(
            event: event.kind.rawValue, severity: event.kind.severity.rawValue, time: ISO8601DateFormatter().string(from: event.time),
            host: host, title: event.title, text: lines.joined(separator: "\n"),
            facts: Dictionary(event.facts.map { ($0.label, $0.value) }, uniquingKeysWith: { first, _ in first }),
            actions: event.actions, initiated_by: event.initiatedBy)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(body)) ?? Data()
    }

    /// `sha256=<hex>` of the HMAC-SHA-256 of `body` under `secret`.
    public static func signature(of body: Data, secret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Data(secret.utf8)))
        return "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    public func deliver(_ event: NotificationEvent, to recipients: [MailAddress]) async throws {
        let body = Self.body(for: event)
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "Bunker/\(bunkerVersion)")
        request.headers.add(name: "X-Bunker-Event", value: event.kind.rawValue)
        request.headers.add(name: "X-Bunker-Delivery", value: UUID().uuidString.lowercased())
        if let secret { request.headers.add(name: "X-Bunker-Signature", value: Self.signature(of: body, secret: secret)) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
        } catch {
            throw BunkerError(.network, "Webhook \(name) (\(shownURL)) could not be reached: \(error).", cause: WebhookFailure(transient: true))
        }
        // The answer's body is not needed; read a little of it for the error message.
        let answer = (try? await response.body.collect(upTo: 4096)).map { String(buffer: $0) } ?? ""
        let status = Int(response.status.code)
        guard (200..<300).contains(status) else {
            let transient = status == 429 || status >= 500
            throw BunkerError(.network, "Webhook \(name) (\(shownURL)) answered \(status)\(answer.isEmpty ? "" : ": \(answer.prefix(200))").", cause: WebhookFailure(transient: transient))
        }
    }

    public func isTransient(_ error: any Error) -> Bool {
        ((error as? BunkerError)?.cause as? WebhookFailure)?.transient ?? true
    }
}

struct WebhookFailure: Error, Sendable, CustomStringConvertible {
    var transient: Bool
    var description: String { transient ? "temporary" : "permanent" }
}
