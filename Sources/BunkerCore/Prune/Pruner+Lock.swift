import Foundation

/// Prune on a repository under object lock (``ObjectLockStorage``).
///
/// Two rules, so that the lock never lets data a kept snapshot needs go, and prune never claims
/// space the lock keeps:
/// - **Never delete a locked object.** A pack or index file prune drops whose retention has not
///   ended is left where it is and reported as kept by the lock until that date; its bytes are
///   not counted as deleted or freed. Once the new index no longer names it, a later prune finds
///   it as an unindexed pack and deletes it after its retention ends.
/// - **Keep what is used locked.** After deleting, every object prune keeps (config, keys, index
///   files, the packs that still hold used data, audit-trail segments) whose retention ends in
///   less than half of `days` is extended to `days` from now. Run prune at least every `days / 2`
///   and nothing a kept snapshot needs is ever deletable. Snapshots are extended by forget, which
///   knows which ones the policy keeps: a snapshot the policy drops keeps its lock only until it
///   ends, and is removed by the forget after that.
extension Pruner {
    /// The repository's object lock, if it has one.
    var objectLock: ObjectLockStorage? { repository.storage.capability(ObjectLockStorage.self) }

    /// When the object's lock ends, if it has one that has not ended: prune leaves it then.
    func lockedUntil(_ handle: ObjectHandle) async throws -> Date? {
        guard let lock = objectLock else { return nil }
        return try await lock.lockedUntil(handle)
    }

    /// Records an object the lock kept: counted, its bytes not freed.
    func keptByLock(_ bytes: UInt64, until: Date, _ report: inout PruneReport) {
        report.objectsKeptByLock += 1
        report.bytesKeptByLock += bytes
        report.bytesDeleted -= min(report.bytesDeleted, bytes)
        if report.keptByLockUntil.map({ until > $0 }) ?? true { report.keptByLockUntil = until }
    }

    /// A dry run's report as the real prune would end it: the objects whose lock has not ended
    /// are reported as kept by the lock, and their bytes are not counted as freed.
    func reportWithLocks(_ plan: PrunePlan) async throws -> PruneReport {
        var report = plan.report
        guard objectLock != nil else { return report }
        if plan.changesIndex {
            for id in plan.indexFiles {
                if let until = try await lockedUntil(ObjectHandle(.index, id)) { keptByLock(0, until: until, &report) }
            }
        }
        for pack in plan.packsToDelete {
            guard let until = try await lockedUntil(ObjectHandle(.pack, pack)) else { continue }
            let size = plan.packBlobs[pack].map { UInt64(PackFormat.packSize($0)) } ?? plan.unindexedSizes[pack] ?? 0
            keptByLock(size, until: until, &report)
        }
        report.bytesFreed = Int64(report.bytesDeleted) - Int64(report.bytesRepacked)
        return report
    }

    /// Extends the locks of everything prune keeps, by the rule above; returns how many it
    /// extended. Index files the new one `superseded` are not kept, even when their lock kept them.
    func extendLocks(keptPacks: [ID], superseded: Set<ID>) async throws -> Int {
        guard let lock = objectLock else { return 0 }
        var handles: [ObjectHandle] = [.config]
        for kind in [ObjectKind.key, .index, .catalog] {
            handles += try await repository.storage.list(kind).map(\.handle)
                .filter { kind != .index || ID(hex: $0.name).map { !superseded.contains($0) } ?? true }
        }
        handles += keptPacks.map { ObjectHandle(.pack, $0) }
        var extended = 0
        for handle in handles where try await lock.keepLocked(handle) { extended += 1 }
        return extended
    }
}
