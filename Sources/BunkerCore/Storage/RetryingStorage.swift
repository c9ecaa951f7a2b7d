import Foundation
import Synchronization

/// How ``RetryingStorage`` retries: exponential backoff with full jitter, bounded in total time.
public struct RetryPolicy: Sendable {
    /// The first wait's upper bound; each retry doubles it.
    public var initialDelay: Duration
    /// No wait is longer than this (unless the storage asks for more with `Retry-After`).
    public var maximumDelay: Duration
    /// Time one request may spend in retries before it fails for good.
    public var budget: Duration
    /// Told that requests are being retried, at most every ``noticeInterval`` per storage, so
    /// that minutes of waiting for a storage that does not answer are not silent; nil: nobody.
    public var notice: (@Sendable (String) -> Void)?

    /// The shortest time between two notices of one storage.
    public static let noticeInterval: Duration = .seconds(15)

    public init(initialDelay: Duration = .milliseconds(250), maximumDelay: Duration = .seconds(30), budget: Duration = .seconds(600),
                notice: (@Sendable (String) -> Void)? = RetryPolicy.defaultNotice) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.budget = budget
        self.notice = notice
    }

    /// The notice new policies get: the command line prints it on standard error.
    public static var defaultNotice: (@Sendable (String) -> Void)? {
        get { noticeSink.withLock { $0 } }
        set { noticeSink.withLock { $0 = newValue } }
    }

    private static let noticeSink = Mutex<(@Sendable (String) -> Void)?>(nil)
}

/// A storage that retries requests the storage could not serve for now
/// (``BunkerError/Code/storageUnavailable``: a 503, a reset connection, a timeout), waiting a
/// random time up to a bound that doubles on each retry (full jitter, so that many clients do not
/// retry in step), at least as long as a `Retry-After` asked, until the policy's budget is spent.
/// Then it fails with an error that says how often and for how long it tried.
///
/// Every other error passes at once: a missing object, a full disk or a refused permission will
/// not change by waiting.
///
/// A save that failed may still have reached the storage (the answer was lost, not the request).
/// When a retried save then finds the name taken, the stored object is compared with the data:
/// the same bytes mean the earlier attempt succeeded; other bytes are a real conflict.
public struct RetryingStorage: StorageWrapper {
    public let base: any Storage
    public let policy: RetryPolicy
    /// When the last notice was given (shared by the copies of this storage).
    private let lastNotice = NoticeClock()
    private let sleep: @Sendable (Duration) async throws -> Void
    private let elapsed: @Sendable () -> @Sendable () -> Duration

    /// `sleep` and `clock` are injected so that tests need not wait.
    public init(
        _ base: any Storage, policy: RetryPolicy = RetryPolicy(),
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        clock: @escaping @Sendable () -> @Sendable () -> Duration = {
            let start = ContinuousClock.now
            return { ContinuousClock.now - start }
        }
    ) {
        self.base = base
        self.policy = policy
        self.sleep = sleep
        self.elapsed = clock
    }

    public func save(_ handle: ObjectHandle, data: Data) async throws {
        try await savingOnce(handle, data: data) { try await base.save(handle, data: data) }
    }

    /// Runs `save` with retries. A save that failed may still have reached the storage (the
    /// answer was lost, not the request): when a retried save then finds the name taken, the
    /// stored object is compared with the data, and the same bytes mean the earlier attempt
    /// succeeded.
    fileprivate func savingOnce(_ handle: ObjectHandle, data: Data, _ save: () async throws -> Void) async throws {
        var retried = false
        do {
            try await retrying("saving \(handle)") {
                do {
                    try await save()
                } catch let error as BunkerError where error.code == .storageUnavailable {
                    retried = true
                    throw error
                }
            }
        } catch let error as BunkerError where error.code == .objectExists && retried {
            guard try await base.load(handle) == data else { throw error }
        }
    }

    public func load(_ handle: ObjectHandle, range: Range<Int>?) async throws -> Data {
        try await retrying("reading \(handle)") { try await base.load(handle, range: range) }
    }

    public func stat(_ handle: ObjectHandle) async throws -> ObjectInfo {
        try await retrying("checking \(handle)") { try await base.stat(handle) }
    }

    public func list(_ kind: ObjectKind) async throws -> [ObjectInfo] {
        try await retrying("listing \(kind.rawValue)") { try await base.list(kind) }
    }

    public func list(_ kind: ObjectKind, prefix: String) async throws -> [ObjectInfo] {
        try await retrying("listing \(kind.rawValue)/\(prefix)*") { try await base.list(kind, prefix: prefix) }
    }

    public func remove(_ handle: ObjectHandle) async throws {
        try await retrying("deleting \(handle)") { try await base.remove(handle) }
    }

    fileprivate func retrying<T>(_ what: String, _ operation: () async throws -> T) async throws -> T {
        let clock = elapsed()
        var bound = policy.initialDelay
        var failures = 0
        while true {
            do {
                return try await operation()
            } catch let error as BunkerError where error.code == .storageUnavailable {
                failures += 1
                var wait = Self.jittered(bound)
                if let asked = (error.cause as? TransientStorageFailure)?.retryAfter, asked > wait { wait = asked }
                let spent = clock()
                guard spent + wait <= policy.budget else {
                    throw BunkerError(
                        .storageUnavailable,
                        "The repository's storage did not answer \(what): it failed \(failures) times over \(Self.describe(spent)). Check the network and the storage service, then run the command again; nothing was committed by the failed step. Last answer: \(error.message)",
                        cause: error.cause)
                }
                if let notice = policy.notice, lastNotice.due(every: RetryPolicy.noticeInterval) {
                    notice("The repository's storage did not answer \(what): \(error.message.trimmingCharacters(in: CharacterSet(charactersIn: "."))); retrying in \(Self.describe(wait)), for up to \(Self.describe(policy.budget)) in all.")
                }
                try await sleep(wait)
                bound = min(bound * 2, policy.maximumDelay)
            }
        }
    }

    /// Whether a notice is due, at most every `interval`; the first one always is.
    private final class NoticeClock: Sendable {
        private let last = Mutex<ContinuousClock.Instant?>(nil)

        func due(every interval: Duration) -> Bool {
            last.withLock { last in
                let now = ContinuousClock.now
                if let previous = last, now - previous < interval { return false }
                last = now
                return true
            }
        }
    }

    /// A random duration between zero and `bound`.
    private static func jittered(_ bound: Duration) -> Duration {
        let nanoseconds = max(1, bound.components.seconds * 1_000_000_000 + bound.components.attoseconds / 1_000_000_000)
        return .nanoseconds(Int64.random(in: 0...nanoseconds))
    }

    private static func describe(_ duration: Duration) -> String {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return seconds < 90 ? String(format: "%.1f s", seconds) : String(format: "%.0f min", seconds / 60)
    }
}

extension RetryingStorage: RetentionWrapping {
    public func wrapping(_ retention: any RetentionStorage) -> any RetentionStorage {
        RetryingRetention(base: retention, retrying: self)
    }
}

/// The object-lock calls of a storage, retried as ``RetryingStorage`` retries the others. Every
/// call is safe to repeat: a retention is only ever moved later, a version deleted twice is
/// gone once, and each probe writes an object of its own.
private struct RetryingRetention: RetentionStorage {
    let base: any RetentionStorage
    let retrying: RetryingStorage

    func save(_ handle: ObjectHandle, data: Data, retention: ObjectRetention) async throws {
        try await retrying.savingOnce(handle, data: data) { try await base.save(handle, data: data, retention: retention) }
    }

    func retention(of handle: ObjectHandle) async throws -> ObjectRetention? {
        try await retrying.retrying("reading the retention of \(handle)") { try await base.retention(of: handle) }
    }

    func extendRetention(of handle: ObjectHandle, to retention: ObjectRetention) async throws {
        try await retrying.retrying("extending the retention of \(handle)") { try await base.extendRetention(of: handle, to: retention) }
    }

    func versions(of handle: ObjectHandle) async throws -> [ObjectVersion] {
        try await retrying.retrying("listing the versions of \(handle)") { try await base.versions(of: handle) }
    }

    func removeAllVersions(of handle: ObjectHandle) async throws {
        try await retrying.retrying("deleting the versions of \(handle)") { try await base.removeAllVersions(of: handle) }
    }

    func probeImmutability(mode: ObjectLockMode) async throws -> ImmutabilityProbe {
        try await retrying.retrying("probing the object lock") { try await base.probeImmutability(mode: mode) }
    }
}
