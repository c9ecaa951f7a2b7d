import BunkerCore
import BunkerService
import BunkerSources
import BunkerTesting
import Foundation
import GRDB
import Synchronization
import Testing

@Suite struct SQLiteSourceTests {
    static let sqliteSource = """
        [[source]]
        name = "app-db"
        kind = "sqlite"
        path = "%DIR%/app.db"
        """

    func service(_ dir: String) async throws -> BunkerService {
        try await makeService(in: dir, sources: Self.sqliteSource.replacingOccurrences(of: "%DIR%", with: dir))
    }

    @Test(arguments: ["wal", "delete"])
    func backupWhileAWriterInsertsIsAConsistentPrefix(journalMode: String) async throws {
        try await withTemporaryDirectory { dir in
            let db = dir + "/app.db"
            let queue = try DatabaseQueue(path: db)
            try await queue.writeWithoutTransaction { db in
                _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = \(journalMode)")
                try db.execute(sql: "CREATE TABLE log (id INTEGER PRIMARY KEY, body TEXT)")
            }
            let stop = Atomic(false)
            let written = Atomic(0)
            // The application: one row per transaction, ids 1, 2, 3, … without gaps. A write that
            // finds the database busy (the backup reading it, in rollback-journal mode) is retried
            // with the same id, so that a gap can only come from the copy.
            let writer = Thread {
                var next = 1
                while !stop.load(ordering: .relaxed) {
                    guard (try? queue.write { try $0.execute(sql: "INSERT INTO log (id, body) VALUES (?, ?)", arguments: [next, String(repeating: "x", count: 500)]) }) != nil else { continue }
                    written.store(next, ordering: .relaxed)
                    next += 1
                }
            }
            writer.start()
            while written.load(ordering: .relaxed) < 200 { try await Task.sleep(for: .milliseconds(5)) }
            let service = try await service(dir)
            let result = try await service.backup(SourceBackupRequest())
            let atEnd = written.load(ordering: .relaxed)
            stop.store(true, ordering: .relaxed)
            while !writer.isFinished { try await Task.sleep(for: .milliseconds(5)) }

            var request = SourceRestoreRequest(snapshot: result.snapshotID.hex)
            request.target = .sqliteFile(dir + "/restored.db")
            _ = try await service.restore(request)
            let restored = try DatabaseQueue(path: dir + "/restored.db")
            let (check, rows, maxID) = try await restored.read { db in
                (try String.fetchAll(db, sql: "PRAGMA integrity_check"),
                 try Int.fetchOne(db, sql: "SELECT count(*) FROM log")!,
                 try Int.fetchOne(db, sql: "SELECT coalesce(max(id), 0) FROM log")!)
            }
            #expect(check == ["ok"])
            #expect(rows >= 200, "the copy holds what was written before the backup began")
            #expect(rows == maxID, "the copy is a prefix of the writes: ids 1…\(maxID) with no gap")
            #expect(rows <= atEnd + 1)
            #expect(result.snapshot.source(named: "app-db")?.rowCounts?["log"] == rows, "the recorded count is the copy's")
        }
    }

    /// `--target DIR` writes the database to DIR/NAME/FILE; a symbolic link at DIR/NAME (put
    /// there by anyone who can write the target) is refused, not followed out of the target.
    @Test func aRestoreToADirectoryNeverWritesThroughALinkInIt() async throws {
        try await withTemporaryDirectory { dir in
            try makeDatabase(at: dir + "/app.db", rows: 20)
            let service = try await service(dir)
            let backup = try await service.backup(SourceBackupRequest())
            try FileManager.default.createDirectory(atPath: dir + "/target", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: dir + "/outside", withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: dir + "/target/app-db", withDestinationPath: "../outside")
            var request = SourceRestoreRequest(snapshot: backup.snapshotID.hex)
            request.target = .directory(dir + "/target")
            let error = await #expect(throws: BunkerError.self) { try await service.restore(request) }
            #expect(error?.message.contains("is in the way") == true, "\(error?.message ?? "")")
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/outside").isEmpty, "the restore wrote through the link")

            // Without the link, the same restore writes the database inside the target.
            try FileManager.default.removeItem(atPath: dir + "/target/app-db")
            _ = try await service.restore(request)
            #expect(FileManager.default.fileExists(atPath: dir + "/target/app-db/app.db"))
        }
    }

    @Test func restoreInPlaceTakesASafetyBackupFirst() async throws {
        try await withTemporaryDirectory { dir in
            let db = dir + "/app.db"
            try makeDatabase(at: db, rows: 300)
            let service = try await service(dir)
            let backup = try await service.backup(SourceBackupRequest())
            let queue = try DatabaseQueue(path: db)
            try await queue.write { try $0.execute(sql: "DELETE FROM visits WHERE patient > 100; DELETE FROM patients WHERE id > 100; INSERT INTO visits (patient) VALUES (1)") }
            try queue.close()

            let outcome = try await service.restore(SourceRestoreRequest(snapshot: backup.snapshotID.hex))
            #expect(try count("patients", in: db) == 300)
            #expect(try count("visits", in: db) == 300)
            let safetyID = try #require(outcome.safetySnapshotID)
            let safety = try await service.repository.loadSnapshot(try #require(ID(hex: safetyID)))
            #expect(safety.tags == ["safety"])
            #expect(safety.source(named: "app-db")?.rowCounts == ["patients": 100, "visits": 101], "the safety copy holds the state before the restore")

            // The safety snapshot restores the state the restore replaced.
            var back = SourceRestoreRequest(snapshot: safetyID)
            back.safetyBackup = false
            _ = try await service.restore(back)
            #expect(try count("patients", in: db) == 100)
        }
    }

    @Test func damagedSnapshotIsRefusedBeforeTheLiveDatabaseChanges() async throws {
        try await withTemporaryDirectory { dir in
            let db = dir + "/app.db"
            try makeDatabase(at: db, rows: 2000)
            let service = try await service(dir)
            let backup = try await service.backup(SourceBackupRequest())
            let queue = try DatabaseQueue(path: db)
            try await queue.write { try $0.execute(sql: "DELETE FROM visits") }
            try queue.close()
            let before = fileBytes(db)
            let pack = try damageLargestPack(in: dir + "/repo")

            await #expect(throws: BunkerError.self) {
                try await service.restore(SourceRestoreRequest(snapshot: backup.snapshotID.hex))
            }
            #expect(fileBytes(db) == before, "the live database is untouched")
            #expect(try await service.repository.snapshots().count == 1, "no safety backup was needed: nothing was touched")

            let drill = try await service.drill(snapshot: nil)
            #expect(!drill.passed)
            #expect(!drill.dataCheck.passed)
            #expect(drill.dataCheck.detail.contains(pack), "the drill names the damaged pack")
            #expect(drill.dataCheck.detail.contains("app-db/app.db"), "and the file it damages")
            // A failed drill recovered nothing: its report claims no recovery time or point.
            #expect(drill.text.contains("FAILED"))
            #expect(!drill.text.contains("Recovery point age (RPO)") && !drill.text.contains("Measured recovery time"), "\(drill.text)")
            #expect(drill.text.contains("not achieved"), "\(drill.text)")
        }
    }

    @Test func drillOfAGoodSnapshotPassesAndKeepsItsReport() async throws {
        try await withTemporaryDirectory { dir in
            try makeDatabase(at: dir + "/app.db", rows: 500)
            try FileManager.default.createDirectory(atPath: dir + "/studies/2024", withIntermediateDirectories: true)
            try Data(repeating: 7, count: 100_000).write(to: URL(fileURLWithPath: dir + "/studies/2024/scan.dcm"))
            let service = try await makeService(in: dir, sources: Self.sqliteSource.replacingOccurrences(of: "%DIR%", with: dir) + """

                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/studies"
                """)
            _ = try await service.backup(SourceBackupRequest())
            let report = try await service.drill(snapshot: nil)
            #expect(report.passed)
            #expect(report.sources.map(\.name) == ["app-db", "studies"])
            #expect(report.sources[0].checks.map(\.name) == ["sha256", "integrity_check", "row_counts"])
            #expect(report.durationSeconds > 0)
            let path = try #require(report.reportPath)
            #expect(FileManager.default.fileExists(atPath: path))
            #expect(try String(contentsOfFile: path.replacingOccurrences(of: ".json", with: ".txt"), encoding: .utf8).contains("PASSED"))
        }
    }

    /// A drill records the recovery point's age beside the measured recovery time.
    @Test func aDrillRecordsTheRestoredPointsAge() async throws {
        try await withTemporaryDirectory { dir in
            try makeDatabase(at: dir + "/app.db", rows: 50)
            let clock = ManualClock(Date())
            let service = try await makeService(in: dir, sources: Self.sqliteSource.replacingOccurrences(of: "%DIR%", with: dir), now: { clock.now })
            _ = try await service.backup(SourceBackupRequest())
            clock.advance(by: 2 * 3600)
            let report = try await service.drill(snapshot: nil)
            #expect(report.passed)
            #expect(abs(report.rpoSeconds - 7200) < 5, "\(report.rpoSeconds)")
            let text = try String(contentsOfFile: try #require(report.reportPath).replacingOccurrences(of: ".json", with: ".txt"), encoding: .utf8)
            #expect(text.contains("Recovery point age (RPO): 720"), "\(text)")
            let row = try #require(try service.catalog().auditRecords(AuditFilter(action: "drill")).last)
            #expect(row.detailValues["rpo_seconds"].flatMap(Double.init).map { abs($0 - 7200) < 5 } == true, "\(row.detailValues)")
        }
    }

    @Test func filesRestoreInPlaceSwapsTheWholeTree() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/studies", largeFileSize: 300_000)
            let service = try await makeService(in: dir, sources: """
                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/studies"
                """)
            let backup = try await service.backup(SourceBackupRequest(type: .files))
            _ = try shell("cp -a '\(dir)/studies' '\(dir)/expected'")
            try "changed".write(toFile: dir + "/studies/added.txt", atomically: true, encoding: .utf8)
            _ = try shell("rm -rf '\(dir)/studies/docs'")
            let outcome = try await service.restore(SourceRestoreRequest(snapshot: backup.snapshotID.hex))
            #expect(compareTrees(dir + "/expected", dir + "/studies") == [])
            #expect(outcome.safetySnapshotID != nil)
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains("bunker-restore") }
            #expect(leftovers.isEmpty, "no staging directory is left behind")
        }
    }
}
