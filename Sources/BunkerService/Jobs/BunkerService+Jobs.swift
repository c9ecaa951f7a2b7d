import BunkerCore
import Foundation

extension BunkerService {
    /// Cancels a running job (a catalog job id), audited as `job.cancel` by `actor`.
    ///
    /// A job of this process is cancelled at once; a job of another process (a CLI command, or
    /// the `bunker serve` that runs it, asked by `bunker jobs cancel`) is marked in the catalog,
    /// and that process's ``JobRunner`` cancels it within a second or two. Either way the operation
    /// stops at its next safe point and its own end row says it was cancelled; the repository is
    /// left as a kill would leave it (it verifies, and the next run completes).
    ///
    /// Throws ``BunkerError/Code/objectNotFound`` for an unknown job and
    /// ``BunkerError/Code/invalidArgument`` for one that has already ended.
    public func cancelJob(_ jobID: String, by actor: AuditActor) throws {
        try Self.cancelJob(jobID, in: try catalog(), runner: jobs, by: actor)
    }

    /// ``cancelJob(_:by:)`` with only a catalog, for a process with no repository open (the CLI
    /// cancelling a job of `bunker serve`).
    public static func cancelJob(_ jobID: String, in catalog: Catalog, runner: JobRunner? = nil, by actor: AuditActor) throws {
        guard let job = try catalog.job(id: jobID) else {
            throw BunkerError(.objectNotFound, "No job \(jobID) is known; `bunker jobs` lists them.")
        }
        let ended = BunkerError(.invalidArgument, "Job \(jobID) has already ended (\(job.state.rawValue)); there is nothing to cancel.")
        guard job.state == .running else { throw ended }
        if runner?.cancel(jobID) != true {
            guard try catalog.requestCancel(of: jobID, by: actor) else { throw ended }
        }
        try catalog.record("job.cancel", target: jobID, outcome: .success, details: ["kind": job.kind, "pid": String(job.pid)], by: actor)
    }
}
