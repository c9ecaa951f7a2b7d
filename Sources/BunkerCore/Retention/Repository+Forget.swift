import Foundation

/// What `forget` decided and did.
public struct ForgetReport: Sendable, Codable {
    /// The policy applied, in words.
    public var policy: String
    public var dryRun: Bool
    /// Every readable snapshot, oldest first, with its decision and reasons.
    public var decisions: [RetentionDecision]
    /// Snapshots removed (none on a dry run).
    public var removed: [ID] = []
    /// Snapshots the policy dropped that the object lock keeps, with when their lock ends: a
    /// forget after that removes them.
    public var keptByLock: [LockedSnapshot] = []
    /// Snapshots the policy keeps whose object lock was extended.
    public var locksExtended = 0

    public var keptCount: Int { decisions.filter(\.keep).count }
    public var removeCount: Int { decisions.filter { !$0.keep }.count }

    enum CodingKeys: String, CodingKey {
        case policy, decisions, removed
        case dryRun = "dry_run"
        case keptByLock = "kept_by_lock"
        case locksExtended = "locks_extended"
    }
}

/// A snapshot forget left because its object lock has not ended.
public struct LockedSnapshot: Sendable, Codable, Equatable {
    public var id: ID
    public var until: Date
}

extension Repository {
    /// Applies a retention policy: decides for every snapshot, and unless `dryRun` deletes the
    /// snapshots no rule, hold or floor keeps. Only snapshot objects are deleted; `prune` then
    /// removes the data nothing references any more.
    ///
    /// Runs under the exclusive lock (so no hold can be added between reading holds and
    /// deleting); pass `lockHeld` only from inside ``withLock(exclusive:_:)`` with `exclusive`.
    /// A damaged snapshot is never judged, so never deleted: `bunker verify` reports it.
    public func forget(policy: RetentionPolicy, dryRun: Bool = false, lockHeld: Bool = false) async throws -> ForgetReport {
        guard policy.hasKeepRule else {
            throw BunkerError(.invalidArgument, "The retention policy has no keep rule, so it would remove every snapshot older than the minimum age; set [retention] in bunker.toml or give --keep-daily, --keep-last, --keep-within … (see README).")
        }
        let body: @Sendable () async throws -> ForgetReport = {
            let snapshots = try await self.snapshots()
            let holds = try await self.holds().map(\.hold)
            let decisions = policy.apply(to: snapshots, holds: holds, now: self.now())
            var report = ForgetReport(policy: policy.summary, dryRun: dryRun, decisions: decisions)
            guard !dryRun else { return report }
            let objectLock = self.storage.capability(ObjectLockStorage.self)
            for decision in decisions where !decision.keep {
                if let until = try await objectLock?.lockedUntil(ObjectHandle(.snapshot, decision.id)) {
                    report.keptByLock.append(LockedSnapshot(id: decision.id, until: until))
                    continue
                }
                do {
                    try await self.storage.remove(ObjectHandle(.snapshot, decision.id))
                } catch let error as BunkerError where error.code == .objectNotFound {
                    // Already gone: removed by an earlier, interrupted forget.
                }
                report.removed.append(decision.id)
                FaultPoints.hit("forget-after-remove")
            }
            // Only the snapshots the policy keeps have their locks extended, so that a dropped
            // one's lock ends and a later forget removes it (the rule: see `Pruner+Lock.swift`).
            if let objectLock {
                for decision in decisions where decision.keep {
                    if try await objectLock.keepLocked(ObjectHandle(.snapshot, decision.id)) { report.locksExtended += 1 }
                }
            }
            return report
        }
        if dryRun || lockHeld { return try await body() }
        return try await withLock(exclusive: true, body)
    }
}

extension Repository {
    /// When each snapshot may go under `policy` (see ``RetentionPolicy/retentionUntil(for:holds:now:)``),
    /// by snapshot; nil for a snapshot kept while it exists. Pass `snapshots` when they are already
    /// loaded (all of them: a snapshot is judged within its group). Takes no lock: a listing, not a decision.
    public func retentionUntil(policy: RetentionPolicy, snapshots loaded: [(id: ID, snapshot: Snapshot)]? = nil) async throws -> [ID: Date?] {
        var snapshots = loaded ?? []
        if loaded == nil { snapshots = try await self.snapshots() }
        let holds = try await self.holds().map(\.hold)
        let dates = policy.retentionUntil(for: snapshots, holds: holds, now: now())
        return Dictionary(uniqueKeysWithValues: zip(snapshots.map(\.id), dates))
    }
}
