import BunkerService
import Hummingbird

/// Lets through only the roles in `allowed`; any other gets a 403, recorded in the audit trail
/// as a `denied` row of `action`. Runs after ``AuthenticationMiddleware``.
struct RoleMiddleware: RouterMiddleware {
    typealias Context = BunkerRequestContext

    let allowed: Set<Role>
    /// The audited name of what the routes do, such as `audit.read`.
    let action: String
    let catalog: Catalog

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let identity = try context.requireIdentity()
        guard allowed.contains(identity.role) else {
            let roles = allowed.map(\.rawValue).sorted().joined(separator: " or ")
            try catalog.recordDenied(action, target: request.uri.path, reason: "role \(identity.role.rawValue) is not \(roles)", by: identity.actor(requestID: context.id))
            throw APIError(.forbidden, code: "forbidden", "This needs the role \(roles); you are \(identity.role.rawValue).")
        }
        return try await next(request, context)
    }
}
