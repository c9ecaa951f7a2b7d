@testable import BunkerServer
import Synchronization
import Testing

/// The download's hand-over between the export and the response.
@Suite struct ChunkPipeTests {
    struct Failed: Error, Equatable {}

    @Test func theProducerWaitsWhileCapacityPiecesAreUnreadAndEverythingArrivesInOrder() async throws {
        let pipe = ChunkPipe<Int>(capacity: 2)
        let completed = Mutex(0)
        async let producer: Void = {
            for value in 0..<5 {
                try await pipe.send(value)
                completed.withLock { $0 += 1 }
            }
            pipe.finish()
        }()
        try await Task.sleep(for: .milliseconds(300))
        #expect(completed.withLock { $0 } == 1, "the second send waits: two pieces are unread")
        var received: [Int] = []
        while let value = try await pipe.next() { received.append(value) }
        try await producer
        #expect(received == [0, 1, 2, 3, 4])
    }

    @Test func closingThePipeFailsTheWaitingProducerAndEveryLaterSend() async throws {
        let pipe = ChunkPipe<Int>(capacity: 1)
        async let producer: Result<Void, any Error> = { () async -> Result<Void, any Error> in
            do { return .success(try await pipe.send(1)) } catch { return .failure(error) }
        }()
        try await Task.sleep(for: .milliseconds(100))
        pipe.close()
        let sent = await producer
        #expect(throws: ChunkPipe<Int>.Closed.self) { try sent.get() }
        await #expect(throws: ChunkPipe<Int>.Closed.self) { try await pipe.send(2) }
    }

    @Test func theProducersErrorReachesTheConsumerAfterWhatWasSent() async throws {
        let pipe = ChunkPipe<Int>(capacity: 4)
        try await pipe.send(7)
        pipe.finish(throwing: Failed())
        #expect(try await pipe.next() == 7)
        await #expect(throws: Failed.self) { try await pipe.next() }
    }
}
