import Foundation
import Synchronization

/// Named places where the test suite can make the real process kill itself with SIGKILL, or
/// hold it there.
///
/// Set `BUNKER_FAULT_KILL=point` or `point:N` (the N-th time the point is reached) in the
/// environment of a `bunker` subprocess; tests then check what a crash at exactly that moment
/// leaves behind. `BUNKER_FAULT_PAUSE=point` with `BUNKER_FAULT_RESUME=FILE` holds the process
/// the first time it reaches the point: it creates `FILE.paused`, then waits until `FILE` exists
/// or its task is cancelled, so that a test can act while a job is half done (a second writer,
/// a cancel). Unset, a fault point costs one dictionary lookup.
public enum FaultPoints {
    private static let target: (name: String, count: Int)? = {
        guard let spec = ProcessInfo.processInfo.environment["BUNKER_FAULT_KILL"], !spec.isEmpty else { return nil }
        let parts = spec.split(separator: ":", maxSplits: 1)
        return (String(parts[0]), parts.count > 1 ? Int(parts[1]) ?? 1 : 1)
    }()

    private static let hits = Mutex<[String: Int]>([:])

    private static let pause: (name: String, resume: String)? = {
        let environment = ProcessInfo.processInfo.environment
        guard let name = environment["BUNKER_FAULT_PAUSE"], !name.isEmpty, let resume = environment["BUNKER_FAULT_RESUME"] else { return nil }
        return (name, resume)
    }()
    private static let paused = Atomic(false)

    /// Kills the process if this is the configured point and occurrence.
    public static func hit(_ name: String) {
        if let pause, pause.name == name, !paused.exchange(true, ordering: .relaxed) {
            FileManager.default.createFile(atPath: pause.resume + ".paused", contents: nil)
            // A test's wait: at most ten minutes, checked every 20 ms.
            for _ in 0..<30_000 where !FileManager.default.fileExists(atPath: pause.resume) && !Task.isCancelled {
                usleep(20_000)
            }
        }
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
