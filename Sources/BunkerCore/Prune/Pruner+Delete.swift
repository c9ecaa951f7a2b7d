import Foundation

/// Deletions that are checked, not taken on the storage's word: some S3-compatible servers
/// answer success to a DELETE (or `DeleteObjects`) and delete nothing.
extension Pruner {
    /// Deletes `handle` and asks for it again: true when it is gone, false when it is still
    /// there although the storage accepted the deletion (or refused it for a reason other than
    /// being unreachable or the lock being lost, which stop prune).
    func deleteConfirmed(_ handle: ObjectHandle) async throws -> Bool {
        do {
            try await repository.storage.remove(handle)
        } catch let error as BunkerError where error.code == .objectNotFound {
            return true  // deleted by an earlier, interrupted prune
        } catch let error as BunkerError where !Self.stopsPrune.contains(error.code) {
            guard try await repository.storage.exists(handle) else { return true }
            return false
        }
        return try await !repository.storage.exists(handle)
    }

    /// Failures of a deletion that say nothing about the object: the storage cannot be reached,
    /// the lock is lost, the operation was cancelled.
    private static let stopsPrune: [BunkerError.Code] = [.storageUnavailable, .repositoryLocked, .cancelled]

    /// Deletes an index file the new index supersedes, and stops prune if it stays: the packs it
    /// names are deleted only once no index file read by a later process names them.
    func deleteSupersededIndexFile(_ id: ID) async throws {
        guard try await deleteConfirmed(ObjectHandle(.index, id)) else {
            throw BunkerError(.storageIO, "Prune stopped before deleting any pack: the storage accepted the deletion of index/\(id.hex), which the new index supersedes, but the file is still there. The repository is whole (the new index names every pack in use); check that the storage really deletes objects (some S3-compatible servers answer success and delete nothing), then run prune again.")
        }
    }
}

extension PruneReport {
    /// Records that `pack`, which `plan` deletes, is still there: neither deleted nor freed.
    mutating func recordNotDeleted(_ pack: ID, in plan: PrunePlan) {
        let size = plan.size(of: pack)
        packsNotDeleted.append(pack.hex)
        bytesNotFreed += size
        bytesDeleted -= min(bytesDeleted, size)
        bytesFreed -= Int64(size)
        if plan.deleteUnindexed.contains(pack) {
            unindexedPacksDeleted -= 1
        } else if plan.deleteIndexed.contains(pack) {
            packsDeleted -= 1
        }
    }
}
