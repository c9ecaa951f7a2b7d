import BunkerCore
import BunkerService
import Hummingbird

/// `GET /jobs` and `GET /jobs/{id}`: jobs' states from the catalog and, while this server runs
/// them, their progress; `DELETE /jobs/{id}` cancels a running one (SYSTEM_ADMIN).
struct JobsController {
    let deps: APIDependencies

    func register(on api: RouterGroup<BunkerRequestContext>) {
        let readers = deps.authorized(api, [.systemAdmin, .auditor], action: "job.read")
        readers.get("jobs", use: list)
        readers.get("jobs/:job_id", use: show)
        deps.authorized(api, [.systemAdmin], action: "job.cancel").delete("jobs/:job_id", use: cancel)
    }

    /// Running and recent jobs, newest first.
    @Sendable func list(_ request: Request, context: BunkerRequestContext) async throws -> [JobStatus] {
        let limit = try Validate.listLimit(request, context: context)
        return try deps.catalog.jobs(limit: limit).map(status)
    }

    @Sendable func show(_ request: Request, context: BunkerRequestContext) async throws -> JobStatus {
        let id = try Validate.jobID(context)
        guard let job = try deps.catalog.job(id: id) else {
            throw APIError(.notFound, code: "not_found", "No job \(id) is known.")
        }
        return try status(job)
    }

    /// Asks the job to stop: 202 and its state, still `running` until it reaches a safe point
    /// (then `failed`, with a message saying it was cancelled).
    @Sendable func cancel(_ request: Request, context: BunkerRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let id = try Validate.jobID(context)
        let service = try deps.requireService()
        do {
            try service.cancelJob(id, by: identity.actor(requestID: context.id))
        } catch let error as BunkerError where error.code == .invalidArgument {
            throw APIError(.conflict, code: "job_finished", error.message)
        } catch let error as BunkerError where error.code == .objectNotFound {
            throw APIError(.notFound, code: "not_found", error.message)
        }
        guard let job = try deps.catalog.job(id: id) else {
            throw APIError(.notFound, code: "not_found", "No job \(id) is known.")
        }
        var response = try status(job).response(from: request, context: context)
        response.status = .accepted
        return response
    }

    private func status(_ job: JobRecord) throws -> JobStatus {
        // This server's own jobs live; another process's (a CLI command) as it last published them.
        let progress = (deps.service?.jobs.progress(of: job.id)?.counters ?? job.progress).map { c in
            JobStatus.Progress(filesDone: c.filesDone, filesTotal: c.filesTotal, bytesDone: c.bytesDone, bytesTotal: c.bytesTotal, totalsKnown: c.totalsKnown, current: c.currentPath)
        }
        return JobStatus(
            id: job.id, kind: job.kind, state: job.state.rawValue, target: job.target, startedAt: WireTime.string(job.startedAt),
            finishedAt: job.finishedAt.map(WireTime.string), message: job.message, backupID: try backupID(of: job), progress: progress)
    }

    /// The backup a finished backup job made: the target of its end row in the audit trail.
    private func backupID(of job: JobRecord) throws -> String? {
        guard job.kind == "backup", job.state == .succeeded, let end = try deps.catalog.operationEnd(startSeq: job.auditSeq) else { return nil }
        return end.target
    }
}
