import BunkerCore
import BunkerService
import Foundation
import Hummingbird

/// `POST /auth/login` and `GET /auth/me`.
struct AuthController {
    let catalog: Catalog
    let tokens: TokenService
    let throttle: LoginThrottle

    struct LoginRequest: Decodable {
        var username: String
        var password: String
    }

    /// The login answer as Clinical Dashboard clients expect it, field for field.
    struct LoginResponse: ResponseEncodable {
        var accessToken: String
        var tokenType = "bearer"
        var expiresAt: String

        enum CodingKeys: String, CodingKey {
            case accessToken = "access_token"
            case tokenType = "token_type"
            case expiresAt = "expires_at"
        }
    }

    struct MeResponse: ResponseEncodable {
        var id: Int64
        var username: String
        var fullName: String
        var role: String

        enum CodingKeys: String, CodingKey {
            case id, username, role
            case fullName = "full_name"
        }
    }

    func register(on group: RouterGroup<BunkerRequestContext>) {
        group.post("auth/login", use: login)
        group.group("auth/me")
            .add(middleware: AuthenticationMiddleware(catalog: catalog, tokens: tokens))
            .get(use: me)
    }

    /// Checks the password (bcrypt, lockout, audited by the catalog) and issues a token.
    ///
    /// A client address with too many recent failures (``LoginThrottle``) gets 429 with
    /// `Retry-After`, before any check and without an audit row, except one row for the first
    /// refusal of each such period. A user name that no user can have (empty, or longer than
    /// 64 bytes) is a 400 and no attempt.
    @Sendable func login(_ request: Request, context: BunkerRequestContext) async throws -> LoginResponse {
        let body = try await request.decode(as: LoginRequest.self, context: context)
        try Catalog.checkLoginName(body.username)
        let client = LoginThrottle.clientKey(context.remoteAddress)
        let attempt: LoginThrottle.Attempt
        switch throttle.begin(client, at: catalog.options.now()) {
        case .success(let started):
            attempt = started
        case .failure(let refusal):
            if refusal.first {
                let tried = AuditText.escaped(body.username)
                try catalog.recordDenied(
                    "auth.login", target: tried,
                    reason: "too many failed logins from \(client) (\(throttle.policy.maxFailures) in \(Int(throttle.policy.window)) s); its logins are refused for \(refusal.retryAfter) s",
                    by: AuditActor(name: tried, channel: .api, requestID: context.id))
            }
            throw APIError(
                .tooManyRequests, code: "rate_limited",
                "Too many failed logins from your address: try again in \(refusal.retryAfter) seconds (Retry-After).",
                headers: [.retryAfter: String(refusal.retryAfter)])
        }
        let user: UserRecord
        do {
            user = try await catalog.authenticateOnThreadPool(username: body.username, password: body.password, requestID: context.id)
        } catch let error as BunkerError where error.code != .authenticationFailed {
            // Not a failed login (a catalog that cannot be written, say).
            attempt.withdraw()
            throw error
        }
        attempt.withdraw()
        let (token, expires) = try await tokens.issue(for: user)
        return LoginResponse(accessToken: token, expiresAt: ISO8601DateFormatter().string(from: expires))
    }

    @Sendable func me(_ request: Request, context: BunkerRequestContext) async throws -> MeResponse {
        let identity = try context.requireIdentity()
        return MeResponse(id: identity.userID, username: identity.username, fullName: identity.fullName, role: identity.role.rawValue)
    }
}
