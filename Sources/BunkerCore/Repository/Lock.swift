import Foundation

/// A lock file: `locks/<sha256>`, sealed JSON.
///
/// Backups, restores and verifies take shared locks; prune and key removal take exclusive ones.
/// A lock is stale when its process is gone (same host, same boot) or it has not been refreshed
/// for ``staleAfter``; stale locks are ignored and removed. Holders refresh their lock every
/// ``refreshInterval`` by writing a new one and removing the old.
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

    public init(time: Date, exclusive: Bool, hostname: String, username: String, pid: Int32, nonce: String, bootID: String? = nil) {
        self.time = time
        self.exclusive = exclusive
        self.hostname = hostname
        self.username = username
        self.pid = pid
        self.nonce = nonce
        self.bootID = bootID
    }

    enum CodingKeys: String, CodingKey {
        case time, exclusive, hostname, username, pid, nonce
        case bootID = "boot_id"
    }

    public static let staleAfter: TimeInterval = 30 * 60
    public static let refreshInterval: TimeInterval = 5 * 60

    /// This machine's boot id, if the kernel tells it (Linux).
    public static let currentBootID: String? = {
        guard let text = try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8) else { return nil }
        let id = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return id.isEmpty ? nil : id
    }()

    /// Whether the lock no longer protects anything.
    ///
    /// A lock is judged by its process only when it was written on this host since this boot:
    /// another machine with the same host name (or this one before a reboot, or a pid namespace
    /// of its own) may run a live process under the same pid. A lock without a boot id is from an
    /// older Bunker and is judged by host name alone, as that Bunker did.
    public func isStale(now: Date, hostname currentHost: String, bootID currentBoot: String? = LockInfo.currentBootID) -> Bool {
        if now.timeIntervalSince(time) > LockInfo.staleAfter { return true }
        guard hostname == currentHost else { return false }
        if let bootID, bootID != currentBoot { return false }
        return kill(pid, 0) != 0 && errno == ESRCH
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
            do {
                let fresh = try await writeLock(exclusive: exclusive)
                let old = current.swap(fresh)
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
        let info = LockInfo(time: now(), exclusive: exclusive, hostname: ProcessInfo.processInfo.hostName,
                            username: currentUserName(), pid: getpid(), nonce: UUID().uuidString, bootID: LockInfo.currentBootID)
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

private final class LockedHandle: Sendable {
    private let handle: Mutex<ObjectHandle>
    init(_ handle: ObjectHandle) { self.handle = Mutex(handle) }
    var value: ObjectHandle { handle.withLock { $0 } }
    func swap(_ new: ObjectHandle) -> ObjectHandle { handle.withLock { old in defer { old = new }; return old } }
}

import Synchronization
