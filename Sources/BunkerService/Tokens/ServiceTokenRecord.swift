import Foundation
import GRDB

/// A service token (table `service_tokens`): a credential for a machine that calls the API
/// (a Prometheus server, a CI job, the clinical application), with a role like a user's.
///
/// Only the SHA-256 of the token is stored; the token itself is shown once, when it is made.
/// Tokens are revoked, never deleted or renamed, so that the audit trail's `token:NAME`
/// always means the same credential.
public struct ServiceTokenRecord: Codable, Sendable, Equatable {
    public var id: Int64?
    public var name: String
    public var role: Role
    /// Lower-case hex SHA-256 of the whole token (`bkr_…`).
    public var tokenHash: String
    public var createdAt: Date
    /// The audit actor that made it.
    public var createdBy: String
    /// Refused from then on; nil: until revoked.
    public var expiresAt: Date?
    public var revokedAt: Date?
    public var revokedBy: String?

    enum CodingKeys: String, CodingKey {
        case id, name, role
        case tokenHash = "token_hash"
        case createdAt = "created_at"
        case createdBy = "created_by"
        case expiresAt = "expires_at"
        case revokedAt = "revoked_at"
        case revokedBy = "revoked_by"
    }

    /// The name the audit trail records for what this token does: `token:NAME`.
    public var actorName: String { "token:\(name)" }

    /// Whether the token is accepted at `now`: neither revoked nor expired.
    public func isValid(at now: Date) -> Bool {
        revokedAt == nil && expiresAt.map { $0 > now } ?? true
    }

    /// `active`, `revoked` or `expired` at `now`.
    public func state(at now: Date) -> String {
        if revokedAt != nil { return "revoked" }
        return isValid(at: now) ? "active" : "expired"
    }
}

extension ServiceTokenRecord: FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "service_tokens"
    /// Dates as GRDB writes them, without its `DateFormatter` (see ``CatalogDate``).
    public static func databaseDateEncodingStrategy(for column: String) -> DatabaseDateEncodingStrategy { CatalogDate.encoding }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}
