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
struct AuditAnchor: Sendable {
    /// One line of the anchor file.
    struct Line: Sendable {
        var number: Int
        var seq: Int64
        var hash: String
        var timestamp: String
        /// The line's signature as written (what the next line chains to).
        var mac: String
        /// A `v2` line, chained to the one before; `v1` lines (Bunker before chaining) are not.
        var chained: Bool
        /// The signature checks out under this data directory's key.
        var signed: Bool
    }

    /// What `audit-anchors.head` says: the anchor file's last line.
    struct Head: Sendable {
        var seq: Int64
        var mac: String
        var signed: Bool
    }

    let file: String
    let headFile: String
    let keyFile: String
    private let key: SymmetricKey

    init(file: String, headFile: String, keyFile: String, key: SymmetricKey) {
        self.file = file
        self.headFile = headFile
        self.keyFile = keyFile
        self.key = key
    }

    private func mac(_ message: String) -> String {
        ID(digest: HMAC<SHA256>.authenticationCode(for: Data(message.utf8), using: key)).hex
    }

    private func signature(version: String, seq: Int64, hash: String, timestamp: String, previous: String) -> String {
        if version == "v1" { return mac("bunker-audit-anchor-v1 \(seq) \(hash) \(timestamp)") }
        return mac("bunker-audit-anchor-v2 \(seq) \(hash) \(timestamp) \(previous)")
    }

    private func headSignature(seq: Int64, mac line: String) -> String {
        mac("bunker-audit-head-v2 \(seq) \(line)")
    }

    /// Appends a signed, chained line for the head that `head` reads (unless the last line
    /// names it already), flushes it to disk and rewrites the head file.
    ///
    /// Runs under an exclusive `flock` of the anchor file, so that processes sharing the data
    /// directory append in seq order and each line chains to the one really before it.
    func append(timestamp: String, head: () throws -> (seq: Int64, hash: String)?) throws {
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
        if let last, last.seq >= head.seq { return }
        let previous = last?.mac ?? AuditRecord.genesisHash
        let signed = signature(version: "v2", seq: head.seq, hash: head.hash, timestamp: timestamp, previous: previous)
        let line = "v2 \(head.seq) \(head.hash) \(timestamp) \(signed)\n"
        guard Glibc.write(fd, line, line.utf8.count) == line.utf8.count, fsync(fd) == 0 else {
            throw BunkerError(.catalog, "Cannot write the audit anchor file \(file): \(String(cString: strerror(errno))).")
        }
        let headLine = "v2 \(head.seq) \(signed) \(headSignature(seq: head.seq, mac: signed))\n"
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
    private static func lastLine(_ fd: Int32) -> (seq: Int64, mac: String)? {
        let size = lseek(fd, 0, SEEK_END)
        guard size > 0 else { return nil }
        let length = Int(min(size, 4096))
        var buffer = [UInt8](repeating: 0, count: length)
        guard pread(fd, &buffer, length, off_t(size) - off_t(length)) == length else { return nil }
        let text = String(decoding: buffer, as: UTF8.self)
        guard let raw = text.split(separator: "\n").last else { return nil }
        let parts = raw.split(separator: " ").map(String.init)
        guard parts.count == 5, let seq = Int64(parts[1]) else { return nil }
        return (seq, parts[4])
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
            let parts = raw.split(separator: " ").map(String.init)
            guard parts.count == 5, parts[0] == "v1" || parts[0] == "v2", let seq = Int64(parts[1]) else {
                result.append(Line(number: index + 1, seq: 0, hash: "", timestamp: "", mac: "", chained: false, signed: false))
                previous = parts.last ?? ""
                continue
            }
            let expected = signature(version: parts[0], seq: seq, hash: parts[2], timestamp: parts[3], previous: previous)
            result.append(Line(number: index + 1, seq: seq, hash: parts[2], timestamp: parts[3], mac: parts[4],
                               chained: parts[0] == "v2", signed: expected == parts[4]))
            previous = parts[4]
        }
        return result
    }

    /// What the head file says; nil when there is none.
    func head() throws -> Head? {
        guard FileManager.default.fileExists(atPath: headFile) else { return nil }
        guard let text = try? String(contentsOfFile: headFile, encoding: .utf8) else {
            throw BunkerError(.catalog, "Cannot read the audit anchor head \(headFile).")
        }
        let parts = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ").map(String.init)
        guard parts.count == 4, parts[0] == "v2", let seq = Int64(parts[1]) else { return Head(seq: 0, mac: "", signed: false) }
        return Head(seq: seq, mac: parts[2], signed: headSignature(seq: seq, mac: parts[2]) == parts[3])
    }
}
