import BunkerService
import Hummingbird

/// `GET /jobs/{id}`: a job's state from the catalog and, while this server runs it, its progress.
struct JobsController {
    let deps: APIDependencies

    func register(on api: RouterGroup<BunkerRequestContext>) {
        deps.authorized(api, [.systemAdmin, .auditor], action: "job.read").get("jobs/:job_id", use: show)
    }

    @Sendable func show(_ request: Request, context: BunkerRequestContext) async throws -> JobStatus {
        let id = try Validate.jobID(context)
        guard let job = try deps.catalog.job(id: id) else {
            throw APIError(.notFound, code: "not_found", "No job \(id) is known.")
        }
        let progress = deps.service?.jobs.progress(of: id).map { progress in
            let c = progress.counters
            return JobStatus.Progress(filesDone: c.filesDone, filesTotal: c.filesTotal, bytesDone: c.bytesDone, bytesTotal: c.bytesTotal, totalsKnown: c.totalsKnown, current: c.currentPath)
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
