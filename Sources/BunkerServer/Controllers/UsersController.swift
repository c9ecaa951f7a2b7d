import BunkerCore
import BunkerService
import Foundation
import Hummingbird

/// `GET /users`, `POST /users` and `PATCH /users/{username}` (role, active), for administrators:
/// the console's Users page. Users are never deleted or renamed (the audit trail names them);
/// every change is audited by the catalog in the same transaction.
struct UsersController {
    let deps: APIDependencies

    /// A user as the API shows it: never the password's hash.
    struct UserDTO: ResponseEncodable {
        var id: Int64
        var username: String
        var fullName: String
        var email: String?
        var role: String
        var active: Bool
        var lockedUntil: String?

        init(_ user: UserRecord, now: Date) {
            id = user.id ?? 0
            username = user.username
            fullName = user.fullName
            email = user.email
            role = user.role.rawValue
            active = user.active
            lockedUntil = user.isLocked(at: now) ? user.lockedUntil.map(WireTime.string) : nil
        }

        enum CodingKeys: String, CodingKey {
            case id, username, email, role, active
            case fullName = "full_name"
            case lockedUntil = "locked_until"
        }

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id)
            try c.encode(username, forKey: .username)
            try c.encode(fullName, forKey: .fullName)
            try c.encode(email, forKey: .email)
            try c.encode(role, forKey: .role)
            try c.encode(active, forKey: .active)
            try c.encode(lockedUntil, forKey: .lockedUntil)
        }
    }

    struct NewUserBody: Decodable {
        var username: String
        var fullName: String
        var email: String?
        var role: Role
        var password: String

        enum CodingKeys: String, CodingKey {
            case username, email, role, password
            case fullName = "full_name"
        }
    }

    struct ChangeBody: Decodable {
        var role: Role?
        var active: Bool?
    }

    func register(on api: RouterGroup<BunkerRequestContext>) {
        let admin = deps.authorized(api, [.systemAdmin], action: "user.write")
        admin.get("users", use: list)
        admin.post("users", use: add)
        admin.patch("users/:username", use: change)
    }

    @Sendable func list(_ request: Request, context: BunkerRequestContext) async throws -> [UserDTO] {
        let now = deps.catalog.options.now()
        return try deps.catalog.users().map { UserDTO($0, now: now) }
    }

    @Sendable func add(_ request: Request, context: BunkerRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let body = try await request.decode(as: NewUserBody.self, context: context)
        let user = try deps.catalog.addUser(
            NewUser(username: body.username, fullName: body.fullName, email: body.email, role: body.role, password: body.password),
            by: identity.actor(requestID: context.id))
        var response = try UserDTO(user, now: deps.catalog.options.now()).response(from: request, context: context)
        response.status = .created
        return response
    }

    /// Changes a user's role or enables or disables them. An administrator cannot change their
    /// own role or disable themselves: that is how the last administrator would lock everyone out.
    @Sendable func change(_ request: Request, context: BunkerRequestContext) async throws -> UserDTO {
        let identity = try context.requireIdentity()
        let username = context.parameters.get("username") ?? ""
        let body = try await request.decode(as: ChangeBody.self, context: context)
        guard body.role != nil || body.active != nil else {
            throw APIError(.badRequest, code: "invalid_request", "Give \"role\" or \"active\" (or both).")
        }
        guard let user = try deps.catalog.user(named: username) else {
            throw APIError(.notFound, code: "not_found", "There is no user named \(username).")
        }
        if user.id == identity.userID, body.role.map({ $0 != user.role }) == true || body.active == false {
            throw APIError(.conflict, code: "own_account", "You cannot change your own role or disable yourself: ask another administrator (or use `bunker user` on the server).")
        }
        let actor = identity.actor(requestID: context.id)
        var changed = user
        if let role = body.role, role != user.role { changed = try deps.catalog.setRole(user.username, role, by: actor) }
        if let active = body.active, active != user.active { changed = try deps.catalog.setActive(user.username, active, by: actor) }
        return UserDTO(changed, now: deps.catalog.options.now())
    }
}
