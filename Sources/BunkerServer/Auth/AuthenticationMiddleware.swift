import BunkerService
import Hummingbird

/// Requires `Authorization: Bearer <token>` with a valid token of an active user, of the user's
/// current token generation (issued after the last password change and deactivation), and puts
/// the user's identity in the context; anything else is a 401.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = BunkerRequestContext

    let catalog: Catalog
    let tokens: TokenService

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let refused = APIError(.unauthorized, code: "unauthenticated", "A valid, unexpired bearer token of an active user is needed: log in with POST /api/v1/auth/login.")
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else { throw refused }
        guard let (userID, generation) = await tokens.verify(String(header.dropFirst("bearer ".count))),
              let user = try catalog.user(id: userID), user.active, user.tokenGeneration == generation else { throw refused }
        var context = context
        context.identity = Identity(userID: userID, username: user.username, fullName: user.fullName, role: user.role)
        return try await next(request, context)
    }
}
