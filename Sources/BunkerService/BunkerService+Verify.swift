import BunkerCore
import Foundation

extension BunkerService {
    /// Checks the repository's structure, and with `readData` its stored bytes (all, or
    /// `subset`). Audited as `verify` by `actor`: a check that finds damage ends with outcome
    /// `failure` and the number of errors.
    public func verify(readData: Bool, subset: DataSubset? = nil, by actor: AuditActor = .localUser(), progress: OperationProgress? = nil) async throws -> CheckReport {
        var details = ["read_data": String(readData || subset != nil)]
        details["subset"] = subset.map { "\($0)" }
        return try await notifying(by: actor) { (report: CheckReport) in
            report.ok ? .verifySucceeded(report, scope: "the repository", now: repository.now()) : .verifyFailed(report, error: nil, now: repository.now())
        } failure: { error in
            .verifyFailed(nil, error: error, now: repository.now())
        } _: {
            try await audited("verify", target: "repository", by: actor, details: details) {
            try await repository.withLock(exclusive: false) {
                try await Checker(repository: repository, progress: progress).check(readData: readData || subset != nil, subset: subset)
            }
        } describe: { report in
            AuditedResult(
                outcome: report.ok ? .success : .failure,
                details: ["errors": String(report.errors.count), "snapshots": String(report.snapshots), "packs_read": String(report.packsRead)])
            }
        }
    }

    /// Checks one snapshot's data: every pack it needs is read, hashed against its name and every
    /// blob authenticated. Audited as `verify` of the snapshot; damage ends as `failure`.
    public func verify(snapshot reference: String, by actor: AuditActor = .localUser(), progress: OperationProgress? = nil) async throws -> CheckReport {
        try await audited("verify", target: reference, by: actor, details: ["read_data": "true", "scope": "snapshot"]) {
            try await repository.withLock(exclusive: false) {
                let (id, _) = try await repository.findSnapshot(reference)
                return try await Checker(repository: repository, progress: progress).check(snapshot: id)
            }
        } describe: { report in
            AuditedResult(outcome: report.ok ? .success : .failure, details: ["errors": String(report.errors.count), "packs_read": String(report.packsRead)])
        }
    }

    /// Re-creates the catalog's backup metadata from the repository's snapshots (see
    /// ``Catalog/rebuildBackups(from:by:)``); returns the number of rows added.
    public func rebuildCatalog(by actor: AuditActor = .localUser()) async throws -> Int {
        let snapshots = try await repository.snapshots()
        return try catalog().rebuildBackups(from: snapshots.map { ($0.id, $0.snapshot) }, by: actor)
    }
}
