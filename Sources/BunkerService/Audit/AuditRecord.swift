import BunkerCore
import Crypto
import Foundation
import GRDB

/// How an audited action ended (or that it started).
public enum AuditOutcome: String, Sendable, Codable, CaseIterable {
    /// The first row of a long operation; its end row names it in `operation_seq`.
    case started
    case success
    case failure
    /// Refused for lack of permission, a locked account or a wrong password.
    case denied
    /// A long operation whose process died; closed at the next start.
    case interrupted
}

/// One row of the audit trail (table `audit`).
///
/// Rows are only ever appended. Each row's `hash` is the SHA-256 of the previous row's hash and
/// this row's ``canonicalContent``, so that changing, removing or inserting a row breaks the
/// chain from that row on; its `mac`, an HMAC of that hash under the audit key, shows that Bunker
/// wrote it, so that someone who can write the catalog but not read the key cannot append a row
/// that verifies. docs/audit-trail.md specifies the format.
public struct AuditRecord: Codable, Sendable, Equatable {
    /// 1, 2, 3, … without gaps.
    public var seq: Int64
    /// UTC, RFC 3339 with nanoseconds, exactly as hashed.
    public var timestamp: String
    public var actor: String
    /// `backup`, `restore`, `user.add`, …
    public var action: String
    public var target: String?
    public var outcome: AuditOutcome
    public var reason: String?
    public var requestID: String?
    /// A JSON object with sorted keys, exactly as hashed.
    public var details: String?
    /// For an operation's end row: the seq of its start row.
    public var operationSeq: Int64?
    public var prevHash: String
    public var hash: String
    /// HMAC-SHA-256 of `hash` under the audit key (``computedMAC(key:)``); nil only in rows
    /// written before Bunker kept MACs, which the signed anchors alone protect.
    public var mac: String?

    enum CodingKeys: String, CodingKey {
        case seq, timestamp, actor, action, target, outcome, reason, details, hash, mac
        case requestID = "request_id"
        case operationSeq = "operation_seq"
        case prevHash = "prev_hash"
    }

    /// The hash the first row chains to.
    public static let genesisHash = String(repeating: "0", count: 64)

    /// The row's content in the one form that is hashed: a version line, then each field on its
    /// own line as `<byte length>:<value>`, or `-` for a missing value, so that no two different
    /// rows have the same form.
    public var canonicalContent: Data {
        func field(_ value: String?) -> String {
            guard let value else { return "-" }
            return "\(value.utf8.count):\(value)"
        }
        let fields: [String?] = [
            String(seq), timestamp, actor, action, target, outcome.rawValue, reason, requestID, details,
            operationSeq.map(String.init),
        ]
        return Data((["bunker-audit-v1"] + fields.map(field)).joined(separator: "\n").utf8)
    }

    /// SHA-256 over the previous row's hash (hex) and this row's canonical content.
    public func computedHash(previous: String) -> String {
        var hasher = SHA256()
        hasher.update(data: Data(previous.utf8))
        hasher.update(data: Data("\n".utf8))
        hasher.update(data: canonicalContent)
        return ID(digest: hasher.finalize()).hex
    }

    /// The row's MAC under the audit key: HMAC-SHA-256 over a version tag and the row's hash,
    /// which already covers its content and the previous row's hash.
    func computedMAC(key: SymmetricKey) -> String {
        ID(digest: HMAC<SHA256>.authenticationCode(for: Data("bunker-audit-row-v1 \(hash)".utf8), using: key)).hex
    }

    /// The details as a dictionary (empty when there are none).
    public var detailValues: [String: String] {
        guard let details, let object = try? JSONDecoder().decode([String: String].self, from: Data(details.utf8)) else { return [:] }
        return object
    }

    /// The time of the row.
    public var date: Date? { Timestamp.parse(timestamp) }
}

extension AuditOutcome: DatabaseValueConvertible {}

extension AuditRecord: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "audit"
}
