import Foundation

/// Counts the rows of every table in a plain-format `pg_dump` stream as it passes.
///
/// pg_dump writes each table's data as a statement `COPY schema.table (columns) FROM stdin;`
/// followed by one line per row (newlines inside values are escaped) and a line `\.`. Counting
/// those lines gives the rows the dump holds, exactly as of the dump's snapshot, without a second
/// connection; a drill compares them with `count(*)` on the restored database. Tables are keyed
/// by pg_dump's own spelling (`public."Audit Log"`), which is what `format('%I.%I')` gives on the
/// server.
///
/// Everything outside the data is SQL written by pg_dump, and much of it is text that users
/// chose: names (a quoted name may hold a newline), comments, defaults, function bodies. Any of
/// them may hold a line that reads `COPY x FROM stdin;`. So the SQL is lexed the way the server
/// lexes it: single-quoted strings (with `''`, and backslash escapes in `E''`), quoted
/// identifiers (with `""`), dollar-quoted strings (`$tag$ … $tag$`), `--` and nested `/* */`
/// comments, and psql's backslash commands (`\restrict`, `\connect`) on lines of their own. Only
/// a whole statement outside all of them that starts with `COPY ` and ends with ` FROM stdin`
/// starts a table's data.
struct DumpRowCounter {
    private(set) var counts: [String: Int] = [:]
    /// The server version from the dump's header comment.
    private(set) var serverVersion: String?

    private enum Mode: Equatable {
        case code
        case singleQuote(escapes: Bool)
        /// The byte after a backslash in an `E''` string.
        case escaped
        case doubleQuote
        /// After a `$` that may open a dollar quote: the tag so far is in `tag`.
        case dollarTag
        case dollarQuote
        case lineComment
        case blockComment(depth: Int)
        /// A psql backslash command, to the end of its line.
        case metaCommand
        /// After `COPY … FROM stdin;`, to the end of that line.
        case copyStatementEnd
        /// The rows of `table`, one per line, until `\.`.
        case copyData
    }

    private var mode = Mode.code
    /// The last byte seen in code, for two-byte tokens (`--`, `/*`, `E'`); 0 after anything else.
    private var previous: UInt8 = 0
    /// The byte before `previous`, to tell `E'` from a name ending in E.
    private var beforePrevious: UInt8 = 0
    /// In a block comment: the last byte, for `*/` and nested `/*`.
    private var commentPrevious: UInt8 = 0
    /// The current statement, without comments, while it is short enough to be a COPY.
    private var statement: [UInt8] = []
    private var statementTooLong = false
    /// The tag of the dollar quote being opened or closed, `$` included.
    private var tag: [UInt8] = []
    /// How much of `tag` the bytes inside a dollar quote have matched so far.
    private var tagMatched = 0
    /// Whether the string that just closed was an `E''` one: `''` goes on in the same string.
    private var closedEscapeString = false
    /// The text of the current `--` comment (its start only).
    private var comment: [UInt8] = []

    private var table: String?
    /// Bytes of the current line seen inside a COPY block (only the first three matter).
    private var copyLineLength = 0
    private var copyLineStartsWithEnd = true

    private static let statementLimit = 65536
    private static let copyPrefix = Array("COPY ".utf8)
    private static let copySuffix = Array(" FROM stdin".utf8)
    private static let versionPrefix = Array(" Dumped from database version ".utf8)

    mutating func consume(_ bytes: UnsafeRawBufferPointer) {
        var i = 0
        let count = bytes.count
        while i < count {
            if mode == .copyData {
                // Rows are most of a dump: only their line ends are looked at.
                let rest = UnsafeRawBufferPointer(rebasing: bytes[i..<count])
                let newline = rest.firstIndex(of: UInt8(ascii: "\n")).map { i + ($0 - rest.startIndex) }
                let end = newline ?? count
                trackCopyLine(UnsafeRawBufferPointer(rebasing: bytes[i..<end]))
                if newline != nil { endCopyLine() }
                i = end + 1
                continue
            }
            step(bytes[i])
            i += 1
        }
    }

    // MARK: - SQL

    private static func isIdentifierByte(_ b: UInt8) -> Bool {
        b == UInt8(ascii: "_") || b == UInt8(ascii: "$") || b >= 0x80
            || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
            || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
    }

    private static func isSpace(_ b: UInt8) -> Bool {
        b == UInt8(ascii: " ") || b == UInt8(ascii: "\n") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\r")
    }

    /// Adds a byte to the statement (quoted parts included: a COPY names its table with them).
    private mutating func keep(_ b: UInt8) {
        guard !statementTooLong else { return }
        if statement.isEmpty && Self.isSpace(b) { return }
        if statement.count >= Self.statementLimit {
            statementTooLong = true
            return
        }
        statement.append(b)
    }

    private mutating func step(_ b: UInt8) {
        switch mode {
        case .code:
            code(b)
        case .singleQuote(let escapes):
            keep(b)
            if b == UInt8(ascii: "'") {
                enterCode()
                previous = b
                closedEscapeString = escapes
            } else if escapes && b == UInt8(ascii: "\\") {
                mode = .escaped
            }
        case .escaped:
            keep(b)
            mode = .singleQuote(escapes: true)
        case .doubleQuote:
            keep(b)
            if b == UInt8(ascii: "\"") { enterCode() }
        case .dollarTag:
            if b == UInt8(ascii: "$") {
                tag.append(b)
                keep(b)
                mode = .dollarQuote
                tagMatched = 0
            } else if b == UInt8(ascii: "_") || b >= 0x80 || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                        || (tag.count > 1 && b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) {
                tag.append(b)
                keep(b)
            } else {
                // Not a dollar quote after all (`$1`, say): the byte is code.
                enterCode()
                code(b)
            }
        case .dollarQuote:
            keep(b)
            if b == tag[tagMatched] {
                tagMatched += 1
                if tagMatched == tag.count { enterCode() }
            } else {
                tagMatched = b == tag[0] ? 1 : 0
            }
        case .lineComment:
            if b == UInt8(ascii: "\n") {
                if serverVersion == nil, comment.starts(with: Self.versionPrefix) {
                    serverVersion = String(decoding: comment[Self.versionPrefix.count...], as: UTF8.self)
                }
                comment.removeAll(keepingCapacity: true)
                enterCode()
            } else if comment.count < 256 {
                comment.append(b)
            }
        case .blockComment(let depth):
            if commentPrevious == UInt8(ascii: "*") && b == UInt8(ascii: "/") {
                commentPrevious = 0
                if depth == 1 { enterCode() } else { mode = .blockComment(depth: depth - 1) }
            } else if commentPrevious == UInt8(ascii: "/") && b == UInt8(ascii: "*") {
                commentPrevious = 0
                mode = .blockComment(depth: depth + 1)
            } else {
                commentPrevious = b
            }
        case .metaCommand:
            if b == UInt8(ascii: "\n") { enterCode() }
        case .copyStatementEnd:
            if b == UInt8(ascii: "\n") {
                mode = .copyData
                copyLineLength = 0
                copyLineStartsWithEnd = true
            }
        case .copyData:
            break  // handled in consume(_:)
        }
    }

    private mutating func enterCode() {
        mode = .code
        previous = 0
        beforePrevious = 0
    }

    private mutating func code(_ b: UInt8) {
        let last = previous
        let beforeLast = beforePrevious
        beforePrevious = previous
        previous = b
        switch b {
        case UInt8(ascii: "-") where last == UInt8(ascii: "-"):
            dropLastKept()
            mode = .lineComment
            comment.removeAll(keepingCapacity: true)
        case UInt8(ascii: "*") where last == UInt8(ascii: "/"):
            dropLastKept()
            mode = .blockComment(depth: 1)
            commentPrevious = 0
        case UInt8(ascii: "'"):
            keep(b)
            let escapeString = last == UInt8(ascii: "'")
                ? closedEscapeString
                : (last == UInt8(ascii: "E") || last == UInt8(ascii: "e")) && !Self.isIdentifierByte(beforeLast)
            mode = .singleQuote(escapes: escapeString)
        case UInt8(ascii: "\""):
            keep(b)
            mode = .doubleQuote
        case UInt8(ascii: "$") where !Self.isIdentifierByte(last):
            keep(b)
            tag = [b]
            mode = .dollarTag
        case UInt8(ascii: "\\") where statement.isEmpty && !statementTooLong:
            mode = .metaCommand
        case UInt8(ascii: ";"):
            endStatement()
        default:
            keep(b)
        }
    }

    /// Takes back the first byte of a two-byte comment opener.
    private mutating func dropLastKept() {
        if !statementTooLong, !statement.isEmpty { statement.removeLast() }
    }

    private mutating func endStatement() {
        defer {
            statement.removeAll(keepingCapacity: true)
            statementTooLong = false
            previous = 0
            beforePrevious = 0
        }
        guard !statementTooLong else { return }
        while let last = statement.last, Self.isSpace(last) { statement.removeLast() }
        guard statement.count > Self.copyPrefix.count + Self.copySuffix.count,
              statement.starts(with: Self.copyPrefix), statement.suffix(Self.copySuffix.count).elementsEqual(Self.copySuffix) else { return }
        // "schema.table (a, b)" or "schema.table": the name ends at the first space outside quotes.
        var name: [UInt8] = []
        var quoted = false
        for byte in statement[Self.copyPrefix.count...] {
            if byte == UInt8(ascii: "\"") { quoted.toggle() }
            if !quoted && byte == UInt8(ascii: " ") { break }
            name.append(byte)
        }
        let table = String(decoding: name, as: UTF8.self)
        self.table = table
        counts[table, default: 0] += 0
        mode = .copyStatementEnd
    }

    // MARK: - Rows

    private mutating func trackCopyLine(_ piece: UnsafeRawBufferPointer) {
        // Only whether this line is exactly "\." matters.
        for (i, byte) in piece.prefix(max(0, 3 - copyLineLength)).enumerated() {
            let position = copyLineLength + i
            let fits = position == 0 && byte == UInt8(ascii: "\\") || position == 1 && byte == UInt8(ascii: ".")
            if !fits { copyLineStartsWithEnd = false }
        }
        copyLineLength += piece.count
    }

    private mutating func endCopyLine() {
        if copyLineStartsWithEnd && copyLineLength == 2 {
            table = nil
            enterCode()
        } else if let table {
            counts[table, default: 0] += 1
        }
        copyLineLength = 0
        copyLineStartsWithEnd = true
    }
}
