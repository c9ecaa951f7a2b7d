import BunkerCore
import BunkerSMTP
import Foundation

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
