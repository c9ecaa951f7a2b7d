import BunkerCore
import BunkerSMTP
import Foundation

/// PagerDuty's Events API v2: a failure or a warning triggers an incident, and the next success
/// of the same thing resolves it.
///
/// Each event's dedup key is `bunker/<host>/<topic>` (``NotificationEvent/topic``): the backups,
/// restores, verifies, drills, a copy destination, a source's WAL archive, the free space, an
/// account. Repeated failures of one thing update one incident instead of opening many; a backup
/// that succeeds resolves what a failed or overdue backup opened, a passed verify or drill what
/// a failed one opened, a copy that succeeds its destination's. WAL, space and lockout
/// incidents have no success event and are resolved in PagerDuty. `bunker notify test` triggers
/// and at once resolves a `test` incident.
public struct PagerDutyNotifier: Notifier {
    static let defaultURL = "https://events.pagerduty.com/v2/enqueue"
    let routingKey: String
    public let url: String
    public let events: Set<NotificationEvent.Kind>?
    public let timeout: Double
    let host: String

    public init(routingKey: String, url: String? = nil, events: Set<NotificationEvent.Kind>? = nil, timeout: Double = 10,
                host: String = ProcessInfo.processInfo.hostName) {
        self.routingKey = routingKey
        self.url = url ?? Self.defaultURL
        self.events = events
        self.timeout = timeout
        self.host = host
    }

    public var channel: String { "pagerduty" }

    /// By default every event: failures and warnings trigger, successes resolve.
    public func wants(_ kind: NotificationEvent.Kind) -> Bool {
        events?.contains(kind) ?? true
    }

    /// The Events API v2 bodies posted for `event`, in order.
    public func bodies(for event: NotificationEvent) -> [Data] {
        struct Payload: Encodable {
            var summary: String
            var source: String
            var severity: String
            var timestamp: String
            var component = "bunker"
            var group: String
            var `class`: String
            var custom_details: [String: String]
        }
        struct Body: Encodable {
            var routing_key: String
            var event_action: String
            var dedup_key: String
            var payload: Payload?
            var client = "Bunker"
        }
        let key = "bunker/\(host)/\(event.topic)"
        let resolve = Body(routing_key: routingKey, event_action: "resolve", dedup_key: key)
        if event.kind.severity == .info && event.kind != .test {
            return [JSONPost.encoded(resolve)]
        }
        var details = Dictionary(event.facts.map { ($0.label, $0.value) }, uniquingKeysWith: { first, _ in first })
        if !event.actions.isEmpty { details["What to do"] = event.actions.enumerated().map { "\($0.offset + 1). \($0.element)" }.joined(separator: "\n") }
        if let by = event.initiatedBy { details["Started by"] = by }
        let severity = event.kind == .test ? "info" : event.kind.severity.rawValue
        let trigger = Body(
            routing_key: routingKey, event_action: "trigger", dedup_key: key,
            payload: Payload(
                summary: String("\(event.title) (Bunker on \(host))".prefix(1024)), source: host, severity: severity,
                timestamp: ISO8601DateFormatter().string(from: event.time), group: event.topic, class: event.kind.rawValue, custom_details: details))
        return event.kind == .test ? [JSONPost.encoded(trigger), JSONPost.encoded(resolve)] : [JSONPost.encoded(trigger)]
    }

    public func deliver(_ event: NotificationEvent, to recipients: [MailAddress]) async throws {
        // The routing key is a secret: errors show the host only.
        let post = JSONPost(what: "PagerDuty (\(JSONPost.shown(url)))", url: url, timeout: timeout)
        for body in bodies(for: event) { try await post.send(body) }
    }

    public func isTransient(_ error: any Error) -> Bool {
        ((error as? BunkerError)?.cause as? WebhookFailure)?.transient ?? true
    }
}

/// A Slack incoming webhook: one message per event, laid out with blocks (a header, the facts
/// as fields, what to do, and where it came from), with a plain `text` for notifications.
public struct SlackNotifier: Notifier {
    let webhookURL: String
    public let events: Set<NotificationEvent.Kind>?
    public let timeout: Double
    let host: String

    public init(webhookURL: String, events: Set<NotificationEvent.Kind>? = nil, timeout: Double = 10, host: String = ProcessInfo.processInfo.hostName) {
        self.webhookURL = webhookURL
        self.events = events
        self.timeout = timeout
        self.host = host
    }

    public var channel: String { "slack" }

    public func wants(_ kind: NotificationEvent.Kind) -> Bool {
        events?.contains(kind) ?? !kind.isQuiet
    }

    /// Slack's mrkdwn needs `&`, `<` and `>` escaped; nothing else is taken as markup here.
    static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// The message posted for `event`.
    public func body(for event: NotificationEvent) -> Data {
        struct Text: Encodable {
            var type: String
            var text: String
        }
        struct Block: Encodable {
            var type: String
            var text: Text?
            var fields: [Text]?
            var elements: [Text]?
        }
        struct Message: Encodable {
            var text: String
            var blocks: [Block]
        }
        let mark = ["critical": "🚨", "error": "❌", "warning": "⚠️", "info": "✅"][event.kind.severity.rawValue] ?? ""
        var blocks = [Block(type: "header", text: Text(type: "plain_text", text: String("\(mark) \(event.title)".prefix(150))))]
        // Slack shows at most ten fields in a section, each at most 2000 characters.
        let fields = event.facts.prefix(10).map { Text(type: "mrkdwn", text: String("*\(Self.escaped($0.label))*\n\(Self.escaped($0.value))".prefix(2000))) }
        if !fields.isEmpty { blocks.append(Block(type: "section", fields: Array(fields))) }
        if !event.actions.isEmpty {
            let heading = event.kind == .restoreSucceeded ? "Post-restore checklist" : event.kind.severity == .info ? "Next steps" : "What to do"
            let list = event.actions.map { "• " + Self.escaped($0) }.joined(separator: "\n")
            blocks.append(Block(type: "section", text: Text(type: "mrkdwn", text: String("*\(heading)*\n\(list)".prefix(3000)))))
        }
        var context = "Bunker on \(Self.escaped(host)) · \(event.kind.rawValue) · \(ISO8601DateFormatter().string(from: event.time))"
        if let by = event.initiatedBy { context += " · started by \(Self.escaped(by))" }
        blocks.append(Block(type: "context", elements: [Text(type: "mrkdwn", text: context)]))
        return JSONPost.encoded(Message(text: "\(mark) \(event.title)", blocks: blocks))
    }

    public func deliver(_ event: NotificationEvent, to recipients: [MailAddress]) async throws {
        // The webhook URL is itself the secret: errors show its host only.
        try await JSONPost(what: "Slack (\(JSONPost.shown(webhookURL)))", url: webhookURL, timeout: timeout).send(body(for: event))
    }

    public func isTransient(_ error: any Error) -> Bool {
        ((error as? BunkerError)?.cause as? WebhookFailure)?.transient ?? true
    }
}
