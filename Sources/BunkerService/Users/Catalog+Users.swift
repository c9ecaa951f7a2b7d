import BunkerCore
import Foundation
import GRDB
import HummingbirdBcrypt
import NIOPosix

/// A new user's details.
public struct NewUser: Sendable {
    public var username: String
    public var fullName: String
    public var email: String?
    public var role: Role
    public var password: String

    public init(username: String, fullName: String, email: String? = nil, role: Role, password: String) {
        self.username = username
        self.fullName = fullName
        self.email = email
        self.role = role
        self.password = password
    }
}

extension Catalog {
    /// Every user, in the order they were added.
    public func users() throws -> [UserRecord] {
        try queue.read { try UserRecord.order(Column("id")).fetchAll($0) }
    }

    /// The user of that name (case-insensitive), if any.
    public func user(named username: String) throws -> UserRecord? {
        try queue.read { try UserRecord.filter(Column("username") == username).fetchOne($0) }
    }

    /// The user with that id, if any.
    public func user(id: Int64) throws -> UserRecord? {
        try queue.read { try UserRecord.fetchOne($0, key: id) }
    }

    /// Adds a user; the change and its audit row are one transaction.
    @discardableResult
    public func addUser(_ new: NewUser, by actor: AuditActor) throws -> UserRecord {
        guard new.username.range(of: "^[A-Za-z0-9._@-]{1,64}$", options: .regularExpression) != nil else {
            throw BunkerError(.invalidArgument, "A user name is 1 to 64 letters, digits, '.', '_', '@' or '-'; \"\(new.username)\" is not.")
        }
        guard !new.fullName.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw BunkerError(.invalidArgument, "A user needs a full name: it is what an electronic signature shows.")
        }
        if let email = new.email, email.range(of: "^[^@\\s]+@[^@\\s]+$", options: .regularExpression) == nil {
            throw BunkerError(.invalidArgument, "\"\(email)\" is not an e-mail address.")
        }
        try Self.checkPassword(new.password)
        let hash = Bcrypt.hash(new.password, cost: options.bcryptCost)
        return try write { db in
            if let existing = try UserRecord.filter(Column("username") == new.username).fetchOne(db) {
                throw BunkerError(.invalidArgument, "A user named \(existing.username) already exists\(existing.active ? "" : " (deactivated: `bunker user enable \(existing.username)`)"); users are never deleted or renamed, so pick another name.")
            }
            let now = options.now()
            var user = UserRecord(
                id: nil, username: new.username, fullName: new.fullName, email: new.email, role: new.role, passwordHash: hash,
                active: true, failedLogins: 0, lockedUntil: nil, createdAt: now, updatedAt: now, passwordChangedAt: now)
            try user.insert(db)
            var details = ["role": new.role.rawValue, "full_name": new.fullName]
            details["email"] = new.email
            try append(AuditEntry(action: "user.add", target: new.username, outcome: .success, details: details), by: actor, in: db)
            return user
        }
    }

    /// Creates the first administrator when the catalog has no user yet: `username`, and
    /// `password` or else a generated one, which is returned so that it can be shown once.
    /// Returns nil when users exist already. Audited as `user.add` by Bunker itself.
    public func ensureFirstAdministrator(username: String, password: String?, email: String?) throws -> (user: UserRecord, generatedPassword: String?)? {
        guard try queue.read({ try UserRecord.fetchCount($0) }) == 0 else { return nil }
        let chosen = password ?? Self.generatedPassword()
        let user = try addUser(NewUser(username: username, fullName: "Administrator", email: email, role: .systemAdmin, password: chosen), by: .system)
        return (user, password == nil ? chosen : nil)
    }

    /// 20 characters from a 57-letter alphabet without look-alikes: about 116 bits.
    static func generatedPassword() -> String {
        let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<20).map { _ in alphabet.randomElement(using: &generator)! })
    }

    /// Deactivates or reactivates a user. A deactivation ends every token issued so far: they
    /// stay invalid when the user is enabled again.
    @discardableResult
    public func setActive(_ username: String, _ active: Bool, by actor: AuditActor) throws -> UserRecord {
        try changeUser(username, action: active ? "user.enable" : "user.disable", by: actor) { user in
            user.active = active
            if active {
                user.failedLogins = 0
                user.lockedUntil = nil
            } else {
                user.tokenGeneration += 1
            }
            return [:]
        }
    }

    /// Gives a user another role.
    @discardableResult
    public func setRole(_ username: String, _ role: Role, by actor: AuditActor) throws -> UserRecord {
        try changeUser(username, action: "user.role", by: actor) { user in
            let old = user.role
            user.role = role
            return ["from": old.rawValue, "to": role.rawValue]
        }
    }

    /// Sets a user's password; also clears a lockout, and ends every token issued so far.
    @discardableResult
    public func setPassword(_ username: String, _ password: String, by actor: AuditActor) throws -> UserRecord {
        try Self.checkPassword(password)
        let hash = Bcrypt.hash(password, cost: options.bcryptCost)
        return try changeUser(username, action: "user.passwd", by: actor) { user in
            user.passwordHash = hash
            user.passwordChangedAt = options.now()
            user.tokenGeneration += 1
            user.failedLogins = 0
            user.lockedUntil = nil
            return [:]
        }
    }

    /// The longest user name a login may name, in bytes: the longest a user can have.
    public static let maxUsernameBytes = 64

    /// Refuses, with ``BunkerError/Code/invalidArgument``, a user name that no user can have:
    /// empty, or longer than ``maxUsernameBytes``. Such a login is no attempt.
    public static func checkLoginName(_ username: String) throws {
        guard (1...maxUsernameBytes).contains(username.utf8.count) else {
            throw BunkerError(.invalidArgument, "A user name has 1 to \(maxUsernameBytes) characters (letters, digits, '.', '_', '@' or '-'); this one has \(username.utf8.count) bytes, so no login was tried.")
        }
    }

    /// Checks a user name and password, counting failures: after the policy's number of failures
    /// in a row the account is locked for the policy's time. Every attempt is audited
    /// (`auth.login`: success, or denied with the reason), under the name tried
    /// (``AuditText/escaped(_:)``) when it is no user's.
    ///
    /// An empty user name, or one longer than any user's (``maxUsernameBytes``), is not an
    /// attempt: it fails with ``BunkerError/Code/invalidArgument`` and is not audited.
    public func authenticate(username: String, password: String, requestID: String? = nil) throws -> UserRecord {
        try Self.checkLoginName(username)
        let now = options.now()
        let policy = options.loginPolicy
        // bcrypt before the transaction: it is slow on purpose, and must not hold the write lock.
        let stored = try user(named: username)
        // An unknown name costs a bcrypt check too, so that timing does not tell which names exist.
        let matches = Bcrypt.verify(password, hash: stored?.passwordHash ?? Self.unknownUserHash) && stored != nil
        // The name as tried is anyone's text: stored escaped and bounded, never as sent.
        let tried = stored?.username ?? AuditText.escaped(username)
        let actor = AuditActor(name: tried, channel: .api, userID: stored?.id, requestID: requestID)
        let outcome: Result<UserRecord, BunkerError> = try write { db in
            func deny(_ reason: String, _ error: BunkerError) throws -> Result<UserRecord, BunkerError> {
                try append(AuditEntry(action: "auth.login", target: tried, outcome: .denied, reason: reason), by: actor, in: db)
                return .failure(error)
            }
            let wrong = BunkerError(.authenticationFailed, "Wrong user name or password.")
            guard var user = try UserRecord.filter(Column("username") == username).fetchOne(db) else {
                return try deny("unknown user", wrong)
            }
            guard user.active else { return try deny("user deactivated", wrong) }
            // A locked account answers like a wrong password, so that the answer does not tell
            // which names exist; the lock is recorded in the audit row.
            if user.isLocked(at: now), let until = user.lockedUntil {
                return try deny("account locked until \(Timestamp.format(until))", wrong)
            }
            guard matches else {
                return try deny(try countFailedPassword(&user, at: now, in: db), wrong)
            }
            user.failedLogins = 0
            user.lockedUntil = nil
            try user.update(db)
            try append(AuditEntry(action: "auth.login", target: user.username, outcome: .success), by: actor, in: db)
            return .success(user)
        }
        return try outcome.get()
    }

    /// Checks an electronic signature: the user re-enters their password to approve `meaning`
    /// (such as `approved restore`) of `target`. A wrong password is audited as a denied
    /// `esign` row, counts towards the lockout like a failed login (so a stolen token cannot
    /// guess the password here), and fails with ``BunkerError/Code/authenticationFailed``; a
    /// locked account fails with ``BunkerError/Code/accountLocked``. A right one returns the
    /// signature (full name, time) for the operation to record.
    public func confirmSignature(userID: Int64, password: String, meaning: String, target: String?, requestID: String?) throws -> ElectronicSignature {
        let now = options.now()
        guard let stored = try user(id: userID), stored.active else {
            throw BunkerError(.authenticationFailed, "The signing user is not an active user.")
        }
        if stored.isLocked(at: now), let until = stored.lockedUntil {
            throw BunkerError(.accountLocked, "This account is locked after \(options.loginPolicy.maxFailures) failed passwords until \(Timestamp.format(until)); nothing was done.")
        }
        guard Bcrypt.verify(password, hash: stored.passwordHash) else {
            let actor = AuditActor(name: stored.username, channel: .api, userID: userID, requestID: requestID)
            try write { db in
                guard var user = try UserRecord.fetchOne(db, key: userID) else { return }
                let reason = try countFailedPassword(&user, at: now, in: db)
                try append(AuditEntry(action: "esign", target: target, outcome: .denied, reason: "signature \"\(meaning)\": \(reason)",
                                      details: ["signer": user.fullName, "meaning": meaning]),
                           by: actor, in: db)
            }
            throw BunkerError(.authenticationFailed, "The password re-entered to sign is wrong, so nothing was done.")
        }
        return ElectronicSignature(signerName: stored.fullName, signedAt: now, meaning: meaning)
    }

    /// Counts a wrong password against `user` (inside a write), locking the account at the
    /// policy's limit; the reason to audit.
    private func countFailedPassword(_ user: inout UserRecord, at now: Date, in db: Database) throws -> String {
        let policy = options.loginPolicy
        user.failedLogins += 1
        var reason = "wrong password (\(user.failedLogins) of \(policy.maxFailures))"
        if user.failedLogins >= policy.maxFailures {
            user.lockedUntil = now.addingTimeInterval(policy.lockoutSeconds)
            user.failedLogins = 0
            reason += "; locked until \(Timestamp.format(user.lockedUntil!))"
        }
        user.updatedAt = now
        try user.update(db)
        return reason
    }

    /// ``authenticate(username:password:requestID:)`` on NIO's blocking thread pool: bcrypt
    /// takes a quarter of a second on purpose, and the server's request handlers run on the
    /// cooperative pool, which a few concurrent logins would otherwise stall.
    public func authenticateOnThreadPool(username: String, password: String, requestID: String? = nil) async throws -> UserRecord {
        try await NIOThreadPool.singleton.runIfActive {
            try self.authenticate(username: username, password: password, requestID: requestID)
        }
    }

    private func changeUser(_ username: String, action: String, by actor: AuditActor, _ change: (inout UserRecord) throws -> [String: String]) throws -> UserRecord {
        try write { db in
            guard var user = try UserRecord.filter(Column("username") == username).fetchOne(db) else {
                throw BunkerError(.userNotFound, "There is no user named \(username); `bunker user list` shows them.")
            }
            let details = try change(&user)
            user.updatedAt = options.now()
            try user.update(db)
            try append(AuditEntry(action: action, target: user.username, outcome: .success, details: details), by: actor, in: db)
            return user
        }
    }

    /// A bcrypt hash (cost 12) of a random string nobody knows, checked for unknown user names.
    static let unknownUserHash = "$2b$12$ZiuUdOCa.OWk8ZeizmtCdOTur/v9K.J2xbEiDQfF9f0fHyepPdzym"

    static func checkPassword(_ password: String) throws {
        guard password.count >= 8 else {
            throw BunkerError(.invalidArgument, "A password needs at least 8 characters.")
        }
        // bcrypt reads only the first 72 bytes: a longer password would be silently cut.
        guard password.utf8.count <= 72 else {
            throw BunkerError(.invalidArgument, "A password may have at most 72 bytes (bcrypt ignores the rest).")
        }
    }
}
