import BunkerCore
import Foundation
import GRDB

extension Catalog {
    /// What every service token starts with: a token is never mistaken for a JWT (which starts
    /// `eyJ`), and a secret scanner can find one that leaked into a repository or a log.
    public static let serviceTokenPrefix = "bkr_"

    /// Whether `text` has the shape of a service token: the prefix and 64 hex digits.
    public static func looksLikeServiceToken(_ text: String) -> Bool {
        text.hasPrefix(serviceTokenPrefix) && text.utf8.count == serviceTokenPrefix.utf8.count + 64
            && text.utf8.dropFirst(serviceTokenPrefix.utf8.count).allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// Every service token, revoked and expired ones included, in the order they were made.
    public func serviceTokens() throws -> [ServiceTokenRecord] {
        try queue.read { try ServiceTokenRecord.order(Column("id")).fetchAll($0) }
    }

    /// Makes a service token named `name` with `role`, valid until `expiresAt` (nil: until
    /// revoked). Returns the token, which exists nowhere else (the catalog keeps its SHA-256),
    /// and its record. Audited as `token.create`, in the same transaction.
    public func createServiceToken(named name: String, role: Role, expiresAt: Date?, by actor: AuditActor) throws -> (token: String, record: ServiceTokenRecord) {
        guard name.range(of: "^[A-Za-z0-9._-]{1,64}$", options: .regularExpression) != nil else {
            throw BunkerError(.invalidArgument, "A token name is 1 to 64 letters, digits, '.', '_' or '-' (say prometheus or ci-upgrade); \"\(name)\" is not.")
        }
        let now = options.now()
        if let expiresAt, expiresAt <= now {
            throw BunkerError(.invalidArgument, "A token must expire in the future; \(Timestamp.format(expiresAt)) is past.")
        }
        var random = SystemRandomNumberGenerator()
        let secret = (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }
        let token = Self.serviceTokenPrefix + secret.map { String(format: "%02x", $0) }.joined()
        return try write { db in
            if let existing = try ServiceTokenRecord.filter(Column("name") == name).fetchOne(db) {
                throw BunkerError(.invalidArgument, "A token named \(existing.name) already exists\(existing.revokedAt == nil ? "" : " (revoked)"); tokens are never deleted or renamed, so that the audit trail's token:\(existing.name) keeps one meaning: pick another name.")
            }
            var record = ServiceTokenRecord(
                id: nil, name: name, role: role, tokenHash: Self.tokenHash(token), createdAt: now, createdBy: actor.name,
                expiresAt: expiresAt, revokedAt: nil, revokedBy: nil)
            try record.insert(db)
            var details = ["role": role.rawValue]
            details["expires_at"] = expiresAt.map(Timestamp.format)
            try append(AuditEntry(action: "token.create", target: name, outcome: .success, details: details), by: actor, in: db)
            return (token, record)
        }
    }

    /// Revokes the token named `name`: every request with it is refused from now on. Audited as
    /// `token.revoke`. Revoking a revoked token is an error that says so.
    @discardableResult
    public func revokeServiceToken(named name: String, by actor: AuditActor) throws -> ServiceTokenRecord {
        try write { db in
            guard var record = try ServiceTokenRecord.filter(Column("name") == name).fetchOne(db) else {
                throw BunkerError(.tokenNotFound, "There is no service token named \(name); `bunker token list` shows them.")
            }
            if let revokedAt = record.revokedAt {
                throw BunkerError(.invalidArgument, "The token \(record.name) was revoked already, at \(Timestamp.format(revokedAt)) by \(record.revokedBy ?? "?").")
            }
            record.revokedAt = options.now()
            record.revokedBy = actor.name
            try record.update(db)
            try append(AuditEntry(action: "token.revoke", target: record.name, outcome: .success, details: ["role": record.role.rawValue]), by: actor, in: db)
            return record
        }
    }

    /// The service token that `token` is, when it is one and is neither revoked nor expired;
    /// nil for anything else.
    ///
    /// The presented token's SHA-256 is compared with every stored hash in constant time and
    /// without stopping at a match, so that the answer's timing tells nothing about how much of
    /// a guess was right. Tokens are few (one per machine that calls Bunker).
    public func serviceToken(authenticating token: String) throws -> ServiceTokenRecord? {
        guard Self.looksLikeServiceToken(token) else { return nil }
        let presented = Array(Self.tokenHash(token).utf8)
        var match: ServiceTokenRecord?
        for candidate in try serviceTokens() {
            let stored = Array(candidate.tokenHash.utf8)
            let difference = stored.count == presented.count ? zip(stored, presented).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } : 1
            if difference == 0 { match = candidate }
        }
        return match.flatMap { $0.isValid(at: options.now()) ? $0 : nil }
    }

    /// Lower-case hex SHA-256 of a token (a service token, a revoked session): what the catalog
    /// stores in its place.
    static func tokenHash(_ token: String) -> String {
        ID.sha256(of: Data(token.utf8)).hex
    }
}
