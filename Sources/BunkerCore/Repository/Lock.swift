import Foundation

/// A lock file: `locks/<sha256>`, sealed JSON.
///
/// Backups, restores and verifies take shared locks; prune and key removal take exclusive ones.
/// A lock is stale when its process is gone (same host) or it has not been refreshed for
/// ``staleAfter``; stale locks are ignored and removed. Holders refresh their lock every
/// ``refreshInterval`` by writing a new one and removing the old.
public struct LockInfo: Codable, Sendable {
    public var time: Date
    public var exclusive: Bool
    public var hostname: String
    public var username: String
    public var pid: Int32
    public var nonce: String

    public init(time: Date, exclusive: Bool, hostname: String, username: String, pid: Int32, nonce: String) {
        self.time = time
        self.exclusive = exclusive
        self.hostname = hostname
        self.username = username
        self.pid = pid
        self.nonce = nonce
    }

    public static let staleAfter: TimeInterval = 30 * 60
    public static let refreshInterval: TimeInterval = 5 * 60

    /// Whether the lock no longer protects anything.
    public func isStale(now: Date, hostname currentHost: String) -> Bool {
        if now.timeIntervalSince(time) > LockInfo.staleAfter { return true }
        if hostname == currentHost {
            return kill(pid, 0) != 0 && errno == ESRCH
        }
        return false
    }
}

extension Repository {
    /// Runs `body` while holding a lock, refreshing it while `body` runs and removing it after.
    ///
    /// Fails with ``BunkerError/Code/repositoryLocked`` when a conflicting lock is held for longer
    /// than ``lockWait``.
    public func withLock<R: Sendable>(exclusive: Bool, _ body: @Sendable () async throws -> R) async throws -> R {
        let handle = try await acquireLockWaiting(exclusive: exclusive)
        let current = LockedHandle(handle)
        do {
            try await reloadIndexIfReplaced()
            let result = try await withThrowingTaskGroup(of: R?.self) { group in
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(LockInfo.refreshInterval))
                        if Task.isCancelled { break }
                        if let fresh = try? await self.writeLock(exclusive: exclusive) {
                            let old = current.swap(fresh)
                            try? await self.storage.remove(old)
                        }
                    }
                    return nil
                }
                let value = try await body()
                group.cancelAll()
                return value
            }
            try? await storage.remove(current.value)
            return result
        } catch {
            try? await storage.remove(current.value)
            throw error
        }
    }

    private func writeLock(exclusive: Bool) async throws -> ObjectHandle {
        let info = LockInfo(time: now(), exclusive: exclusive, hostname: ProcessInfo.processInfo.hostName,
                            username: currentUserName(), pid: getpid(), nonce: UUID().uuidString)
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
        let host = ProcessInfo.processInfo.hostName
        for info in try await storage.list(.lock) where info.handle.name != ignoring {
            guard let id = ID(hex: info.handle.name),
                  let data = try? await loadSealed(.lock, id),
                  let lock = try? JSONCoding.decoder.decode(LockInfo.self, from: data) else { continue }
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

private final class LockedHandle: Sendable {
    private let handle: Mutex<ObjectHandle>
    init(_ handle: ObjectHandle) { self.handle = Mutex(handle) }
    var value: ObjectHandle { handle.withLock { $0 } }
    func swap(_ new: ObjectHandle) -> ObjectHandle { handle.withLock { old in defer { old = new }; return old } }
}

import Synchronization
