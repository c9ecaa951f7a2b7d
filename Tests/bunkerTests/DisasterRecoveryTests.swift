import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// docs/disaster-recovery.md, scenario 4 (hardware failure), run as the runbook writes it: the
/// old machine backs up into a bucket and dies; a new machine with a second data directory, a
/// fresh PostgreSQL cluster, and only the bucket's URL, credentials and password gets every
/// source, the catalog and the audit trail back.
@Suite(.serialized) struct DisasterRecoveryTests {
    func configuration(dir: String, dataDirectory: String, cluster: PostgresCluster, url: String, endpoint: String) -> String {
        """
        data_dir = "\(dataDirectory)"
        [repository]
        url = "\(url)"
        endpoint = "\(endpoint)"
        password_file = "\(dir)/password"

        [[source]]
        name = "clinic"
        kind = "postgres"
        host = "\(cluster.socketDirectory)"
        port = \(cluster.port)
        database = "clinic"
        user = "\(cluster.user)"

        [[source]]
        name = "app-db"
        kind = "sqlite"
        path = "\(dir)/app/app.db"

        [[source]]
        name = "studies"
        kind = "files"
        path = "\(dir)/studies"
        """
    }

    @Test func scenarioFourHardwareFailureAsTheRunbookWritesIt() async throws {
        try await withSeaweedFS { server in
            try await withTemporaryDirectory { dir in
                let url = "s3://\(server.bucket)/clinic"
                try "a long repository password\n".write(toFile: dir + "/password", atomically: true, encoding: .utf8)
                try FileManager.default.createDirectory(atPath: dir + "/app", withIntermediateDirectories: true)
                try runSQLite(dir + "/app/app.db", "CREATE TABLE visits (id INTEGER PRIMARY KEY, note TEXT); INSERT INTO visits (note) VALUES ('first'), ('second'), ('third');")
                try TreeGenerator.makeSampleTree(at: dir + "/studies", largeFileSize: 1 << 20)
                // The generator is deterministic: the same tree, times included, to compare against.
                try TreeGenerator.makeSampleTree(at: dir + "/studies-as-backed-up", largeFileSize: 1 << 20)
                var environment = server.awsEnvironment

                // The old machine: its cluster, its data directory; a backup into the bucket.
                try await withPostgres { old in
                    try old.psql("CREATE DATABASE clinic")
                    _ = try old.psql("CREATE TABLE patients (id int PRIMARY KEY, name text); INSERT INTO patients SELECT i, 'Patient ' || i FROM generate_series(1, 500) i;", database: "clinic")
                    try configuration(dir: dir, dataDirectory: dir + "/old-data", cluster: old, url: url, endpoint: server.endpoint)
                        .write(toFile: dir + "/old.toml", atomically: true, encoding: .utf8)
                    environment["BUNKER_CONFIG"] = dir + "/old.toml"
                    let created = try BunkerProcess.run(["init"], environment: environment)
                    #expect(created.status == 0, "\(created.stderr)")
                    let backup = try BunkerProcess.run(["backup"], environment: environment)
                    #expect(backup.status == 0, "\(backup.stderr)")
                    old.kill()
                }
                // The machine is gone: its data directory, its sources.
                for lost in ["old-data", "app", "studies"] { try FileManager.default.removeItem(atPath: dir + "/" + lost) }

                // The new machine, step by step as in docs/disaster-recovery.md.
                try await withPostgres { fresh in
                    // 1–3: an empty cluster, bunker.toml with the sources, the credentials.
                    try configuration(dir: dir, dataDirectory: dir + "/new-data", cluster: fresh, url: url, endpoint: server.endpoint)
                        .write(toFile: dir + "/new.toml", atomically: true, encoding: .utf8)
                    environment["BUNKER_CONFIG"] = dir + "/new.toml"
                    // 4–5: the catalog and the audit trail.
                    let catalog = try BunkerProcess.run(["catalog", "restore"], environment: environment)
                    #expect(catalog.status == 0, "\(catalog.stderr)")
                    let trail = try BunkerProcess.run(["audit", "verify"], environment: environment)
                    #expect(trail.status == 0, "\(trail.stderr)\(trail.stdout)")
                    // 6: the backups.
                    let snapshots = try BunkerProcess.run(["snapshots", "--json"], environment: environment)
                    #expect((try JSONSerialization.jsonObject(with: Data(snapshots.stdout.utf8)) as? [Any])?.count == 1, "\(snapshots.stdout)\(snapshots.stderr)")
                    // 7: every source.
                    let restore = try BunkerProcess.run(["restore", "latest", "--reason", "hardware failure: new machine"], environment: environment)
                    #expect(restore.status == 0, "\(restore.stderr)")
                    #expect(try fresh.psql("SELECT count(*) FROM patients", database: "clinic") == "500")
                    let visits = try shell("sqlite3 '\(dir)/app/app.db' 'SELECT group_concat(note) FROM visits'")
                    #expect(visits.output.trimmingCharacters(in: .whitespacesAndNewlines) == "first,second,third", "\(visits.output)")
                    #expect(compareTrees(dir + "/studies-as-backed-up", dir + "/studies") == [])
                    // 8: everything checks.
                    let verify = try BunkerProcess.run(["verify", "--read-data"], environment: environment)
                    #expect(verify.status == 0, "\(verify.stderr)")
                    let drill = try BunkerProcess.run(["drill"], environment: environment)
                    #expect(drill.status == 0, "\(drill.stderr)\(drill.stdout)")
                    let after = try BunkerProcess.run(["audit", "verify"], environment: environment)
                    #expect(after.status == 0, "\(after.stderr)")
                }
            }
        }
    }
}
