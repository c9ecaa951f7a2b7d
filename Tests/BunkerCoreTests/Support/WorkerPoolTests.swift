@testable import BunkerCore
import Synchronization
import Testing

/// The pool that lends chunk buffers and zstd contexts: workers are reused, and idle ones can be
/// given back (a backup does so before sealing a listing of tens of MB).
@Suite struct WorkerPoolTests {
    final class Record: Sendable {
        let made = Mutex(0)
        let freed = Mutex<Set<Int>>([])
    }

    final class Worker: Sendable {
        let number: Int
        let record: Record

        init(record: Record) {
            self.record = record
            number = record.made.withLock { made in
                made += 1
                return made
            }
        }

        deinit { record.freed.withLock { _ = $0.insert(number) } }
    }

    @Test func idleWorkersAreReusedUntilDroppedThenFreed() {
        let record = Record()
        let pool = WorkerPool { Worker(record: record) }
        let busy = pool.take()
        var idle = 0
        do {
            let lent = pool.take()
            idle = lent.number
            pool.put(lent)
            let again = pool.take()
            #expect(again.number == idle, "an idle worker is lent again")
            pool.put(again)
        }
        #expect(record.made.withLock { $0 } == 2)
        #expect(record.freed.withLock { $0 }.isEmpty)

        pool.dropIdle()
        #expect(record.freed.withLock { $0 } == [idle], "the idle worker is freed, the one in use is not")
        let next = pool.take()
        #expect(next.number == 3, "after dropIdle a new worker is made")
        #expect(busy.number == 1)
    }
}
