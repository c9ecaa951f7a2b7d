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
