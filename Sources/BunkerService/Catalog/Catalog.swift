import BunkerCore
import Foundation
import GRDB
import Crypto

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
/// Every change goes through ``write(_:)``: one IMMEDIATE transaction holding both the
/// change and its audit row, so that neither is ever kept without the other and two processes
/// cannot both take the same sequence number.
public final class Catalog: Sendable {
    /// Settings that tests and the server tune.
    public struct Options: Sendable {
        public var loginPolicy = LoginPolicy()
        /// bcrypt's cost (log2 of rounds); 12 by default, lower only in tests.
        public var bcryptCost: UInt8 = 12
        /// The audit anchors' key; default `<data_dir>/audit.key` (`[audit] key_file`).
        public var auditKeyFile: String?
        /// Open without writing anything: no migration, no key, no closing of interrupted
        /// operations (`bunker audit verify`).
        public var readOnly = false
        public var now: @Sendable () -> Date = { Date() }

        public init() {}
    }

    public let dataDirectory: String
    /// The SQLite file.
    public let path: String
    public let options: Options
    let queue: DatabaseQueue
    let anchor: AuditAnchor

    /// Opens (creating on first start) the catalog in `dataDirectory`, brings its schema up to
    /// date, and closes as `interrupted` the operations whose process died.
    ///
    /// The audit key is created only with a new audit trail: when rows or anchors exist
    /// already, a missing key is an error (``BunkerError/Code/auditTampered``), since a new key
    /// would sign whatever trail is there now.
    public init(dataDirectory: String, options: Options = Options()) throws {
        self.dataDirectory = dataDirectory
        self.options = options
        path = dataDirectory + "/catalog.sqlite"
        var configuration = GRDB.Configuration()
        configuration.busyMode = .timeout(30)
        // Two processes starting at once on a new data directory (a backup and a prune from
        // cron) would both create the key and run the migrations, and the second would fail on
        // tables the first just made: opening for writing holds a lock until the end of init.
        var lock: Int32 = -1
        defer { if lock >= 0 { close(lock) } }
        if options.readOnly {
            guard FileManager.default.fileExists(atPath: path) else {
                throw BunkerError(.catalog, "There is no catalog at \(path): check data_dir (or BUNKER_DATA_DIR).")
            }
            configuration.readonly = true
            // SQLite may still create the -shm (and -wal) files of a WAL database; they too
            // must not be readable by others. Best effort: a reader may not own the directory.
            try? Self.makePrivate(dataDirectory: dataDirectory, files: [path + "-wal", path + "-shm"])
        } else {
            do {
                try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw BunkerError(.catalog, "Cannot create the data directory \(dataDirectory) (\(error)): check its parent's owner and mode, or set data_dir.")
            }
            lock = try Self.lockExclusively(dataDirectory + "/catalog.lock")
            try Self.makePrivate(dataDirectory: dataDirectory, files: [path, path + "-wal", path + "-shm"])
            configuration.journalMode = .wal
            configuration.prepareDatabase { db in
                // An audit row is acknowledged only once it is on disk.
                try db.execute(sql: "PRAGMA synchronous = FULL")
            }
        }
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw BunkerError(.catalog, "Cannot open the catalog \(path): \(error).")
        }
        // A catalog written by a newer Bunker has migrations this one does not know: using it
        // could lose what they added.
        if try queue.read({ try $0.tableExists("grdb_migrations") && Self.migrator.hasBeenSuperseded($0) }) {
            throw BunkerError(.unsupportedFormat, "The catalog \(path) was written by a newer version of Bunker; upgrade Bunker.")
        }
        if !options.readOnly {
            do {
                try Self.migrator.migrate(queue)
            } catch {
                throw BunkerError(.catalog, "Cannot open the catalog \(path): \(error). If the file is damaged, move it aside and run `bunker catalog rebuild`.")
            }
        }
        anchor = try Self.openAnchor(dataDirectory: dataDirectory, queue: queue, options: options)
        if !options.readOnly {
            // Rows a crash left unanchored (between their commit and their anchor) get one now.
            try anchorHead()
            try closeInterruptedOperations()
        }
    }

    /// Opens `lockFile` (created if missing) and takes an exclusive `flock` on it; returns the
    /// descriptor, whose closing releases the lock.
    static func lockExclusively(_ lockFile: String) throws -> Int32 {
        let fd = open(lockFile, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw BunkerError(.catalog, "Cannot create \(lockFile): \(String(cString: strerror(errno))). Check the data directory's owner and mode.")
        }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else {
                close(fd)
                throw BunkerError(.catalog, "Cannot lock \(lockFile): \(String(cString: strerror(errno))).")
            }
        }
        return fd
    }

    /// Makes the data directory 0700 (warning when it was open to others) and creates the
    /// catalog's files 0600 before SQLite opens them: SQLite creates `-wal` and `-shm` with the
    /// umask's mode (often 0644), and a chmod after opening would leave a window in which
    /// another user could open them.
    private static func makePrivate(dataDirectory: String, files: [String]) throws {
        var info = stat()
        if stat(dataDirectory, &info) == 0, info.st_mode & 0o077 != 0 {
            let old = String(info.st_mode & 0o777, radix: 8)
            FileHandle.standardError.write(Data("bunker: warning: the data directory \(dataDirectory) had mode \(old), open to other users; it holds the catalog and the audit key, so its mode is now 0700.\n".utf8))
            guard chmod(dataDirectory, 0o700) == 0 else {
                throw BunkerError(.catalog, "Cannot make the data directory \(dataDirectory) private (mode 0700): \(String(cString: strerror(errno))); fix its owner or mode.")
            }
        }
        for file in files {
            let fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                throw BunkerError(.catalog, "Cannot create \(file): \(String(cString: strerror(errno))); check the data directory's owner and mode.")
            }
            // A file from an older Bunker (or made with a loose umask) is made private too.
            fchmod(fd, 0o600)
            close(fd)
        }
    }

    /// The anchor file with its key, refusing to make a new key for an existing trail.
    private static func openAnchor(dataDirectory: String, queue: DatabaseQueue, options: Options) throws -> AuditAnchor {
        let keyFile = options.auditKeyFile ?? dataDirectory + "/audit.key"
        let file = dataDirectory + "/audit-anchors.log"
        let headFile = dataDirectory + "/audit-anchors.head"
        if let key = try SecretFile.load(at: keyFile, naming: "the audit key") {
            return AuditAnchor(file: file, headFile: headFile, keyFile: keyFile, key: key)
        }
        let rows = try queue.read { db in try db.tableExists("audit") ? AuditRecord.fetchCount(db) : 0 }
        let manager = FileManager.default
        if rows > 0 || manager.fileExists(atPath: file) || manager.fileExists(atPath: headFile) {
            throw BunkerError(.auditTampered, "The audit key \(keyFile) is missing, but the audit trail already has \(rows) rows and signed anchors: a new key would sign whatever the trail says now, so Bunker does not make one. Restore the key from your backup of the data directory (or set [audit] key_file in bunker.toml to where it is kept).")
        }
        // A new trail: the key is made now, except by a reader, which has nothing to check.
        let key = options.readOnly ? SymmetricKey(size: .bits256) : try SecretFile.create(at: keyFile, naming: "the audit key")
        return AuditAnchor(file: file, headFile: headFile, keyFile: keyFile, key: key)
    }

    /// The names of the migrations applied, in order.
    public func appliedMigrations() throws -> [String] {
        try queue.read { try Self.migrator.appliedIdentifiers($0) }.sorted()
    }

    /// Runs `body` in one IMMEDIATE transaction, then writes a signed anchor of the audit head,
    /// so that no committed row (a failed login, a 403, an operation's start) is ever protected
    /// by the chain alone for longer than the anchor's fsync.
    func write<T>(_ body: (Database) throws -> T) throws -> T {
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
        try anchorHead()
        return value
    }

    /// Appends the next row of the audit trail; call inside ``write(_:)``, with the change the
    /// row records.
    @discardableResult
    func append(_ entry: AuditEntry, by actor: AuditActor, in db: Database) throws -> AuditRecord {
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
        record.mac = record.computedMAC(key: anchor.key)
        try record.insert(db)
        return record
    }

    /// Writes the head of the audit trail to the anchor file, if it moved since the last anchor
    /// (or the last anchor predates MACs).
    ///
    /// The first anchor that signs where MACs start reads it here: the row after the last one
    /// without a MAC. That happens in the first ``init(dataDirectory:options:)`` after the
    /// `v3-audit-mac` migration, under the data directory's lock and before this process writes
    /// a row, so the rows it counts as older are exactly those an older Bunker wrote.
    func anchorHead() throws {
        try anchor.append(timestamp: Timestamp.format(options.now())) {
            try queue.read { try AuditRecord.order(Column("seq").desc).fetchOne($0) }.map { AuditAnchor.Head(seq: $0.seq, hash: $0.hash) }
        } macFrom: {
            try queue.read { try Int64.fetchOne($0, sql: "SELECT COALESCE(MAX(seq), 0) + 1 FROM audit WHERE mac IS NULL") } ?? 1
        }
    }

    /// Writes the audit head to the anchor file now: at a process's or server's stop.
    public func writeAnchor() throws {
        try anchorHead()
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
