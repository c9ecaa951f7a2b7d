import BunkerCore
import BunkerService
import Hummingbird

/// What the controllers share: the catalog, the token service and the service layer over the
/// repository (whose job runner holds the one-writer claim and the live jobs).
struct APIDependencies: Sendable {
    let catalog: Catalog
    let tokens: TokenService
    /// Nil when the server runs without a repository (none configured): the routes that need one
    /// answer 503.
    let service: BunkerService?
    /// The server's timeouts (a download's client that stops reading is cut off after the
    /// idle timeout).
    let limits: ServerLimits

    /// A group of `group`'s routes for a logged-in user of one of `roles`; any other role gets
    /// a 403, audited as a denied `action`.
    func authorized(_ group: RouterGroup<BunkerRequestContext>, _ roles: Set<Role>, action: String) -> RouterGroup<BunkerRequestContext> {
        group.group()
            .add(middleware: AuthenticationMiddleware(catalog: catalog, tokens: tokens))
            .add(middleware: RoleMiddleware(allowed: roles, action: action, catalog: catalog))
    }

    func requireService() throws -> BunkerService {
        guard let service else {
            throw APIError(.serviceUnavailable, code: "no_repository", "This server has no repository: set [repository] path and its password (password_file or BUNKER_PASSWORD), then restart bunker serve.")
        }
        return service
    }
}
