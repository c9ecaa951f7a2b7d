import BunkerCore
import BunkerService
import Foundation
import Hummingbird

/// `POST /auth/login` and `GET /auth/me`.
struct AuthController {
    let catalog: Catalog
    let tokens: TokenService

    struct LoginRequest: Decodable {
        var username: String
        var password: String
    }

    /// The seed's login answer, field for field.
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
    @Sendable func login(_ request: Request, context: BunkerRequestContext) async throws -> LoginResponse {
        let body = try await request.decode(as: LoginRequest.self, context: context)
        let user = try await catalog.authenticateOnThreadPool(username: body.username, password: body.password, requestID: context.id)
        let (token, expires) = try await tokens.issue(for: user)
        return LoginResponse(accessToken: token, expiresAt: ISO8601DateFormatter().string(from: expires))
    }

    @Sendable func me(_ request: Request, context: BunkerRequestContext) async throws -> MeResponse {
        let identity = try context.requireIdentity()
        return MeResponse(id: identity.userID, username: identity.username, fullName: identity.fullName, role: identity.role.rawValue)
    }
}
