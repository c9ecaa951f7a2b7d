import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// Physical base backups of a real PostgreSQL 15 cluster (`method = "physical"`), restored into
/// new data directories and started, through the real `bunker` binary.
@Suite(.serialized) struct PhysicalBackupTests {
    /// A temporary directory PostgreSQL's own user can reach, a cluster with a `clinic` database,
    /// and a bunker.toml with a physical source of it.
    func withPhysicalSource(port: Int? = nil, user: String = "postgres", _ body: (String, PostgresCluster, [String: String]) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir in
            chmod(dir, 0o755)
            try await withPostgres { cluster in
                try cluster.psql("CREATE DATABASE clinic")
                try """
                    data_dir = "\(dir)/data"

                    [repository]
                    path = "\(dir)/repo"

                    [[source]]
                    name = "clinic"
                    kind = "postgres"
                    method = "physical"
                    host = "\(cluster.socketDirectory)"
                    port = \(port ?? cluster.port)
                    user = "\(user)"
                    timeout = "10m"
                    """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
                _ = try await TestRepository.create(at: dir + "/repo")
                try await body(dir, cluster, ["BUNKER_CONFIG": dir + "/bunker.toml", "BUNKER_PASSWORD": TestRepository.password])
            }
        }
    }

    /// Lets PostgreSQL's user read the repository, as its `restore_command` (`bunker wal fetch`)
    /// must (docs/postgres-pitr.md); a server Bunker starts gets Bunker's `BUNKER_PASSWORD`.
    func shareRepository(_ dir: String) throws {
        if geteuid() == 0 { #expect(try shell("chmod -R a+rwX '\(dir)/repo'").status == 0) }
    }

    func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
    }

    func snapshotCount(_ environment: [String: String]) throws -> Int {
        let list = try BunkerProcess.run(["snapshots", "--json"], environment: environment)
        return (try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [Any])?.count ?? -1
    }

    /// Stops a server Bunker started on a restored data directory (as PostgreSQL's user).
    func stopServer(_ directory: String) {
        guard let bin = PostgresCluster.serverBinaries() else { return }
        _ = try? shell("runuser -u postgres -- '\(bin)/pg_ctl' -D '\(directory)' -m immediate -w stop || '\(bin)/pg_ctl' -D '\(directory)' -m immediate -w stop")
    }

    /// psql against a restored server, through its socket in the data directory.
    func psql(_ directory: String, port: String, _ sql: String, database: String = "clinic") throws -> String {
        let result = try shell("psql -X -A -t -h '\(directory)' -p \(port) -U postgres -d \(database) -c \"\(sql)\"")
        guard result.status == 0 else { throw FixtureError("psql failed: \(result.output)") }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func physicalBackupRestoresIntoANewDataDirectoryAndStarts() async throws {
        try await withPhysicalSource { dir, cluster, e in
            // A few MB of rows, and an older recovery setting the restore must comment out.
            try cluster.psql("CREATE TABLE patients (id int PRIMARY KEY, name text, notes text); INSERT INTO patients SELECT i, 'Patient ' || i, repeat(md5(i::text), 4) FROM generate_series(1, 40000) i;", database: "clinic")
            try cluster.psql("ALTER SYSTEM SET restore_command = 'false'")

            let backup = try BunkerProcess.run(["backup", "--json"], environment: e)
            #expect(backup.status == 0, "\(backup.stderr)")
            let first = try json(backup.stdout)
            let sources = try #require(first["sources"] as? [[String: Any]])
            let details = try #require(sources.first?["details"] as? [String: String], "\(sources)")
            #expect(details["method"] == "physical")
            #expect(details["pg_major_version"] == "15")
            #expect(details["timeline"] == "1")
            #expect(details["start_lsn"]?.contains("/") == true && details["stop_lsn"]?.contains("/") == true, "\(details)")
            #expect(details["system_identifier"] == (try cluster.psql("SELECT system_identifier FROM pg_control_system()")))
            #expect(details["stop_time"] != nil && details["start_time"] != nil, "\(details)")

            // Without --start: the data directory, its recovery set-up, and the command that starts it.
            let plain = try BunkerProcess.run(["restore", "latest", "--source", "clinic", "--pgdata", dir + "/restored-plain"], environment: e)
            #expect(plain.status == 0, "\(plain.stderr)")
            #expect(plain.stdout.contains("pg_ctl") && plain.stdout.contains("start"), "\(plain.stdout)")
            #expect(FileManager.default.fileExists(atPath: dir + "/restored-plain/recovery.signal"))
            #expect(FileManager.default.fileExists(atPath: dir + "/restored-plain/PG_VERSION"))
            let auto = try String(contentsOfFile: dir + "/restored-plain/postgresql.auto.conf", encoding: .utf8)
            #expect(auto.contains("#restore_command = 'false'"), "the older setting is commented out: \(auto)")
            let bunker = try #require(auto.split(separator: "\n").first { $0.hasPrefix("restore_command = ") }, "\(auto)")
            #expect(bunker.contains("/bunker wal fetch --config \(dir)/bunker.toml --source clinic %f %p"), "\(bunker)")
            #expect(bunker.hasPrefix("restore_command = '/"), "the executable's full path: \(bunker)")
            #expect(auto.contains("recovery_target_timeline = 'latest'") && auto.contains("recovery_target_action = 'promote'"), "\(auto)")
            #expect(!auto.contains("recovery_target_time ="), "--latest sets no target: \(auto)")
            var status = stat()
            #expect(stat(dir + "/restored-plain", &status) == 0 && status.st_mode & 0o777 == 0o700)
            if geteuid() == 0 { #expect(status.st_uid == getpwnam("postgres").pointee.pw_uid, "given to PostgreSQL's user") }

            // A directory that is not empty is refused.
            let refused = try BunkerProcess.run(["restore", "latest", "--source", "clinic", "--pgdata", dir + "/restored-plain"], environment: e)
            #expect(refused.status != 0 && refused.stderr.contains("not empty"), "\(refused.stderr)")
            // So is a restore in place of a cluster that does not archive its WAL (everything since
            // the base backup would be lost).
            let inPlace = try BunkerProcess.run(["restore", "latest", "--source", "clinic"], environment: e)
            #expect(inPlace.status != 0 && inPlace.stderr.contains("archive_mode = off") && inPlace.stderr.contains("--pgdata"), "\(inPlace.stderr)")

            // With --start: the server recovers (WAL from the base backup itself; `wal fetch`
            // finds nothing more), promotes, and holds the rows.
            if geteuid() == 0 {
                // A server whose user cannot reach the repository is not started: recovery would
                // stop at its first WAL file, saying so only in the server's log.
                let unreachable = try BunkerProcess.run(["restore", "latest", "--source", "clinic", "--pgdata", dir + "/unreachable", "--start"], environment: e)
                #expect(unreachable.status != 0 && unreachable.stderr.contains("cannot reach the repository as postgres"), "\(unreachable.stderr)")
            }
            try shareRepository(dir)
            let started = try BunkerProcess.run(["restore", "latest", "--source", "clinic", "--pgdata", dir + "/restored", "--start", "--json"], environment: e)
            defer { stopServer(dir + "/restored") }
            #expect(started.status == 0, "\(started.stderr)\(started.stdout)")
            let outcome = try json(started.stdout)
            let restored = try #require((outcome["sources"] as? [[String: Any]])?.first)
            let port = try #require((restored["details"] as? [String: String])?["port"], "\(restored)")
            #expect(try psql(dir + "/restored", port: port, "SELECT count(*) FROM patients") == "40000")
            #expect(try psql(dir + "/restored", port: port, "SELECT pg_is_in_recovery()") == "f")
            #expect((restored["checks"] as? [String]) == ["SHA-256", "recovery ended", "system identifier"], "\(restored)")
            #expect((restored["details"] as? [String: String])?["system_identifier"] == details["system_identifier"])
        }
    }

    /// Debian keeps a cluster's configuration in /etc/postgresql, outside its data directory, so
    /// a base backup holds none: the restore writes minimal files, says so, and the server starts.
    @Test func aClusterConfiguredOutsideItsDataDirectoryRestoresAndStarts() async throws {
        try await withPhysicalSource { dir, cluster, e in
            try cluster.psql("CREATE TABLE patients (id int PRIMARY KEY); INSERT INTO patients SELECT generate_series(1, 10)", database: "clinic")
            for name in ["postgresql.conf", "pg_hba.conf", "pg_ident.conf"] {
                try FileManager.default.moveItem(atPath: cluster.directory + "/data/" + name, toPath: cluster.directory + "/" + name)
            }
            let backup = try BunkerProcess.run(["backup"], environment: e)
            #expect(backup.status == 0, "\(backup.stderr)")
            let port = String(Int.random(in: 20000..<60000))
            try shareRepository(dir)
            let restore = try BunkerProcess.run(["restore", "latest", "--source", "clinic", "--pgdata", dir + "/debian", "--start", "--port", port], environment: e)
            defer { stopServer(dir + "/debian") }
            #expect(restore.status == 0, "\(restore.stderr)\(restore.stdout)")
            #expect(restore.stderr.contains("holds no postgresql.conf, pg_hba.conf, pg_ident.conf"), "\(restore.stderr)")
            let asServer = geteuid() == 0 ? "runuser -u postgres -- " : ""
            let count = try shell("\(asServer)psql -X -A -t -h '\(dir)/debian' -p \(port) -U postgres -d clinic -c 'SELECT count(*) FROM patients'", in: dir)
            #expect(count.output.trimmingCharacters(in: .whitespacesAndNewlines) == "10", "\(count.output)")
        }
    }

    @Test func secondBaseBackupOfAnUnchangedClusterStoresOnlyChangedPages() async throws {
        try await withPhysicalSource { _, cluster, e in
            try cluster.psql("CREATE TABLE patients (id int PRIMARY KEY, name text, notes text); INSERT INTO patients SELECT i, 'Patient ' || i, repeat(md5(i::text), 4) FROM generate_series(1, 40000) i;", database: "clinic")
            try cluster.psql("CHECKPOINT")
            let first = try BunkerProcess.run(["backup", "--json"], environment: e)
            #expect(first.status == 0, "\(first.stderr)")
            try cluster.psql("UPDATE patients SET name = 'changed' WHERE id IN (7, 20000); INSERT INTO patients VALUES (40001, 'new', 'row')", database: "clinic")
            let second = try BunkerProcess.run(["backup", "--json"], environment: e)
            #expect(second.status == 0, "\(second.stderr)")
            let added1 = try #require((try json(first.stdout)["summary"] as? [String: Any])?["data_added"] as? Int)
            let added2 = try #require((try json(second.stdout)["summary"] as? [String: Any])?["data_added"] as? Int)
            let total2 = try #require((try json(second.stdout)["summary"] as? [String: Any])?["total_bytes"] as? Int)
            print("physical base backup: first day \(added1) bytes added, second day \(added2) bytes added of \(total2)")
            #expect(added1 > 4 << 20, "the first base backup stores the cluster: \(added1)")
            #expect(Double(added2) < Double(added1) * 0.2, "second day: \(added2) bytes added, first day \(added1)")
        }
    }

    @Test func failingBaseBackupWritesNoSnapshot() async throws {
        try await withPhysicalSource(port: 1) { _, _, e in
            let backup = try BunkerProcess.run(["backup"], environment: e)
            #expect(backup.status != 0, "\(backup.stdout)")
            #expect(backup.stderr.contains("no snapshot was written"), "\(backup.stderr)")
            #expect(try snapshotCount(e) == 0)
        }
        // A role that may log in but not replicate: pg_basebackup itself fails.
        try await withPhysicalSource(user: "reader") { _, cluster, e in
            try cluster.psql("CREATE ROLE reader LOGIN; GRANT pg_read_all_settings TO reader; GRANT EXECUTE ON FUNCTION pg_control_system() TO reader")
            let backup = try BunkerProcess.run(["backup"], environment: e)
            #expect(backup.status != 0, "\(backup.stdout)")
            #expect(backup.stderr.contains("no snapshot was written"), "\(backup.stderr)")
            #expect(try snapshotCount(e) == 0)
        }
    }

    @Test func drillStartsAScratchServerChecksItAndRemovesIt() async throws {
        try await withPhysicalSource { dir, cluster, e in
            try cluster.psql("CREATE TABLE patients (id int PRIMARY KEY); INSERT INTO patients SELECT generate_series(1, 100)", database: "clinic")
            let backup = try BunkerProcess.run(["backup"], environment: e)
            #expect(backup.status == 0, "\(backup.stderr)")
            let before = Set((try? FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())) ?? []).filter { $0.hasPrefix("bunker-drill-") }
            try shareRepository(dir)
            let drill = try BunkerProcess.run(["drill", "--source", "clinic", "--json"], environment: e)
            #expect(drill.status == 0, "\(drill.stdout)\(drill.stderr)")
            let report = try json(drill.stdout)
            let checks = try #require((report["sources"] as? [[String: Any]])?.first?["checks"] as? [[String: Any]])
            #expect(checks.map { $0["name"] as? String } == ["sha256", "recovery"], "\(checks)")
            #expect(checks.allSatisfy { $0["passed"] as? Bool == true }, "\(checks)")
            #expect((checks.last?["detail"] as? String)?.contains("system_identifier") == true, "\(checks)")
            let after = Set((try? FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())) ?? []).filter { $0.hasPrefix("bunker-drill-") }
            #expect(after.subtracting(before).isEmpty, "the scratch cluster is removed")
        }
    }

    @Test func restoreToATimeBeforeEveryBaseBackupIsRefused() async throws {
        try await withPhysicalSource { dir, _, e in
            let backup = try BunkerProcess.run(["backup"], environment: e)
            #expect(backup.status == 0, "\(backup.stderr)")
            let refused = try BunkerProcess.run(["restore", "latest", "--source", "clinic", "--pgdata", dir + "/pitr", "--to-time", "2001-01-01 00:00:00+00"], environment: e)
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("no physical base backup of source clinic that ended before 2001-01-01 00:00:00"), "\(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/pitr"), "nothing was written")
            let early = try BunkerProcess.run(["restore", "latest", "--source", "clinic", "--pgdata", dir + "/pitr", "--to-lsn", "0/10"], environment: e)
            #expect(early.status != 0 && early.stderr.contains("ended before WAL location 0/10"), "\(early.stderr)")
            let unreadable = try BunkerProcess.run(["restore", "latest", "--source", "clinic", "--pgdata", dir + "/pitr", "--to-time", "yesterday"], environment: e)
            #expect(unreadable.status != 0 && unreadable.stderr.contains("--to-time"), "\(unreadable.stderr)")
        }
    }

    /// A target past the end of what can be replayed (here: no archived WAL at all) makes
    /// PostgreSQL stop instead of promoting early; the restore fails and says why.
    @Test func restoreToAMomentPastTheArchivedWALFailsClearly() async throws {
        try await withPhysicalSource { dir, _, e in
            let backup = try BunkerProcess.run(["backup"], environment: e)
            #expect(backup.status == 0, "\(backup.stderr)")
            try await Task.sleep(for: .seconds(1))
            let target = ISO8601DateFormatter().string(from: Date())
            try shareRepository(dir)
            let restore = try BunkerProcess.run(["restore", "latest", "--source", "clinic", "--pgdata", dir + "/late", "--to-time", target, "--start"], environment: e)
            defer { stopServer(dir + "/late") }
            #expect(restore.status != 0, "\(restore.stdout)")
            #expect(restore.stderr.contains("recovery ended before configured recovery target was reached"), "\(restore.stderr)")
            #expect(restore.stderr.contains("live data of source clinic was not touched") && restore.stderr.contains("in this attempt is incomplete and must not be used"), "\(restore.stderr)")
        }
    }

    /// A source whose cluster archives every WAL file with `bunker wal push` (the WAL archiving
    /// branch of issue 16); skipped, with a note, while `bunker wal --help` fails.
    ///
    /// Everything runs as PostgreSQL's own user, as in production: the server runs `wal push`
    /// and `wal fetch` as that user, so the repository, the data directory and the password
    /// file are that user's, and so are the backups and restores (``bunker(_:_:)``).
    func withArchivingSource(_ test: String, _ body: (String, PostgresCluster) async throws -> Void) async throws {
        let wal = try BunkerProcess.run(["wal", "--help"])
        guard wal.status == 0, wal.stdout.contains("fetch") else {
            print("\(test): skipped, this build has no `bunker wal` (WAL archiving lands separately).")
            return
        }
        let bin = try #require(PostgresCluster.serverBinaries())
        try await withPhysicalSource { dir, cluster, _ in
            try TestRepository.password.write(toFile: dir + "/password", atomically: true, encoding: .utf8)
            var config = try String(contentsOfFile: dir + "/bunker.toml", encoding: .utf8)
            config = config.replacingOccurrences(of: "path = \"\(dir)/repo\"", with: "path = \"\(dir)/repo\"\npassword_file = \"\(dir)/password\"")
            try config.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
            if geteuid() == 0 { #expect(try shell("chown -R postgres:postgres '\(dir)' && chmod 600 '\(dir)/password'").status == 0) }

            // Archive every segment with `bunker wal push`.
            let archive = "\(BunkerProcess.executable) wal push --config \(dir)/bunker.toml --source clinic %p"
            try cluster.psql("ALTER SYSTEM SET archive_mode = on")
            try cluster.psql("ALTER SYSTEM SET archive_command = '\(archive)'")
            let data = cluster.directory + "/data"
            // Output to a file, not a pipe: the restarted server would hold a pipe open.
            let pgctl = [bin + "/pg_ctl", "-D", data, "-l", cluster.directory + "/server.log", "-w", "-t", "60", "restart", "-o", "-k \(cluster.directory) -c listen_addresses='' -p 5432"]
            let restart = geteuid() == 0
                ? try spawnAndWait("/usr/sbin/runuser", ["-u", "postgres", "--", "/usr/bin/env", "--chdir=" + dir] + pgctl, outputFile: dir + "/restart.out")
                : try spawnAndWait(pgctl[0], Array(pgctl.dropFirst()), outputFile: dir + "/restart.out")
            #expect(restart.status == 0, "\(restart.output)")
            try cluster.psql("CREATE TABLE sentinel (label text, at timestamptz DEFAULT clock_timestamp())", database: "clinic")
            try await body(dir, cluster)
        }
    }

    /// `bunker ARGUMENTS --config DIR/bunker.toml`, as PostgreSQL's user when the tests run as
    /// root; standard output and error together.
    func bunker(_ dir: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let command = [BunkerProcess.executable] + arguments + ["--config", dir + "/bunker.toml"]
        if geteuid() == 0 {
            // In the test's directory: PostgreSQL's user may not enter the one the tests run in
            // (a checkout under `mktemp -d`), and a child process cannot start there.
            return try spawnAndWait("/usr/sbin/runuser", ["-u", "postgres", "--", "/usr/bin/env", "--chdir=" + dir] + command, outputFile: dir + "/bunker.out")
        }
        return try spawnAndWait(command[0], Array(command.dropFirst()), outputFile: dir + "/bunker.out")
    }

    /// Inserts the sentinel rows `labels` a second apart, then `next` two seconds later; returns
    /// a moment between the two, by the server's clock, as `--to-time` takes it.
    func insertSentinels(_ labels: [String], thenAfterAMoment next: String, _ query: (String) throws -> String) async throws -> String {
        for label in labels {
            _ = try query("INSERT INTO sentinel VALUES ('\(label)')")
            try await Task.sleep(for: .seconds(1))
        }
        let moment = try query("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
        try await Task.sleep(for: .seconds(1))
        _ = try query("INSERT INTO sentinel VALUES ('\(next)')")
        return moment
    }

    /// Closes the server's current WAL segment and waits (30 s at most) until it is archived;
    /// returns its name.
    @discardableResult
    func archiveCurrentSegment(_ query: (String) throws -> String) async throws -> String {
        let segment = try query("SELECT pg_walfile_name(pg_switch_wal())")
        var archived = false
        for _ in 0..<150 where !archived {
            archived = try query("SELECT coalesce(last_archived_wal, '') >= '\(segment)' FROM pg_stat_archiver") == "t"
            if !archived { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(archived, "segment \(segment) was archived")
        return segment
    }

    @Test func pointInTimeRestoreStopsBetweenTwoCommits() async throws {
        try await withArchivingSource("pointInTimeRestoreStopsBetweenTwoCommits") { dir, cluster in
            let backup = try bunker(dir, ["backup"])
            #expect(backup.status == 0, "\(backup.output)")
            let a = { (sql: String) in try cluster.psql(sql, database: "clinic") }
            let between = try await insertSentinels(["T1", "T2"], thenAfterAMoment: "T3", a)
            let segment = try await archiveCurrentSegment(a)

            let port = String(Int.random(in: 20000..<60000))
            // A copy to look at (--no-archive): it must never archive into the live source's archive.
            let restore = try bunker(dir, ["restore", "latest", "--source", "clinic", "--pgdata", dir + "/pitr", "--to-time", between, "--start", "--port", port, "--no-archive"])
            defer { stopServer(dir + "/pitr") }
            #expect(restore.status == 0, "\(restore.output)")
            #expect(try psql(dir + "/pitr", port: port, "SELECT string_agg(label, ',' ORDER BY label) FROM sentinel") == "T1,T2", "T2 is there, T3 is not")
            let auto = try String(contentsOfFile: dir + "/pitr/postgresql.auto.conf", encoding: .utf8)
            #expect(auto.contains("recovery_target_time = '") && auto.contains("archive_mode = 'off'"), "\(auto)")
            #expect(try psql(dir + "/pitr", port: port, "SELECT current_setting('archive_mode')") == "off", "the copy does not archive")
            #expect(!restore.output.contains("--no-archive"), "no warning about archiving for a copy that does not: \(restore.output)")

            // WAL retention: once the first base backup is forgotten, the WAL before the second
            // one's start goes with it; what the second needs, and what came after, stays.
            let second = try bunker(dir, ["backup"])
            #expect(second.status == 0, "\(second.output)")
            _ = try a("INSERT INTO sentinel VALUES ('T4')")
            let later = try await archiveCurrentSegment(a)
            let cleanup = try bunker(dir, ["cleanup", "--keep-last", "1", "--min-age", "0d", "--json"])
            #expect(cleanup.status == 0, "\(cleanup.output)")
            let removed = ((try? JSONSerialization.jsonObject(with: Data(cleanup.output.utf8))) as? [String: Any])
                .flatMap { $0["prune"] as? [String: Any] }?["wal_files_removed"] as? Int
            #expect((removed ?? 0) > 0, "\(cleanup.output)")
            #expect(try bunker(dir, ["wal", "fetch", "--source", "clinic", segment, dir + "/fetched-old"]).status == 1, "the WAL before the kept base backup is gone")
            #expect(try bunker(dir, ["wal", "fetch", "--source", "clinic", later, dir + "/fetched-new"]).status == 0, "the WAL after it stays")
            let verify = try bunker(dir, ["verify"])
            #expect(verify.status == 0, "no gap where retention cut: \(verify.output)")
            // The restorable window starts at the end of the kept base backup.
            let stats = try bunker(dir, ["stats", "--json"])
            let wal = (((try? JSONSerialization.jsonObject(with: Data(stats.output.utf8))) as? [String: Any])?["wal"] as? [[String: Any]])?.first
            #expect(wal?["window_start"] is String && wal?["window_end"] is String, "\(stats.output)")
            let plain = try bunker(dir, ["stats"])
            #expect(plain.output.contains("restorable to any moment from"), "the text says the window too: \(plain.output)")
        }
    }

    /// After a restore to a moment, the server promotes onto timeline 2 and, keeping its
    /// archive_command, archives `00000002.history` and the new timeline into the same source;
    /// a second restore to a moment on timeline 2 starts from the same base backup (timeline 1)
    /// and follows the history file (`recovery_target_timeline = 'latest'`) onto timeline 2.
    @Test func secondPointInTimeRestoreFollowsTheNewTimeline() async throws {
        try await withArchivingSource("secondPointInTimeRestoreFollowsTheNewTimeline") { dir, cluster in
            let backup = try bunker(dir, ["backup"])
            #expect(backup.status == 0, "\(backup.output)")
            let a = { (sql: String) in try cluster.psql(sql, database: "clinic") }
            let beforeT3 = try await insertSentinels(["T1", "T2"], thenAfterAMoment: "T3", a)
            try await archiveCurrentSegment(a)
            cluster.kill()  // the old server is gone: only the archive is left

            // B: back to between T2 and T3, onto timeline 2, which it archives beside timeline 1.
            let portB = String(Int.random(in: 20000..<40000))
            let restoreB = try bunker(dir, ["restore", "latest", "--source", "clinic", "--pgdata", dir + "/b", "--to-time", beforeT3, "--start", "--port", portB])
            defer { stopServer(dir + "/b") }
            #expect(restoreB.status == 0 && restoreB.output.contains("Recovery ended (timeline 2)"), "\(restoreB.output)")
            #expect(restoreB.output.contains("archives its WAL into the archive of source clinic"), "a server that keeps archiving is said to: \(restoreB.output)")
            let b = { (sql: String) in try psql(dir + "/b", port: portB, sql) }
            #expect(try b("SELECT string_agg(label, ',' ORDER BY label) FROM sentinel") == "T1,T2")
            let beforeT5 = try await insertSentinels(["T4"], thenAfterAMoment: "T5", b)
            try await archiveCurrentSegment(b)
            #expect(try b("SELECT failed_count FROM pg_stat_archiver") == "0", "every push of timeline 2 succeeded")
            let stats = try bunker(dir, ["stats", "--json"])
            let text = String(stats.output.drop(while: { $0 != "{" }))
            let wal = try #require((try json(text)["wal"] as? [[String: Any]])?.first, "\(stats.output)")
            #expect((wal["histories"] as? [String])?.contains("00000002.history") == true, "\(wal)")
            #expect(Set((wal["timelines"] as? [[String: Any]] ?? []).compactMap { $0["timeline"] as? Int }).isSuperset(of: [1, 2]), "\(wal)")
            stopServer(dir + "/b")

            // C: from the same base backup (timeline 1) to between T4 and T5, on timeline 2.
            let portC = String(Int.random(in: 40000..<60000))
            let restoreC = try bunker(dir, ["restore", "latest", "--source", "clinic", "--pgdata", dir + "/c", "--to-time", beforeT5, "--start", "--port", portC])
            defer { stopServer(dir + "/c") }
            #expect(restoreC.status == 0 && restoreC.output.contains("Recovery ended (timeline 3)"), "it branched off timeline 2: \(restoreC.output)")
            #expect(try psql(dir + "/c", port: portC, "SELECT string_agg(label, ',' ORDER BY label) FROM sentinel") == "T1,T2,T4", "T3 (timeline 1 after the switch) and T5 are not there")
            let verify = try bunker(dir, ["verify"])
            #expect(verify.status == 0 && verify.output.contains("timeline 2") && verify.output.contains("no gaps"), "no WAL gap across the timeline switch: \(verify.output)")
        }
    }

    /// In place: a safety base backup, the live server's last WAL archived, the server stopped,
    /// its data directory moved aside, the base backup restored and recovered to the moment, the
    /// server started with its own options, the old directory removed. A restore that cannot
    /// reach its target puts the old data directory back and starts its server again.
    @Test func inPlaceRestoreReplacesTheLiveClusterAndPutsItBackOnFailure() async throws {
        try await withArchivingSource("inPlaceRestoreReplacesTheLiveClusterAndPutsItBackOnFailure") { dir, cluster in
            let backup = try bunker(dir, ["backup"])
            #expect(backup.status == 0, "\(backup.output)")
            let a = { (sql: String) in try cluster.psql(sql, database: "clinic") }
            let between = try await insertSentinels(["T1", "T2"], thenAfterAMoment: "T3", a)
            // Not archived by the test: the restore archives the live server's last segment itself.
            let restore = try bunker(dir, ["restore", "latest", "--source", "clinic", "--to-time", between, "--start", "--reason", "T3 was a mistake", "--json"])
            #expect(restore.status == 0, "\(restore.output)")
            let outcome = try json(String(restore.output.drop(while: { $0 != "{" })))
            let safety = try #require(outcome["safety_snapshot_id"] as? String, "\(restore.output)")
            let source = try #require((outcome["sources"] as? [[String: Any]])?.first)
            let details = source["details"] as? [String: String] ?? [:]
            #expect(details["in_place"] == "true" && details["old_data_directory"] == "removed", "\(details)")
            // The live cluster (same socket, same port) holds the state at the moment.
            #expect(try a("SELECT string_agg(label, ',' ORDER BY label) FROM sentinel") == "T1,T2", "T2 is there, T3 is not")
            #expect(try a("SELECT pg_is_in_recovery()") == "f")
            let entries = try FileManager.default.contentsOfDirectory(atPath: cluster.directory)
            #expect(!entries.contains { $0.contains("bunker-before-restore") }, "\(entries)")
            // The safety base backup of the live cluster, before the restore, is a snapshot tagged safety.
            let list = try bunker(dir, ["snapshots", "--json"])
            let snapshots = (try? JSONSerialization.jsonObject(with: Data(String(list.output.drop(while: { $0 != "[" })).utf8))) as? [[String: Any]] ?? []
            let safe = snapshots.first { ($0["id"] as? String) == safety }
            #expect((safe?["tags"] as? [String])?.contains("safety") == true, "\(list.output)")

            // A target past the archived WAL: recovery cannot reach it; the cluster comes back as it was.
            _ = try a("INSERT INTO sentinel VALUES ('T6')")
            let future = try a("SELECT to_char((clock_timestamp() + interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00'")
            let failed = try bunker(dir, ["restore", "latest", "--source", "clinic", "--to-time", future, "--start", "--no-safety-backup"])
            #expect(failed.status != 0 && failed.output.contains("old data directory is back"), "\(failed.output)")
            #expect(try a("SELECT string_agg(label, ',' ORDER BY label) FROM sentinel") == "T1,T2,T6", "the cluster is as it was")
            let after = try FileManager.default.contentsOfDirectory(atPath: cluster.directory)
            #expect(!after.contains { $0.contains("bunker-before-restore") }, "\(after)")
        }
    }

    /// After an in-place restore to a moment, the live server is on timeline 2, and the newest
    /// base backup that ended before a later moment is the restore's own safety base backup,
    /// taken of timeline 1 after timeline 2 branched off it. Recovery follows timeline 2, which
    /// PostgreSQL cannot reach from there: `latest` takes the base backup before the branch.
    @Test func aSecondRestoreAfterAnInPlaceOneSkipsTheSafetyBaseBackupOfTheOldTimeline() async throws {
        try await withArchivingSource("aSecondRestoreAfterAnInPlaceOneSkipsTheSafetyBaseBackupOfTheOldTimeline") { dir, cluster in
            let backup = try bunker(dir, ["backup"])
            #expect(backup.status == 0, "\(backup.output)")
            let a = { (sql: String) in try cluster.psql(sql, database: "clinic") }
            let beforeJ2 = try await insertSentinels(["J1"], thenAfterAMoment: "J2", a)
            let first = try bunker(dir, ["restore", "latest", "--source", "clinic", "--to-time", beforeJ2, "--start", "--reason", "J2 was a mistake"])
            #expect(first.status == 0, "\(first.output)")
            #expect(try a("SELECT string_agg(label, ',' ORDER BY label) FROM sentinel") == "J1")
            let beforeK2 = try await insertSentinels(["K1"], thenAfterAMoment: "K2", a)
            try await archiveCurrentSegment(a)

            let port = String(Int.random(in: 20000..<60000))
            let second = try bunker(dir, ["restore", "latest", "--source", "clinic", "--pgdata", dir + "/second", "--to-time", beforeK2, "--start", "--port", port, "--no-archive", "--json"])
            defer { stopServer(dir + "/second") }
            #expect(second.status == 0, "\(second.output)")
            // Not the safety snapshot the first restore took, which is the newest before the moment.
            let safety = first.output.components(separatedBy: "Safety backup of the live data: snapshot ").dropFirst().first?.prefix(8)
            let outcome = try json(String(second.output.drop(while: { $0 != "{" })))
            let chosen = try #require(outcome["snapshot_id"] as? String, "\(second.output)")
            #expect(safety != nil && !chosen.hasPrefix(String(safety ?? "")), "chose \(chosen), the safety snapshot is \(safety ?? "?")")
            #expect(try psql(dir + "/second", port: port, "SELECT string_agg(label, ',' ORDER BY label) FROM sentinel") == "J1,K1", "J2 (timeline 1 after the branch) and K2 are not there")
        }
    }

    /// A segment missing from the archive after the base backup: a restore to the latest state
    /// would end at the gap as if it were the end, so it is refused before anything is written,
    /// and a drill to the latest state fails naming the gap.
    @Test func aRestoreToTheLatestStateRefusesAGapInTheArchive() async throws {
        try await withArchivingSource("aRestoreToTheLatestStateRefusesAGapInTheArchive") { dir, cluster in
            let backup = try bunker(dir, ["backup"])
            #expect(backup.status == 0, "\(backup.output)")
            let a = { (sql: String) in try cluster.psql(sql, database: "clinic") }
            var segments: [String] = []
            for label in ["G1", "G2", "G3"] {
                _ = try a("INSERT INTO sentinel VALUES ('\(label)')")
                segments.append(try await archiveCurrentSegment(a))
            }
            let walDirectory = dir + "/repo/wal"
            let lost = try FileManager.default.contentsOfDirectory(atPath: walDirectory).filter { $0.hasPrefix("clinic-\(segments[1])-") }
            #expect(lost.count == 1, "\(lost)")
            for name in lost { try FileManager.default.removeItem(atPath: walDirectory + "/" + name) }

            let refused = try bunker(dir, ["restore", "latest", "--source", "clinic", "--latest", "--pgdata", dir + "/g", "--json"])
            #expect(refused.status == 7, "\(refused.output)")
            let error = try json(String(refused.output.drop(while: { $0 != "{" })))
            #expect(error["error"] as? String == "integrity" && (error["message"] as? String)?.contains(segments[1]) == true, "\(error)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/g"), "nothing was written")

            let drill = try bunker(dir, ["drill", "--source", "clinic", "--json"])
            #expect(drill.status != 0 && drill.output.contains("wal_archive") && drill.output.contains(segments[1]), "\(drill.output)")
        }
    }

    /// Every running process as `PID ARGUMENTS…`.
    static func commandLines() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard pid_t(entry) != nil, let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"), !data.isEmpty else { return nil }
            return entry + " " + String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        }
    }

    /// Streaming (`[source.wal] stream = true`): a row committed after the last archived segment,
    /// in the segment still being written, survives the server's crash, because `bunker wal
    /// stream` stored what `pg_receivewal` had received of that segment a moment before.
    @Test func streamedWALKeepsTheLastSecondsAfterACrash() async throws {
        try await withArchivingSource("streamedWALKeepsTheLastSecondsAfterACrash") { dir, cluster in
            var config = try String(contentsOfFile: dir + "/bunker.toml", encoding: .utf8)
            config += "\n[source.wal]\nstream = true\nstream_interval = 1\n"
            try config.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
            let backup = try bunker(dir, ["backup"])
            #expect(backup.status == 0, "\(backup.output)")
            let a = { (sql: String) in try cluster.psql(sql, database: "clinic") }
            _ = try a("INSERT INTO sentinel VALUES ('archived')")
            try await archiveCurrentSegment(a)

            let command = [BunkerProcess.executable, "wal", "stream", "--source", "clinic", "--config", dir + "/bunker.toml"]
            let streamer = geteuid() == 0
                ? try spawn("/usr/sbin/runuser", ["-u", "postgres", "--", "/usr/bin/env", "--chdir=" + dir] + command, outputFile: dir + "/stream.out")
                : try spawn(command[0], Array(command.dropFirst()), outputFile: dir + "/stream.out")
            try await Task.sleep(for: .seconds(2))
            _ = try a("INSERT INTO sentinel VALUES ('streamed')")
            let segment = try a("SELECT pg_walfile_name(pg_current_wal_lsn())")
            try await Task.sleep(for: .seconds(4))
            // Stopped while the server is still up: it stops its pg_receivewal too. SIGTERM goes
            // to bunker itself, as systemd sends it: runuser, in front of it as root, passes a
            // SIGTERM on and SIGKILLs its child 2 s later (util-linux: "Session terminated,
            // killing shell... killed"), which on a loaded machine came before bunker had
            // stopped its pg_receivewal.
            let running = Self.commandLines().first { $0.contains(" wal stream ") && $0.contains(dir) && !$0.contains("runuser") }
            let target = running.flatMap { $0.split(separator: " ").first.flatMap { pid_t($0) } } ?? streamer
            Foundation.kill(target, SIGTERM)
            _ = try? waitForExit(streamer, "bunker wal stream")
            let left = Self.commandLines().filter { $0.contains("pg_receivewal") && $0.contains(dir) }
            #expect(left.isEmpty, "pg_receivewal outlived bunker wal stream: \(left)")
            for line in left { if let pid = line.split(separator: " ").first.flatMap({ pid_t($0) }) { Foundation.kill(pid, SIGKILL) } }
            cluster.kill()  // immediate: the segment holding 'streamed' is never archived
            let said = (try? String(contentsOfFile: dir + "/stream.out", encoding: .utf8)) ?? ""

            // The segment holding 'streamed' was never archived (no switch, an immediate stop);
            // only its streamed copy is in the repository.
            let port = String(Int.random(in: 20000..<60000))
            let restore = try bunker(dir, ["restore", "latest", "--source", "clinic", "--pgdata", dir + "/after-crash", "--start", "--port", port])
            defer { stopServer(dir + "/after-crash") }
            #expect(restore.status == 0, "\(restore.output)\n\(said)")
            #expect(try psql(dir + "/after-crash", port: port, "SELECT string_agg(label, ',' ORDER BY label) FROM sentinel") == "archived,streamed",
                    "the row in segment \(segment), streamed but never archived, is restored: \(said)")
        }
    }
}
