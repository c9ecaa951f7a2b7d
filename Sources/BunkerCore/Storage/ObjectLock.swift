import Foundation

/// How an S3 object lock holds an object: S3's two retention modes.
public enum ObjectLockMode: String, Sendable, Codable, CaseIterable {
    /// Nobody, not even the bucket's owner, can delete or shorten the retention until it ends:
    /// the mode an archive that must survive a stolen administrator key needs.
    case compliance = "COMPLIANCE"
    /// Users with `s3:BypassGovernanceRetention` can still delete: protection against mistakes and
    /// ordinary credentials, not against the bucket's owner.
    case governance = "GOVERNANCE"

    /// Parses `compliance` or `governance`, in any case.
    public init(parsing text: String) throws {
        guard let mode = ObjectLockMode(rawValue: text.uppercased()) else {
            throw BunkerError(.invalidArgument, "\"\(text)\" is not an object-lock mode; use `compliance` (nobody can delete before the retention ends) or `governance` (users allowed to bypass it can).")
        }
        self = mode
    }
}

/// A repository's object-lock setting, kept in its sealed config so that every later writer
/// (another host, `bunker copy` into it, prune) applies the same retention without being told.
public struct ObjectLockSettings: Sendable, Codable, Equatable {
    public var mode: ObjectLockMode
    /// Every object is written retained for this many days, and prune keeps the objects a kept
    /// snapshot needs retained at least half as long again (see ``Pruner``).
    public var days: Int
    /// What the probe at `init` found: whether the bucket refused to delete a retained object
    /// version. A repository whose bucket accepted the deletion is never called immutable.
    public var enforced: Bool

    public init(mode: ObjectLockMode, days: Int, enforced: Bool = false) {
        self.mode = mode
        self.days = days
        self.enforced = enforced
    }

    /// The longest retention accepted: 100 years (S3's own limit is about that, and a typo of a
    /// few more digits would lock the bucket's storage bill for ever).
    public static let maximumDays = 36500

    /// Refuses a retention that is no retention, or one that could never end.
    public func validate() throws {
        guard (1...Self.maximumDays).contains(days) else {
            throw BunkerError(.invalidArgument, "--lock-days \(days) is out of range; give the number of days every object must stay undeletable, 1 to \(Self.maximumDays) (2555 is 7 years).")
        }
    }

    /// The retention a write at `now` gets.
    public func retention(from now: Date) -> ObjectRetention {
        ObjectRetention(mode: mode, until: now.addingTimeInterval(TimeInterval(days) * 86400))
    }
}

/// The retention an object is kept under: its mode and the moment it ends.
public struct ObjectRetention: Sendable, Equatable, Codable {
    public var mode: ObjectLockMode
    public var until: Date

    public init(mode: ObjectLockMode, until: Date) {
        self.mode = mode
        self.until = until
    }
}

/// One stored version of an object on a versioned bucket (a delete marker is a version too).
public struct ObjectVersion: Sendable, Equatable {
    public var id: String
    public var isDeleteMarker: Bool

    public init(id: String, isDeleteMarker: Bool) {
        self.id = id
        self.isDeleteMarker = isDeleteMarker
    }
}

/// What writing a probe object under retention and deleting its version showed.
public struct ImmutabilityProbe: Sendable, Codable, Equatable {
    /// Whether the server refused to delete the retained version.
    public var enforced: Bool
    /// What was seen, in words, for the report.
    public var detail: String

    public init(enforced: Bool, detail: String) {
        self.enforced = enforced
        self.detail = detail
    }
}

/// A storage that can keep objects under an S3 object lock (``S3Storage`` on a bucket created with
/// object lock enabled). ``ObjectLockStorage`` and prune ask for it with ``Storage/capability(_:)``.
///
/// Guarantees: `save(_:data:retention:)` gives the ``Storage`` guarantees and the object is
/// retained as asked, or it throws; on a versioned bucket `removeAllVersions` deletes the data
/// itself (not just a delete marker) or throws, leaving what it could not delete.
public protocol RetentionStorage: Sendable {
    /// Stores a new object retained until `retention.until`.
    func save(_ handle: ObjectHandle, data: Data, retention: ObjectRetention) async throws
    /// The retention of the object's current version, nil when it has none.
    func retention(of handle: ObjectHandle) async throws -> ObjectRetention?
    /// Moves the retention of the current version to `retention` (only ever later).
    func extendRetention(of handle: ObjectHandle, to retention: ObjectRetention) async throws
    /// Every version of the object, delete markers included.
    func versions(of handle: ObjectHandle) async throws -> [ObjectVersion]
    /// Deletes every version of the object, so that its bytes are really gone.
    func removeAllVersions(of handle: ObjectHandle) async throws
    /// Writes a small object under `mode` for a short while and tries to delete that version.
    func probeImmutability(mode: ObjectLockMode) async throws -> ImmutabilityProbe
}
