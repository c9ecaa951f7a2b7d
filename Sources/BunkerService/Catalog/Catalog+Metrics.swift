import BunkerCore
import Foundation
import GRDB

/// What the catalog knows for monitoring: how operations ended and how long they took.
public struct OperationMetrics: Sendable, Equatable {
    /// Ended operations of one action and outcome.
    public struct Count: Sendable, Equatable {
        public var action: String
        public var outcome: String
        public var count: Int
    }

    /// Finished jobs of one kind: how many and their total time.
    public struct Durations: Sendable, Equatable {
        public var kind: String
        public var count: Int
        public var seconds: Double
        /// The newest finished job's time.
        public var lastSeconds: Double
    }

    public var counts: [Count] = []
    public var durations: [Durations] = []
    /// The end of the newest verify, and whether it passed.
    public var lastVerify: (at: Date, passed: Bool)?
    /// Bytes all recorded backups added to storage.
    public var bytesAdded: Int64 = 0
    /// The newest successful backup of each source name (from backup metadata).
    public var lastBackupBySource: [String: Date] = [:]

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.counts == rhs.counts && lhs.durations == rhs.durations && lhs.bytesAdded == rhs.bytesAdded
            && lhs.lastBackupBySource == rhs.lastBackupBySource && lhs.lastVerify?.at == rhs.lastVerify?.at
            && lhs.lastVerify?.passed == rhs.lastVerify?.passed
    }
}

extension Catalog {
    /// Counts of ended operations by action and outcome (end rows of the audit trail), job
    /// durations by kind, the last verify, and backup sizes.
    public func operationMetrics() throws -> OperationMetrics {
        try queue.read { db in
            var metrics = OperationMetrics()
            for row in try Row.fetchAll(db, sql: """
                SELECT action, outcome, count(*) AS n FROM audit
                WHERE operation_seq IS NOT NULL GROUP BY action, outcome ORDER BY action, outcome
                """) {
                metrics.counts.append(.init(action: row["action"], outcome: row["outcome"], count: row["n"]))
            }
            let finished = try JobRecord.filter(Column("finished_at") != nil).order(Column("finished_at")).fetchAll(db)
            var byKind: [String: OperationMetrics.Durations] = [:]
            for job in finished {
                guard let end = job.finishedAt else { continue }
                let seconds = max(0, end.timeIntervalSince(job.startedAt))
                var entry = byKind[job.kind] ?? .init(kind: job.kind, count: 0, seconds: 0, lastSeconds: 0)
                entry.count += 1
                entry.seconds += seconds
                entry.lastSeconds = seconds
                byKind[job.kind] = entry
                if job.kind == "verify", job.state != .interrupted {
                    metrics.lastVerify = (end, job.state == .succeeded)
                }
            }
            metrics.durations = byKind.values.sorted { $0.kind < $1.kind }
            metrics.bytesAdded = try Int64.fetchOne(db, sql: "SELECT COALESCE(SUM(stored_bytes), 0) FROM backups") ?? 0
            for row in try Row.fetchAll(db, sql: """
                SELECT value AS source, MAX(created_at) AS last FROM backups, json_each(backups.sources)
                WHERE NOT EXISTS (SELECT 1 FROM json_each(backups.tags) WHERE value = 'safety') GROUP BY value
                """) {
                if let date = row["last"] as Date? { metrics.lastBackupBySource[row["source"]] = date }
            }
            return metrics
        }
    }
}
