import BunkerCore
import BunkerTesting
import Foundation
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
        let lock = LockInfo(time: Date(), exclusive: true, hostname: "h", username: "u", pid: 999_999, nonce: "n")
        #expect(lock.isStale(now: Date(), hostname: "h"))
        #expect(!lock.isStale(now: Date(), hostname: "other-host"))
        #expect(lock.isStale(now: Date().addingTimeInterval(LockInfo.staleAfter + 1), hostname: "other-host"))
        let mine = LockInfo(time: Date(), exclusive: true, hostname: "h", username: "u", pid: getpid(), nonce: "n")
        #expect(!mine.isStale(now: Date(), hostname: "h"))
    }
}
