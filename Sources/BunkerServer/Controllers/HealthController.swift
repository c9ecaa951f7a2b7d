import BunkerService
import Hummingbird

/// `GET /health`: no login, no details (a probe learns that the server answers, nothing more).
/// `GET /health/detail`: for administrators and auditors, what is overdue, failing or full.
struct HealthController {
    struct Health: ResponseEncodable {
        var status = "ok"
    }

    let deps: APIDependencies

    func register(on group: RouterGroup<BunkerRequestContext>) {
        group.get("health") { _, _ in Health() }
        deps.authorized(group, [.systemAdmin, .auditor], action: "health.read").get("health/detail") { _, _ in
            try await deps.requireService().healthDetail()
        }
    }
}

extension HealthDetail: ResponseEncodable {}
