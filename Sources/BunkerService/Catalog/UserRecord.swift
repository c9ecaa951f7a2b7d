import Foundation
import GRDB

/// What a user may do. `SYSTEM_ADMIN` alone backs up, restores, verifies and cleans up;
/// `AUDITOR` reads the audit trail, backups and reports; `VIEWER` lists backups and stats.
public enum Role: String, Sendable, Codable, CaseIterable {
    case systemAdmin = "SYSTEM_ADMIN"
    case auditor = "AUDITOR"
    case viewer = "VIEWER"
}

/// A user of the API (table `users`). Users are deactivated, never deleted or renamed, so that
/// the audit trail's names always mean the same person.
public struct UserRecord: Codable, Sendable, Equatable {
    public var id: Int64?
    public var username: String
    public var fullName: String
    public var email: String?
    public var role: Role
    /// bcrypt, `$2b$…`.
    public var passwordHash: String
    public var active: Bool
    /// Failed logins since the last successful one (or the last lockout).
    public var failedLogins: Int
    /// Logins are refused until then.
    public var lockedUntil: Date?
    public var createdAt: Date
    public var updatedAt: Date
    public var passwordChangedAt: Date
    /// Tokens name the generation they were issued in, and only the current one's are valid:
    /// a new password or a deactivation bumps it, and re-enabling the user does not go back.
    public var tokenGeneration: Int64 = 0

    enum CodingKeys: String, CodingKey {
        case id, username, email, role, active
        case fullName = "full_name"
        case passwordHash = "password_hash"
        case failedLogins = "failed_logins"
        case lockedUntil = "locked_until"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case passwordChangedAt = "password_changed_at"
        case tokenGeneration = "token_generation"
    }

    /// Whether logins are refused at `now` because of failed attempts.
    public func isLocked(at now: Date) -> Bool {
        lockedUntil.map { $0 > now } ?? false
    }
}

extension Role: DatabaseValueConvertible {}

extension UserRecord: FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "users"
    /// Dates as GRDB writes them, without its `DateFormatter` (see ``CatalogDate``).
    public static func databaseDateEncodingStrategy(for column: String) -> DatabaseDateEncodingStrategy { CatalogDate.encoding }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}
