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

    func service(_ dir: String, _ cluster: PostgresCluster, database: String = "clinic") async throws -> BunkerService {
        try await makeService(in: dir, sources: """
            [[source]]
            name = "clinic"
            kind = "postgres"
            host = "\(cluster.socketDirectory)"
            port = \(cluster.port)
            database = "\(database)"
            user = "\(cluster.user)"
            """)
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
                        let killed = try cluster.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pg_dump' OR (application_name = 'bunker' AND datname = 'big')")
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
}
