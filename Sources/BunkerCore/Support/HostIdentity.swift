import Foundation

/// The name this process gives its host in locks, snapshots, keys and the catalog.
public enum HostIdentity {
    /// `BUNKER_HOSTNAME` when set and not empty, else the system's host name. Hosts that share
    /// one repository must have distinct names: containers often share one, and a lock is
    /// judged by its process only when it names this host (elsewhere by its age alone).
    public static let name: String = {
        if let name = ProcessInfo.processInfo.environment["BUNKER_HOSTNAME"], !name.isEmpty { return name }
        return ProcessInfo.processInfo.hostName
    }()
}
