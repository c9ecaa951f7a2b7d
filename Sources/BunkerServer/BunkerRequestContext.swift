import BunkerService
import Hummingbird
import NIOCore

/// Who a request is from, once ``AuthenticationMiddleware`` has checked its token: a user
/// (with a JWT from a login), or a service token, named `token:NAME` in the audit trail.
public struct Identity: Sendable {
    /// The catalog user; nil for a service token, which is no person.
    public var userID: Int64?
    /// The user's name, or `token:NAME` for a service token.
    public var username: String
    public var fullName: String
    public var role: Role
    /// The service token's name, when the request came with one: it can sign nothing.
    public var serviceToken: String?

    public init(userID: Int64?, username: String, fullName: String, role: Role, serviceToken: String? = nil) {
        self.userID = userID
        self.username = username
        self.fullName = fullName
        self.role = role
        self.serviceToken = serviceToken
    }

    /// The identity of a request authenticated by `token`.
    init(token: ServiceTokenRecord) {
        self.init(userID: nil, username: token.actorName, fullName: "service token \(token.name)", role: token.role, serviceToken: token.name)
    }

    /// The audit trail's actor for this request.
    func actor(requestID: String) -> AuditActor {
        AuditActor(name: username, channel: .api, userID: userID, requestID: requestID)
    }
}

/// The request context of every route: Hummingbird's core storage, the client's address and the
/// caller's identity.
public struct BunkerRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by ``AuthenticationMiddleware``; nil on the routes that need no login.
    public var identity: Identity?
    /// The peer of the connection (nil for the in-process test client).
    public let remoteAddress: SocketAddress?
    /// The connection, for a handler that must cut it (a download whose client stopped reading).
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        identity = nil
        remoteAddress = source.channel.remoteAddress
        channel = source.channel
    }

    /// Login bodies and later JSON requests are small; larger bodies are refused with 413.
    public var maxUploadSize: Int { 1 << 20 }

    /// The identity, or a 401 for a route that needs one.
    func requireIdentity() throws -> Identity {
        guard let identity else { throw APIError(.unauthorized, code: "unauthenticated", "Log in first: send Authorization: Bearer <token> from POST /api/v1/auth/login.") }
        return identity
    }
}
