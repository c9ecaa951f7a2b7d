import BunkerCore
import Crypto
import Foundation

/// The audit trail's signed heads, kept outside the catalog.
///
/// The hash chain alone shows that a row was changed, removed or inserted, but someone who can
/// write the catalog can also recompute every hash after their change. So, every few rows and at
/// the end of every operation, the head (seq and hash) is appended to `audit-anchors.log`, each
/// line signed with HMAC-SHA-256 under a key (`audit.key`) that is never stored in the catalog.
/// A rewritten chain no longer has the anchored hashes, and a forged anchor line does not carry a
/// valid signature without the key.
struct AuditAnchor: Sendable {
    /// One line of the anchor file.
    struct Line: Sendable {
        var number: Int
        var seq: Int64
        var hash: String
        var timestamp: String
        /// The signature checks out under this data directory's key.
        var signed: Bool
    }

    let file: String
    let keyFile: String
    private let key: SymmetricKey

    /// Loads the key from `keyFile`, creating it (32 random bytes, mode 0600) if it is missing.
    init(file: String, keyFile: String) throws {
        self.file = file
        self.keyFile = keyFile
        key = try SecretFile.loadOrCreate(at: keyFile, naming: "the audit key")
    }

    private func signature(seq: Int64, hash: String, timestamp: String) -> String {
        let message = "bunker-audit-anchor-v1 \(seq) \(hash) \(timestamp)"
        return ID(digest: HMAC<SHA256>.authenticationCode(for: Data(message.utf8), using: key)).hex
    }

    /// Appends a signed head and flushes it to disk.
    func append(seq: Int64, hash: String, timestamp: String) throws {
        let line = "v1 \(seq) \(hash) \(timestamp) \(signature(seq: seq, hash: hash, timestamp: timestamp))\n"
        try SecretFile.write(line, to: file, flags: O_APPEND, naming: "the audit anchor file")
    }

    /// The file's lines, each with whether its signature checks; nil when there is no file.
    func lines() throws -> [Line]? {
        guard FileManager.default.fileExists(atPath: file) else { return nil }
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw BunkerError(.catalog, "Cannot read the audit anchor file \(file).")
        }
        var result: [Line] = []
        for (index, raw) in text.split(separator: "\n").enumerated() {
            let parts = raw.split(separator: " ").map(String.init)
            guard parts.count == 5, parts[0] == "v1", let seq = Int64(parts[1]) else {
                result.append(Line(number: index + 1, seq: 0, hash: "", timestamp: "", signed: false))
                continue
            }
            let expected = signature(seq: seq, hash: parts[2], timestamp: parts[3])
            result.append(Line(number: index + 1, seq: seq, hash: parts[2], timestamp: parts[3], signed: expected == parts[4]))
        }
        return result
    }
}
