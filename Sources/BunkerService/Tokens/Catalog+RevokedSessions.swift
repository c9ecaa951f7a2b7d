import BunkerCore
import Foundation
import GRDB

extension Catalog {
    /// Remembers that the session `token` was ended (a console logout) before it expires at
    /// `expiresAt`, so that no copy of it works again, also after the server restarts. Sessions
    /// whose tokens have expired by now are forgotten at the same time: an expired token is
    /// refused anyway, so the table holds no more than the logouts of one token lifetime.
    public func revokeSession(_ token: String, expiresAt: Date) throws {
        let now = options.now()
        try write { db in
            try db.execute(sql: "DELETE FROM revoked_sessions WHERE expires_at <= ?", arguments: [CatalogDate.text(now)])
            guard expiresAt > now else { return }
            try db.execute(
                sql: "INSERT OR REPLACE INTO revoked_sessions (token_hash, expires_at) VALUES (?, ?)",
                arguments: [Self.tokenHash(token), CatalogDate.text(expiresAt)])
        }
    }

    /// Whether the session `token` was ended by ``revokeSession(_:expiresAt:)``.
    public func isRevokedSession(_ token: String) throws -> Bool {
        try queue.read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM revoked_sessions WHERE token_hash = ?)", arguments: [Self.tokenHash(token)]) ?? false
        }
    }
}
