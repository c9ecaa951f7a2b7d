import Foundation

/// An e-mail address with an optional display name.
public struct MailAddress: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var name: String?
    public var email: String

    public init(_ email: String, name: String? = nil) {
        self.email = email
        self.name = name
    }

    /// `Name <email>` with the name encoded for a header when it is not plain ASCII.
    public var header: String {
        guard let name, !name.isEmpty else { return email }
        return "\(MailMessage.encodedWord(name)) <\(email)>"
    }

    public var description: String { header }

    /// Whether `email` looks like an address SMTP can carry (no spaces, brackets or line breaks,
    /// one `@` with text on both sides).
    public var isValid: Bool {
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && !parts[1].isEmpty
            && !email.contains(where: { $0.isWhitespace || $0 == "<" || $0 == ">" || $0.isNewline })
    }
}

/// A message with a plain-text and an HTML body, rendered as MIME for SMTP.
public struct MailMessage: Sendable, Equatable {
    public var from: MailAddress
    public var to: [MailAddress]
    public var subject: String
    public var text: String
    public var html: String?
    public var date: Date
    public var messageID: String

    public init(from: MailAddress, to: [MailAddress], subject: String, text: String, html: String? = nil,
                date: Date = Date(), messageID: String = "\(UUID().uuidString.lowercased())@bunker") {
        self.from = from
        self.to = to
        self.subject = subject
        self.text = text
        self.html = html
        self.date = date
        self.messageID = messageID
    }

    /// The message as sent after DATA: headers and body with CRLF line ends, bodies in base64 so
    /// that any text travels unchanged through any server.
    public func rendered() -> String {
        var lines = [
            "From: \(from.header)",
            "To: \(to.map(\.header).joined(separator: ", "))",
            "Subject: \(Self.encodedWord(subject))",
            "Date: \(Self.dateHeader(date))",
            "Message-ID: <\(messageID)>",
            "MIME-Version: 1.0",
            "Auto-Submitted: auto-generated",
        ]
        func part(_ type: String, _ body: String) -> [String] {
            ["Content-Type: \(type); charset=utf-8", "Content-Transfer-Encoding: base64", ""] + Self.base64Lines(body)
        }
        if let html {
            let boundary = "bunker-" + messageID.prefix(8).filter { $0.isLetter || $0.isNumber } + "-alt"
            lines.append("Content-Type: multipart/alternative; boundary=\"\(boundary)\"")
            lines.append("")
            lines.append("--\(boundary)")
            lines += part("text/plain", text)
            lines.append("--\(boundary)")
            lines += part("text/html", html)
            lines.append("--\(boundary)--")
        } else {
            lines += part("text/plain", text)
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// RFC 2047: plain ASCII stays as it is, anything else becomes `=?utf-8?b?…?=` words.
    static func encodedWord(_ text: String) -> String {
        let plain = text.unicodeScalars.allSatisfy { $0.isASCII && $0.value >= 0x20 && $0.value != 0x7f }
        if plain && !text.contains("=?") { return text }
        // Encoded words are at most 75 characters: cut the UTF-8 at character boundaries.
        var words: [String] = []
        var chunk = ""
        for character in text {
            if (chunk + String(character)).utf8.count > 45 {
                words.append(chunk)
                chunk = ""
            }
            chunk.append(character)
        }
        if !chunk.isEmpty { words.append(chunk) }
        return words.map { "=?utf-8?b?\(Data($0.utf8).base64EncodedString())?=" }.joined(separator: "\r\n ")
    }

    static func base64Lines(_ text: String) -> [String] {
        let normalized = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\n", with: "\r\n")
        let encoded = Data(normalized.utf8).base64EncodedString()
        return stride(from: 0, to: encoded.count, by: 76).map { start in
            let from = encoded.index(encoded.startIndex, offsetBy: start)
            let to = encoded.index(from, offsetBy: min(76, encoded.count - start))
            return String(encoded[from..<to])
        }
    }

    static func dateHeader(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        return formatter.string(from: date)
    }
}
