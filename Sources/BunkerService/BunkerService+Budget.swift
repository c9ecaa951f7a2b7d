import BunkerCore
import Foundation

/// The repository's size budget, `[repository] max_size`: what a backup may still add, and how
/// full the budget is (health and alerts, from 80 %, as the DermAI strategy warns of disks).
extension BunkerService {
    /// Bytes the repository's objects take, and the budget; nil when no budget is set.
    public func sizeBudget() async throws -> (used: UInt64, max: UInt64)? {
        guard let max = configuration.repository.maxSize else { return nil }
        var used: UInt64 = 0
        for kind in ObjectKind.allCases {
            for info in try await repository.storage.list(kind) { used += UInt64(info.size) }
        }
        return (used, max)
    }

    /// What a backup may add before it passes the budget (nil: no budget). A safety copy before
    /// a restore is never refused for the budget: the restore needs it, and cleanup can make
    /// room afterwards. Throws when the budget is spent already.
    func backupRoom(tags: [String]) async throws -> UInt64? {
        guard !tags.contains(RetentionPolicy.safetyTag), let budget = try await sizeBudget() else { return nil }
        guard budget.used < budget.max else {
            throw BunkerError(.storageFull, "The repository holds \(Self.size(budget.used)), its whole size budget ([repository] max_size = \(Self.size(budget.max))), so no backup was taken. Run `bunker cleanup` to remove what the retention policy no longer keeps, or raise max_size.")
        }
        return budget.max - budget.used
    }

    private static func size(_ bytes: UInt64) -> String {
        NotificationEvent.size(bytes)
    }
}
