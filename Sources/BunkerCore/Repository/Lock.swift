import Foundation

/// A lock file: `locks/<sha256>`, sealed JSON.
///
/// Backups, restores and verifies take shared locks; prune and key removal take exclusive ones.
/// A lock is stale when it has not been refreshed for ``staleAfter``, or when its process is gone
/// and could be seen from here (same host, same boot, same pid namespace); stale locks are
/// ignored and removed. Holders refresh their lock every ``refreshInterval`` by writing a new
/// one and removing the old, and a holder that was paused past ``staleAfter`` checks, before
/// its next write, that its lock is still there (see ``Repository/withLock(exclusive:_:)``).
public struct LockInfo: Codable, Sendable {
    public var time: Date
    public var exclusive: Bool
    public var hostname: String
    public var username: String
    public var pid: Int32
    public var nonce: String
    /// The holder's kernel boot id (`/proc/sys/kernel/random/boot_id`), when it has one: a pid
    /// means something only on the same host since the same boot. Older lock files lack it.
    public var bootID: String?
    /// The holder's pid namespace (the inode of `/proc/self/ns/pid`): containers on one host
    /// share the boot id and may share the host name, yet each may have a pid namespace of its
    /// own, where the same pid is another process. Older lock files lack it.
    public var pidNamespace: UInt64?

    public init(time: Date, exclusive: Bool, hostname: String, username: String, pid: Int32, nonce: String, bootID: String? = nil, pidNamespace: UInt64? = nil) {
        self.time = time
        self.exclusive = exclusive
        self.hostname = hostname
        self.username = username
        self.pid = pid
        self.nonce = nonce
        self.bootID = bootID
        self.pidNamespace = pidNamespace
    }

    enum CodingKeys: String, CodingKey {
        case time, exclusive, hostname, username, pid, nonce
        case bootID = "boot_id"
        case pidNamespace = "pid_namespace"
    }

    public static let staleAfter: TimeInterval = 30 * 60
    public static let refreshInterval: TimeInterval = 5 * 60

    /// This machine's boot id, if the kernel tells it (Linux).
    public static let currentBootID: String? = {
        guard let text = try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8) else { return nil }
        let id = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return id.isEmpty ? nil : id
    }()

    /// This process's pid namespace: the inode number of `/proc/self/ns/pid` (Linux).
    public static let currentPidNamespace: UInt64? = {
        var status = stat()
        guard stat("/proc/self/ns/pid", &status) == 0 else { return nil }
        return UInt64(status.st_ino)
    }()

    /// Whether the lock no longer protects anything.
    ///
    /// A lock is judged by its process only when that process could be seen from here: written
    /// on this host, since this boot, in this pid namespace. Another machine with the same host
    /// name, this one before a reboot, or another container on this host (same boot id, perhaps
    /// the same host name, its own pid namespace) may run a live process under a pid that does
    /// not exist here. Every other lock, including one from an older Bunker that recorded no
    /// namespace, is judged by its age alone.
    public func isStale(
        now: Date, hostname currentHost: String, bootID currentBoot: String? = LockInfo.currentBootID,
        pidNamespace currentNamespace: UInt64? = LockInfo.currentPidNamespace
    ) -> Bool {
        if now.timeIntervalSince(time) > LockInfo.staleAfter { return true }
        guard hostname == currentHost, let bootID, bootID == currentBoot, let pidNamespace, pidNamespace == currentNamespace else {
            return false
        }
        return kill(pid, 0) != 0 && errno == ESRCH
    }
}

extension Repository {
    /// Whether the repository is open read-only (behind ``ReadOnlyStorage``).
    public var isReadOnly: Bool {
        storage.capability(ReadOnlyStorage.self) != nil
    }

    /// Runs `body` while holding a lock, refreshing it while `body` runs and removing it after.
    ///
    /// Fails with ``BunkerError/Code/repositoryLocked`` when a conflicting lock is held for longer
    /// than ``lockWait``.
    ///
    /// A repository open read-only (``ReadOnlyStorage``) cannot write a lock: `body` runs
    /// without one when it only needs a shared lock, as restic's `--no-lock` does. A prune by
    /// another host may then remove what `body` is about to read; the read fails and says so,
    /// and nothing of the repository is touched. An exclusive lock is refused.
    public func withLock<R: Sendable>(exclusive: Bool, _ body: @Sendable () async throws -> R) async throws -> R {
        if isReadOnly {
            guard !exclusive else { throw ReadOnlyStorage.refusal("take the exclusive lock that changing the repository needs") }
            try await reloadIndexIfChanged()
            return try await body()
        }
        let handle: ObjectHandle
        do {
            handle = try await acquireLockWaiting(exclusive: exclusive)
        } catch let error as BunkerError where error.code == .permissionDenied && !exclusive {
            throw BunkerError(.permissionDenied, error.message + " To list, verify or restore with credentials that may only read, add --read-only (or read_only = true in the repository's table of bunker.toml): Bunker then takes no lock and writes nothing.")
        }
        let current = LockedHandle(handle, written: now())
        heldLocks.insert(current)
        defer { heldLocks.remove(current) }
        do {
            try await reloadIndexIfChanged()
            // The task group ends before this function returns, so `body` does not outlive it.
            let result = try await withoutActuallyEscaping(body) { body in
                try await withThrowingTaskGroup(of: LockedTaskResult<R>.self) { group in
                    group.addTask {
                        try await self.keepRefreshing(current, exclusive: exclusive)
                        return .refresherStopped
                    }
                    group.addTask { .finished(try await body()) }
                    // The body's result, or the refresher's failure: then the body is cancelled, and
                    // the operation fails even if the body finishes regardless, because another
                    // process may have taken the lock for stale and changed the repository meanwhile.
                    while let next = try await group.next() {
                        if case .finished(let value) = next {
                            group.cancelAll()
                            return value
                        }
                    }
                    throw CancellationError()
                }
            }
            try? await storage.remove(current.value)
            return result
        } catch {
            try? await storage.remove(current.value)
            throw error
        }
    }

    /// Writes a fresh lock every ``LockInfo/refreshInterval`` until cancelled. A failed refresh
    /// is retried sooner; if none has succeeded for ``lockTiming``'s `giveUpAfter` (well before
    /// others take the lock for stale), it throws, which stops the locked operation.
    private func keepRefreshing(_ current: LockedHandle, exclusive: Bool) async throws {
        let timing = lockTiming
        var lastRefresh = ContinuousClock.now
        var lastFailure: (any Error & Sendable)?
        while true {
            do {
                try await Task.sleep(for: lastFailure == nil ? timing.refresh : timing.retry)
            } catch {
                return
            }
            // After a pause (a stopped process, a suspended VM), the lock may have been taken
            // for stale: then a fresh one must not be written as if nothing had happened.
            try await heldLocks.confirm(current)
            do {
                let writtenAt = now()
                let fresh = try await writeLock(exclusive: exclusive)
                let old = current.swap(fresh, written: writtenAt)
                try? await storage.remove(old)
                lastRefresh = ContinuousClock.now
                lastFailure = nil
            } catch {
                if Task.isCancelled { return }
                lastFailure = error as? BunkerError ?? BunkerError(.storageIO, "\(error)")
                let since = ContinuousClock.now - lastRefresh
                if since >= timing.giveUpAfter {
                    throw BunkerError(.repositoryLocked, "The repository lock could not be refreshed for \(since.components.seconds) s, so it would soon look stale to other processes, which could then change the repository under this operation; the operation was stopped. Check the repository's storage (locks/ must be writable), then run `bunker verify`.", cause: lastFailure)
                }
            }
        }
    }

    private func writeLock(exclusive: Bool) async throws -> ObjectHandle {
        let info = LockInfo(time: now(), exclusive: exclusive, hostname: HostIdentity.name,
                            username: currentUserName(), pid: getpid(), nonce: UUID().uuidString, bootID: LockInfo.currentBootID,
                            pidNamespace: LockInfo.currentPidNamespace)
        return try await saveSealed(.lock, JSONCoding.encoder.encode(info))
    }

    /// Tries to lock every second until ``lockWait`` has passed.
    private func acquireLockWaiting(exclusive: Bool) async throws -> ObjectHandle {
        let wait = lockWait
        let deadline = ContinuousClock.now + .milliseconds(Int64(wait * 1000))
        while true {
            do {
                return try await acquireLock(exclusive: exclusive)
            } catch let error as BunkerError where error.code == .repositoryLocked {
                let left = deadline - ContinuousClock.now
                guard left > .zero else {
                    if wait <= 0 { throw error }
                    throw BunkerError(.repositoryLocked, error.message + " (Waited \(Int(wait)) s for it.)")
                }
                try await Task.sleep(for: min(left, .seconds(1)))
            }
        }
    }

    private func acquireLock(exclusive: Bool) async throws -> ObjectHandle {
        try await checkLocks(exclusive: exclusive, ignoring: nil)
        let mine = try await writeLock(exclusive: exclusive)
        // Another process may have locked between our check and our write: check again.
        do {
            try await checkLocks(exclusive: exclusive, ignoring: mine.name)
        } catch {
            try? await storage.remove(mine)
            throw error
        }
        return mine
    }

    private func checkLocks(exclusive: Bool, ignoring: String?) async throws {
        let host = HostIdentity.name
        for info in try await storage.list(.lock) where info.handle.name != ignoring {
            guard let id = ID(hex: info.handle.name) else { continue }
            let lock: LockInfo
            do {
                lock = try JSONCoding.decoder.decode(LockInfo.self, from: try await loadSealed(.lock, id))
            } catch let error as BunkerError where error.code == .objectNotFound {
                continue  // released between the listing and the read
            } catch {
                // A lock nobody can read may still be a live writer's: never ignore it.
                throw BunkerError(.repositoryLocked, "The repository may be busy: the lock file \(info.handle) cannot be read (\(error)), so Bunker cannot tell whose it is or whether it is stale. If no other bunker process uses this repository, delete that file by hand and try again.", cause: error as? BunkerError)
            }
            if lock.isStale(now: now(), hostname: host) {
                try? await storage.remove(info.handle)
                continue
            }
            if exclusive || lock.exclusive {
                throw BunkerError(.repositoryLocked, "The repository is busy: \(lock.exclusive ? "an exclusive" : "a") lock is held by PID \(lock.pid) on \(lock.hostname) (user \(lock.username), since \(Timestamp.format(lock.time))). Wait for it to finish; a lock whose process died is removed automatically.")
            }
        }
    }

    /// Lists the locks in the repository.
    public func locks() async throws -> [(ObjectHandle, LockInfo)] {
        var result: [(ObjectHandle, LockInfo)] = []
        for info in try await storage.list(.lock) {
            guard let id = ID(hex: info.handle.name), let data = try? await loadSealed(.lock, id),
                  let lock = try? JSONCoding.decoder.decode(LockInfo.self, from: data) else { continue }
            result.append((info.handle, lock))
        }
        return result
    }
}

/// How often a held lock is refreshed, how soon a failed refresh is retried, and how long
/// refreshes may fail before the locked operation is stopped; tests shorten them.
struct LockTiming: Sendable {
    var refresh: Duration = .seconds(LockInfo.refreshInterval)
    var retry: Duration = .seconds(30)
    /// Twice the refresh interval before the lock would be stale: time enough for the operation
    /// to stop before another process can take the lock for stale.
    var giveUpAfter: Duration = .seconds(LockInfo.staleAfter - 2 * LockInfo.refreshInterval)
}

/// What a child task of ``Repository/withLock(exclusive:_:)`` ended with.
private enum LockedTaskResult<R: Sendable>: Sendable {
    case finished(R)
    case refresherStopped
}

/// A lock this process holds, and when it was last written.
final class LockedHandle: Sendable {
    private let state: Mutex<(handle: ObjectHandle, written: Date)>
    init(_ handle: ObjectHandle, written: Date) { self.state = Mutex((handle, written)) }
    var value: ObjectHandle { state.withLock { $0.handle } }
    var written: Date { state.withLock { $0.written } }
    func swap(_ new: ObjectHandle, written: Date) -> ObjectHandle {
        state.withLock { current in
            defer { current = (new, written) }
            return current.handle
        }
    }
}

/// The locks a ``Repository`` object holds, checked before every write it makes.
///
/// A holder refreshes its lock every ``LockInfo/refreshInterval``; when one is older than
/// ``LockInfo/staleAfter`` less a refresh interval, the process was paused (or starved) so
/// long that another process may have taken the lock for stale, removed it, and changed the
/// repository (a prune deleting packs this operation relies on). The next write then first
/// looks for the lock file: if it is gone, the write fails and the operation stops.
final class HeldLocks: Sendable {
    private let held = Mutex<[ObjectIdentifier: LockedHandle]>([:])
    private let storage: any Storage
    private let now: @Sendable () -> Date

    init(storage: any Storage, now: @escaping @Sendable () -> Date) {
        self.storage = storage
        self.now = now
    }

    func insert(_ lock: LockedHandle) { held.withLock { $0[ObjectIdentifier(lock)] = lock } }
    func remove(_ lock: LockedHandle) { _ = held.withLock { $0.removeValue(forKey: ObjectIdentifier(lock)) } }

    /// Throws if a lock held so long unrefreshed that others may have judged it stale is gone.
    func confirmAll() async throws {
        for lock in held.withLock({ Array($0.values) }) { try await confirm(lock) }
    }

    func confirm(_ lock: LockedHandle) async throws {
        let age = now().timeIntervalSince(lock.written)
        guard age > LockInfo.staleAfter - LockInfo.refreshInterval else { return }
        guard try await !storage.exists(lock.value) else { return }
        throw BunkerError(.repositoryLocked, "This process held a lock on the repository but did not refresh it for \(Int(age / 60)) minutes (it was paused or starved), longer than the \(Int(LockInfo.staleAfter / 60)) minutes after which other processes take a lock for stale; its lock is gone, so another process may have changed the repository meanwhile. The operation was stopped before writing anything more; run `bunker verify`, then start it again.")
    }
}

/// The repository's storage as the repository writes to it: every write of anything but a lock
/// first checks the locks held (``HeldLocks``). Capabilities (space, temporary files) are found
/// through it with ``Storage/capability(_:)``.
struct LockCheckedStorage: StorageWrapper {
    let base: any Storage
    let locks: HeldLocks

    func save(_ handle: ObjectHandle, data: Data) async throws {
        if handle.kind != .lock { try await locks.confirmAll() }
        try await base.save(handle, data: data)
    }

    func load(_ handle: ObjectHandle, range: Range<Int>?) async throws -> Data {
        try await base.load(handle, range: range)
    }

    func stat(_ handle: ObjectHandle) async throws -> ObjectInfo {
        try await base.stat(handle)
    }

    func list(_ kind: ObjectKind) async throws -> [ObjectInfo] {
        try await base.list(kind)
    }

    func list(_ kind: ObjectKind, prefix: String) async throws -> [ObjectInfo] {
        try await base.list(kind, prefix: prefix)
    }

    func remove(_ handle: ObjectHandle) async throws {
        if handle.kind != .lock { try await locks.confirmAll() }
        try await base.remove(handle)
    }
}

import Synchronization
