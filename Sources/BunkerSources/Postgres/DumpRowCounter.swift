import Foundation

/// Counts the rows of every table in a plain-format `pg_dump` stream as it passes.
///
/// pg_dump writes each table's data as `COPY schema.table (columns) FROM stdin;`, one line per
/// row (newlines inside values are escaped), and a line `\.` at the end. Counting those lines
/// gives the rows the dump holds, exactly as of the dump's snapshot, without a second connection;
/// a drill compares them with `count(*)` on the restored database.
///
/// Names are not escaped that way: a quoted identifier may hold a newline, so a `COPY` line
/// whose double quotes are unbalanced continues on the next line. Tables are keyed by pg_dump's
/// own spelling (`public."Audit Log"`), which is what `format('%I.%I')` gives on the server.
struct DumpRowCounter {
    private(set) var counts: [String: Int] = [:]
    /// The server version from the dump's header comment.
    private(set) var serverVersion: String?
    private var table: String?
    /// The current line, kept only while outside a COPY block (where statements are short).
    private var line: [UInt8] = []
    /// Bytes of the current line seen inside a COPY block (only the first three matter).
    private var copyLineLength = 0
    private var copyLineStartsWithEnd = true

    private static let copyPrefix = Array("COPY ".utf8)
    private static let copySuffix = Array(" FROM stdin;".utf8)
    private static let versionPrefix = Array("-- Dumped from database version ".utf8)

    mutating func consume(_ bytes: UnsafeRawBufferPointer) {
        var start = 0
        let count = bytes.count
        while start < count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[start..<count])
            let newline = rest.firstIndex(of: UInt8(ascii: "\n")).map { start + ($0 - rest.startIndex) }
            let end = newline ?? count
            let piece = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
            if table != nil {
                // Inside COPY: track only whether this line is exactly "\.".
                for (i, byte) in piece.prefix(max(0, 3 - copyLineLength)).enumerated() {
                    let position = copyLineLength + i
                    let fits = position == 0 && byte == UInt8(ascii: "\\") || position == 1 && byte == UInt8(ascii: ".")
                    if !fits { copyLineStartsWithEnd = false }
                }
                copyLineLength += piece.count
            } else if line.count < 65536 {
                line.append(contentsOf: piece.prefix(65536 - line.count))
            }
            guard newline != nil else { break }
            endLine()
            start = end + 1
        }
    }

    private mutating func endLine() {
        if let current = table {
            if copyLineStartsWithEnd && copyLineLength == 2 {
                table = nil
            } else {
                counts[current, default: 0] += 1
            }
            copyLineLength = 0
            copyLineStartsWithEnd = true
            return
        }
        if line.starts(with: Self.copyPrefix), line.count < 65536, line.count(where: { $0 == UInt8(ascii: "\"") }) % 2 == 1 {
            // Inside a quoted name: the statement goes on.
            line.append(UInt8(ascii: "\n"))
            return
        }
        defer { line.removeAll(keepingCapacity: true) }
        if line.starts(with: Self.copyPrefix), line.count > Self.copyPrefix.count + Self.copySuffix.count,
           Array(line.suffix(Self.copySuffix.count)) == Self.copySuffix {
            let body = line[Self.copyPrefix.count..<(line.count - Self.copySuffix.count)]
            // "schema.table (a, b)" or "schema.table": the name ends at " (" outside quotes.
            var name: [UInt8] = []
            var quoted = false
            for byte in body {
                if byte == UInt8(ascii: "\"") { quoted.toggle() }
                if !quoted && byte == UInt8(ascii: " ") { break }
                name.append(byte)
            }
            let table = String(decoding: name, as: UTF8.self)
            self.table = table
            counts[table, default: 0] += 0
            copyLineLength = 0
            copyLineStartsWithEnd = true
        } else if serverVersion == nil, line.starts(with: Self.versionPrefix) {
            serverVersion = String(decoding: line[Self.versionPrefix.count...], as: UTF8.self)
        }
    }
}
