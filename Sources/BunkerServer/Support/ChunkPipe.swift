import Synchronization

/// Hands pieces from one producing task to one consuming task, holding at most `capacity` of
/// them: the producer waits while the consumer is behind (a download's client reads slowly), so
/// memory stays bounded whatever the speeds.
///
/// Either side can stop the other: the producer ends the stream with ``finish(throwing:)`` (the
/// consumer then reads the rest and then the end or the error), the consumer gives up with
/// ``close()`` (the producer's next ``send(_:)`` throws). Cancelling either task closes the pipe.
final class ChunkPipe<Element: Sendable>: Sendable {
    /// What the producer is told after the consumer gave up.
    struct Closed: Error, CustomStringConvertible {
        var description: String { "the receiving side stopped (a download's client went away or stopped reading)" }
    }

    private struct State: ~Copyable {
        var buffer: [Element] = []
        var end: Result<Void, any Error>?
        var closed = false
        var consumer: CheckedContinuation<Element?, any Error>?
        var producer: CheckedContinuation<Void, any Error>?
    }

    private enum SendStep {
        case refused, handed(CheckedContinuation<Element?, any Error>), buffered, waiting
    }

    private enum NextStep {
        case element(Element, CheckedContinuation<Void, any Error>?), ended(Result<Void, any Error>), waiting
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) {
        precondition(capacity >= 1)
        self.capacity = capacity
    }

    /// Passes `element` on; waits while `capacity` pieces are waiting to be read.
    func send(_ element: Element) async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let step = state.withLock { state -> SendStep in
                    if state.closed || state.end != nil { return .refused }
                    if let consumer = state.consumer {
                        state.consumer = nil
                        return .handed(consumer)
                    }
                    state.buffer.append(element)
                    if state.buffer.count < capacity { return .buffered }
                    state.producer = continuation
                    return .waiting
                }
                switch step {
                case .refused:
                    continuation.resume(throwing: Closed())
                case .handed(let consumer):
                    consumer.resume(returning: element)
                    continuation.resume()
                case .buffered:
                    continuation.resume()
                case .waiting:
                    break
                }
            }
        } onCancel: {
            close()
        }
    }

    /// Ends the stream after what was sent: cleanly, or with `error` for the consumer.
    func finish(throwing error: (any Error)? = nil) {
        let consumer = state.withLock { state -> CheckedContinuation<Element?, any Error>? in
            guard state.end == nil else { return nil }
            state.end = error.map { .failure($0) } ?? .success(())
            defer { state.consumer = nil }
            return state.consumer
        }
        if let error { consumer?.resume(throwing: error) } else { consumer?.resume(returning: nil) }
    }

    /// The next piece; nil at a clean end; throws the producer's error, or ``Closed`` once the
    /// pipe is closed.
    func next() async throws -> Element? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Element?, any Error>) in
                let step = state.withLock { state -> NextStep in
                    if !state.buffer.isEmpty {
                        let element = state.buffer.removeFirst()
                        defer { state.producer = nil }
                        return .element(element, state.producer)
                    }
                    if let end = state.end { return .ended(end) }
                    if state.closed { return .ended(.failure(Closed())) }
                    state.consumer = continuation
                    return .waiting
                }
                switch step {
                case .element(let element, let producer):
                    producer?.resume()
                    continuation.resume(returning: element)
                case .ended(.success):
                    continuation.resume(returning: nil)
                case .ended(.failure(let error)):
                    continuation.resume(throwing: error)
                case .waiting:
                    break
                }
            }
        } onCancel: {
            close()
        }
    }

    /// Gives up reading: a waiting producer, and every later ``send(_:)``, fail with ``Closed``.
    func close() {
        let (producer, consumer) = state.withLock { state in
            state.closed = true
            state.buffer.removeAll()
            defer {
                state.producer = nil
                state.consumer = nil
            }
            return (state.producer, state.consumer)
        }
        producer?.resume(throwing: Closed())
        consumer?.resume(throwing: Closed())
    }
}
