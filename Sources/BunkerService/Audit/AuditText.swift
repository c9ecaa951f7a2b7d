import Foundation

/// How text that anyone can send (a user name tried at login) is stored in the audit trail:
/// bounded, and with nothing in it that a terminal, a spreadsheet or a log viewer would act on.
public enum AuditText {
    /// The most characters such a text keeps; a longer one is cut and ends with "…".
    public static let maxLength = 64

    /// `text` with every byte outside printable ASCII, and the backslash, written as `\xNN`, and
    /// cut to ``maxLength`` characters (never inside an escape), ending with "…" when cut.
    public static func escaped(_ text: String) -> String {
        let pieces = text.utf8.map { byte -> String in
            (0x20...0x7E).contains(byte) && byte != UInt8(ascii: "\\") ? String(UnicodeScalar(byte)) : "\\x" + hex(byte)
        }
        guard pieces.reduce(0, { $0 + $1.count }) > maxLength else { return pieces.joined() }
        var kept = ""
        for piece in pieces {
            guard kept.count + piece.count <= maxLength - 1 else { break }
            kept += piece
        }
        return kept + "…"
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
    }
}
