import BunkerCore
import Foundation
import GRDB

/// A long operation in progress: its job and its start row in the audit trail.
public struct AuditedOperation: Sendable {
    public let jobID: String
    public let startSeq: Int64
    public let action: String
    public let target: String?
    public let actor: AuditActor
}

extension Catalog {
    /// Writes an operation's start row and its running job, in one transaction.
    public func begin(_ action: String, target: String?, by actor: AuditActor, reason: String? = nil, details: [String: String] = [:]) throws -> AuditedOperation {
        try write { db in
            let start = try append(AuditEntry(action: action, target: target, outcome: .started, reason: reason, details: details), by: actor, in: db)
            let job = JobRecord(
                id: UUID().uuidString.lowercased(), kind: action, state: .running, actor: actor.name, target: target,
                startedAt: options.now(), finishedAt: nil, pid: getpid(), processStart: ProcessIdentity.current, hostname: HostIdentity.name,
                auditSeq: start.seq, message: nil)
            try job.insert(db)
            return AuditedOperation(jobID: job.id, startSeq: start.seq, action: action, target: target, actor: actor)
        }
    }

    /// Writes an operation's end row, finishes its job and applies `change` (the catalog change
    /// the operation made, such as a new backup's row), all in one transaction; then anchors.
    public func finish(
        _ operation: AuditedOperation, outcome: AuditOutcome, target: String? = nil, details: [String: String] = [:],
        message: String? = nil, change: ((Database) throws -> Void)? = nil
    ) throws {
        try write { db in
            try change?(db)
            try append(AuditEntry(action: operation.action, target: target ?? operation.target, outcome: outcome, details: details, operationSeq: operation.startSeq),
                       by: operation.actor, in: db)
            try db.execute(
                sql: "UPDATE jobs SET state = ?, finished_at = ?, message = ? WHERE id = ?",
                arguments: [outcome == .success ? JobRecord.State.succeeded : .failed, CatalogDate.text(options.now()), message, operation.jobID])
        }
    }

    /// Closes the operations left running by a process that died (a crash, a SIGKILL, a power
    /// cut): each gets an end row with outcome `interrupted`, written as by its own actor.
    /// Jobs of live processes (the same pid, boot and start time) are left alone, and so are
    /// jobs of other hosts sharing the data directory: this host cannot tell whether their
    /// process runs, so they stay `running` until a process on their own host opens the catalog.
    func closeInterruptedOperations() throws {
        let host = HostIdentity.name
        let running = try queue.read { db in
            try JobRecord.filter(Column("state") == JobRecord.State.running.rawValue).fetchAll(db)
        }
        let dead = running.filter { $0.hostname == host && !ProcessIdentity.isAlive(pid: $0.pid, identity: $0.processStart) }
        guard !dead.isEmpty else { return }
        try write { db in
            for job in dead {
                // Re-read under the write lock: another process may have closed it meanwhile.
                guard try JobRecord.fetchOne(db, key: job.id)?.state == .running else { continue }
                let start = try AuditRecord.fetchOne(db, key: job.auditSeq)
                let via = start?.detailValues["via"].flatMap(AuditActor.Channel.init(rawValue:)) ?? .system
                let actor = AuditActor(name: job.actor, channel: via, requestID: start?.requestID)
                try append(
                    AuditEntry(action: job.kind, target: job.target, outcome: .interrupted,
                               details: ["job": job.id, "pid": String(job.pid), "detected_by_pid": String(getpid())],
                               operationSeq: job.auditSeq),
                    by: actor, in: db)
                try db.execute(
                    sql: "UPDATE jobs SET state = 'interrupted', finished_at = ?, message = ? WHERE id = ?",
                    arguments: [CatalogDate.text(options.now()), "Process \(job.pid) ended before the operation finished.", job.id])
            }
        }
    }

    /// Jobs, newest first.
    public func jobs(limit: Int = 50) throws -> [JobRecord] {
        try queue.read { try JobRecord.order(Column("started_at").desc).limit(limit).fetchAll($0) }
    }

    /// Marks a running job to be cancelled by the process that runs it; false if it is not running.
    public func requestCancel(of jobID: String, by actor: AuditActor) throws -> Bool {
        try write { db in
            try db.execute(
                sql: "UPDATE jobs SET cancel_requested_by = ? WHERE id = ? AND state = 'running'",
                arguments: [actor.name, jobID])
            return db.changesCount > 0
        }
    }

    /// Publishes a job's counters (a running job's, or its final ones), and answers whether
    /// someone asked to cancel it.
    func publish(_ counters: OperationProgress.Counters, of jobID: String) throws -> Bool {
        let json = String(decoding: try JSONEncoder().encode(counters), as: UTF8.self)
        return try write { db in
            try db.execute(sql: "UPDATE jobs SET progress = ? WHERE id = ?", arguments: [json, jobID])
            return try Bool.fetchOne(db, sql: "SELECT cancel_requested_by IS NOT NULL FROM jobs WHERE id = ?", arguments: [jobID]) ?? false
        }
    }

    /// One job by its id.
    public func job(id: String) throws -> JobRecord? {
        try queue.read { try JobRecord.fetchOne($0, key: id) }
    }

    /// The end row of the operation whose start row is `startSeq` (nil while it runs): its
    /// target is what the operation made or used, such as a backup's snapshot id.
    public func operationEnd(startSeq: Int64) throws -> AuditRecord? {
        try queue.read { try AuditRecord.filter(Column("operation_seq") == startSeq).order(Column("seq")).fetchOne($0) }
    }
}
