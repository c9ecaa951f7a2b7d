import BunkerCore
import BunkerService
import BunkerSources
import BunkerTesting
import Foundation
import Testing

/// Every test starts its own PostgreSQL cluster (initdb into a temporary directory, a Unix socket).
@Suite(.serialized) struct PostgresSourceTests {
    static let schema = """
        CREATE TABLE patients (id serial PRIMARY KEY, name text NOT NULL, born date, weight numeric(5,2), tags text[], profile jsonb, created timestamptz DEFAULT now());
        CREATE TABLE notes (id bigserial PRIMARY KEY, patient int REFERENCES patients(id), body text, scan bytea);
        CREATE TABLE "Audit Log" (at timestamptz, what text);
        INSERT INTO patients (name, born, weight, tags, profile)
            SELECT 'Patient ' || i, date '1950-01-01' + i, 50 + i % 40, ARRAY['a', 'b' || i], jsonb_build_object('i', i, 'tab', E'x\\ty\\nz')
            FROM generate_series(1, 500) i;
        INSERT INTO notes (patient, body, scan) SELECT 1 + i % 500, repeat('note ' || i || ' ', 10), decode(md5(i::text), 'hex') FROM generate_series(1, 2000) i;
        INSERT INTO "Audit Log" VALUES (now(), 'created');
        SELECT lo_from_bytea(0, '\\x0102030405'::bytea);
        """

    func service(_ dir: String, _ cluster: PostgresCluster, database: String = "clinic", extra: String = "") async throws -> BunkerService {
        try await makeService(in: dir, sources: """
            [[source]]
            name = "clinic"
            kind = "postgres"
            host = "\(cluster.socketDirectory)"
            port = \(cluster.port)
            database = "\(database)"
            user = "\(cluster.user)"
            \(extra)
            """)
    }

    /// Waits up to 10 s for the server to have no session whose application_name is like
    /// `pattern`; returns how many are left.
    func sessions(like pattern: String, in cluster: PostgresCluster) async throws -> Int {
        var left = 0
        for _ in 0..<100 {
            left = Int(try cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '\(pattern)'")) ?? -1
            if left == 0 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return left
    }

    /// An identifier as SQL spells it.
    static func quoted(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    func fingerprint(_ cluster: PostgresCluster, _ database: String) throws -> String {
        try cluster.psql("""
            SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM patients t
            UNION ALL SELECT md5(string_agg(n::text, ',' ORDER BY id)) FROM notes n
            UNION ALL SELECT count(*)::text FROM "Audit Log"
            UNION ALL SELECT encode(lo_get(oid), 'hex') FROM pg_largeobject_metadata
            """, database: database)
    }

    @Test func roundTripIntoTheSameDatabaseAndAnother() async throws {
        try await withTemporaryDirectory { dir in
            try await withPostgres { cluster in
                try cluster.psql("CREATE DATABASE clinic")
                try cluster.psql(Self.schema, database: "clinic")
                let original = try fingerprint(cluster, "clinic")
                let service = try await service(dir, cluster)
                let backup = try await service.backup(SourceBackupRequest(type: .database))
                let record = try #require(backup.snapshot.source(named: "clinic"))
                #expect(record.rowCounts == ["public.patients": 500, "public.notes": 2000, "public.\"Audit Log\"": 1])

                // Damage the live database, then restore it in place.
                try cluster.psql("DELETE FROM notes WHERE id > 10; UPDATE patients SET name = 'x'; DROP TABLE \"Audit Log\"; CREATE TABLE extra (i int)", database: "clinic")
                let outcome = try await service.restore(SourceRestoreRequest(snapshot: backup.snapshotID.hex))
                #expect(try fingerprint(cluster, "clinic") == original)
                #expect(outcome.safetySnapshotID != nil)

                // Into another database, created for it.
                var other = SourceRestoreRequest(snapshot: backup.snapshotID.hex)
                other.target = .database("clinic_copy")
                _ = try await service.restore(other)
                #expect(try fingerprint(cluster, "clinic_copy") == original)

                // The drill loads into a scratch database, compares row counts and drops it.
                let drill = try await service.drill(snapshot: backup.snapshotID.hex)
                #expect(drill.passed, "\(drill.text)")
                #expect(drill.sources[0].checks.map(\.name) == ["load", "row_counts"])
                #expect(try cluster.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'bunker_drill_%'") == "0")

                // The export's database.sql loads into an empty database with psql.
                let zip = dir + "/backup.zip"
                _ = try await service.export(snapshot: backup.snapshotID.hex, to: zip)
                #expect(try shell("unzip -q '\(zip)' -d '\(dir)/unzipped' && cd '\(dir)/unzipped' && sha256sum -c SHA256SUMS").status == 0)
                try cluster.psql("CREATE DATABASE fresh")
                let load = try cluster.load(file: dir + "/unzipped/database.sql", database: "fresh")
                #expect(load.status == 0, "\(load.output)")
                #expect(try fingerprint(cluster, "fresh") == original)
            }
        }
    }

    @Test func aFailedLoadLeavesTheDatabaseAsItWas() async throws {
        try await withTemporaryDirectory { dir in
            try await withPostgres { cluster in
                try cluster.psql("CREATE DATABASE clinic")
                try cluster.psql(Self.schema, database: "clinic")
                let service = try await service(dir, cluster)
                let backup = try await service.backup(SourceBackupRequest())
                // A view the dump does not know depends on a table the load must drop: the DROP
                // fails, psql stops, and the single transaction rolls everything back.
                try cluster.psql("DELETE FROM notes WHERE id > 100; CREATE VIEW blocker AS SELECT * FROM notes", database: "clinic")
                let before = try fingerprint(cluster, "clinic")
                var request = SourceRestoreRequest(snapshot: backup.snapshotID.hex)
                request.safetyBackup = true
                do {
                    _ = try await service.restore(request)
                    Issue.record("the restore succeeded despite the blocking view")
                } catch let error as BunkerError {
                    #expect(error.message.contains("rolled back"), "\(error.message)")
                    #expect(error.message.contains("safety snapshot"), "the error names the safety snapshot: \(error.message)")
                }
                #expect(try fingerprint(cluster, "clinic") == before, "the live database is as it was")
            }
        }
    }

    @Test func aFailingPgDumpLeavesNoSnapshot() async throws {
        try await withTemporaryDirectory { dir in
            try await withPostgres { cluster in
                // A database that does not exist.
                let missing = try await service(dir + "/a", cluster, database: "nosuchdb")
                await #expect(throws: BunkerError.self) { try await missing.backup(SourceBackupRequest()) }
                #expect(try await missing.repository.snapshots().isEmpty)

                // A connection dropped in the middle of the dump.
                try cluster.psql("CREATE DATABASE big")
                try cluster.psql("CREATE TABLE blob AS SELECT i, repeat(md5(i::text), 40) AS body FROM generate_series(1, 200000) i", database: "big")
                let service = try await service(dir + "/b", cluster, database: "big")
                let killer = Task {
                    for _ in 0..<2000 {
                        let killed = try cluster.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE 'bunker-dump-%' AND datname = 'big'")
                        if killed != "0" { return true }
                        try await Task.sleep(for: .milliseconds(2))
                    }
                    return false
                }
                do {
                    _ = try await service.backup(SourceBackupRequest())
                    Issue.record("the backup succeeded although its connection was dropped")
                } catch let error as BunkerError {
                    #expect(error.message.contains("pg_dump"), "\(error.message)")
                }
                #expect(try await killer.value, "the dump's connection was terminated")
                #expect(try await service.repository.snapshots().isEmpty, "no snapshot was written")
            }
        }
    }

    /// pg_dump waiting for a table that another session holds locked never ends by itself: the
    /// source's `timeout` stops it, the backup fails with an error naming the limit and its
    /// setting, no snapshot is written, and the repository's lock is released for the next one.
    /// Meanwhile the waiting dumps hold no thread of the cooperative pool.
    @Test(.timeLimit(.minutes(3))) func aPgDumpStuckBehindALockFailsTheBackupAtTheTimeout() async throws {
        try await withTemporaryDirectory { dir in
            try await withPostgres { cluster in
                try cluster.psql("CREATE DATABASE clinic")
                try cluster.psql(Self.schema, database: "clinic")
                let service = try await service(dir, cluster, extra: "timeout = \"3s\"")
                let psql = try #require(PostgresCluster.serverBinaries()) + "/psql"
                let locker = try spawn(psql, ["-X", "-h", cluster.socketDirectory, "-p", "5432", "-U", cluster.user, "-d", "clinic",
                                              "-c", "BEGIN; LOCK TABLE notes IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600); COMMIT"],
                                       environment: ["PGAPPNAME": "locker"], outputFile: dir + "/locker.log")
                defer {
                    _ = try? cluster.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'locker'")
                    _ = try? waitForExit(locker, "psql")
                }
                var locked = false
                for _ in 0..<600 where !locked {
                    locked = try cluster.psql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'locker' AND l.mode = 'AccessExclusiveLock' AND l.locktype = 'relation'") != "0"
                    if !locked { try await Task.sleep(for: .milliseconds(50)) }
                }
                try #require(locked, "the locking session holds its lock")

                // As many stuck backups as the cooperative pool has threads: while their dumps
                // wait, other work still runs.
                let backups = ProcessInfo.processInfo.activeProcessorCount
                let started = ContinuousClock.now
                let (errors, pinged) = try await withThrowingTaskGroup(of: (BunkerError?, Duration?).self) { group in
                    for _ in 0..<backups {
                        group.addTask {
                            do {
                                _ = try await service.backup(SourceBackupRequest())
                                return (nil, nil)
                            } catch let error as BunkerError {
                                return (error, nil)
                            }
                        }
                    }
                    group.addTask {
                        try await Task.sleep(for: .milliseconds(500))
                        return (nil, ContinuousClock.now - started)
                    }
                    var errors: [BunkerError] = []
                    var pinged: Duration?
                    for try await (error, ping) in group {
                        if let error { errors.append(error) }
                        if let ping { pinged = ping }
                    }
                    return (errors, pinged)
                }
                #expect(errors.count == backups, "every backup failed")
                for error in errors {
                    #expect(error.message.contains("pg_dump of database clinic (source clinic) did not finish within 3s"), "\(error.message)")
                    #expect(error.message.contains("timeout = \"3s\" in its [[source]] table"), "the error names the setting: \(error.message)")
                    #expect(error.message.contains("No snapshot was written"), "\(error.message)")
                }
                #expect(try #require(pinged) < .seconds(2.5), "other work ran while the dumps waited")
                #expect(ContinuousClock.now - started < .seconds(60))
                #expect(try await sessions(like: "bunker-dump-%", in: cluster) == 0, "the stopped dumps' sessions left the lock queue")
                #expect(try await service.repository.snapshots().isEmpty, "no snapshot was written")
                #expect(try await service.repository.storage.list(.lock).isEmpty, "the repository's lock was released")

                // Once the lock holder is gone, the next backup runs.
                _ = try cluster.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'locker'")
                let next = try await service.backup(SourceBackupRequest())
                #expect(next.snapshot.source(named: "clinic")?.rowCounts?["public.notes"] == 2000)
            }
        }
    }

    /// A restore whose load waits behind another session's lock is stopped at the timeout, and
    /// psql, killed before it committed, changes nothing.
    @Test(.timeLimit(.minutes(3))) func aRestoreStuckBehindALockIsRolledBackAtTheTimeout() async throws {
        try await withTemporaryDirectory { dir in
            try await withPostgres { cluster in
                try cluster.psql("CREATE DATABASE clinic")
                try cluster.psql(Self.schema, database: "clinic")
                let service = try await service(dir, cluster, extra: "timeout = \"3s\"")
                let backup = try await service.backup(SourceBackupRequest())
                try cluster.psql("DELETE FROM notes WHERE id > 10", database: "clinic")
                let damaged = try fingerprint(cluster, "clinic")
                // A reader holds notes: the dump's DROP TABLE waits for it (pg_dump, which only
                // reads, does not).
                let psql = try #require(PostgresCluster.serverBinaries()) + "/psql"
                let locker = try spawn(psql, ["-X", "-h", cluster.socketDirectory, "-p", "5432", "-U", cluster.user, "-d", "clinic",
                                              "-c", "BEGIN; LOCK TABLE notes IN ACCESS SHARE MODE; SELECT pg_sleep(600); COMMIT"],
                                       environment: ["PGAPPNAME": "locker"], outputFile: dir + "/locker.log")
                defer {
                    _ = try? cluster.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'locker'")
                    _ = try? waitForExit(locker, "psql")
                }
                var locked = false
                for _ in 0..<600 where !locked {
                    locked = try cluster.psql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'locker' AND l.mode = 'AccessShareLock' AND l.locktype = 'relation'") != "0"
                    if !locked { try await Task.sleep(for: .milliseconds(50)) }
                }
                try #require(locked, "the locking session holds its lock")

                do {
                    _ = try await service.restore(SourceRestoreRequest(snapshot: backup.snapshotID.hex))
                    Issue.record("the restore succeeded although its load could not lock a table")
                } catch let error as BunkerError {
                    #expect(error.message.contains("rolled back, so clinic is as it was"), "\(error.message)")
                    #expect(error.message.contains("did not finish within 3s"), "\(error.message)")
                    #expect(error.message.contains("safety snapshot"), "\(error.message)")
                }
                #expect(try await service.repository.storage.list(.lock).isEmpty, "the repository's lock was released")
                // The load's session, which held the tables it had dropped, was ended too: the
                // live tables can be read while the other session still holds its lock.
                #expect(try await sessions(like: "bunker-load-%", in: cluster) == 0, "the stopped load's session ended")
                #expect(try fingerprint(cluster, "clinic") == damaged, "the live database is as it was")
            }
        }
    }

    /// Table names are data: quotes, a semicolon and a newline in one are counted like any other
    /// name, and nothing in them runs. The newline one reads, to a line-based parser of the dump,
    /// like a COPY whose "table" is SQL writing a file on the server; a comment and a function
    /// body hold more lines that read like the start of a table's data.
    @Test func tableNamesWithQuotesSemicolonsAndNewlinesAreCountedAndRunNothing() async throws {
        try await withTemporaryDirectory { dir in
            try await withPostgres { cluster in
                let marker = "/tmp/bi" + UUID().uuidString.prefix(6).lowercased()
                defer { unlink(marker) }
                let newline = "a\nCOPY x;COPY(SELECT(1))TO'\(marker)';--"
                let semicolon = "we\"ird; DROP TABLE x; --"
                try cluster.psql("CREATE DATABASE clinic")
                try cluster.psql("""
                    CREATE TABLE x (i int); INSERT INTO x VALUES (1), (2);
                    CREATE TABLE \(Self.quoted(newline)) (i int); INSERT INTO \(Self.quoted(newline)) SELECT generate_series(1, 3);
                    CREATE TABLE \(Self.quoted(semicolon)) (i int); INSERT INTO \(Self.quoted(semicolon)) SELECT generate_series(1, 4);
                    COMMENT ON TABLE x IS E'\\n--\\n-- Data for Name: x; Type: TABLE DATA; Schema: public; Owner: postgres\\n--\\n\\nCOPY public.x FROM stdin;\\n1\\n';
                    CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $body$
                    SELECT '
                    COPY public.x FROM stdin;
                    '::text
                    $body$;
                    """, database: "clinic")
                let service = try await service(dir, cluster)
                let backup = try await service.backup(SourceBackupRequest())
                let record = try #require(backup.snapshot.source(named: "clinic"))
                #expect(record.rowCounts == ["public.x": 2, "public." + Self.quoted(newline): 3, "public." + Self.quoted(semicolon): 4])

                let drill = try await service.drill(snapshot: backup.snapshotID.hex)
                #expect(drill.passed, "\(drill.text)")
                let counts = try #require(drill.sources.first?.checks.first { $0.name == "row_counts" })
                #expect(counts.passed && counts.detail.hasPrefix("3 tables, 9 rows"), "\(counts.detail)")
                #expect(!FileManager.default.fileExists(atPath: marker), "nothing in a table name ran")
            }
        }
    }

    /// `--to-database` naming the source's own database overwrites the live data like a restore
    /// in place, so it takes the safety backup first.
    @Test func restoreToTheLiveDatabaseByNameTakesASafetyBackup() async throws {
        try await withTemporaryDirectory { dir in
            try await withPostgres { cluster in
                try cluster.psql("CREATE DATABASE clinic")
                try cluster.psql(Self.schema, database: "clinic")
                let original = try fingerprint(cluster, "clinic")
                let service = try await service(dir, cluster)
                let backup = try await service.backup(SourceBackupRequest())
                try cluster.psql("DELETE FROM notes WHERE id > 10", database: "clinic")
                let damaged = try fingerprint(cluster, "clinic")

                var request = SourceRestoreRequest(snapshot: backup.snapshotID.hex)
                request.target = .database("clinic")
                let outcome = try await service.restore(request)
                #expect(try fingerprint(cluster, "clinic") == original)
                let safety = try #require(outcome.safetySnapshotID, "a safety backup was taken")

                // The safety snapshot holds the state the restore overwrote.
                var undo = SourceRestoreRequest(snapshot: safety)
                undo.target = .database("clinic_before")
                let other = try await service.restore(undo)
                #expect(other.safetySnapshotID == nil, "another database is not live data")
                #expect(try fingerprint(cluster, "clinic_before") == damaged)
            }
        }
    }

    /// A server that cannot be asked whether the live database exists fails the restore: the
    /// safety backup is never skipped on a guess. (The fault is one failed psql connection, the
    /// first of the restore; the server itself stays up, so the restore could go on without it.)
    @Test func aConnectionErrorWhileCheckingForLiveDataFailsTheRestore() async throws {
        try await withTemporaryDirectory { dir in
            try await withPostgres { cluster in
                try cluster.psql("CREATE DATABASE clinic")
                try cluster.psql(Self.schema, database: "clinic")
                try FileManager.default.createDirectory(atPath: dir + "/bin", withIntermediateDirectories: true)
                let service = try await service(dir, cluster, extra: "bin_dir = \"\(dir)/bin\"")
                let backup = try await service.backup(SourceBackupRequest())
                try cluster.psql("DELETE FROM notes WHERE id > 10", database: "clinic")
                let damaged = try fingerprint(cluster, "clinic")

                let psql = try #require(PostgresCluster.serverBinaries()) + "/psql"
                try """
                    #!/bin/sh
                    if [ ! -e "$0.failed" ]; then
                        touch "$0.failed"
                        echo 'psql: error: connection to server on socket failed: Connection refused (injected)' >&2
                        exit 2
                    fi
                    exec \(psql) "$@"
                    """.write(toFile: dir + "/bin/psql", atomically: true, encoding: .utf8)
                chmod(dir + "/bin/psql", 0o755)

                do {
                    _ = try await service.restore(SourceRestoreRequest(snapshot: backup.snapshotID.hex))
                    Issue.record("the restore went on without knowing whether there was live data to protect")
                } catch let error as BunkerError {
                    #expect(error.message.contains("Cannot tell whether source clinic has live data to protect"), "\(error.message)")
                    #expect(error.message.contains("Connection refused (injected)"), "\(error.message)")
                    #expect(error.message.contains("Nothing was restored"), "\(error.message)")
                    // What the user reads (the message with its causes) names the failure once.
                    #expect(error.description.components(separatedBy: "Connection refused (injected)").count == 2, "\(error.description)")
                }
                #expect(FileManager.default.fileExists(atPath: dir + "/bin/psql.failed"), "the injected failure happened")
                #expect(try fingerprint(cluster, "clinic") == damaged, "the live database is untouched")
                #expect(try await service.repository.snapshots().count == 1, "no safety snapshot, no restore")
            }
        }
    }
}
