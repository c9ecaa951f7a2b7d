import BunkerCore
import Foundation
import GRDB

/// What a cleanup should do: the scheduled job, `bunker cleanup`, and later the HTTP API.
public struct CleanupRequest: Sendable {
    /// The policy; nil applies the configuration's `[retention]`.
    public var policy: RetentionPolicy?
    public var prune = PruneOptions()
    /// Decide and report, delete nothing.
    public var dryRun = false

    public init(policy: RetentionPolicy? = nil) {
        self.policy = policy
    }
}

/// What a cleanup decided and did.
public struct CleanupOutcome: Sendable, Codable {
    public var forget: ForgetReport
    public var prune: PruneReport
}

extension BunkerService {
    /// The repository's statistics, with the configured sources that were never backed up.
    public func stats(repository name: String? = nil) async throws -> RepositoryStats {
        // Another configured repository (an off-site copy) is opened for the question only.
        var repository = self.repository
        if let name { repository = try await openRepository(named: name) }
        var stats = try await repository.stats()
        let seen = Set(stats.sources.map { "\($0.name)\u{0}\($0.kind)" })
        stats.sourcesNeverBackedUp = sources.filter { !seen.contains("\($0.name)\u{0}\($0.kind.rawValue)") }.map(\.name)
        if let wal = stats.wal {
            let bases = try await physicalBaseBackups(in: repository)
            stats.wal = wal.map { Self.withWindow($0, bases: bases[$0.source] ?? []) }
        }
        return stats
    }

    /// Applies the retention policy (the configured one unless the request names another).
    /// Audited as `forget` by `actor`; the removed snapshots' rows leave the catalog's `backups`
    /// table in the same transaction as the end row.
    public func forget(policy: RetentionPolicy? = nil, dryRun: Bool = false, by actor: AuditActor = .localUser()) async throws -> ForgetReport {
        let chosen = policy ?? configuration.retention
        return try await audited("forget", target: "repository", by: actor, details: ["policy": chosen.summary, "dry_run": String(dryRun)]) {
            try await repository.forget(policy: chosen, dryRun: dryRun)
        } describe: { report in
            Self.forgetRecorded(report)
        }
    }

    /// Removes data no snapshot references. Audited as `prune` by `actor`.
    public func prune(_ options: PruneOptions, by actor: AuditActor = .localUser(), progress: OperationProgress? = nil) async throws -> PruneReport {
        try await audited("prune", target: "repository", by: actor, details: ["dry_run": String(options.dryRun)]) {
            try await repository.withLock(exclusive: !options.dryRun) {
                var report = try await Pruner(repository: repository, options: options, progress: progress).run(lockHeld: true)
                report.walFilesRemoved = try await applyWalRetention(dryRun: options.dryRun).reduce(0) { $0 + $1.removed }
                return report
            }
        } describe: { report in
            AuditedResult(details: Self.pruneDetails(report))
        }
    }

    /// Forget, then prune, under one exclusive lock, so that no backup can slip in between and
    /// nothing the forget kept can be pruned. A dry run takes a shared lock and plans the prune
    /// as if the forget had happened. Audited as `cleanup` by `actor`, like ``forget(policy:dryRun:by:)``.
    public func cleanup(_ request: CleanupRequest, by actor: AuditActor = .localUser(), progress: OperationProgress? = nil) async throws -> CleanupOutcome {
        let policy = request.policy ?? configuration.retention
        var options = request.prune
        options.dryRun = request.dryRun
        let frozen = options
        return try await audited("cleanup", target: "repository", by: actor, details: ["policy": policy.summary, "dry_run": String(request.dryRun)]) {
            try await repository.withLock(exclusive: !request.dryRun) {
                let forget = try await repository.forget(policy: policy, dryRun: request.dryRun, lockHeld: true)
                var pruneOptions = frozen
                if request.dryRun { pruneOptions.forgotten = Set(forget.decisions.filter { !$0.keep }.map(\.id)) }
                var prune = try await Pruner(repository: repository, options: pruneOptions, progress: progress).run(lockHeld: true)
                prune.walFilesRemoved = try await applyWalRetention(dryRun: request.dryRun, forgotten: pruneOptions.forgotten).reduce(0) { $0 + $1.removed }
                return CleanupOutcome(forget: forget, prune: prune)
            }
        } describe: { outcome in
            var result = Self.forgetRecorded(outcome.forget)
            result.details.merge(Self.pruneDetails(outcome.prune)) { first, _ in first }
            return result
        }
    }

    /// When each snapshot may go under the configured retention policy (`retention_until`, see
    /// ``RetentionPolicy/retentionUntil(for:holds:now:)``); nil for one kept while it exists.
    public func retentionUntil() async throws -> [ID: Date?] {
        try await repository.retentionUntil(policy: configuration.retention)
    }

    /// Every hold on the repository's snapshots, oldest first.
    public func holds() async throws -> [HoldRecord] {
        try await repository.holds()
    }

    /// Places a hold on a snapshot (id, unique prefix or `latest`). Audited as `hold.add` by
    /// `actor`, with the reason.
    public func addHold(to snapshot: String, reason: String, by actor: AuditActor = .localUser()) async throws -> HoldRecord {
        try await audited("hold.add", target: snapshot, by: actor, reason: reason) {
            try await repository.addHold(to: snapshot, reason: reason)
        } describe: { record in
            AuditedResult(target: record.hold.snapshot.hex, details: ["hold": record.id.hex])
        }
    }

    /// Removes every hold on a snapshot (id or unique prefix of the snapshot or of a hold).
    /// Audited as `hold.remove` by `actor`.
    public func removeHolds(_ reference: String, by actor: AuditActor = .localUser()) async throws -> [HoldRecord] {
        try await audited("hold.remove", target: reference, by: actor) {
            try await repository.removeHolds(reference)
        } describe: { removed in
            AuditedResult(target: removed.first?.hold.snapshot.hex, details: ["holds": removed.map(\.id.hex).joined(separator: ",")])
        }
    }

    /// The end row of a forget: what it removed; and the removed snapshots' `backups` rows go.
    static func forgetRecorded(_ report: ForgetReport) -> AuditedResult {
        let removed = report.removed.map(\.hex)
        var details = ["kept": String(report.keptCount), "removed_count": String(removed.count)]
        if !removed.isEmpty { details["removed"] = removed.joined(separator: ",") }
        if report.dryRun { details["would_remove"] = String(report.removeCount) }
        return AuditedResult(details: details, change: { db in
            for id in removed { _ = try BackupRecord.deleteOne(db, key: id) }
        })
    }

    static func pruneDetails(_ report: PruneReport) -> [String: String] {
        ["packs_deleted": String(report.packsDeleted), "packs_repacked": String(report.packsRepacked), "bytes_freed": String(report.bytesFreed),
         "packs_not_deleted": String(report.packsNotDeleted.count), "wal_files_removed": String(report.walFilesRemoved)]
    }
}
