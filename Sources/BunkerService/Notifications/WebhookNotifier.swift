import BunkerCore
import BunkerSMTP
import Crypto
import Foundation

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

    /// The URL as errors, logs and the audit trail show it (see ``JSONPost/shown(_:)``).
    var shownURL: String { JSONPost.shown(url) }

    public func wants(_ kind: NotificationEvent.Kind) -> Bool {
        events?.contains(kind) ?? !kind.isQuiet
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
        return JSONPost.encoded(body)
    }

    /// `sha256=<hex>` of the HMAC-SHA-256 of `body` under `secret`.
    public static func signature(of body: Data, secret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Data(secret.utf8)))
        return "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    public func deliver(_ event: NotificationEvent, to recipients: [MailAddress]) async throws {
        let body = Self.body(for: event)
        var headers = [("X-Bunker-Event", event.kind.rawValue), ("X-Bunker-Delivery", UUID().uuidString.lowercased())]
        if let secret { headers.append(("X-Bunker-Signature", Self.signature(of: body, secret: secret))) }
        try await JSONPost(what: "Webhook \(name) (\(shownURL))", url: url, timeout: timeout, headers: headers).send(body)
    }

    public func isTransient(_ error: any Error) -> Bool {
        ((error as? BunkerError)?.cause as? WebhookFailure)?.transient ?? true
    }
}

struct WebhookFailure: Error, Sendable, CustomStringConvertible {
    var transient: Bool
    var description: String { transient ? "temporary" : "permanent" }
}
