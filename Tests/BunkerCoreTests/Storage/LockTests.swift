@testable import BunkerCore
import BunkerTesting
import Foundation
import Synchronization
import Testing

@Suite struct LockTests {
    @Test func exclusiveLockMakesOthersWaitOrFailClearly() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            try await repo.withLock(exclusive: true) {
                let other = try await TestRepository.open(at: dir + "/repo")
                await #expect {
                    try await other.withLock(exclusive: false) {}
                } throws: { error in
                    guard let error = error as? BunkerError else { return false }
                    return error.code == .repositoryLocked && error.message.contains("busy")
                }
            }
            #expect(try await repo.storage.list(.lock).isEmpty)
            // Shared locks coexist.
            try await repo.withLock(exclusive: false) {
                try await repo.withLock(exclusive: false) {}
            }
        }
    }

    @Test func lockOfADeadProcessIsStale() {
        let here = (boot: "boot-a", namespace: UInt64(4_026_531_836))
        func lock(pid: Int32) -> LockInfo {
            LockInfo(time: Date(), exclusive: true, hostname: "h", username: "u", pid: pid, nonce: "n", bootID: here.boot, pidNamespace: here.namespace)
        }
        #expect(lock(pid: 999_999).isStale(now: Date(), hostname: "h", bootID: here.boot, pidNamespace: here.namespace))
        #expect(!lock(pid: 999_999).isStale(now: Date(), hostname: "other-host", bootID: here.boot, pidNamespace: here.namespace))
        #expect(lock(pid: 999_999).isStale(now: Date().addingTimeInterval(LockInfo.staleAfter + 1), hostname: "other-host"))
        #expect(!lock(pid: getpid()).isStale(now: Date(), hostname: "h", bootID: here.boot, pidNamespace: here.namespace))
    }

    /// A pid means something only on the same host since the same boot: a lock from another
    /// machine with the same host name (or from before a reboot) is judged by its age alone.
    @Test func deadPidCountsOnlyWhenTheBootIDMatches() {
        let now = Date()
        func lock(boot: String?) -> LockInfo {
            LockInfo(time: now, exclusive: true, hostname: "h", username: "u", pid: 999_999, nonce: "n", bootID: boot, pidNamespace: 7)
        }
        #expect(lock(boot: "boot-a").isStale(now: now, hostname: "h", bootID: "boot-a", pidNamespace: 7))
        #expect(!lock(boot: "boot-b").isStale(now: now, hostname: "h", bootID: "boot-a", pidNamespace: 7), "another machine's live process")
        #expect(!lock(boot: "boot-b").isStale(now: now, hostname: "h", bootID: nil, pidNamespace: 7))
        #expect(lock(boot: "boot-b").isStale(now: now + LockInfo.staleAfter + 1, hostname: "h", bootID: "boot-a", pidNamespace: 7))
        #expect(!lock(boot: nil).isStale(now: now, hostname: "h", bootID: "boot-a", pidNamespace: 7), "an older lock file: judged by its age")
    }

    /// Containers on one host share the boot id and may share the host name, but each may have
    /// a pid namespace of its own: a pid missing here may be a live process there.
    @Test func deadPidCountsOnlyInTheSamePidNamespace() {
        let now = Date()
        func lock(namespace: UInt64?) -> LockInfo {
            LockInfo(time: now, exclusive: true, hostname: "h", username: "u", pid: 999_999, nonce: "n", bootID: "boot-a", pidNamespace: namespace)
        }
        #expect(lock(namespace: 4_026_531_836).isStale(now: now, hostname: "h", bootID: "boot-a", pidNamespace: 4_026_531_836))
        #expect(!lock(namespace: 4_026_532_200).isStale(now: now, hostname: "h", bootID: "boot-a", pidNamespace: 4_026_531_836),
                "another container's process, alive in its own namespace")
        #expect(!lock(namespace: nil).isStale(now: now, hostname: "h", bootID: "boot-a", pidNamespace: 4_026_531_836),
                "a lock that names no namespace may be another container's")
        #expect(!lock(namespace: 4_026_531_836).isStale(now: now, hostname: "h", bootID: "boot-a", pidNamespace: nil))
        #expect(lock(namespace: 4_026_532_200).isStale(now: now + LockInfo.staleAfter + 1, hostname: "h", bootID: "boot-a", pidNamespace: 4_026_531_836),
                "by age, any lock")
    }

    /// Many hosts, one repository: another host's lock is judged by its age alone. Fresh, it
    /// holds even though its pid is dead here; past the stale age it is taken over, even though
    /// its pid is alive here (it is another machine's process).
    @Test func lockOfAnotherHostIsStaleByItsAgeAlone() async throws {
        try await withTemporaryDirectory { dir in
            let clock = TestClock(Date())
            let repo = try await TestRepository.create(at: dir + "/repo", now: clock.now)
            func otherHostsLock(pid: Int32, age: TimeInterval) async throws -> ObjectHandle {
                let info = LockInfo(time: clock.now().addingTimeInterval(-age), exclusive: false, hostname: HostIdentity.name + "-elsewhere",
                                    username: "u", pid: pid, nonce: UUID().uuidString, bootID: LockInfo.currentBootID,
                                    pidNamespace: LockInfo.currentPidNamespace)
                return try await repo.saveSealed(.lock, JSONCoding.encoder.encode(info))
            }
            let fresh = try await otherHostsLock(pid: 999_999, age: 60)
            await #expect {
                try await repo.withLock(exclusive: true) {}
            } throws: { error in
                guard let error = error as? BunkerError else { return false }
                return error.code == .repositoryLocked && error.message.contains("-elsewhere")
            }
            #expect(try await repo.storage.exists(fresh), "a fresh lock of another host stays")
            try await repo.storage.remove(fresh)

            let old = try await otherHostsLock(pid: getpid(), age: LockInfo.staleAfter + 60)
            try await repo.withLock(exclusive: true) {}
            #expect(try await !repo.storage.exists(old), "the stale lock was removed")
            #expect(try await repo.storage.list(.lock).isEmpty)
        }
    }

    @Test func locksRecordThePidNamespace() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let held = try await repo.withLock(exclusive: false) { try await repo.locks().map(\.1) }
            #expect(held.count == 1 && held.first?.pidNamespace == LockInfo.currentPidNamespace)
            #expect(FileManager.default.fileExists(atPath: "/proc/self/ns/pid") == (LockInfo.currentPidNamespace != nil))
        }
    }

    /// A holder paused past the stale age (SIGSTOP, a suspended VM) finds, before its next
    /// write, that another process took its lock for stale, and stops instead of writing into a
    /// repository that may have changed under it.
    @Test func pausedHolderNoticesItsLockWasTakenBeforeItsNextWrite() async throws {
        try await withTemporaryDirectory { dir in
            let clock = TestClock(Date())
            let paused = try await TestRepository.create(at: dir + "/repo", now: clock.now)
            let other = try await TestRepository.open(at: dir + "/repo", now: clock.now)
            try FileManager.default.createDirectory(atPath: dir + "/src", withIntermediateDirectories: true)
            try Data("patient records".utf8).write(to: URL(fileURLWithPath: dir + "/src/a.txt"))
            await #expect {
                try await paused.withLock(exclusive: false) {
                    clock.advance(by: LockInfo.staleAfter + 60)
                    // Meanwhile a prune takes the lock for stale, and could delete packs.
                    try await other.withLock(exclusive: true) {}
                    _ = try await Archiver(repository: paused, request: BackupRequest(items: [.path(dir + "/src", name: "src")], paths: [dir + "/src"])).run()
                }
            } throws: { error in
                guard let error = error as? BunkerError else { return false }
                return error.code == .repositoryLocked && error.message.contains("its lock is gone")
            }
            #expect(try await paused.storage.list(.snapshot).isEmpty, "no snapshot was written")
            #expect(try await paused.storage.list(.pack).isEmpty, "nothing at all was written")

            // A holder that was not paused keeps writing.
            try await paused.withLock(exclusive: false) {
                _ = try await Archiver(repository: paused, request: BackupRequest(items: [.path(dir + "/src", name: "src")], paths: [dir + "/src"])).run()
            }
            #expect(try await paused.storage.list(.snapshot).count == 1)
        }
    }

    @Test func locksRecordTheBootIDAndOlderLockFilesStillDecode() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let held = try await repo.withLock(exclusive: false) { try await repo.locks().map(\.1) }
            #expect(held.count == 1 && held.first?.bootID == LockInfo.currentBootID)
            #expect(FileManager.default.fileExists(atPath: "/proc/sys/kernel/random/boot_id") == (LockInfo.currentBootID != nil))
            let old = #"{"time":"2026-01-01T00:00:00Z","exclusive":true,"hostname":"h","username":"u","pid":1,"nonce":"n"}"#
            let decoded = try JSONCoding.decoder.decode(LockInfo.self, from: Data(old.utf8))
            #expect(decoded.bootID == nil && decoded.pid == 1)
        }
    }

    /// A lock file that cannot be read may be a live writer's: it blocks, and the error names it.
    @Test func unreadableLockCountsAsHeldAndIsNamed() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let garbage = Data("not a lock".utf8)
            let name = ID.sha256(of: garbage).hex
            try await repo.storage.save(ObjectHandle(.lock, name), data: garbage)
            for exclusive in [false, true] {
                await #expect {
                    try await repo.withLock(exclusive: exclusive) {}
                } throws: { error in
                    guard let error = error as? BunkerError else { return false }
                    return error.code == .repositoryLocked && error.message.contains("locks/\(name) cannot be read")
                }
            }
            #expect(try await repo.storage.list(.lock).map(\.handle.name) == [name], "nothing else was left, and the unreadable lock stays")
        }
    }

    /// When the lock can no longer be refreshed, the operation is stopped well before others may
    /// take the lock for stale, and says why.
    @Test func failingLockRefreshStopsTheOperation() async throws {
        try await withTemporaryDirectory { dir in
            let local = try StorageLocation.storage(for: dir + "/repo", create: true)
            _ = try await TestRepository.create(storage: local)
            let lockSaves = LockSaveCounter()
            let storage = InterceptingStorage(local) { handle in
                if handle.kind == .lock, lockSaves.next() > 1 {
                    throw BunkerError(.storageIO, "I/O error on the repository (injected) while writing \(handle).")
                }
            }
            let repo = try await Repository.open(storage: storage, password: TestRepository.password)
            repo.lockTiming = LockTiming(refresh: .milliseconds(50), retry: .milliseconds(20), giveUpAfter: .milliseconds(300))
            let bodyFinished = LockSaveCounter()
            await #expect {
                try await repo.withLock(exclusive: true) {
                    try await Task.sleep(for: .seconds(120))
                    _ = bodyFinished.next()
                }
            } throws: { error in
                guard let error = error as? BunkerError else { return false }
                return error.code == .repositoryLocked && error.message.contains("could not be refreshed")
            }
            #expect(bodyFinished.next() == 1, "the operation was cancelled, not waited for")
            #expect(try await local.list(.lock).isEmpty)
        }
    }
}

/// A count shared with a storage hook or a locked body.
private final class LockSaveCounter: Sendable {
    private let count = Mutex(0)
    func next() -> Int { count.withLock { $0 += 1; return $0 } }
}
