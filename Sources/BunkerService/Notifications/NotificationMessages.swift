import Foundation

/// The words of a notification: a subject, a plain-text body and an HTML body.
public struct RenderedNotification: Sendable, Equatable {
    public var subject: String
    public var text: String
    public var html: String
}

extension NotificationEvent {
    /// The message for people: what happened, the facts, and what to do.
    public func rendered(host: String = ProcessInfo.processInfo.hostName) -> RenderedNotification {
        let prefix: String
        switch kind.severity {
        case .critical: prefix = "[Bunker] CRITICAL: "
        case .error: prefix = "[Bunker] FAILED: "
        case .warning: prefix = "[Bunker] Warning: "
        case .info: prefix = "[Bunker] "
        }
        let subject = prefix + title
        let when = ISO8601DateFormatter().string(from: time)
        let actionsHeading = kind == .restoreSucceeded ? "Post-restore checklist" : kind.severity == .info ? "Next steps" : "Recommended actions"

        var text = [title, "", "Time: \(when) (UTC)", "Host: \(host)"]
        if let initiatedBy { text.append("Started by: \(initiatedBy)") }
        text += facts.map { "\($0.label): \($0.value)" }
        if !actions.isEmpty {
            text += ["", actionsHeading + ":"]
            text += actions.enumerated().map { "  \($0.offset + 1). \($0.element)" }
        }
        text += ["", "-- ", "Bunker \(host). You receive this because you started the operation or administer Bunker."]

        func escape(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        let color = ["critical": "#b00020", "error": "#c62828", "warning": "#b26a00", "info": "#1b5e20"][kind.severity.rawValue]!
        var rows = [("Time", when + " (UTC)"), ("Host", host)]
        if let initiatedBy { rows.append(("Started by", initiatedBy)) }
        rows += facts.map { ($0.label, $0.value) }
        var html = """
            <!DOCTYPE html>
            <html><body style="font-family: sans-serif; color: #222">
            <h2 style="color: \(color)">\(escape(title))</h2>
            <table cellpadding="4" style="border-collapse: collapse">
            \(rows.map { "<tr><th align=\"left\">\(escape($0.0))</th><td><code>\(escape($0.1))</code></td></tr>" }.joined(separator: "\n"))
            </table>
            """
        if !actions.isEmpty {
            html += "\n<h3>\(escape(actionsHeading))</h3>\n<ol>\n" + actions.map { "<li>\(escape($0))</li>" }.joined(separator: "\n") + "\n</ol>"
        }
        html += "\n<p style=\"color: #777; font-size: small\">Bunker on \(escape(host)). You receive this because you started the operation or administer Bunker.</p>\n</body></html>\n"
        return RenderedNotification(subject: subject, text: text.joined(separator: "\n") + "\n", html: html)
    }
}
