import BunkerSMTP
import Foundation

/// Something that tells people about events: e-mail, a webhook.
///
/// Conformers promise: ``deliver(_:to:)`` returns only once the event is handed over (the mail
/// server accepted the message, the webhook answered 2xx), and throws otherwise; it never waits
/// longer than its own timeout. ``isTransient(_:)`` says whether a failure is worth retrying.
public protocol Notifier: Sendable {
    /// A stable name for the outbox and the audit trail: `email`, `webhook:ops`.
    var channel: String { get }
    /// Whether this notifier is configured to tell about `kind`.
    func wants(_ kind: NotificationEvent.Kind) -> Bool
    /// Delivers the event; `recipients` matter to e-mail only.
    func deliver(_ event: NotificationEvent, to recipients: [MailAddress]) async throws
    /// Whether a later attempt may succeed where this one failed.
    func isTransient(_ error: any Error) -> Bool
}

/// E-mail through the configured SMTP server: plain text and HTML.
public struct EmailNotifier: Notifier {
    public let settings: SMTPSettings
    public let from: MailAddress
    /// The events that send mail; nil: all.
    public let events: Set<NotificationEvent.Kind>?

    public init(settings: SMTPSettings, from: MailAddress, events: Set<NotificationEvent.Kind>? = nil) {
        self.settings = settings
        self.from = from
        self.events = events
    }

    public var channel: String { "email" }

    public func wants(_ kind: NotificationEvent.Kind) -> Bool {
        events?.contains(kind) ?? !kind.isQuiet
    }

    public func deliver(_ event: NotificationEvent, to recipients: [MailAddress]) async throws {
        guard !recipients.isEmpty else { return }
        let words = event.rendered()
        let message = MailMessage(from: from, to: recipients, subject: words.subject, text: words.text, html: words.html, date: event.time)
        try await SMTPClient(settings: settings).send(message)
    }

    public func isTransient(_ error: any Error) -> Bool {
        SMTPFailure.isTransient(error)
    }
}
