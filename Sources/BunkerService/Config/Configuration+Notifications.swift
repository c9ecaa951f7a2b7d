import BunkerCore
import BunkerSMTP
import Foundation

/// `[smtp]`: the mail server, with the Clinical Dashboard's `SMTP_*` and `EMAILS_FROM_*` variables over it.
public struct SMTPConfiguration: Sendable, Equatable {
    public var host: String
    public var port: Int?
    public var security: SMTPSettings.Security = .starttls
    public var user: String?
    /// The variable holding the password (default `SMTP_PASSWORD`, the Clinical Dashboard's name).
    public var passwordEnvironment = "SMTP_PASSWORD"
    public var passwordFile: String?
    public var fromEmail = "bunker@localhost"
    public var fromName = "Bunker"
    public var timeoutSeconds = 30
    /// Extra certificates to trust (PEM), for a private CA.
    public var caFile: String?
}

/// `[notifications]`: who is told, about what, and the alert thresholds.
public struct NotificationSettings: Sendable, Equatable {
    /// Addresses always told, besides the user who started an operation and every active
    /// SYSTEM_ADMIN.
    public var emailTo: [String] = []
    /// The events that send e-mail; nil: all.
    public var emailEvents: Set<NotificationEvent.Kind>?
    /// An alert when no backup succeeded for this long (the DermAI strategy alerts after 25 hours, the Clinical Dashboard guide after 48).
    public var backupOverdueHours = 25.0
    /// An alert when the repository's filesystem has less free space than this.
    public var minFreeSpacePercent = 20.0
    /// An alert when no WAL file of a postgres source was archived for this long (the DermAI
    /// strategy's RPO is under one hour).
    public var walArchiveLagMinutes = 60.0
}

/// `[pagerduty]` or `[slack]`: a service reached with a secret (PagerDuty's routing key, Slack's
/// webhook URL) that is read from the environment or a file, never written in the configuration.
public struct SecretPostSettings: Sendable, Equatable {
    public var secretEnvironment: String?
    public var secretFile: String?
    /// The events sent; nil: the notifier's default.
    public var events: Set<NotificationEvent.Kind>?
    /// PagerDuty only: another Events API endpoint (a proxy; a test receiver).
    public var url: String?
    public var timeoutSeconds = 10
}

/// One `[[webhook]]`: a JSON POST per event, signed with HMAC-SHA-256 when a secret is set.
public struct WebhookSettings: Sendable, Equatable {
    public var name: String
    public var url: String
    public var secretEnvironment: String?
    public var secretFile: String?
    /// The events posted; nil: all.
    public var events: Set<NotificationEvent.Kind>?
    public var timeoutSeconds = 10
}

extension Configuration {
    /// Reads `[smtp]`, `[notifications]` and `[[webhook]]`, then the Clinical Dashboard's variables.
    mutating func readNotificationSettings(_ reader: inout TableReader) throws {
        if var t = try reader.table("smtp") {
            if t.has("password") {
                throw t.error(key: "password", "a password is never written in the configuration; set SMTP_PASSWORD, or password_env / password_file")
            }
            var smtp = SMTPConfiguration(host: try t.required { try $0.string("host") })
            smtp.port = try t.int("port", range: 1...65535)
            if let tls = try t.string("tls") {
                guard let security = SMTPSettings.Security(rawValue: tls) else {
                    throw t.error(key: "tls", "tls must be starttls, tls or none, not \"\(tls)\"")
                }
                smtp.security = security
            }
            smtp.user = try t.string("user")
            smtp.passwordEnvironment = try t.string("password_env") ?? smtp.passwordEnvironment
            smtp.passwordFile = try t.path("password_file")
            smtp.fromEmail = try t.string("from_email") ?? smtp.fromEmail
            smtp.fromName = try t.string("from_name") ?? smtp.fromName
            smtp.timeoutSeconds = try t.int("timeout_seconds", range: 1...600) ?? smtp.timeoutSeconds
            smtp.caFile = try t.path("ca_file")
            try t.rejectUnknown()
            self.smtp = smtp
        }
        if var t = try reader.table("notifications") {
            notifications.emailTo = try t.strings("email_to") ?? []
            for address in notifications.emailTo where !MailAddress(address).isValid {
                throw t.error(key: "email_to", "\"\(address)\" is not an e-mail address")
            }
            if let names = try t.strings("email_events") {
                notifications.emailEvents = try Self.eventKinds(names, key: "email_events", in: t)
            }
            if let hours = try t.int("backup_overdue_hours", range: 1...(24 * 365)) { notifications.backupOverdueHours = Double(hours) }
            if let percent = try t.int("min_free_space_percent", range: 0...99) { notifications.minFreeSpacePercent = Double(percent) }
            if let minutes = try t.int("wal_archive_lag_minutes", range: 1...(60 * 24 * 7)) { notifications.walArchiveLagMinutes = Double(minutes) }
            try t.rejectUnknown()
        }
        for var t in try reader.tables("webhook") {
            let url = try t.required { try $0.string("url") }
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
                throw t.error(key: "url", "url must be an http:// or https:// address, not \"\(url)\"")
            }
            if t.has("secret") {
                throw t.error(key: "secret", "a secret is never written in the configuration; use secret_env or secret_file")
            }
            var hook = WebhookSettings(name: try t.string("name") ?? "webhook\(webhooks.count + 1)", url: url)
            hook.secretEnvironment = try t.string("secret_env")
            hook.secretFile = try t.path("secret_file")
            if let names = try t.strings("events") { hook.events = try Self.eventKinds(names, key: "events", in: t) }
            hook.timeoutSeconds = try t.int("timeout_seconds", range: 1...600) ?? hook.timeoutSeconds
            try t.rejectUnknown()
            webhooks.append(hook)
        }
        if var t = try reader.table("pagerduty") {
            pagerDuty = try Self.secretPost(&t, secret: "routing_key", defaultEnvironment: "PAGERDUTY_ROUTING_KEY", allowsURL: true)
        }
        if var t = try reader.table("slack") {
            slack = try Self.secretPost(&t, secret: "webhook_url", defaultEnvironment: "SLACK_WEBHOOK_URL", allowsURL: false)
        }
    }

    private static func secretPost(_ t: inout TableReader, secret: String, defaultEnvironment: String, allowsURL: Bool) throws -> SecretPostSettings {
        if t.has(secret) {
            throw t.error(key: secret, "the \(secret.replacingOccurrences(of: "_", with: " ")) is a secret and is never written in the configuration; use \(secret)_env (default \(defaultEnvironment)) or \(secret)_file")
        }
        var settings = SecretPostSettings()
        settings.secretEnvironment = try t.string(secret + "_env")
        settings.secretFile = try t.path(secret + "_file")
        if settings.secretEnvironment == nil && settings.secretFile == nil { settings.secretEnvironment = defaultEnvironment }
        if settings.secretEnvironment != nil && settings.secretFile != nil {
            throw t.error(key: secret + "_file", "give \(secret)_env or \(secret)_file, not both")
        }
        if let names = try t.strings("events") { settings.events = try eventKinds(names, key: "events", in: t) }
        if allowsURL, let url = try t.string("url") {
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
                throw t.error(key: "url", "url must be an http:// or https:// address, not \"\(url)\"")
            }
            settings.url = url
        }
        settings.timeoutSeconds = try t.int("timeout_seconds", range: 1...600) ?? settings.timeoutSeconds
        try t.rejectUnknown()
        return settings
    }

    /// The secret of `[pagerduty]` or `[slack]`, or why it cannot be had.
    static func secret(of settings: SecretPostSettings, environment: [String: String]) -> Result<String, SecretProblem> {
        if let file = settings.secretFile {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8), !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                return .failure(SecretProblem(text: "its file \(file) cannot be read or is empty"))
            }
            return .success(text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let variable = settings.secretEnvironment ?? ""
        guard let value = environment[variable]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else {
            return .failure(SecretProblem(text: "its variable \(variable) is not set"))
        }
        return .success(value)
    }

    struct SecretProblem: Error {
        var text: String
    }

    private static func eventKinds(_ names: [String], key: String, in table: TableReader) throws -> Set<NotificationEvent.Kind> {
        try Set(names.map { name in
            guard let kind = NotificationEvent.Kind(rawValue: name) else {
                throw table.error(key: key, "\"\(name)\" is not an event; events are \(NotificationEvent.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return kind
        })
    }

    /// The Clinical Dashboard's variables: SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_TLS (true: STARTTLS),
    /// SMTP_SSL (true: implicit TLS), EMAILS_FROM_EMAIL, EMAILS_FROM_NAME. SMTP_PASSWORD is read
    /// when mail is sent.
    ///
    /// A value that is not one of those listed is an error naming the variable: an unknown
    /// SMTP_TLS taken for "none" would send mail unencrypted.
    mutating func applyMailOverrides(_ environment: [String: String]) throws {
        func value(_ name: String) -> String? {
            environment[name].map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty ? nil : $0 }
        }
        func choice<T>(_ name: String, _ choices: [(words: [String], value: T)]) throws -> T? {
            guard let text = value(name) else { return nil }
            guard let found = choices.first(where: { $0.words.contains(text.lowercased()) }) else {
                let allowed = choices.flatMap(\.words).joined(separator: ", ")
                throw BunkerError(.invalidArgument, "\(name)=\(text) is not understood; use one of \(allowed).")
            }
            return found.value
        }
        if let host = value("SMTP_HOST") {
            if smtp == nil { smtp = SMTPConfiguration(host: host) } else { smtp!.host = host }
        }
        guard smtp != nil else { return }
        if let port = try Self.integer("SMTP_PORT", in: environment, range: 1...65535, meaning: "a port") { smtp!.port = port }
        if let user = value("SMTP_USER") { smtp!.user = user }
        let security: [(words: [String], value: SMTPSettings.Security)] = [
            (["true", "1", "yes", "starttls"], .starttls), (["tls", "ssl"], .tls), (["false", "0", "no", "none"], .none),
        ]
        if let chosen = try choice("SMTP_TLS", security) { smtp!.security = chosen }
        if try choice("SMTP_SSL", [(["true", "1", "yes"], true), (["false", "0", "no"], false)]) == true { smtp!.security = .tls }
        if let from = value("EMAILS_FROM_EMAIL") { smtp!.fromEmail = from }
        if let name = value("EMAILS_FROM_NAME") { smtp!.fromName = name }
    }

    /// The notifiers this configuration asks for: e-mail when `[smtp]` (or SMTP_HOST) is set,
    /// and each webhook, with what keeps any of them from working. Secrets are read now, from
    /// the environment or their files; each notifier stands alone, so a secret that cannot be
    /// read disables that notifier only (and is reported), never the others.
    public func makeNotifiers(environment: [String: String] = ProcessInfo.processInfo.environment) -> (notifiers: [any Notifier], problems: [String]) {
        var notifiers: [any Notifier] = []
        var problems: [String] = []
        if let smtp {
            var password = environment[smtp.passwordEnvironment]
            var readable = true
            if let file = smtp.passwordFile {
                if let text = try? String(contentsOfFile: file, encoding: .utf8) {
                    password = text.trimmingCharacters(in: .newlines)
                } else {
                    readable = false
                    problems.append("e-mail is off: the SMTP password file \(file) cannot be read")
                }
            }
            if readable {
                let settings = SMTPSettings(host: smtp.host, port: smtp.port, security: smtp.security, username: smtp.user, password: password,
                                            timeout: Double(smtp.timeoutSeconds), trustedCertificatesFile: smtp.caFile)
                notifiers.append(EmailNotifier(settings: settings, from: MailAddress(smtp.fromEmail, name: smtp.fromName), events: notifications.emailEvents))
            }
        }
        for hook in webhooks {
            var secret: String?
            if let variable = hook.secretEnvironment {
                secret = environment[variable]
                if secret?.isEmpty ?? true {
                    // Posting unsigned when a signature was asked for would let receivers accept
                    // forgeries, or refuse every post: neither, say so.
                    problems.append("webhook \(hook.name) is off: its secret variable \(variable) is not set")
                    continue
                }
            }
            if let file = hook.secretFile {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8), !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                    problems.append("webhook \(hook.name) is off: its secret file \(file) cannot be read or is empty")
                    continue
                }
                secret = text.trimmingCharacters(in: .newlines)
            }
            notifiers.append(WebhookNotifier(name: hook.name, url: hook.url, secret: secret, events: hook.events, timeout: Double(hook.timeoutSeconds)))
        }
        if let pagerDuty {
            switch Self.secret(of: pagerDuty, environment: environment) {
            case .success(let key):
                notifiers.append(PagerDutyNotifier(routingKey: key, url: pagerDuty.url, events: pagerDuty.events, timeout: Double(pagerDuty.timeoutSeconds)))
            case .failure(let problem):
                problems.append("PagerDuty is off: \(problem.text)")
            }
        }
        if let slack {
            switch Self.secret(of: slack, environment: environment) {
            case .success(let url) where URL(string: url)?.scheme.map({ ["http", "https"].contains($0) }) == true:
                notifiers.append(SlackNotifier(webhookURL: url, events: slack.events, timeout: Double(slack.timeoutSeconds)))
            case .success:
                problems.append("Slack is off: its webhook URL is not an http:// or https:// address")
            case .failure(let problem):
                problems.append("Slack is off: \(problem.text)")
            }
        }
        return (notifiers, problems)
    }
}
