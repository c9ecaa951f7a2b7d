import BunkerCore

/// The error codes of the service layer's own failures: the catalog, the audit trail, users.
extension BunkerError.Code {
    /// The catalog (users, backup metadata, audit trail) cannot be opened or written.
    public static let catalog = Self("catalog")
    /// The audit trail's hash chain or its signed anchors do not match: rows were tampered with.
    public static let auditTampered = Self("audit_tampered")
    /// No user of that name.
    public static let userNotFound = Self("user_not_found")
    /// A wrong user name or password, or a deactivated user.
    public static let authenticationFailed = Self("authentication_failed")
    /// Too many failed logins: the account is locked for a while.
    public static let accountLocked = Self("account_locked")
}

extension BunkerError.Code {
    /// No service token of that name.
    public static let tokenNotFound = Self("token_not_found")
}
