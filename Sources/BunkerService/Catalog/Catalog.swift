import BunkerCore
import Foundation
import GRDB
import Synchronization

/// The login rule: after `maxFailures` wrong passwords in a row an account is locked for
/// `lockoutSeconds`.
public struct LoginPolicy: Sendable, Equatable {
    public var maxFailures = 5
    public var lockoutSeconds: TimeInterval = 15 * 60

    public init(maxFailures: Int = 5, lockoutSeconds: TimeInterval = 15 * 60) {
        self.maxFailures = maxFailures
        self.lockoutSeconds = lockoutSeconds
    }
}

/// Bunker's own database, `<data_dir>/catalog.sqlite`: users, backup metadata, jobs and the
/// audit trail, beside the audit key (`audit.key`) and the signed anchors
/// (`audit-anchors.log`).
///
/// Every change goes through ``write(anchor:_:)``: one IMMEDIATE transaction holding both the
/// change and its audit row, so that neither is ever kept without the other and two processes
/// cannot both take the same sequence number.
public final class Catalog: Sendable {
    /// Settings that tests and the server tune.
    public struct Options: Sendable {
        public var loginPolicy = LoginPolicy()
        /// bcrypt's cost (log2 of rounds); 12 by default, lower only in tests.
        public var bcryptCost: UInt8 = 12
        /// An anchor is written at least every this many rows (and after every operation).
        public var anchorInterval: Int64 = 100
        public var now: @Sendable () -> Date = { Date() }

        public init() {}
    }

    public let dataDirectory: String
    /// The SQLite file.
    public let path: String
    public let options: Options
    let queue: DatabaseQueue
    let anchor: AuditAnchor
    private let lastAnchoredSeq: Mutex<Int64>

    /// Opens (creating on first start) the catalog in `dataDirectory`, brings its schema up to
    /// date, and closes as `interrupted` the operations whose process died.
    public init(dataDirectory: String, options: Options = Options()) throws {
        self.dataDirectory = dataDirectory
        self.options = options
        path = dataDirectory + "/catalog.sqlite"
        do {
            try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw BunkerError(.catalog, "Cannot create the data directory \(dataDirectory) (\(error)): check its parent's owner and mode, or set data_dir.")
        }
        // Two processes starting at once (a backup and a prune from cron) would both create the
        // key and run the migrations; the second would fail on tables the first just made.
        let path = self.path
        (anchor, queue) = try Self.whileLocked(dataDirectory + "/catalog.lock") { () throws -> (AuditAnchor, DatabaseQueue) in
            let anchor: AuditAnchor
            let queue: DatabaseQueue
            anchor = try AuditAnchor(file: dataDirectory + "/audit-anchors.log", keyFile: dataDirectory + "/audit.key")
            var configuration = GRDB.Configuration()
            configuration.journalMode = .wal
            configuration.busyMode = .timeout(30)
            configuration.prepareDatabase { db in
                // An audit row is acknowledged only once it is on disk.
                try db.execute(sql: "PRAGMA synchronous = FULL")
            }
            do {
                queue = try DatabaseQueue(path: path, configuration: configuration)
                chmod(path, 0o600)
            } catch {
                throw BunkerError(.catalog, "Cannot open the catalog \(path): \(error).")
            }
            // A catalog written by a newer Bunker has migrations this one does not know: using it
            // could lose what they added.
            if try queue.read({ try Self.migrator.hasBeenSuperseded($0) }) {
                throw BunkerError(.unsupportedFormat, "The catalog \(path) was written by a newer version of Bunker; upgrade Bunker.")
            }
            do {
                try Self.migrator.migrate(queue)
            } catch {
                throw BunkerError(.catalog, "Cannot open the catalog \(path): \(error). If the file is damaged, move it aside and run `bunker catalog rebuild`.")
            }
            return (anchor, queue)
        }
        lastAnchoredSeq = Mutex(try anchor.lines()?.last?.seq ?? 0)
        try closeInterruptedOperations()
    }

    /// Runs `body` holding an exclusive `flock` on `lockFile` (created if missing).
    static func whileLocked<T>(_ lockFile: String, _ body: () throws -> T) throws -> T {
        let fd = open(lockFile, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw BunkerError(.catalog, "Cannot create \(lockFile): \(String(cString: strerror(errno))). Check the data directory's owner and mode.")
        }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw BunkerError(.catalog, "Cannot lock \(lockFile): \(String(cString: strerror(errno))).") }
        }
        return try body()
    }

    /// The names of the migrations applied, in order.
    public func appliedMigrations() throws -> [String] {
        try queue.read { try Self.migrator.appliedIdentifiers($0) }.sorted()
    }

    /// Runs `body` in one IMMEDIATE transaction, then writes a signed anchor of the audit head
    /// when `anchor` is true (the end of an operation) or enough rows have been added since the
    /// last one.
    func write<T>(anchor force: Bool, _ body: (Database) throws -> T) throws -> T {
        let value: T
        do {
            value = try queue.writeWithoutTransaction { db -> T in
                var result: T?
                try db.inTransaction(.immediate) {
                    result = try body(db)
                    return .commit
                }
                return result!
            }
        } catch let error as BunkerError {
            throw error
        } catch {
            throw BunkerError(.catalog, "Cannot write the catalog \(path): \(error).")
        }
        try anchorHead(force: force)
        return value
    }

    /// Appends the next row of the audit trail; call inside ``write(anchor:_:)``, with the change
    /// the row records.
    @discardableResult
    func append(_ entry: AuditEntry, by actor: Actor, in db: Database) throws -> AuditRecord {
        let head = try AuditRecord.order(Column("seq").desc).fetchOne(db)
        var details = entry.details
        details["via"] = actor.channel.rawValue
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var record = AuditRecord(
            seq: (head?.seq ?? 0) + 1, timestamp: Timestamp.format(options.now()), actor: actor.name,
            action: entry.action, target: entry.target, outcome: entry.outcome, reason: entry.reason,
            requestID: actor.requestID, details: String(decoding: try encoder.encode(details), as: UTF8.self),
            operationSeq: entry.operationSeq, prevHash: head?.hash ?? AuditRecord.genesisHash, hash: "")
        record.hash = record.computedHash(previous: record.prevHash)
        try record.insert(db)
        return record
    }

    /// Writes the head of the audit trail to the anchor file, if it moved since the last anchor
    /// (and, unless `force`, by at least the anchor interval).
    func anchorHead(force: Bool) throws {
        guard let head = try queue.read({ try AuditRecord.order(Column("seq").desc).fetchOne($0) }) else { return }
        try lastAnchoredSeq.withLock { last in
            guard head.seq != last, force || head.seq - last >= options.anchorInterval else { return }
            try anchor.append(seq: head.seq, hash: head.hash, timestamp: Timestamp.format(options.now()))
            last = head.seq
        }
    }

    /// Writes the audit head to the anchor file now: at a process's or server's stop.
    public func writeAnchor() throws {
        try anchorHead(force: true)
    }
}

/// What an audit row says, before the catalog gives it a sequence number, time and hash.
public struct AuditEntry: Sendable {
    public var action: String
    public var target: String?
    public var outcome: AuditOutcome
    public var reason: String?
    public var details: [String: String]
    /// For an end row: the start row's seq.
    public var operationSeq: Int64?

    public init(action: String, target: String? = nil, outcome: AuditOutcome, reason: String? = nil, details: [String: String] = [:], operationSeq: Int64? = nil) {
        self.action = action
        self.target = target
        self.outcome = outcome
        self.reason = reason
        self.details = details
        self.operationSeq = operationSeq
    }
}
