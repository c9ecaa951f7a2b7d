import Foundation
import NIOCore
import Synchronization

/// Failed logins per client address: an address that failed `maxFailures` times within the
/// last `window` gets 429 (with `Retry-After`) without a password check and without an audit row,
/// so that nobody can grow the append-only audit trail, or burn the server's CPU on bcrypt,
/// without bound. The account lockout stops guessing one user's password; this stops one client
/// from trying many names.
///
/// An attempt counts as failed from its start until it succeeds, so that concurrent attempts
/// from one address cannot pass the limit together. Memory is bounded: at most
/// `maxTrackedClients` addresses are remembered, the longest quiet ones forgotten first.
final class LoginThrottle: Sendable {
    /// How many failed logins an address may have, within what time.
    struct Policy: Sendable {
        var maxFailures = 10
        var window: TimeInterval = 300
        var maxTrackedClients = 10_000
    }

    /// Why an attempt may not start.
    struct Refusal: Error, Equatable {
        /// Whole seconds until the address may try again (at least 1).
        var retryAfter: Int
        /// The first refusal since the address reached the limit: the one worth an audit row.
        var first: Bool
    }

    /// One attempt under way, counted as failed until ``withdraw()``.
    struct Attempt: Sendable {
        fileprivate let throttle: LoginThrottle
        fileprivate let client: String
        fileprivate let time: Date

        /// Takes the attempt back off the address's failures: it succeeded, or was no login
        /// attempt after all (the catalog could not be written).
        func withdraw() { throttle.forget(self) }
    }

    private struct Client {
        /// Failed (or still running) attempts within the window, oldest first.
        var failures: [Date] = []
        var refusalRecorded = false
    }

    let policy: Policy
    private let clients = Mutex<[String: Client]>([:])

    init(policy: Policy = Policy()) {
        self.policy = policy
    }

    /// Starts an attempt from `client` at `now`, or says why it may not start.
    func begin(_ client: String, at now: Date) -> Result<Attempt, Refusal> {
        clients.withLock { clients in
            var entry = clients[client] ?? Client()
            entry.failures.removeAll { $0 <= now.addingTimeInterval(-policy.window) }
            if entry.failures.count >= policy.maxFailures, let oldest = entry.failures.first {
                let seconds = oldest.addingTimeInterval(policy.window).timeIntervalSince(now)
                let refusal = Refusal(retryAfter: max(1, Int(seconds.rounded(.up))), first: !entry.refusalRecorded)
                entry.refusalRecorded = true
                clients[client] = entry
                return .failure(refusal)
            }
            entry.refusalRecorded = false
            entry.failures.append(now)
            clients[client] = entry
            if clients.count > policy.maxTrackedClients { forgetQuietest(&clients, now: now) }
            return .success(Attempt(throttle: self, client: client, time: now))
        }
    }

    private func forget(_ attempt: Attempt) {
        clients.withLock { clients in
            guard var entry = clients[attempt.client], let index = entry.failures.firstIndex(of: attempt.time) else { return }
            entry.failures.remove(at: index)
            clients[attempt.client] = entry.failures.isEmpty ? nil : entry
        }
    }

    /// Drops the clients with no failure in the window, then, while still too many, the one
    /// whose last failure is oldest.
    private func forgetQuietest(_ clients: inout [String: Client], now: Date) {
        let horizon = now.addingTimeInterval(-policy.window)
        clients = clients.filter { ($0.value.failures.last ?? .distantPast) > horizon }
        while clients.count > policy.maxTrackedClients,
              let quietest = clients.min(by: { ($0.value.failures.last ?? .distantPast) < ($1.value.failures.last ?? .distantPast) }) {
            clients[quietest.key] = nil
        }
    }

    /// The address that counts for `address`: an IPv4 address as it is, an IPv6 address by its
    /// /64 network (one subscriber's usual share, so that a client cannot step through its own
    /// addresses), an IPv4 address mapped into IPv6 as the IPv4 address; "local" without one
    /// (a Unix socket, or the in-process test client).
    static func clientKey(_ address: SocketAddress?) -> String {
        guard let address else { return "local" }
        switch address {
        case .v4:
            return address.ipAddress ?? "local"
        case .v6(let v6):
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
                return bytes[12...].map(String.init).joined(separator: ".")
            }
            let groups = stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            return groups.joined(separator: ":") + "::/64"
        case .unixDomainSocket:
            return "local"
        }
    }
}
