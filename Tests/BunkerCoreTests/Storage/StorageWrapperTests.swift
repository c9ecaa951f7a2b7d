import BunkerCore
import BunkerTesting
import Foundation
import Synchronization
import Testing

/// Storage features are wrappers, each a file: every wrapper still gives the storage guarantees,
/// and each does its one job.
@Suite struct StorageWrapperTests {
    static let wrappers = ["retrying", "limited", "stacked"]

    static func wrap(_ name: String, _ base: any Storage) -> any Storage {
        switch name {
        case "retrying": return RetryingStorage(base)
        case "limited": return ConcurrencyLimitedStorage(base, limit: 2)
        default: return RetryingStorage(ConcurrencyLimitedStorage(base, limit: 3))
        }
    }

    @Test(arguments: wrappers, StorageConformance.checks.map(\.0))
    func wrappersKeepTheStorageGuarantees(wrapper: String, check name: String) async throws {
        let check = StorageConformance.checks.first { $0.0 == name }!.1
        try await withTemporaryDirectory { dir in
            let local = LocalStorage(path: dir + "/repo")
            try local.create()
            try await check(Self.wrap(wrapper, local))
        }
    }

    @Test func capabilitiesOfTheBackendAreFoundThroughWrappers() async throws {
        try await withTemporaryDirectory { dir in
            let local = LocalStorage(path: dir + "/repo")
            try local.create()
            let stacked = ReadOnlyStorage(RetryingStorage(ConcurrencyLimitedStorage(local)))
            #expect(stacked.capability((any SpaceReporting).self)?.space() != nil)
            #expect((stacked.backend as? LocalStorage)?.root == local.root)
        }
    }

    @Test func readOnlyRefusesEveryChangeAndReadsThrough() async throws {
        try await withTemporaryDirectory { dir in
            let local = LocalStorage(path: dir + "/repo")
            try local.create()
            let handle = ObjectHandle(.snapshot, ID.sha256(of: Array("a".utf8)))
            try await local.save(handle, data: Data("a".utf8))
            let readOnly = ReadOnlyStorage(local)
            #expect(try await readOnly.load(handle) == Data("a".utf8))
            #expect(try await readOnly.list(.snapshot).count == 1)
            for change in [{ try await readOnly.save(ObjectHandle(.snapshot, ID.sha256(of: Array("b".utf8))), data: Data("b".utf8)) },
                           { try await readOnly.remove(handle) }] {
                do {
                    try await change()
                    Issue.record("a read-only storage must refuse changes")
                } catch let error as BunkerError {
                    #expect(error.code == .permissionDenied)
                    #expect(error.message.contains("read-only"))
                }
            }
            #expect(try await local.exists(handle), "nothing was deleted")
        }
    }

    /// Object-lock calls (retention reads and extensions, version deletes, the probe) meet the
    /// same 503s and server limits as the rest: they are retried and limited too.
    @Test func objectLockCallsAreRetriedAndLimitedLikeTheRest() async throws {
        let flaky = ProbeStorage(failures: 3)
        let stacked = RetryingStorage(ConcurrencyLimitedStorage(flaky, limit: 2), policy: RetryPolicy(initialDelay: .milliseconds(1)),
                                      sleep: { _ in }, clock: { { .zero } })
        let retention = try #require(stacked.retention)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<20 {
                group.addTask {
                    try await retention.extendRetention(of: ObjectHandle(.pack, "\(i)"), to: ObjectRetention(mode: .compliance, until: Date()))
                }
            }
            try await group.waitForAll()
        }
        #expect(flaky.calls == 23, "20 calls and 3 retries of the ones that met a 503: \(flaky.calls)")
        #expect(flaky.peak == 2, "at most 2 requests at once: \(flaky.peak)")
        _ = try await retention.probeImmutability(mode: .compliance)

        try await withTemporaryDirectory { dir in
            let local = LocalStorage(path: dir + "/repo")
            try local.create()
            #expect(RetryingStorage(ConcurrencyLimitedStorage(local)).retention == nil, "a local directory cannot keep objects locked")
        }
    }

    @Test func aConcurrencyLimitIsNeverExceeded() async throws {
        let probe = ProbeStorage()
        let limited = ConcurrencyLimitedStorage(probe, limit: 3)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<40 {
                group.addTask { _ = try await limited.stat(ObjectHandle(.pack, "\(i)")) }
            }
            try await group.waitForAll()
        }
        #expect(probe.peak == 3, "40 requests, at most 3 at once, and the limit is used: \(probe.peak)")
    }

    @Test func transientFailuresAreRetriedWithGrowingWaitsThatHonourRetryAfter() async throws {
        let flaky = ProbeStorage(failures: 4, retryAfter: .seconds(7))
        let waits = Mutex<[Duration]>([])
        let retrying = RetryingStorage(flaky, policy: RetryPolicy(initialDelay: .milliseconds(100), maximumDelay: .seconds(1), budget: .seconds(600)),
                                       sleep: { wait in waits.withLock { $0.append(wait) } }, clock: { { .zero } })
        _ = try await retrying.stat(ObjectHandle(.pack, "x"))
        #expect(flaky.calls == 5)
        #expect(waits.withLock { $0 }.count == 4)
        #expect(waits.withLock { $0 }.allSatisfy { $0 >= .seconds(7) }, "Retry-After is a floor: \(waits.withLock { $0 })")
    }

    @Test func retriesStopWhenTheBudgetIsSpentWithAnErrorThatSaysWhatHappened() async throws {
        let down = ProbeStorage(failures: .max)
        let spent = Mutex(Duration.zero)
        let retrying = RetryingStorage(down, policy: RetryPolicy(initialDelay: .seconds(1), maximumDelay: .seconds(8), budget: .seconds(60)),
                                       sleep: { wait in spent.withLock { $0 += wait } }, clock: { { spent.withLock { $0 } } })
        do {
            _ = try await retrying.list(.pack)
            Issue.record("an unavailable storage must fail in the end")
        } catch let error as BunkerError {
            #expect(error.code == .storageUnavailable)
            #expect(error.message.contains("failed \(down.calls) times"), "\(error.message)")
        }
        #expect(spent.withLock { $0 } <= .seconds(60))
        #expect(down.calls > 3)
    }

    /// Minutes of retries are not silent: the first failure is told at once, and then no more
    /// than once per ``RetryPolicy/noticeInterval`` (the waits here take no time).
    @Test func retriesAreToldOnceAndThenNoMoreOftenThanTheNoticeInterval() async throws {
        let flaky = ProbeStorage(failures: 5)
        let notices = Mutex<[String]>([])
        let retrying = RetryingStorage(flaky, policy: RetryPolicy(initialDelay: .milliseconds(1), notice: { text in notices.withLock { $0.append(text) } }),
                                       sleep: { _ in })
        _ = try await retrying.stat(ObjectHandle(.pack, "x"))
        #expect(flaky.calls == 6)
        let told = notices.withLock { $0 }
        #expect(told.count == 1 && told[0].contains("checking data/x") && told[0].contains("retrying in"), "\(told)")
        let silent = RetryingStorage(ProbeStorage(failures: 2), policy: RetryPolicy(initialDelay: .milliseconds(1), notice: nil), sleep: { _ in })
        _ = try await silent.stat(ObjectHandle(.pack, "x"))
    }

    @Test func otherErrorsAreNotRetried() async throws {
        try await withTemporaryDirectory { dir in
            let local = LocalStorage(path: dir + "/repo")
            try local.create()
            let retrying = RetryingStorage(local, sleep: { _ in Issue.record("no wait for a missing object") })
            await #expect(throws: BunkerError.self) { _ = try await retrying.load(ObjectHandle(.pack, ID.sha256(of: [1]))) }
        }
    }

    /// A save whose answer was lost after the object was stored: the retry finds it taken.
    @Test func aSaveThatLandedBeforeItsAnswerWasLostSucceedsOnlyIfTheBytesMatch() async throws {
        try await withTemporaryDirectory { dir in
            let local = LocalStorage(path: dir + "/repo")
            try local.create()
            let handle = ObjectHandle(.pack, ID.sha256(of: Array("payload".utf8)))
            let lossy = LostAnswerStorage(base: local)
            let retrying = RetryingStorage(lossy, sleep: { _ in })
            try await retrying.save(handle, data: Data("payload".utf8))
            #expect(try await local.load(handle) == Data("payload".utf8))

            let other = ObjectHandle(.pack, ID.sha256(of: Array("other".utf8)))
            try await local.save(other, data: Data("different bytes".utf8))
            let conflicting = RetryingStorage(LostAnswerStorage(base: local, storeFirst: false), sleep: { _ in })
            await #expect(throws: BunkerError.self) { try await conflicting.save(other, data: Data("other".utf8)) }
        }
    }

    @Test func aSchemeOpensItsRegisteredBackendAndAnUnknownOneSaysWhichExist() async throws {
        try await withTemporaryDirectory { dir in
            StorageLocation.register(scheme: "testfs") { location, _ in
                LocalStorage(path: dir + "/" + location.dropFirst("testfs://".count))
            }
            let storage = try StorageLocation.storage(for: "testfs://bucket")
            #expect((storage.backend as? LocalStorage)?.root == dir + "/bucket")
            do {
                _ = try StorageLocation.storage(for: "nope://x")
                Issue.record("an unknown scheme must be refused")
            } catch let error as BunkerError {
                #expect(error.code == .invalidArgument)
                #expect(error.message.contains("testfs://"), "\(error.message)")
            }
            // One slash short of a registered scheme is a typo, not a directory named `testfs:`.
            let cwd = FileManager.default.currentDirectoryPath
            do {
                _ = try StorageLocation.storage(for: "testfs:/bucket/x", create: true)
                Issue.record("a mistyped scheme must be refused")
            } catch let error as BunkerError {
                #expect(error.code == .invalidArgument && error.message.contains("testfs://bucket/x"), "\(error.message)")
            }
            #expect(!FileManager.default.fileExists(atPath: cwd + "/testfs:"), "no local directory made")
        }
    }
}

/// Counts calls and concurrent calls; fails the first `failures` with a transient error.
final class ProbeStorage: Storage, @unchecked Sendable {
    private let state = Mutex((running: 0, peak: 0, calls: 0))
    private let failures: Int
    private let retryAfter: Duration?

    init(failures: Int = 0, retryAfter: Duration? = nil) {
        self.failures = failures
        self.retryAfter = retryAfter
    }

    var peak: Int { state.withLock { $0.peak } }
    var calls: Int { state.withLock { $0.calls } }

    fileprivate func call<T>(_ result: T) async throws -> T {
        let failing = state.withLock { s -> Bool in
            s.calls += 1
            s.running += 1
            s.peak = max(s.peak, s.running)
            return s.calls <= failures
        }
        try? await Task.sleep(for: .milliseconds(5))
        state.withLock { $0.running -= 1 }
        if failing { throw BunkerError(.storageUnavailable, "503 SlowDown", cause: TransientStorageFailure("503 SlowDown", retryAfter: retryAfter)) }
        return result
    }

    func save(_ handle: ObjectHandle, data: Data) async throws { try await call(()) }
    func load(_ handle: ObjectHandle, range: Range<Int>?) async throws -> Data { try await call(Data()) }
    func stat(_ handle: ObjectHandle) async throws -> ObjectInfo { try await call(ObjectInfo(handle: handle, size: 0)) }
    func list(_ kind: ObjectKind) async throws -> [ObjectInfo] { try await call([]) }
    func remove(_ handle: ObjectHandle) async throws { try await call(()) }
}

extension ProbeStorage: RetentionStorage {
    func save(_ handle: ObjectHandle, data: Data, retention: ObjectRetention) async throws { try await call(()) }
    func retention(of handle: ObjectHandle) async throws -> ObjectRetention? { try await call(nil) }
    func extendRetention(of handle: ObjectHandle, to retention: ObjectRetention) async throws { try await call(()) }
    func versions(of handle: ObjectHandle) async throws -> [ObjectVersion] { try await call([]) }
    func removeAllVersions(of handle: ObjectHandle) async throws { try await call(()) }
    func probeImmutability(mode: ObjectLockMode) async throws -> ImmutabilityProbe { try await call(ImmutabilityProbe(enforced: true, detail: "probe")) }
}

/// The first save reaches the storage (or not) but its answer is lost as a reset connection.
final class LostAnswerStorage: Storage, @unchecked Sendable {
    let base: any Storage
    let storeFirst: Bool
    private let first = Mutex(true)

    init(base: any Storage, storeFirst: Bool = true) {
        self.base = base
        self.storeFirst = storeFirst
    }

    func save(_ handle: ObjectHandle, data: Data) async throws {
        if first.withLock({ f in defer { f = false }; return f }) {
            if storeFirst { try await base.save(handle, data: data) }
            throw BunkerError(.storageUnavailable, "connection reset", cause: TransientStorageFailure("connection reset"))
        }
        try await base.save(handle, data: data)
    }

    func load(_ handle: ObjectHandle, range: Range<Int>?) async throws -> Data { try await base.load(handle, range: range) }
    func stat(_ handle: ObjectHandle) async throws -> ObjectInfo { try await base.stat(handle) }
    func list(_ kind: ObjectKind) async throws -> [ObjectInfo] { try await base.list(kind) }
    func remove(_ handle: ObjectHandle) async throws { try await base.remove(handle) }
}
