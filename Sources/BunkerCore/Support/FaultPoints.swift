import Foundation
import Synchronization

/// Named places where the test suite can make the real process kill itself with SIGKILL.
///
/// Set `BUNKER_FAULT_KILL=point` or `point:N` (the N-th time the point is reached) in the
/// environment of a `bunker` subprocess; tests then check what a crash at exactly that moment
/// leaves behind. Unset, a fault point costs one dictionary lookup.
public enum FaultPoints {
    private static let target: (name: String, count: Int)? = {
        guard let spec = ProcessInfo.processInfo.environment["BUNKER_FAULT_KILL"], !spec.isEmpty else { return nil }
        let parts = spec.split(separator: ":", maxSplits: 1)
        return (String(parts[0]), parts.count > 1 ? Int(parts[1]) ?? 1 : 1)
    }()

    private static let hits = Mutex<[String: Int]>([:])

    /// Kills the process if this is the configured point and occurrence.
    public static func hit(_ name: String) {
        guard let target, target.name == name else { return }
        let count = hits.withLock { h -> Int in
            h[name, default: 0] += 1
            return h[name]!
        }
        if count == target.count {
            kill(getpid(), SIGKILL)
        }
    }
}
