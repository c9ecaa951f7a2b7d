import BunkerCore
import BunkerService
import Hummingbird

/// Requires a valid token of an active user, of the user's current token generation (issued
/// after the last password change and deactivation), or a service token (`bkr_…`, see
/// ``Catalog/serviceToken(authenticating:)``) neither revoked nor expired, and puts the
/// identity in the context; anything else is a 401. The role routes check next is the user's
/// or the token's, alike.
///
/// The token comes in `Authorization: Bearer <token>`, or, from the web console, in the
/// HttpOnly `bunker_session` cookie that `POST /auth/session` sets. A browser sends a cookie
/// with every request to this server, so a request that changes anything (any method but GET
/// and HEAD) authenticated by the cookie must also carry the session's CSRF token in
/// `X-CSRF-Token`, which only a page of this server can read (from the `bunker_csrf` cookie);
/// without it the answer is a 403. A bearer token is never sent by the browser on its own, so
/// it needs no CSRF token.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = BunkerRequestContext

    let catalog: Catalog
    let tokens: TokenService

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let refused = APIError(.unauthorized, code: "unauthenticated", "A valid, unexpired bearer token of an active user is needed: log in with POST /api/v1/auth/login.")
        let token: String
        if let header = request.headers[.authorization] {
            guard header.lowercased().hasPrefix("bearer ") else { throw refused }
            token = String(header.dropFirst("bearer ".count))
        } else if let cookie = request.cookies[ConsoleSession.sessionCookie]?.value, !cookie.isEmpty {
            token = cookie
            if request.method != .get, request.method != .head {
                guard let sent = request.headers[ConsoleSession.csrfHeader], tokens.checkCSRF(sent, for: token) else {
                    throw APIError(.forbidden, code: "csrf_failed", "A request that changes something and is authenticated by the console's session cookie needs the session's X-CSRF-Token header: reload the console, or log in again.")
                }
            }
        } else {
            throw refused
        }
        // A service token is told apart by its prefix (a JWT starts `eyJ`); it is accepted in
        // the Authorization header only, where the browser never puts it on its own.
        if Catalog.looksLikeServiceToken(token) {
            guard request.headers[.authorization] != nil, let record = try catalog.serviceToken(authenticating: token) else {
                throw APIError(.unauthorized, code: "unauthenticated", "This service token is unknown, revoked or expired: `bunker token list` on the server shows its state; make a new one with `bunker token create`.")
            }
            var context = context
            let identity = Identity(token: record)
            context.identity = identity
            // Every use of a service token is audited under its name, reads too (a person's
            // reads are not: a token is a standing credential, and its trail is what shows who
            // used it, where, and when): the route and the status it was answered with.
            let use = "\(request.method.rawValue) \(request.uri.path)"
            let actor = identity.actor(requestID: context.id)
            do {
                let response = try await next(request, context)
                try? catalog.record("token.use", target: use, outcome: response.status.code < 400 ? .success : .failure,
                                    details: ["status": String(response.status.code)], by: actor)
                return response
            } catch {
                // As the error middleware will answer it (a BunkerError is mapped there).
                let status = (error as? any HTTPResponseError)?.status.code ?? (error as? BunkerError).map { APIError($0).status.code } ?? 500
                try? catalog.record("token.use", target: use, outcome: .failure, details: ["status": String(status)], by: actor)
                throw error
            }
        }
        guard let (userID, generation) = await tokens.verify(token),
              let user = try catalog.user(id: userID), user.active, user.tokenGeneration == generation else { throw refused }
        var context = context
        context.identity = Identity(userID: userID, username: user.username, fullName: user.fullName, role: user.role)
        return try await next(request, context)
    }
}
