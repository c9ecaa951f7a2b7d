import BunkerCore
import Foundation

extension BunkerService {
    /// Cancels a job this process runs (a catalog job id), audited as `job.cancel` by `actor`.
    ///
    /// The job's operation stops at its next safe point and its own end row says it was
    /// cancelled; the repository is left as a kill would leave it (it verifies, and the next run
    /// completes). Throws ``BunkerError/Code/invalidArgument`` for a job that has ended, and
    /// ``BunkerError/Code/objectNotFound`` for one this process does not run.
    public func cancelJob(_ jobID: String, by actor: Actor) throws {
        let catalog = try catalog()
        guard let job = try catalog.job(id: jobID) else {
            throw BunkerError(.objectNotFound, "No job \(jobID) is known; `bunker jobs` lists them.")
        }
        guard job.state == .running else {
            throw BunkerError(.invalidArgument, "Job \(jobID) has already ended (\(job.state.rawValue)); there is nothing to cancel.")
        }
        guard jobs.cancel(jobID) else {
            throw BunkerError(.objectNotFound, "Job \(jobID) is not run by this process (process \(job.pid) on \(job.hostname) runs it): cancel it where it runs.")
        }
        try catalog.record("job.cancel", target: jobID, outcome: .success, details: ["kind": job.kind], by: actor)
    }
}
