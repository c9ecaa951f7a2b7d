import BunkerService
import Hummingbird

/// `POST /cleanup`: apply the retention policy and prune (SYSTEM_ADMIN), one writer at a time.
struct CleanupController {
    let deps: APIDependencies

    struct Body: Decodable {
        var dryRun: Bool?

        enum CodingKeys: String, CodingKey {
            case dryRun = "dry_run"
        }
    }

    struct Done: ResponseEncodable {
        var success = true
        var dryRun: Bool
        var kept: Int
        var forgotten: Int
        var packsDeleted: Int
        var bytesFreed: Int64

        enum CodingKeys: String, CodingKey {
            case success, kept, forgotten
            case dryRun = "dry_run"
            case packsDeleted = "packs_deleted"
            case bytesFreed = "bytes_freed"
        }
    }

    func register(on api: RouterGroup<BunkerRequestContext>) {
        deps.authorized(api, [.systemAdmin], action: "cleanup").post("cleanup", use: cleanup)
    }

    @Sendable func cleanup(_ request: Request, context: BunkerRequestContext) async throws -> Done {
        let identity = try context.requireIdentity()
        let body = try await request.decode(as: Body.self, context: context)
        let service = try deps.requireService()
        var cleanup = CleanupRequest()
        cleanup.dryRun = body.dryRun ?? false
        let chosen = cleanup
        let actor = identity.actor(requestID: context.id)
        // A dry run deletes nothing, yet plans against the repository as it is: it waits its turn
        // like any writer so its plan is not made beside a running backup.
        let options = JobOptions("a cleanup by \(identity.username)", access: .writes)
        let outcome = try await service.jobs.run(options) {
            try await service.cleanup(chosen, by: actor, progress: options.progress)
        }
        return Done(
            dryRun: chosen.dryRun, kept: outcome.forget.keptCount, forgotten: outcome.forget.removeCount,
            packsDeleted: outcome.prune.packsDeleted, bytesFreed: outcome.prune.bytesFreed)
    }
}
