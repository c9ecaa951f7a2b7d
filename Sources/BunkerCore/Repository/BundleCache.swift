import Foundation
import Synchronization

/// Bundles opened lately, and those being opened.
///
/// A bundle holds many small files, and a restore writes several files at once (four from an
/// object store): without this, each of them would read, authenticate and decompress the same
/// half-MiB bundle at the same moment. A bundle being opened is opened once, and everyone who
/// asks for it meanwhile waits for that one opening; the last few opened are kept.
final class BundleCache: Sendable {
    struct Key: Hashable, Sendable {
        let pack: ID
        let offset: UInt32
    }

    private struct State {
        var recent: [(key: Key, plaintext: Data)] = []
        var opening: [Key: Task<Data, any Error>] = [:]

        mutating func keep(_ key: Key, _ plaintext: Data, limit: Int) {
            recent.removeAll { $0.key == key }
            recent.append((key, plaintext))
            if recent.count > limit { recent.removeFirst() }
        }
    }

    private enum Lookup {
        case kept(Data)
        case opening(Task<Data, any Error>)
    }

    private let state = Mutex(State())
    /// How many opened bundles are kept (each about half a MiB).
    let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    /// The bundle's plaintext if it was opened lately.
    func kept(_ key: Key) -> Data? {
        state.withLock { state in state.recent.last { $0.key == key }?.plaintext }
    }

    /// Keeps a bundle opened elsewhere (in a read that took several units at once).
    func keep(_ key: Key, _ plaintext: Data) {
        state.withLock { $0.keep(key, plaintext, limit: limit) }
    }

    /// The bundle's plaintext: kept, being opened by someone else (then awaited), or opened now
    /// with `open`. A failure reaches everyone who waited for that opening, and is not kept.
    func plaintext(_ key: Key, open: @escaping @Sendable () async throws -> Data) async throws -> Data {
        let lookup: Lookup = state.withLock { state in
            if let kept = state.recent.last(where: { $0.key == key }) { return .kept(kept.plaintext) }
            if let task = state.opening[key] { return .opening(task) }
            let limit = self.limit
            let task = Task<Data, any Error> { [self] in
                do {
                    let plaintext = try await open()
                    self.state.withLock {
                        $0.opening[key] = nil
                        $0.keep(key, plaintext, limit: limit)
                    }
                    return plaintext
                } catch {
                    self.state.withLock { _ = $0.opening.removeValue(forKey: key) }
                    throw error
                }
            }
            state.opening[key] = task
            return .opening(task)
        }
        switch lookup {
        case .kept(let plaintext): return plaintext
        case .opening(let task): return try await task.value
        }
    }
}
