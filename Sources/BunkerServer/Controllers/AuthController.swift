import BunkerCore
import BunkerService
import Foundation
import HTTPTypes
import Hummingbird

/// `POST /auth/login` and `GET /auth/me`; for the web console, `POST /auth/session` (log in
/// into cookies) and `DELETE /auth/session` (log out).
struct AuthController {
    let catalog: Catalog
    let tokens: TokenService
    let throttle: LoginThrottle
    /// Whether the session cookies are marked `Secure` (the server speaks TLS).
    var secureCookies = false

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

    /// Who the caller is; a service token has no user id.
    struct MeResponse: ResponseEncodable {
        var id: Int64?
        var username: String
        var fullName: String
        var role: String

        enum CodingKeys: String, CodingKey {
            case id, username, role
            case fullName = "full_name"
        }
    }

    /// The console's login answer: who is logged in and the CSRF token of the session (also in
    /// the `bunker_csrf` cookie, where the console finds it again after a reload).
    struct SessionResponse: ResponseEncodable {
        var username: String
        var fullName: String
        var role: String
        var csrfToken: String
        var expiresAt: String

        enum CodingKeys: String, CodingKey {
            case username, role
            case fullName = "full_name"
            case csrfToken = "csrf_token"
            case expiresAt = "expires_at"
        }
    }

    func register(on group: RouterGroup<BunkerRequestContext>) {
        group.post("auth/login", use: login)
        group.post("auth/session", use: startSession)
        group.delete("auth/session", use: endSession)
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
        let (_, token, expires) = try await authenticate(request, context: context)
        return LoginResponse(accessToken: token, expiresAt: ISO8601DateFormatter().string(from: expires))
    }

    /// Logs in like ``login(_:context:)``, but puts the token in an HttpOnly, SameSite=Strict
    /// cookie that no script can read, and its CSRF token in a readable one.
    @Sendable func startSession(_ request: Request, context: BunkerRequestContext) async throws -> Response {
        let (user, token, expires) = try await authenticate(request, context: context)
        let csrf = tokens.csrfToken(for: token)
        let answer = SessionResponse(
            username: user.username, fullName: user.fullName, role: user.role.rawValue, csrfToken: csrf,
            expiresAt: ISO8601DateFormatter().string(from: expires))
        var response = try answer.response(from: request, context: context)
        let maxAge = max(1, Int(expires.timeIntervalSince(catalog.options.now())))
        for cookie in ConsoleSession.cookies(token: token, csrf: csrf, maxAge: maxAge, secure: secureCookies) {
            response.setCookie(cookie)
        }
        response.headers[.cacheControl] = "no-store"
        return response
    }

    /// Logs the console out: both cookies are expired, whether or not they were valid, and a
    /// valid session token is revoked (``TokenService/revoke(_:)``), so that a copy of the cookie
    /// stops working too, also after a restart. Revoking needs the session's CSRF token, so that
    /// another site cannot log a user out. A revocation the catalog cannot record is an error
    /// rather than a logout that only looks done.
    @Sendable func endSession(_ request: Request, context: BunkerRequestContext) async throws -> Response {
        if let token = request.cookies[ConsoleSession.sessionCookie]?.value, !token.isEmpty,
           let sent = request.headers[ConsoleSession.csrfHeader], tokens.checkCSRF(sent, for: token) {
            try await tokens.revoke(token)
        }
        var response = Response(status: .noContent)
        for cookie in ConsoleSession.cookies(token: "", csrf: "", maxAge: 0, secure: secureCookies) {
            response.setCookie(cookie)
        }
        return response
    }

    /// Checks the login body's password and issues a token: the user, the token and its expiry.
    private func authenticate(_ request: Request, context: BunkerRequestContext) async throws -> (UserRecord, String, Date) {
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
        return (user, token, expires)
    }

    @Sendable func me(_ request: Request, context: BunkerRequestContext) async throws -> MeResponse {
        let identity = try context.requireIdentity()
        return MeResponse(id: identity.userID, username: identity.username, fullName: identity.fullName, role: identity.role.rawValue)
    }
}

/// The names of the web console's session: its cookies and its CSRF header.
enum ConsoleSession {
    /// The access token, HttpOnly: scripts cannot read it, so an injected script cannot steal it.
    static let sessionCookie = "bunker_session"
    /// The session's CSRF token, readable by the console's own scripts (not by other sites').
    static let csrfCookie = "bunker_csrf"
    static let csrfHeader = HTTPField.Name("X-CSRF-Token")!

    /// Both cookies, SameSite=Strict (never sent with a request another site starts), for the
    /// whole server; `maxAge` 0 deletes them.
    static func cookies(token: String, csrf: String, maxAge: Int, secure: Bool) -> [Cookie] {
        [
            Cookie(name: sessionCookie, value: token, maxAge: maxAge, path: "/", secure: secure, httpOnly: true, sameSite: .strict),
            Cookie(name: csrfCookie, value: csrf, maxAge: maxAge, path: "/", secure: secure, httpOnly: false, sameSite: .strict),
        ]
    }
}
