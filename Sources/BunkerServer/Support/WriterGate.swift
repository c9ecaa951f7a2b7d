import Hummingbird
import Synchronization

/// One writer per repository inside this server: a backup or restore claims the gate for its
/// whole run, and a second one asked meanwhile gets a 409 at once instead of queueing behind it.
///
/// Backups and restores take only a shared repository lock (several readers may run), so the
/// repository lock alone would let two API backups run together; the gate is what makes them
/// conflict. Another process's exclusive lock still ends in the lock's own 409.
final class WriterGate: Sendable {
    /// What holds the gate, for the message of the refused request.
    private let holder = Mutex<String?>(nil)

    /// A claim, released exactly once.
    final class Lease: Sendable {
        private let gate: WriterGate
        private let released = Atomic(false)

        fileprivate init(gate: WriterGate) {
            self.gate = gate
        }

        func release() {
            if !released.exchange(true, ordering: .acquiringAndReleasing) {
                gate.holder.withLock { $0 = nil }
            }
        }
    }

    /// Claims the gate for `operation` (such as "a backup by alice"), or fails with 409.
    func claim(for operation: String) throws -> Lease {
        try holder.withLock { current in
            if let current {
                throw APIError(.conflict, code: "repository_locked", "The repository is busy: \(current) is running. Only one backup or restore runs at a time; try again when it has finished.")
            }
            current = operation
        }
        return Lease(gate: self)
    }

    /// Runs `body` holding the gate.
    func withClaim<T>(for operation: String, _ body: () async throws -> T) async throws -> T {
        let lease = try claim(for: operation)
        defer { lease.release() }
        return try await body()
    }
}
