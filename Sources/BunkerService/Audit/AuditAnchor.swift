import BunkerCore
import Crypto
import Foundation

/// The audit trail's signed heads, kept outside the catalog.
///
/// The hash chain alone shows that a row was changed, removed or inserted, but someone who can
/// write the catalog can also recompute every hash after their change. So after every commit
/// the head (seq and hash) is appended to `audit-anchors.log`, each line signed with
/// HMAC-SHA-256 under a key (`audit.key`) that is never stored in the catalog. Each line's
/// signature also covers the previous line's, so that no line can be removed from the middle;
/// and `audit-anchors.head`, rewritten (signed) with every line, names the last line, so that
/// the file cannot be cut short either. A rewritten chain no longer has the anchored hashes, and
/// a forged line does not carry a valid signature without the key.
///
/// The same key makes each row's MAC (``AuditRecord/computedMAC(key:)``). Every `v3` line also
/// signs the first row that must carry one (`mac_from`): rows written before Bunker kept MACs
/// have none, and the signed boundary keeps anyone from passing a newer row off as one of them
/// by clearing its MAC.
struct AuditAnchor: Sendable {
    /// One line of the anchor file.
    struct Line: Sendable {
        var number: Int
        var seq: Int64
        var hash: String
        var timestamp: String
        /// The line's signature as written (what the next line chains to).
        var mac: String
        /// A `v2` or `v3` line, chained to the one before; `v1` lines (Bunker before chaining)
        /// are not.
        var chained: Bool
        /// A `v3` line's first row that must carry a MAC; nil in older lines.
        var macFrom: Int64?
        /// The signature checks out under this data directory's key.
        var signed: Bool
    }

    /// What `audit-anchors.head` says: the anchor file's last line.
    struct HeadLine: Sendable {
        var seq: Int64
        var mac: String
        var signed: Bool
    }

    /// What an anchor names: the audit trail's head.
    struct Head: Sendable {
        var seq: Int64
        var hash: String
    }

    let file: String
    let headFile: String
    let keyFile: String
    /// The audit key: signs anchor lines and audit rows alike.
    let key: SymmetricKey

    init(file: String, headFile: String, keyFile: String, key: SymmetricKey) {
        self.file = file
        self.headFile = headFile
        self.keyFile = keyFile
        self.key = key
    }

    private func mac(_ message: String) -> String {
        ID(digest: HMAC<SHA256>.authenticationCode(for: Data(message.utf8), using: key)).hex
    }

    private func signature(version: String, seq: Int64, hash: String, timestamp: String, macFrom: Int64?, previous: String) -> String {
        switch version {
        case "v1": return mac("bunker-audit-anchor-v1 \(seq) \(hash) \(timestamp)")
        case "v2": return mac("bunker-audit-anchor-v2 \(seq) \(hash) \(timestamp) \(previous)")
        default: return mac("bunker-audit-anchor-v3 \(seq) \(hash) \(timestamp) \(macFrom ?? 0) \(previous)")
        }
    }

    private func headSignature(seq: Int64, mac line: String) -> String {
        mac("bunker-audit-head-v2 \(seq) \(line)")
    }

    /// Appends a signed, chained line for the head that `head` reads (unless the last line
    /// names it already, as a `v3` line), flushes it to disk and rewrites the head file.
    ///
    /// The line's `mac_from` is the last line's; the first `v3` line (a new trail, or the first
    /// start of a Bunker that keeps MACs) takes it from `macFrom`, read from the catalog then.
    ///
    /// Runs under an exclusive `flock` of the anchor file, so that processes sharing the data
    /// directory append in seq order and each line chains to the one really before it.
    func append(timestamp: String, head: () throws -> Head?, macFrom: () throws -> Int64) throws {
        let fd = open(file, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw BunkerError(.catalog, "Cannot open the audit anchor file \(file): \(String(cString: strerror(errno))).")
        }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else {
            throw BunkerError(.catalog, "Cannot lock the audit anchor file \(file): \(String(cString: strerror(errno))).")
        }
        guard let head = try head() else { return }
        let last = Self.lastLine(fd)
        if let last, last.seq > head.seq || (last.seq == head.seq && last.macFrom != nil) { return }
        let from = try last?.macFrom ?? macFrom()
        let previous = last?.mac ?? AuditRecord.genesisHash
        let signed = signature(version: "v3", seq: head.seq, hash: head.hash, timestamp: timestamp, macFrom: from, previous: previous)
        let line = "v3 \(head.seq) \(head.hash) \(timestamp) \(from) \(signed)\n"
        try SecretFile.writeCatalogFile(line, to: fd, naming: "the audit anchor file \(file)")
        try writeHead(seq: head.seq, mac: signed)
    }

    /// Rewrites the head file to name the anchor file's last line: after a trail is restored
    /// from the repository (``Catalog/restoreTrail(dataDirectory:from:options:)``).
    func rewriteHead() throws {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw BunkerError(.catalog, "Cannot open the audit anchor file \(file): \(String(cString: strerror(errno))).")
        }
        defer { close(fd) }
        guard let last = Self.lastLine(fd) else { return }
        try writeHead(seq: last.seq, mac: last.mac)
    }

    /// The head file naming the line of `seq` signed `mac`, replaced atomically.
    private func writeHead(seq: Int64, mac signed: String) throws {
        let headLine = "v2 \(seq) \(signed) \(headSignature(seq: seq, mac: signed))\n"
        let temp = headFile + ".tmp"
        unlink(temp)
        try SecretFile.write(headLine, to: temp, flags: O_EXCL, naming: "the audit anchor head")
        guard rename(temp, headFile) == 0 else {
            throw BunkerError(.catalog, "Cannot replace the audit anchor head \(headFile): \(String(cString: strerror(errno))).")
        }
        let directory = open((headFile as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }

    /// The last complete line of the open anchor file, read from its tail.
    private static func lastLine(_ fd: Int32) -> (seq: Int64, mac: String, macFrom: Int64?)? {
        let size = lseek(fd, 0, SEEK_END)
        guard size > 0 else { return nil }
        let length = Int(min(size, 4096))
        var buffer = [UInt8](repeating: 0, count: length)
        guard pread(fd, &buffer, length, off_t(size) - off_t(length)) == length else { return nil }
        let text = String(decoding: buffer, as: UTF8.self)
        guard let raw = text.split(separator: "\n").last, let parsed = parse(raw) else { return nil }
        return (parsed.seq, parsed.mac, parsed.macFrom)
    }

    /// One line's fields: `v1|v2 <seq> <hash> <time> <mac>` or `v3 <seq> <hash> <time> <mac_from> <mac>`.
    private static func parse(_ raw: Substring) -> (version: String, seq: Int64, hash: String, timestamp: String, macFrom: Int64?, mac: String)? {
        let parts = raw.split(separator: " ").map(String.init)
        guard let version = parts.first, let seq = parts.count > 1 ? Int64(parts[1]) : nil else { return nil }
        switch (version, parts.count) {
        case ("v1", 5), ("v2", 5):
            return (version, seq, parts[2], parts[3], nil, parts[4])
        case ("v3", 6):
            guard let from = Int64(parts[4]), from >= 1 else { return nil }
            return (version, seq, parts[2], parts[3], from, parts[5])
        default:
            return nil
        }
    }

    /// The file's lines as written (for shipping them to the repository); empty without a file.
    func rawLines() throws -> [String] {
        guard FileManager.default.fileExists(atPath: file) else { return [] }
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw BunkerError(.catalog, "Cannot read the audit anchor file \(file).")
        }
        // Only complete lines: a line being appended has no newline yet.
        return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    /// The seq a raw line anchors.
    static func seq(of line: String) -> Int64? {
        parse(Substring(line))?.seq
    }

    /// The file's lines, each with whether its signature (and chain) checks; nil when there is
    /// no file.
    func lines() throws -> [Line]? {
        guard FileManager.default.fileExists(atPath: file) else { return nil }
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw BunkerError(.catalog, "Cannot read the audit anchor file \(file).")
        }
        var result: [Line] = []
        var previous = AuditRecord.genesisHash
        for (index, raw) in text.split(separator: "\n").enumerated() {
            guard let line = Self.parse(raw) else {
                result.append(Line(number: index + 1, seq: 0, hash: "", timestamp: "", mac: "", chained: false, macFrom: nil, signed: false))
                previous = raw.split(separator: " ").last.map(String.init) ?? ""
                continue
            }
            let expected = signature(version: line.version, seq: line.seq, hash: line.hash, timestamp: line.timestamp, macFrom: line.macFrom, previous: previous)
            result.append(Line(number: index + 1, seq: line.seq, hash: line.hash, timestamp: line.timestamp, mac: line.mac,
                               chained: line.version != "v1", macFrom: line.macFrom, signed: expected == line.mac))
            previous = line.mac
        }
        return result
    }

    /// What the head file says; nil when there is none.
    func headLine() throws -> HeadLine? {
        guard FileManager.default.fileExists(atPath: headFile) else { return nil }
        guard let text = try? String(contentsOfFile: headFile, encoding: .utf8) else {
            throw BunkerError(.catalog, "Cannot read the audit anchor head \(headFile).")
        }
        let parts = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ").map(String.init)
        guard parts.count == 4, parts[0] == "v2", let seq = Int64(parts[1]) else { return HeadLine(seq: 0, mac: "", signed: false) }
        return HeadLine(seq: seq, mac: parts[2], signed: headSignature(seq: seq, mac: parts[2]) == parts[3])
    }
}
