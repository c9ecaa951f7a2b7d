import BunkerCore
import Foundation
import GRDB

/// An SQLite database, copied online with SQLite's backup API and restored through it.
///
/// Backup: the backup API copies the live database in one step inside a read transaction, so
/// the copy is the database as of one moment even while the application writes (in WAL mode the
/// writers are not even blocked; in rollback-journal mode they wait for the copy). The copy is
/// fsynced, counted (rows per table) and stored as one file.
///
/// Restore into place: the file is written beside the live one, its SHA-256 and
/// `PRAGMA integrity_check` are checked, and then it is copied into the live database with the
/// backup API, which writes inside one transaction on the live database: the application sees
/// the old database or the new one, never a mix, and a restore killed half-way leaves the old
/// one (SQLite rolls the transaction back, whatever the journal mode). The live file keeps its
/// inode, so connections the application holds stay valid.
public struct SQLiteSource: Source {
    public let name: String
    public let path: String
    public var kind: SourceKind { .sqlite }
    public var origin: String { path }

    public init(name: String, path: String) {
        self.name = name
        self.path = (path as NSString).standardizingPath
    }

    var fileName: String { (path as NSString).lastPathComponent }

    /// Whether the database file exists; a file that cannot be looked at (a directory without
    /// search permission) is an error, not "no data".
    public func liveDataExists() async throws -> Bool {
        var status = stat()
        if stat(path, &status) == 0 { return true }
        if errno == ENOENT || errno == ENOTDIR { return false }
        throw BunkerError(.sourceIO, "Cannot tell whether source \(name) has live data to protect: cannot look at \(path): \(String(cString: strerror(errno))).")
    }

    public func prepareBackup(scratch: String) async throws -> PreparedBackup {
        guard FileManager.default.fileExists(atPath: path) else {
            throw BunkerError(.invalidArgument, "Source \(name): the database \(path) does not exist. Fix `path` in the configuration.")
        }
        let copy = scratch + "/sqlite-\(UUID().uuidString.prefix(8).lowercased())-\(fileName)"
        let cleanup: @Sendable () -> Void = {
            for suffix in ["", "-journal", "-wal", "-shm"] { unlink(copy + suffix) }
        }
        do {
            try Self.copy(from: path, to: copy, busyTimeout: 60)
            try SystemCalls.fsync(path: copy)
            let (counts, details) = try Self.describe(copy)
            let record = SnapshotSource(name: name, kind: kind.rawValue, origin: path, rowCounts: counts,
                                        details: details.merging(["file": fileName]) { $1 })
            return PreparedBackup(item: .directory(name: name, [.file(copy, name: fileName)]), record: { record }, cleanup: cleanup)
        } catch {
            cleanup()
            throw error
        }
    }

    public func restore(_ node: Node, record: SnapshotSource?, to destination: RestoreDestination, context: RestoreContext) async throws -> SourceRestoreResult {
        let file = try await databaseFile(in: node, loader: context.loader, preferred: record?.details?["file"])
        switch destination {
        case .database:
            throw BunkerError(.invalidArgument, "Source \(name) is an SQLite database; use --to PATH to restore it elsewhere.")
        case .path(let target):
            let target = (target as NSString).standardizingPath
            if target == path {
                throw BunkerError(.invalidArgument, "\(target) is the live database of source \(name); restore it in place (without --to) so that a safety backup is taken first.")
            }
            if FileManager.default.fileExists(atPath: target) {
                throw BunkerError(.invalidArgument, "\(target) already exists; remove it or choose another path (a restore to another place never overwrites a database file).")
            }
            SystemCalls.removeStaleStaging(beside: target)
            let staged = try await stage(file, beside: target, context: context)
            defer { unlink(staged) }
            for suffix in ["-wal", "-shm", "-journal"] { unlink(target + suffix) }
            guard rename(staged, target) == 0 else {
                throw BunkerError(.sourceIO, "Cannot move the restored database to \(target): \(String(cString: strerror(errno))).")
            }
            var result = SourceRestoreResult(source: name, kind: kind, destination: target)
            result.files = 1
            result.bytes = file.size ?? 0
            result.checks = ["SHA-256", "PRAGMA integrity_check"]
            return result
        case .live:
            try FileManager.default.createDirectory(atPath: SystemCalls.directory(of: path), withIntermediateDirectories: true)
            SystemCalls.removeStaleStaging(beside: path)
            let staged = try await stage(file, beside: path, context: context)
            defer {
                for suffix in ["", "-journal", "-wal", "-shm"] { unlink(staged + suffix) }
            }
            if FileManager.default.fileExists(atPath: path) {
                try Self.copyIntoLive(from: staged, to: path)
            } else {
                // Nothing live to keep consistent with: a rename is atomic enough. Stale -wal or
                // -shm files of a deleted database would be applied to the new one; remove them.
                for suffix in ["-wal", "-shm", "-journal"] { unlink(path + suffix) }
                guard rename(staged, path) == 0 else {
                    throw BunkerError(.sourceIO, "Cannot move the restored database to \(path): \(String(cString: strerror(errno))).")
                }
            }
            var result = SourceRestoreResult(source: name, kind: kind, destination: path)
            result.files = 1
            result.bytes = file.size ?? 0
            result.checks = ["SHA-256", "PRAGMA integrity_check"]
            return result
        }
    }

    public func drill(_ node: Node, record: SnapshotSource?, context: RestoreContext) async throws -> [DrillCheck] {
        let file = try await databaseFile(in: node, loader: context.loader, preferred: record?.details?["file"])
        let scratch = context.scratch + "/drill-\(UUID().uuidString.prefix(8).lowercased())-\(fileName)"
        defer {
            for suffix in ["", "-journal", "-wal", "-shm"] { unlink(scratch + suffix) }
        }
        var checks: [DrillCheck] = []
        do {
            try await write(file, to: scratch, context: context)
            checks.append(DrillCheck(name: "sha256", passed: true, detail: "\(file.size ?? 0) bytes restored; SHA-256 matches the backup."))
        } catch let error as BunkerError {
            return [DrillCheck(name: "sha256", passed: false, detail: error.message)]
        }
        do {
            try Self.integrityCheck(scratch)
            checks.append(DrillCheck(name: "integrity_check", passed: true, detail: "PRAGMA integrity_check: ok"))
        } catch let error as BunkerError {
            checks.append(DrillCheck(name: "integrity_check", passed: false, detail: error.message))
            return checks
        }
        checks.append(Self.compareCounts(recorded: record?.rowCounts, actual: try Self.describe(scratch).0))
        return checks
    }

    /// `DIR/NAME/FILE`, the database file under the name it had when it was backed up.
    public func directoryDestination(in directory: String, record: SnapshotSource) throws -> RestoreDestination {
        try databaseDestination(in: directory, record: record, fallback: "database.db")
    }

    /// The database file under the source's name, and beside it its `.dump` (made with the
    /// `sqlite3` shell from a copy in the scratch directory) as the archive's SQL.
    public func export(_ node: Node, record: SnapshotSource, to archive: some SourceExportArchive) async throws {
        guard let file = try await storedDatabaseFile(in: node, loader: archive.loader, preferred: record.details?["file"]) else { return }
        try await archive.addFile(file)
        let context = RestoreContext(loader: archive.loader, scratch: try archive.scratchDirectory())
        let copy = context.scratch + "/export-\(UUID().uuidString.prefix(8).lowercased()).db"
        let dump = copy + ".sql"
        defer {
            unlink(copy)
            unlink(dump)
        }
        try await write(file, to: copy, context: context)
        try await SQLiteDump.write(database: copy, to: dump)
        try await archive.addSQL(contentsOf: dump)
    }

    // MARK: - Helpers

    /// Writes a file node's content to `target` (created, never overwritten) and fsyncs it.
    private func write(_ file: Node, to target: String, context: RestoreContext) async throws {
        let fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw BunkerError(.sourceIO, "Cannot create \(target): \(String(cString: strerror(errno))).")
        }
        defer { close(fd) }
        try await ContentReader(loader: context.loader).read(file) { data in
            try writeAll(data, to: fd, path: target)
            context.progress?.update { $0.bytesDone += UInt64(data.count) }
        }
        guard fsync(fd) == 0 else {
            throw BunkerError(errno == ENOSPC ? .storageFull : .sourceIO, "Cannot flush \(target): \(String(cString: strerror(errno))).")
        }
    }

    /// Writes the database beside `target` and checks it; returns the staged path.
    private func stage(_ file: Node, beside target: String, context: RestoreContext) async throws -> String {
        let staged = SystemCalls.stagingPath(beside: target)
        do {
            try await write(file, to: staged, context: context)
            try Self.integrityCheck(staged)
            return staged
        } catch {
            for suffix in ["", "-journal", "-wal", "-shm"] { unlink(staged + suffix) }
            throw error
        }
    }

    static func configuration(readonly: Bool, busyTimeout: TimeInterval) -> Configuration {
        var configuration = Configuration()
        configuration.readonly = readonly
        configuration.busyMode = .timeout(busyTimeout)
        configuration.label = "bunker"
        return configuration
    }

    /// Copies a live database into a new file with the backup API, in one step.
    static func copy(from source: String, to destination: String, busyTimeout: TimeInterval) throws {
        do {
            let from = try DatabaseQueue(path: source, configuration: configuration(readonly: true, busyTimeout: busyTimeout))
            let to = try DatabaseQueue(path: destination, configuration: configuration(readonly: false, busyTimeout: busyTimeout))
            try from.backup(to: to)
            try to.close()
            try from.close()
        } catch let error as DatabaseError {
            throw BunkerError(.sourceIO, "Cannot copy the SQLite database \(source): \(error.message ?? "\(error)").", cause: error)
        }
    }

    /// Copies a checked database over the live one inside one write transaction of the live one.
    static func copyIntoLive(from staged: String, to live: String) throws {
        do {
            let from = try DatabaseQueue(path: staged, configuration: configuration(readonly: true, busyTimeout: 60))
            let to = try DatabaseQueue(path: live, configuration: configuration(readonly: false, busyTimeout: 60))
            try from.backup(to: to, pagesPerStep: 256) { _ in
                FaultPoints.hit("sqlite-restore-step")
            }
            try to.close()
            try from.close()
        } catch let error as DatabaseError {
            throw BunkerError(.sourceIO, "Cannot write the restored database into \(live): \(error.message ?? "\(error)"). The live database was rolled back to its state before the restore.", cause: error)
        }
    }

    /// Runs `PRAGMA integrity_check`; throws with its findings.
    static func integrityCheck(_ path: String) throws {
        let result: [String]
        do {
            let db = try DatabaseQueue(path: path, configuration: configuration(readonly: true, busyTimeout: 5))
            result = try db.read { try String.fetchAll($0, sql: "PRAGMA integrity_check") }
            try db.close()
        } catch let error as DatabaseError {
            throw BunkerError(.integrity, "The restored database cannot be opened: \(error.message ?? "\(error)").", cause: error)
        }
        guard result == ["ok"] else {
            throw BunkerError(.integrity, "PRAGMA integrity_check failed on the restored database: \(result.prefix(5).joined(separator: "; ")).")
        }
    }

    /// Rows per table, page size and journal mode of a database file.
    static func describe(_ path: String) throws -> ([String: Int], [String: String]) {
        do {
            let db = try DatabaseQueue(path: path, configuration: configuration(readonly: true, busyTimeout: 5))
            defer { try? db.close() }
            return try db.read { db in
                var counts: [String: Int] = [:]
                let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
                for table in tables {
                    counts[table] = try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table.quotedDatabaseIdentifier)") ?? 0
                }
                let pageSize = try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 0
                return (counts, ["page_size": String(pageSize)])
            }
        } catch let error as DatabaseError {
            throw BunkerError(.sourceIO, "Cannot read the SQLite database \(path): \(error.message ?? "\(error)").", cause: error)
        }
    }

    /// The drill's row-count check.
    static func compareCounts(recorded: [String: Int]?, actual: [String: Int]) -> DrillCheck {
        guard let recorded else {
            return DrillCheck(name: "row_counts", passed: true, detail: "No row counts were recorded at backup time; \(actual.count) tables present.")
        }
        var differences: [String] = []
        for (table, count) in recorded.sorted(by: { $0.key < $1.key }) where actual[table] != count {
            differences.append("\(table): \(count) at backup, \(actual[table].map(String.init) ?? "missing") restored")
        }
        if differences.isEmpty {
            return DrillCheck(name: "row_counts", passed: true, detail: "\(recorded.count) tables, \(recorded.values.reduce(0, +)) rows, as recorded at backup time.")
        }
        return DrillCheck(name: "row_counts", passed: false, detail: differences.joined(separator: "; "))
    }
}

extension SourceKind {
    /// An SQLite database file: ``SQLiteSource``.
    public static let sqlite = SourceKind(rawValue: "sqlite")
}

extension SQLiteSource: SourceKindDefinition {
    public static var kind: SourceKind { .sqlite }
    public static var holdsDatabase: Bool { true }

    /// `path` (required): the database file.
    public static func makeSource(name: String, settings: inout some SourceSettingsReader) throws -> any Source {
        SQLiteSource(name: name, path: try settings.required { try $0.path("path") })
    }

    /// The database file where it was backed up from; a restore elsewhere needs nothing more.
    public static func makeSource(restoring record: SnapshotSource) throws -> any Source {
        SQLiteSource(name: record.name, path: record.origin)
    }
}
