import BunkerCore
import BunkerSMTP
import Foundation

/// When the notifications an operation queues are sent.
public enum NotificationDelivery: Sendable {
    /// Right after the operation, before the call returns (the CLI: the process is about to end).
    case inline
    /// Later, by ``BunkerService/deliverNotifications()`` in a loop (the server: a request must
    /// not wait for a mail server).
    case background
}

extension BunkerService {
    /// The outbox of this service's notifications: under the data directory's `outbox/`, with the
    /// configured notifiers; nil when none is configured. Delivery results are audited.
    public func notificationOutbox() -> NotificationOutbox? {
        outboxState.withLock { state in
            if let made = state.made { return made }
            let (notifiers, problems) = configuration.makeNotifiers()
            for problem in problems {
                FileHandle.standardError.write(Data("bunker: \(problem).\n".utf8))
            }
            state.problems = problems
            let outbox: NotificationOutbox? = notifiers.isEmpty ? nil : NotificationOutbox(
                directory: configuration.dataDirectory + "/outbox", notifiers: notifiers, now: repository.now
            ) { [weak self] result in
                self?.auditDelivery(result)
            }
            state.made = .some(outbox)
            return outbox
        }
    }

    /// What keeps a configured notifier from working (an unreadable secret), for health.
    public var notificationProblems: [String] {
        _ = notificationOutbox()
        return outboxState.withLock { $0.problems }
    }

    /// Sends what is due in the outbox; the server calls this every few seconds.
    @discardableResult
    public func deliverNotifications() async -> [DeliveryResult] {
        await notificationOutbox()?.deliverDue() ?? []
    }

    /// Queues `event` for the user who started the operation, every active SYSTEM_ADMIN and the
    /// configured addresses, and sends it now if this service delivers inline. Never throws:
    /// telling about an operation must not change its outcome.
    func notify(_ event: NotificationEvent, initiator actor: AuditActor) async {
        guard let outbox = notificationOutbox() else { return }
        var event = event
        event.initiatedBy = event.initiatedBy ?? actor.name
        let ids = outbox.enqueue(event, recipients: recipients(for: actor))
        if delivery == .inline, !ids.isEmpty {
            await outbox.deliverDue(only: ids)
        }
    }

    /// The initiator (the catalog user the actor is, or the local user of that name), every
    /// active SYSTEM_ADMIN with an address, and `[notifications] email_to`.
    func recipients(for actor: AuditActor) -> [MailAddress] {
        var result: [MailAddress] = []
        if let catalog = try? catalog(), let users = try? catalog.users() {
            let initiator = users.first { user in
                user.active && (actor.userID != nil ? user.id == actor.userID : user.username == actor.name)
            }
            if let initiator, let email = initiator.email { result.append(MailAddress(email, name: initiator.fullName)) }
            for admin in users where admin.active && admin.role == .systemAdmin {
                if let email = admin.email { result.append(MailAddress(email, name: admin.fullName)) }
            }
        }
        result += configuration.notifications.emailTo.map { MailAddress($0) }
        return result
    }

    private func auditDelivery(_ result: DeliveryResult) {
        guard let catalog = try? catalog() else { return }
        var details = ["event": result.kind.rawValue, "attempts": String(result.attempts), "id": result.id]
        details["error"] = result.error
        if !result.delivered { details["will_retry"] = String(!result.gaveUp) }
        try? catalog.record("notify", target: result.channel, outcome: result.delivered ? .success : .failure, details: details, by: .system)
        if !result.delivered {
            FileHandle.standardError.write(Data("bunker: the \(result.kind.rawValue) notification by \(result.channel) was not delivered\(result.gaveUp ? "" : " (will retry)"): \(result.error ?? "")\n".utf8))
        }
    }

    /// Runs `body`; tells about its success or failure with the events the closures make.
    func notifying<T>(by actor: AuditActor, success: (T) -> NotificationEvent?, failure: (any Error) -> NotificationEvent?, _ body: () async throws -> T) async throws -> T {
        let value: T
        do {
            value = try await body()
        } catch {
            if let event = failure(error) { await notify(event, initiator: actor) }
            throw error
        }
        if let event = success(value) { await notify(event, initiator: actor) }
        return value
    }
}

extension BunkerService {
    /// Sends a test message through every configured notifier now, to the usual recipients and
    /// `extra`; returns what each delivery did. Throws when nothing is configured.
    public func sendTestNotification(to extra: [String] = [], by actor: AuditActor = .localUser()) async throws -> [DeliveryResult] {
        guard let outbox = notificationOutbox() else {
            throw BunkerError(.invalidArgument, "No notifier is configured: add [smtp] (or SMTP_HOST), a [[webhook]], [pagerduty] or [slack] to bunker.toml; see docs/notifications.md.")
        }
        let event = NotificationEvent(
            kind: .test, time: repository.now(), title: "Test message from Bunker",
            facts: [.init("Sent by", actor.name), .init("Configuration", configuration.file ?? "defaults")],
            actions: ["Nothing to do: this message shows that notifications reach you."], initiatedBy: actor.name)
        let ids = outbox.enqueue(event, recipients: recipients(for: actor) + extra.map { MailAddress($0) })
        return await outbox.deliverDue(only: ids)
    }
}
