import Hummingbird

/// `GET /health`: no login, no details (a probe learns that the server answers, nothing more).
struct HealthController {
    struct Health: ResponseEncodable {
        var status = "ok"
    }

    func register(on group: RouterGroup<BunkerRequestContext>) {
        group.get("health") { _, _ in Health() }
    }
}
