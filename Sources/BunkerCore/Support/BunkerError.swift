import Foundation

/// An error with a stable code, a message that says what to do, and the underlying cause.
///
/// The CLI maps ``Code`` to exit codes and the server (later) to HTTP statuses; a user never sees
/// a bare "operation failed".
public struct BunkerError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, in a form that scripts can switch on: a stable string (`storage_full`).
    ///
    /// Open, as NIO's and postgres-nio's error codes are: each module declares the codes of its
    /// own failures in an extension (the catalog's and the audit trail's live in BunkerService),
    /// so a new module adds codes without touching the core. Faces map the codes they know to exit
    /// codes and HTTP statuses and treat any other as a general failure.
    public struct Code: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
        public let rawValue: String

        public init(rawValue: String) { self.rawValue = rawValue }
        public init(_ rawValue: String) { self.rawValue = rawValue }

        public var description: String { rawValue }

        public static let invalidArgument = Code("invalid_argument")
        public static let repositoryNotFound = Code("repository_not_found")
        public static let repositoryExists = Code("repository_exists")
        public static let unsupportedFormat = Code("unsupported_format")
        public static let wrongPassword = Code("wrong_password")
        public static let keyNotFound = Code("key_not_found")
        public static let objectNotFound = Code("object_not_found")
        public static let objectExists = Code("object_exists")
        public static let snapshotNotFound = Code("snapshot_not_found")
        public static let corruptObject = Code("corrupt_object")
        public static let integrity = Code("integrity")
        public static let storageFull = Code("storage_full")
        public static let storageIO = Code("storage_io")
        /// The storage is busy or out of reach for now (a 503 `SlowDown`, a reset connection, a
        /// timeout): the same request may succeed later. ``RetryingStorage`` retries these.
        public static let storageUnavailable = Code("storage_unavailable")
        public static let permissionDenied = Code("permission_denied")
        public static let repositoryLocked = Code("repository_locked")
        public static let sourceIO = Code("source_io")
        public static let cancelled = Code("cancelled")
        /// A server Bunker talks to (mail, webhooks) could not be reached or refused.
        public static let network = Code("network")
        /// The system did not give the memory an operation needs (deriving a key, say).
        public static let outOfMemory = Code("out_of_memory")
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
        // A transient failure's detail says again, for the retries, what the message says.
        if let cause, !(cause is TransientStorageFailure) { return "\(message) (\(cause))" }
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
