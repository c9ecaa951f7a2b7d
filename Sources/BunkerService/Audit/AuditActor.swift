import Foundation

/// Who asked for an operation: the name the audit trail records for it.
///
/// The CLI acts as the local user (the process's login name); the HTTP server as the user its
/// token names, with the request's id; Bunker itself (closing operations a crash left open) as
/// ``system``.
public struct AuditActor: Sendable, Equatable, Codable {
    /// Through which face of Bunker the request came.
    public enum Channel: String, Sendable, Codable {
        case cli, api, system
    }

    public var name: String
    public var channel: Channel
    /// The catalog user, when the actor is one (the API); nil for a local user.
    public var userID: Int64?
    /// The HTTP request (or other correlation id) the action belongs to.
    public var requestID: String?

    public init(name: String, channel: Channel, userID: Int64? = nil, requestID: String? = nil) {
        self.name = name
        self.channel = channel
        self.userID = userID
        self.requestID = requestID
    }

    /// Bunker itself.
    public static let system = AuditActor(name: "bunker", channel: .system)

    /// The user this process runs as: the password database's name for the effective uid, else
    /// `$USER`, else `uid N`.
    public static func localUser(environment: [String: String] = ProcessInfo.processInfo.environment) -> AuditActor {
        AuditActor(name: localUserName(environment: environment), channel: .cli)
    }

    static func localUserName(environment: [String: String]) -> String {
        let uid = geteuid()
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        if getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, let result, let name = result.pointee.pw_name {
            let text = String(cString: name)
            if !text.isEmpty { return text }
        }
        if let user = environment["USER"], !user.isEmpty { return user }
        return "uid \(uid)"
    }
}
