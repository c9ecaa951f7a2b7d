import BunkerCore
import Foundation
import GRDB

/// How an audited operation's end row describes its result.
struct AuditedResult {
    var outcome: AuditOutcome = .success
    /// Replaces the start row's target (a backup's snapshot id is known only at the end).
    var target: String?
    var details: [String: String] = [:]
    var message: String?
    /// The catalog change the operation made, written with the end row.
    var change: ((Database) throws -> Void)?
}

extension BunkerService {
    /// Runs `body` as an audited operation of `actor`: a start row (and a running job) first,
    /// then an end row saying how it went, with `describe`'s details and catalog change.
    ///
    /// Nothing runs if the start row cannot be written: an operation that cannot be audited is
    /// not done. A thrown error ends the operation with outcome `failure` and its message. An
    /// end row that cannot be written does not change the result reported (see ``finish(_:in:_:)``).
    func audited<T>(
        _ action: String, target: String?, by actor: AuditActor, reason: String? = nil, details: [String: String] = [:],
        _ body: () async throws -> T, describe: (T) -> AuditedResult = { _ in AuditedResult() }
    ) async throws -> T {
        let catalog = try catalog()
        let operation = try catalog.begin(action, target: target, by: actor, reason: reason, details: details)
        // The job running this operation learns its id, so that a caller that does not wait
        // (the API's `"async": true`) can answer with it and `bunker jobs` can show it.
        JobRunner.current?.started(operation)
        let value: T
        do {
            value = try await body()
        } catch {
            let cancelled = error is CancellationError
            let message = (error as? BunkerError)?.message
                ?? (cancelled ? "The operation was cancelled; what it wrote is left as after a kill (the repository verifies, and the next run completes)." : "\(error)")
            var failed = ["error": message]
            if let code = (error as? BunkerError)?.code ?? (cancelled ? .cancelled : nil) { failed["code"] = code.rawValue }
            // The operation's own error is the one to report.
            Self.finish(operation, in: catalog) {
                try catalog.finish(operation, outcome: .failure, details: failed, message: message)
            }
            await shipAuditTrailQuietly()
            throw error
        }
        let result = describe(value)
        Self.finish(operation, in: catalog) {
            try catalog.finish(operation, outcome: result.outcome, target: result.target, details: result.details, message: result.message, change: result.change)
        }
        // The trail goes off the machine with the data it describes.
        await shipAuditTrailQuietly()
        return value
    }

    /// Writes an operation's end row, trying twice. If both fail, the operation's own result
    /// stands (a backup that made its snapshot did succeed): the job stays `running` and the
    /// next process to open the catalog after this one ends closes it as `interrupted`.
    static func finish(_ operation: AuditedOperation, in catalog: Catalog, _ write: () throws -> Void) {
        do {
            try write()
        } catch {
            do {
                try write()
            } catch {
                let message = (error as? BunkerError)?.message ?? "\(error)"
                FileHandle.standardError.write(Data("bunker: warning: the end row of \(operation.action) (audit row \(operation.startSeq), job \(operation.jobID)) could not be written: \(message) It will be recorded as interrupted.\n".utf8))
            }
        }
    }

    /// The end row of a backup: the snapshot's id, and its metadata row in `backups`.
    static func backupRecorded(_ result: BackupResult, by actor: AuditActor) -> AuditedResult {
        let record = BackupRecord(id: result.snapshotID, snapshot: result.snapshot, createdBy: actor.name, userID: actor.userID)
        // The root listing's id, the snapshot's content address: named `tree`, not `checksum`,
        // which in the API is the SHA-256 of the backup's ZIP (worked out after this row).
        var details = ["size_bytes": String(record.sizeBytes), "files": String(record.fileCount), "tree": record.checksum]
        if !result.warnings.isEmpty { details["warnings"] = String(result.warnings.count) }
        return AuditedResult(target: result.snapshotID.hex, details: details, change: { db in try record.insert(db) })
    }
}
