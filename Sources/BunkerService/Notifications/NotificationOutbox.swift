import BunkerCore
import BunkerSMTP
import Foundation

/// What one delivery attempt did.
public struct DeliveryResult: Sendable, Equatable {
    public var id: String
    public var channel: String
    public var kind: NotificationEvent.Kind
    public var delivered: Bool
    public var attempts: Int
    public var error: String?
    /// The outbox stopped trying (a permanent failure, or too many attempts).
    public var gaveUp: Bool
    /// When the next attempt is due, if there is one.
    public var nextAttempt: Date?
}

/// A queue of notifications on disk, so that a mail server that is down delays a message but
/// never loses it and never fails or blocks the operation that caused it.
///
/// ``enqueue(_:recipients:)`` writes one file per notifier that wants the event (written whole,
/// then renamed) and never throws. ``deliverDue()`` tries every entry that is due; a delivered
/// entry is removed, a transient failure is retried later with a growing delay (1 min, 2, 4, …,
/// at most 6 h; the default 24 attempts span about four days, a long weekend of mail outage),
/// and after a permanent failure or ``maxAttempts`` the entry moves to `failed/`
/// where an operator can read why. Only one process delivers at a time (a lock file); another
/// caller returns at once.
public final class NotificationOutbox: Sendable {
    public let directory: String
    public let notifiers: [any Notifier]
    public let maxAttempts: Int
    private let now: @Sendable () -> Date
    private let onResult: @Sendable (DeliveryResult) -> Void

    struct Entry: Codable {
        var id: String
        var channel: String
        var event: NotificationEvent
        var recipients: [Recipient]
        var attempts = 0
        var created: Date
        var nextAttempt: Date
        var lastError: String?
    }

    struct Recipient: Codable {
        var email: String
        var name: String?
    }

    public init(directory: String, notifiers: [any Notifier], maxAttempts: Int = 24,
                now: @escaping @Sendable () -> Date = { Date() }, onResult: @escaping @Sendable (DeliveryResult) -> Void = { _ in }) {
        self.directory = directory
        self.notifiers = notifiers
        self.maxAttempts = maxAttempts
        self.now = now
        self.onResult = onResult
    }

    /// Queues `event` for every notifier that wants it; returns the entries' ids. A failure to
    /// write is reported on standard error and otherwise ignored: telling about an operation
    /// must never make the operation fail.
    @discardableResult
    public func enqueue(_ event: NotificationEvent, recipients: [MailAddress]) -> [String] {
        var ids: [String] = []
        var seen = Set<String>()
        // An address SMTP cannot carry (a typo in a profile) must not stop the mail to the others.
        let unique = recipients.filter { $0.isValid && seen.insert($0.email.lowercased()).inserted }
        for bad in recipients where !bad.isValid {
            FileHandle.standardError.write(Data("bunker: left out the recipient \"\(bad.email)\", which is not an e-mail address.\n".utf8))
        }
        for notifier in notifiers where notifier.wants(event.kind) {
            let time = now()
            let entry = Entry(id: Self.newID(time), channel: notifier.channel, event: event,
                              recipients: unique.map { Recipient(email: $0.email, name: $0.name) }, created: time, nextAttempt: time)
            do {
                try write(entry, to: directory)
                ids.append(entry.id)
            } catch {
                FileHandle.standardError.write(Data("bunker: cannot queue the \(event.kind.rawValue) notification for \(notifier.channel): \(error)\n".utf8))
            }
        }
        return ids
    }

    /// The entries waiting, oldest first.
    public var pending: [(id: String, channel: String, kind: NotificationEvent.Kind, attempts: Int, lastError: String?)] {
        entries(in: directory).map { ($0.id, $0.channel, $0.event.kind, $0.attempts, $0.lastError) }
    }

    /// The entries given up on, oldest first.
    public var failed: [(id: String, channel: String, kind: NotificationEvent.Kind, attempts: Int, lastError: String?)] {
        entries(in: directory + "/failed").map { ($0.id, $0.channel, $0.event.kind, $0.attempts, $0.lastError) }
    }

    /// Tries every entry whose time has come (or only `ids`); returns what happened to each.
    @discardableResult
    public func deliverDue(only ids: [String]? = nil) async -> [DeliveryResult] {
        guard let lock = try? lockDirectory() else { return [] }
        defer { close(lock) }
        var results: [DeliveryResult] = []
        for var entry in entries(in: directory) where entry.nextAttempt <= now() && (ids?.contains(entry.id) ?? true) {
            guard let notifier = notifiers.first(where: { $0.channel == entry.channel }) else { continue }
            entry.attempts += 1
            var result = DeliveryResult(id: entry.id, channel: entry.channel, kind: entry.event.kind, delivered: false, attempts: entry.attempts, gaveUp: false)
            do {
                try await notifier.deliver(entry.event, to: entry.recipients.map { MailAddress($0.email, name: $0.name) })
                result.delivered = true
                unlink(path(entry.id, in: directory))
            } catch {
                let message = (error as? BunkerError)?.message ?? "\(error)"
                entry.lastError = message
                result.error = message
                if notifier.isTransient(error) && entry.attempts < maxAttempts {
                    entry.nextAttempt = now().addingTimeInterval(Self.delay(afterAttempt: entry.attempts))
                    result.nextAttempt = entry.nextAttempt
                    try? write(entry, to: directory)
                } else {
                    result.gaveUp = true
                    try? FileManager.default.createDirectory(atPath: directory + "/failed", withIntermediateDirectories: true)
                    if (try? write(entry, to: directory + "/failed")) != nil { unlink(path(entry.id, in: directory)) }
                }
            }
            onResult(result)
            results.append(result)
        }
        return results
    }

    /// ``delay(afterAttempt:)``, for tests.
    public static func delayForTesting(afterAttempt attempt: Int) -> TimeInterval { delay(afterAttempt: attempt) }

    /// The wait after the n-th failed attempt: one minute, doubling, at most six hours.
    static func delay(afterAttempt attempt: Int) -> TimeInterval {
        min(60 * pow(2, Double(max(attempt - 1, 0))), 6 * 3600)
    }

    // MARK: - Files

    private static func newID(_ time: Date) -> String {
        String(format: "%013.0f", time.timeIntervalSince1970 * 1000) + "-" + UUID().uuidString.prefix(8).lowercased()
    }

    private func path(_ id: String, in dir: String) -> String { dir + "/" + id + ".json" }

    private func write(_ entry: Entry, to dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(entry).write(to: URL(fileURLWithPath: path(entry.id, in: dir)), options: .atomic)
    }

    private func entries(in dir: String) -> [Entry] {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        return names.compactMap { name in
            FileManager.default.contents(atPath: dir + "/" + name).flatMap { try? decoder.decode(Entry.self, from: $0) }
        }
    }

    /// An exclusive, non-blocking lock on the outbox; throws if another process holds it.
    private func lockDirectory() throws -> Int32 {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let fd = open(directory + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BunkerError(.sourceIO, "Cannot open the outbox lock.") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw BunkerError(.repositoryLocked, "Another process is delivering notifications.")
        }
        return fd
    }
}
