import Foundation

/// An error with a stable code, a message that says what to do, and the underlying cause.
///
/// The CLI maps ``Code`` to exit codes and the server (later) to HTTP statuses; a user never sees
/// a bare "operation failed".
public struct BunkerError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, in a form that scripts can switch on.
    public enum Code: String, Sendable, Codable {
        case invalidArgument = "invalid_argument"
        case repositoryNotFound = "repository_not_found"
        case repositoryExists = "repository_exists"
        case unsupportedFormat = "unsupported_format"
        case wrongPassword = "wrong_password"
        case keyNotFound = "key_not_found"
        case objectNotFound = "object_not_found"
        case objectExists = "object_exists"
        case snapshotNotFound = "snapshot_not_found"
        case corruptObject = "corrupt_object"
        case integrity = "integrity"
        case storageFull = "storage_full"
        case storageIO = "storage_io"
        /// The storage is busy or out of reach for now (a 503 `SlowDown`, a reset connection, a
        /// timeout): the same request may succeed later. ``RetryingStorage`` retries these.
        case storageUnavailable = "storage_unavailable"
        case permissionDenied = "permission_denied"
        case repositoryLocked = "repository_locked"
        case sourceIO = "source_io"
        case cancelled = "cancelled"
        /// A server Bunker talks to (mail, webhooks) could not be reached or refused.
        case network = "network"
        /// The catalog (users, backup metadata, audit trail) cannot be opened or written.
        case catalog = "catalog"
        /// The audit trail's hash chain or its signed anchors do not match: rows were tampered with.
        case auditTampered = "audit_tampered"
        case userNotFound = "user_not_found"
        /// A wrong user name or password, or a deactivated user.
        case authenticationFailed = "authentication_failed"
        /// Too many failed logins: the account is locked for a while.
        case accountLocked = "account_locked"
    }

    public let code: Code
    public let message: String
    public let cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause { return "\(message) (\(cause))" }
        return message
    }
}

/// A failed system call, carrying `errno` and the path it concerned.
public struct POSIXFailure: Error, CustomStringConvertible, Sendable {
    public let errno: Int32
    public let operation: String
    public let path: String

    public init(errno: Int32, operation: String, path: String) {
        self.errno = errno
        self.operation = operation
        self.path = path
    }

    public var description: String {
        "\(operation) \(path): \(String(cString: strerror(errno)))"
    }
}

extension BunkerError {
    /// Maps a failed system call on repository storage to an error that says what to do.
    static func storage(_ failure: POSIXFailure) -> BunkerError {
        switch failure.errno {
        case ENOSPC, EDQUOT:
            return BunkerError(.storageFull, "The repository's storage is full while writing \(failure.path). Free space or move the repository; nothing was committed by the failed operation.", cause: failure)
        case EACCES, EPERM, EROFS:
            return BunkerError(.permissionDenied, "No permission to \(failure.operation) \(failure.path). Check the owner and mode of the repository directory.", cause: failure)
        case ENOENT:
            return BunkerError(.objectNotFound, "\(failure.path) does not exist.", cause: failure)
        default:
            return BunkerError(.storageIO, "I/O error on the repository: \(failure).", cause: failure)
        }
    }
}

/// The cause of a ``BunkerError/Code/storageUnavailable`` error: what the storage said, and how
/// long it asked to be left alone (`Retry-After`), if it did.
public struct TransientStorageFailure: Error, CustomStringConvertible, Sendable {
    public let detail: String
    public let retryAfter: Duration?

    public init(_ detail: String, retryAfter: Duration? = nil) {
        self.detail = detail
        self.retryAfter = retryAfter
    }

    public var description: String { detail }
}
