import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// A restore over a live SQLite database killed with SIGKILL part-way through must leave the live
/// database as it was, byte for byte, and the safety snapshot it took must restore that state.
@Suite(.serialized) struct RestoreCrashTests {
    /// Runs `sqlite3` on `database`; returns its output, trimmed. Throws if it fails.
    @discardableResult
    func sqlite(_ database: String, _ sql: String) throws -> String {
        let result = try spawnAndWait("/usr/bin/sqlite3", ["-batch", database, sql], outputFile: database + ".sqlite3-output")
        unlink(database + ".sqlite3-output")
        guard result.status == 0 else { throw FixtureError("sqlite3 failed: \(result.output)") }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test(arguments: ["wal", "delete"])
    func restoreKilledMidwayLeavesTheLiveDatabaseByteIdentical(journalMode: String) async throws {
        try await withTemporaryDirectory { dir in
            let db = dir + "/app.db"
            // About 4 MiB: the restore copies 256 pages a step, so it takes several steps.
            try sqlite(db, """
                PRAGMA journal_mode = \(journalMode);
                CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT, photo BLOB);
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
                INSERT INTO patients SELECT i, 'Patient ' || i, randomblob(1200) FROM n;
                """)
            try """
                data_dir = "\(dir)/data"

                [repository]
                path = "\(dir)/repo"

                [[source]]
                name = "app-db"
                kind = "sqlite"
                path = "\(db)"
                """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
            _ = try await TestRepository.create(at: dir + "/repo")
            let e = ["BUNKER_CONFIG": dir + "/bunker.toml", "BUNKER_PASSWORD": TestRepository.password]

            let backup = try BunkerProcess.run(["backup", "--json"], environment: e)
            #expect(backup.status == 0, "\(backup.stderr)")
            let backupID = try #require((try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any])?["snapshot_id"] as? String)

            // The application changes the database after the backup; this is the state to keep.
            try sqlite(db, "DELETE FROM patients WHERE id > 1000; UPDATE patients SET name = 'changed' WHERE id < 10; PRAGMA wal_checkpoint(TRUNCATE);")
            let before = try #require(FileManager.default.contents(atPath: db))

            let killed = try BunkerProcess.run(["restore", backupID], environment: e.merging(["BUNKER_FAULT_KILL": "sqlite-restore-step:2"]) { $1 })
            #expect(killed.killed && killed.status == SIGKILL, "the restore was killed part-way: \(killed.stdout) \(killed.stderr)")

            // The next connection rolls back the killed restore's unfinished transaction.
            #expect(try sqlite(db, "PRAGMA integrity_check") == "ok")
            #expect(try sqlite(db, "SELECT count(*), sum(name = 'changed') FROM patients") == "1000|9", "the live rows are as they were")
            #expect(FileManager.default.contents(atPath: db) == before, "the live database file is byte-identical to before the restore")

            // The safety snapshot was written before the restore touched anything, and restores.
            let list = try BunkerProcess.run(["snapshots", "--json"], environment: e)
            let snapshots = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
            let safety = snapshots.filter { ($0["tags"] as? [String])?.contains("safety") == true }
            #expect(safety.count == 1, "one safety snapshot: \(list.stdout)")
            let safetyID = try #require(safety.first?["id"] as? String)
            let restored = try BunkerProcess.run(["restore", safetyID, "--to", dir + "/before.db"], environment: e)
            #expect(restored.status == 0, "\(restored.stderr)")
            #expect(try sqlite(dir + "/before.db", "SELECT count(*), sum(name = 'changed') FROM patients") == "1000|9")

            // The killed restore's staged copy is still beside the database…
            func staged() throws -> [String] {
                try FileManager.default.contentsOfDirectory(atPath: (db as NSString).deletingLastPathComponent)
                    .filter { $0.hasPrefix("." + (db as NSString).lastPathComponent + ".bunker-restore-") }
            }
            #expect(!(try staged()).isEmpty, "the kill came after the database was staged")

            // And the interrupted restore, run again, completes, and removes what the killed one staged.
            let again = try BunkerProcess.run(["restore", backupID, "--no-safety-backup"], environment: e)
            #expect(again.status == 0, "\(again.stderr)")
            #expect(try sqlite(db, "SELECT count(*), sum(name = 'changed') FROM patients") == "3000|0")
            let left = try staged()
            #expect(left.isEmpty, "\(left)")
        }
    }
}

/// The database half of the crash table: a restore in place killed after its safety backup, or
/// mid-load, leaves the database as it was, and the next restore completes.
@Suite(.serialized) struct DatabaseRestoreCrashTests {
    @Test(arguments: ["restore-after-safety-backup", "sqlite-restore-step:1"])
    func aKilledSQLiteRestoreLeavesTheDatabaseAsItWas(failpoint: String) async throws {
        try await withTemporaryDirectory { dir in
            let db = dir + "/app.db"
            let crash = RestoreCrashTests()
            try crash.sqlite(db, """
                PRAGMA journal_mode = wal;
                CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT);
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
                INSERT INTO patients SELECT i, 'Patient ' || i FROM n;
                """)
            try """
                data_dir = "\(dir)/data"

                [repository]
                path = "\(dir)/repo"

                [[source]]
                name = "app-db"
                kind = "sqlite"
                path = "\(db)"
                """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
            _ = try await TestRepository.create(at: dir + "/repo")
            let e = ["BUNKER_CONFIG": dir + "/bunker.toml", "BUNKER_PASSWORD": TestRepository.password]
            let backup = try BunkerProcess.run(["backup", "--json"], environment: e)
            let backupID = try #require((try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any])?["snapshot_id"] as? String)
            try crash.sqlite(db, "DELETE FROM patients WHERE id > 100;")

            let killed = try BunkerProcess.run(["restore", backupID], environment: e.merging(["BUNKER_FAULT_KILL": failpoint]) { $1 })
            #expect(killed.killed, "killed at \(failpoint): \(killed.stderr)")
            // A database that fits in one step of the backup API is committed by that step.
            #expect(["100", "2000"].contains(try crash.sqlite(db, "SELECT count(*) FROM patients")), "as it was, or fully restored")
            #expect(try crash.sqlite(db, "PRAGMA integrity_check") == "ok")
            let again = try BunkerProcess.run(["restore", backupID, "--no-safety-backup"], environment: e)
            #expect(again.status == 0, "\(again.stderr)")
            #expect(try crash.sqlite(db, "SELECT count(*) FROM patients") == "2000", "fully restored")
        }
    }

    @Test(arguments: ["restore-after-safety-backup", "postgres-restore-write:2"])
    func aKilledPostgresRestoreLeavesTheDatabaseAsItWas(failpoint: String) async throws {
        try await withTemporaryDirectory { dir in
            try await withPostgres { cluster in
                try cluster.psql("CREATE DATABASE clinic")
                _ = try cluster.psql("""
                    CREATE TABLE patients (id int PRIMARY KEY, name text, notes text);
                    INSERT INTO patients SELECT i, 'Patient ' || i, repeat('note ', 200) FROM generate_series(1, 20000) i;
                    """, database: "clinic")
                try """
                    data_dir = "\(dir)/data"

                    [repository]
                    path = "\(dir)/repo"

                    [[source]]
                    name = "clinic"
                    kind = "postgres"
                    host = "\(cluster.socketDirectory)"
                    port = \(cluster.port)
                    database = "clinic"
                    user = "\(cluster.user)"
                    """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
                _ = try await TestRepository.create(at: dir + "/repo")
                let e = ["BUNKER_CONFIG": dir + "/bunker.toml", "BUNKER_PASSWORD": TestRepository.password]
                let backup = try BunkerProcess.run(["backup", "--json"], environment: e)
                #expect(backup.status == 0, "\(backup.stderr)")
                let backupID = try #require((try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any])?["snapshot_id"] as? String)
                _ = try cluster.psql("DELETE FROM patients WHERE id > 100", database: "clinic")

                let killed = try BunkerProcess.run(["restore", backupID], environment: e.merging(["BUNKER_FAULT_KILL": failpoint]) { $1 })
                #expect(killed.killed, "killed at \(failpoint): \(killed.stderr)")
                #expect(try cluster.psql("SELECT count(*) FROM patients", database: "clinic") == "100", "as it was")
                let again = try BunkerProcess.run(["restore", backupID, "--no-safety-backup"], environment: e)
                #expect(again.status == 0, "\(again.stderr)")
                #expect(try cluster.psql("SELECT count(*) FROM patients", database: "clinic") == "20000", "fully restored")
            }
        }
    }
}
