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
    ///
    /// Notified like a verify of the repository: the DermAI strategy runs `verify latest` from
    /// cron, where a damaged backup must reach someone.
    public func verify(snapshot reference: String, by actor: AuditActor = .localUser(), progress: OperationProgress? = nil) async throws -> CheckReport {
        try await notifying(by: actor) { (checked: (ID, CheckReport)) in
            let scope = "backup \(checked.0.short)"
            return checked.1.ok
                ? .verifySucceeded(checked.1, scope: scope, now: repository.now())
                : .verifyFailed(checked.1, error: nil, scope: scope, now: repository.now())
        } failure: { error in
            // A reference that names no backup is the caller's mistake, not a failed check.
            if let error = error as? BunkerError, error.code == .invalidArgument || error.code == .snapshotNotFound { return nil }
            return .verifyFailed(nil, error: error, scope: "backup \(reference)", now: repository.now())
        } _: {
            try await audited("verify", target: reference, by: actor, details: ["read_data": "true", "scope": "snapshot"]) {
                try await repository.withLock(exclusive: false) {
                    let (id, _) = try await repository.findSnapshot(reference)
                    return (id, try await Checker(repository: repository, progress: progress).check(snapshot: id))
                }
            } describe: { (checked: (ID, CheckReport)) in
                // The backup's id, also when it was asked for as `latest` or a prefix.
                AuditedResult(outcome: checked.1.ok ? .success : .failure, target: checked.0.hex,
                              details: ["errors": String(checked.1.errors.count), "packs_read": String(checked.1.packsRead)])
            }
        }.1
    }

    /// Re-creates the catalog's backup metadata from the repository's snapshots (see
    /// ``Catalog/rebuildBackups(from:by:)``); returns the number of rows added.
    public func rebuildCatalog(by actor: AuditActor = .localUser()) async throws -> Int {
        let snapshots = try await repository.snapshots()
        return try catalog().rebuildBackups(from: snapshots.map { ($0.id, $0.snapshot) }, by: actor)
    }
}
