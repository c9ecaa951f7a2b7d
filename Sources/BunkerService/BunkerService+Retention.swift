import BunkerCore
import Foundation

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
    public func stats() async throws -> RepositoryStats {
        var stats = try await repository.stats()
        let seen = Set(stats.sources.map { "\($0.name)\u{0}\($0.kind)" })
        stats.sourcesNeverBackedUp = sources.filter { !seen.contains("\($0.name)\u{0}\($0.kind.rawValue)") }.map(\.name)
        return stats
    }

    /// Applies the retention policy (the configured one unless the request names another).
    public func forget(policy: RetentionPolicy? = nil, dryRun: Bool = false) async throws -> ForgetReport {
        try await repository.forget(policy: policy ?? configuration.retention, dryRun: dryRun)
    }

    /// Removes data no snapshot references.
    public func prune(_ options: PruneOptions, progress: OperationProgress? = nil) async throws -> PruneReport {
        try await Pruner(repository: repository, options: options, progress: progress).run()
    }

    /// Forget, then prune, under one exclusive lock, so that no backup can slip in between and
    /// nothing the forget kept can be pruned. A dry run takes a shared lock and plans the prune
    /// as if the forget had happened.
    ///
    /// Audited as `cleanup` by `actor`, with what was forgotten and freed.
    public func cleanup(_ request: CleanupRequest, by actor: Actor = .localUser(), progress: OperationProgress? = nil) async throws -> CleanupOutcome {
        try await audited("cleanup", target: "repository", by: actor, details: ["dry_run": String(request.dryRun)]) {
            try await runCleanup(request, progress: progress)
        } describe: { outcome in
            AuditedResult(details: [
                "forgotten": String(outcome.forget.removeCount),
                "packs_deleted": String(outcome.prune.packsDeleted), "bytes_freed": String(outcome.prune.bytesFreed),
            ])
        }
    }

    private func runCleanup(_ request: CleanupRequest, progress: OperationProgress?) async throws -> CleanupOutcome {
        let policy = request.policy ?? configuration.retention
        var options = request.prune
        options.dryRun = request.dryRun
        let frozen = options
        return try await repository.withLock(exclusive: !request.dryRun) {
            let forget = try await repository.forget(policy: policy, dryRun: request.dryRun, lockHeld: true)
            var pruneOptions = frozen
            if request.dryRun { pruneOptions.forgotten = Set(forget.decisions.filter { !$0.keep }.map(\.id)) }
            let prune = try await Pruner(repository: repository, options: pruneOptions, progress: progress).run(lockHeld: true)
            return CleanupOutcome(forget: forget, prune: prune)
        }
    }
}
