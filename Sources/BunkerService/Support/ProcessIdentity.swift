import Foundation

/// Which process a job belongs to, beyond its pid: the boot and the process's start time.
///
/// A pid alone does not say that a job's process is still running: pids are reused, and in a
/// container every `bunker serve` is pid 1, so a crashed server's jobs would look alive to the
/// next one forever. The start time (field 22 of `/proc/<pid>/stat`, in clock ticks since
/// boot) together with the kernel's boot id names one process for good.
enum ProcessIdentity {
    /// `<boot id>:<start time>` of `pid`; nil where `/proc` does not tell (not Linux, no such
    /// process).
    static func of(_ pid: Int32) -> String? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // After "pid (comm)" come the fields from 3 (state) on; the name may hold spaces and ')'.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let boot = bootID else { return nil }
        return "\(boot):\(fields[19])"
    }

    /// This process's identity.
    static let current: String? = of(getpid())

    static let bootID: String? = (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))
        .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }

    /// Whether the process that ran a job (`pid`, started as `identity`) is still running.
    static func isAlive(pid: Int32, identity: String?) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let identity else {
            // A job written before identities were kept is from an earlier process, even when
            // this process has its pid (pid 1 in a container).
            return pid != getpid()
        }
        guard let now = of(pid) else { return true }
        return now == identity
    }
}
