import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// `bunker wal push` and `wal fetch` as PostgreSQL runs them: the real binary, real segments of
/// a real PostgreSQL 15 cluster, and a cluster that archives with `archive_command`.
@Suite(.serialized) struct WalCommandTests {
    /// A configuration with one postgres source, `clinic`, on `cluster`; returns the environment
    /// that names it. The repository is made with `bunker init`.
    func setUp(_ dir: String, _ cluster: PostgresCluster, extra: String = "") throws -> [String: String] {
        try "wal test password\n".write(toFile: dir + "/password", atomically: true, encoding: .utf8)
        try """
        data_dir = "\(dir)/data"
        [repository]
        path = "\(dir)/repo"
        password_file = "\(dir)/password"

        [[source]]
        name = "clinic"
        kind = "postgres"
        host = "\(cluster.socketDirectory)"
        port = \(cluster.port)
        database = "postgres"
        user = "\(cluster.user)"
        \(extra)
        """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
        let environment = ["BUNKER_CONFIG": dir + "/bunker.toml"]
        let created = try BunkerProcess.run(["init"], environment: environment)
        #expect(created.status == 0, "\(created.stderr)")
        return environment
    }

    /// Makes the cluster finish a segment and copies it to `directory`; returns its path.
    func completedSegment(of cluster: PostgresCluster, into directory: String) throws -> String {
        try cluster.psql("CREATE TABLE IF NOT EXISTS filler (i int, t text); INSERT INTO filler SELECT i, md5(i::text) FROM generate_series(1, 20000) i;")
        let name = try cluster.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        try cluster.psql("SELECT pg_switch_wal()")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: directory + "/" + name)
        try FileManager.default.copyItem(atPath: cluster.directory + "/data/pg_wal/" + name, toPath: directory + "/" + name)
        return directory + "/" + name
    }

    @Test func pushThenFetchRoundTripsAndFollowsPostgresRules() async throws {
        try await withTemporaryDirectory { dir in
            try await withPostgres { cluster in
                let e = try setUp(dir, cluster)
                let segment = try completedSegment(of: cluster, into: dir + "/wal")
                let name = (segment as NSString).lastPathComponent

                let pushed = try BunkerProcess.run(["wal", "push", segment], environment: e)
                #expect(pushed.status == 0, "\(pushed.stderr)")
                #expect(pushed.stdout.contains("archived for clinic"))
                let again = try BunkerProcess.run(["wal", "push", "--source", "clinic", segment], environment: e)
                #expect(again.status == 0 && again.stdout.contains("already archived, identical"), "\(again.stdout)\(again.stderr)")
                // No audit row per segment: one summary a day.
                let second = try completedSegment(of: cluster, into: dir + "/wal")
                #expect(try BunkerProcess.run(["wal", "push", second], environment: e).status == 0)
                let summaries = try BunkerProcess.run(["audit", "list", "--json"], environment: e)
                #expect(summaries.stdout.components(separatedBy: "\"wal_summary\"").count - 1 == 1, "\(summaries.stdout)")
                #expect(!summaries.stdout.contains("\"wal_push\""), "a successful push is not audited")

                // restore_command as the restore writes it: the full path, --config first, --source.
                let fetched = try BunkerProcess.run(["--config", dir + "/bunker.toml", "wal", "fetch", "--source", "clinic", name, dir + "/restored"])
                #expect(fetched.status == 0, "\(fetched.stderr)")
                #expect(FileManager.default.contents(atPath: dir + "/restored") == FileManager.default.contents(atPath: segment))

                let missing = try BunkerProcess.run(["wal", "fetch", "00000002.history", dir + "/history"], environment: e)
                #expect(missing.status == 1, "\(missing.stderr)")
                #expect(!FileManager.default.fileExists(atPath: dir + "/history"))

                // The same name with other content: refused, audited, never overwritten.
                var altered = try #require(FileManager.default.contents(atPath: segment))
                altered[altered.count / 2] ^= 0xFF
                try FileManager.default.createDirectory(atPath: dir + "/other", withIntermediateDirectories: true)
                try altered.write(to: URL(fileURLWithPath: dir + "/other/" + name))
                let conflict = try BunkerProcess.run(["wal", "push", dir + "/other/" + name], environment: e)
                #expect(conflict.status == 10, "\(conflict.stdout)\(conflict.stderr)")
                #expect(conflict.stderr.contains("different content"))
                let audit = try BunkerProcess.run(["audit", "list", "--action", "wal_push", "--json"], environment: e)
                #expect(audit.stdout.contains("wal_push") && audit.stdout.contains("failure") && audit.stdout.contains(name), "\(audit.stdout)\(audit.stderr)")
                let refetched = try BunkerProcess.run(["wal", "fetch", name, dir + "/restored2"], environment: e)
                #expect(refetched.status == 0)
                #expect(FileManager.default.contents(atPath: dir + "/restored2") == FileManager.default.contents(atPath: segment))

                // A wrong password or a damaged object stops recovery: exit above 125.
                let wrong = try BunkerProcess.run(["wal", "fetch", name, dir + "/x"], environment: e.merging(["BUNKER_PASSWORD": "not the password"]) { $1 })
                #expect(wrong.status == 133, "\(wrong.stderr)")
                let unparsable = try BunkerProcess.run(["wal", "fetch", name], environment: e)
                #expect(unparsable.status >= 126, "\(unparsable.stderr)")
                let objects = try FileManager.default.contentsOfDirectory(atPath: dir + "/repo/wal").filter { $0.contains(name) }
                #expect(objects.count == 1)
                let object = dir + "/repo/wal/" + objects[0]
                var stored = try #require(FileManager.default.contents(atPath: object))
                stored[stored.count - 40] ^= 0x01
                try stored.write(to: URL(fileURLWithPath: object))
                let corrupt = try BunkerProcess.run(["wal", "fetch", name, dir + "/x"], environment: e)
                #expect(corrupt.status == 135, "\(corrupt.stderr)")
                #expect(!FileManager.default.fileExists(atPath: dir + "/x"))

                // A segment of another cluster (a second initdb) is refused for this source.
                try await withPostgres { other in
                    let foreign = try completedSegment(of: other, into: dir + "/foreign")
                    let refused = try BunkerProcess.run(["wal", "push", foreign], environment: e)
                    #expect(refused.status == 10, "\(refused.stdout)\(refused.stderr)")
                    #expect(refused.stderr.contains("system identifier"))
                }
            }
        }
    }

    /// `bunker copy` carries the archived WAL, so that the off-site copy alone restores to a
    /// moment: sealed again under the destination's key, fetched back byte for byte, never
    /// copied twice.
    @Test func aCopyCarriesTheArchivedWAL() async throws {
        try await withTemporaryDirectory { dir in
            try await withPostgres { cluster in
                let e = try setUp(dir, cluster)
                var segments: [String] = []
                for _ in 0..<2 {
                    let segment = try completedSegment(of: cluster, into: dir + "/wal")
                    #expect(try BunkerProcess.run(["wal", "push", segment], environment: e).status == 0)
                    segments.append(segment)
                }
                try "offsite password\n".write(toFile: dir + "/offsite-password", atomically: true, encoding: .utf8)
                let offsite = try String(contentsOfFile: dir + "/bunker.toml", encoding: .utf8)
                    .replacingOccurrences(of: "path = \"\(dir)/repo\"", with: "path = \"\(dir)/offsite\"")
                    .replacingOccurrences(of: "password_file = \"\(dir)/password\"", with: "password_file = \"\(dir)/offsite-password\"")
                    .replacingOccurrences(of: "data_dir = \"\(dir)/data\"", with: "data_dir = \"\(dir)/offsite-data\"")
                try offsite.write(toFile: dir + "/offsite.toml", atomically: true, encoding: .utf8)
                #expect(try BunkerProcess.run(["init", "--config", dir + "/offsite.toml"]).status == 0)

                #expect(try BunkerProcess.run(["backup"], environment: e).status == 0)
                var copy = e
                copy["BUNKER_TO_PASSWORD"] = "offsite password"
                let first = try BunkerProcess.run(["copy", "--to", dir + "/offsite", "--json"], environment: copy)
                #expect(first.status == 0, "\(first.stderr)")
                let report = try #require(try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any])
                #expect(report["wal_objects_copied"] as? Int == 3, "two segments and the cluster record: \(report)")
                let again = try BunkerProcess.run(["copy", "--to", dir + "/offsite", "--json"], environment: copy)
                #expect((try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: Any])?["wal_objects_copied"] as? Int == 0, "\(again.stdout)\(again.stderr)")

                for segment in segments {
                    let name = (segment as NSString).lastPathComponent
                    let fetched = try BunkerProcess.run(["wal", "fetch", "--config", dir + "/offsite.toml", "--source", "clinic", name, dir + "/back-" + name])
                    #expect(fetched.status == 0, "\(fetched.stderr)")
                    #expect(FileManager.default.contents(atPath: dir + "/back-" + name) == FileManager.default.contents(atPath: segment))
                }
                let verify = try BunkerProcess.run(["verify", "--config", dir + "/offsite.toml"])
                #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
            }
        }
    }

    @Test func asyncPushSpoolsAndADrainerShipsAndAFullSpoolIsNeverSkippedSilently() async throws {
        try await withTemporaryDirectory { dir in
            try await withPostgres { cluster in
                let e = try setUp(dir, cluster, extra: """
                    [source.wal]
                    async = true
                    spool_dir = "\(dir)/spool"
                    spool_max = 2
                    """)
                let first = try completedSegment(of: cluster, into: dir + "/wal")
                let name = (first as NSString).lastPathComponent
                let pushed = try BunkerProcess.run(["wal", "push", first], environment: e)
                #expect(pushed.status == 0 && pushed.stdout.contains("spooled for clinic"), "\(pushed.stdout)\(pushed.stderr)")
                // Fetch finds it whether it is still in the spool or shipped already.
                let early = try BunkerProcess.run(["wal", "fetch", name, dir + "/early"], environment: e)
                #expect(early.status == 0, "\(early.stderr)")
                #expect(FileManager.default.contents(atPath: dir + "/early") == FileManager.default.contents(atPath: first))

                // The drainer that push started ships it and empties the spool.
                let deadline = Date().addingTimeInterval(60)
                func shipped(_ file: String) -> Bool {
                    let objects = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/repo/wal")) ?? []
                    return objects.contains { $0.hasPrefix("clinic-\(file)-") } && !FileManager.default.fileExists(atPath: dir + "/spool/clinic/" + file)
                }
                while !shipped(name) && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
                #expect(shipped(name), "the drainer shipped \(name): \((try? String(contentsOfFile: dir + "/spool/clinic/.drain.log", encoding: .utf8)) ?? "")")
                while FileManager.default.fileExists(atPath: dir + "/spool/clinic/.drain.lock"), WalSpoolProbe.locked(dir + "/spool/clinic/.drain.lock"), Date() < deadline {
                    try await Task.sleep(for: .milliseconds(100))
                }

                // With no drainer running (the test holds its lock), the spool fills up; the next
                // file is archived synchronously, and the overflow is audited.
                let lock = open(dir + "/spool/clinic/.drain.lock", O_RDWR | O_CREAT, 0o600)
                #expect(flock(lock, LOCK_EX) == 0)
                var segments: [String] = []
                for _ in 0..<3 { segments.append(try completedSegment(of: cluster, into: dir + "/wal")) }
                for segment in segments.prefix(2) {
                    let spooled = try BunkerProcess.run(["wal", "push", segment], environment: e)
                    #expect(spooled.status == 0 && spooled.stdout.contains("spooled"), "\(spooled.stdout)\(spooled.stderr)")
                }
                let overflow = try BunkerProcess.run(["wal", "push", segments[2]], environment: e)
                #expect(overflow.status == 0 && overflow.stdout.contains("archived for clinic"), "\(overflow.stdout)\(overflow.stderr)")
                #expect(overflow.stderr.contains("spool of clinic is full"))
                let audit = try BunkerProcess.run(["audit", "list", "--action", "wal_spool_full", "--json"], environment: e)
                #expect(audit.stdout.contains("wal_spool_full"), "\(audit.stdout)\(audit.stderr)")
                flock(lock, LOCK_UN)
                close(lock)

                let drain = try BunkerProcess.run(["wal", "drain"], environment: e)
                #expect(drain.status == 0 && drain.stdout.contains("2 WAL files shipped"), "\(drain.stdout)\(drain.stderr)")
                for segment in segments { #expect(shipped((segment as NSString).lastPathComponent)) }
                let verify = try BunkerProcess.run(["verify", "--read-data"], environment: e)
                #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
            }
        }
    }

    /// An asynchronous push cannot know yet that the repository holds other content under the
    /// file's name: it spools it and exits 0. The drainer's refusal then moves the file out of
    /// the spool (so `wal fetch` serves the archived copy, never it), and every later push
    /// fails (exit 10) until an operator has removed it.
    @Test func aSpooledFileTheRepositoryRefusesIsSetAsideAndStopsLaterPushes() async throws {
        try await withTemporaryDirectory { dir in
            try await withPostgres { cluster in
                let e = try setUp(dir, cluster, extra: "[source.wal]\nasync = true\nspool_dir = \"\(dir)/spool\"\n")
                let segment = try completedSegment(of: cluster, into: dir + "/wal")
                let name = (segment as NSString).lastPathComponent
                let deadline = Date().addingTimeInterval(60)
                #expect(try BunkerProcess.run(["wal", "push", segment], environment: e).status == 0)
                while FileManager.default.fileExists(atPath: dir + "/spool/clinic/" + name) && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }

                var other = try #require(FileManager.default.contents(atPath: segment))
                other[100_000] ^= 0xFF
                try FileManager.default.createDirectory(atPath: dir + "/other", withIntermediateDirectories: true)
                try other.write(to: URL(fileURLWithPath: dir + "/other/" + name))
                let spooled = try BunkerProcess.run(["wal", "push", dir + "/other/" + name], environment: e)
                #expect(spooled.status == 0 && spooled.stdout.contains("spooled"), "\(spooled.stdout)\(spooled.stderr)")
                let refused = dir + "/spool/clinic/refused/" + name
                while !FileManager.default.fileExists(atPath: refused) && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
                #expect(FileManager.default.fileExists(atPath: refused) && !FileManager.default.fileExists(atPath: dir + "/spool/clinic/" + name))

                let fetched = try BunkerProcess.run(["wal", "fetch", name, dir + "/fetched"], environment: e)
                #expect(fetched.status == 0 && FileManager.default.contents(atPath: dir + "/fetched") == FileManager.default.contents(atPath: segment),
                        "the archived copy, not the refused one: \(fetched.stderr)")
                let next = try completedSegment(of: cluster, into: dir + "/wal")
                let stopped = try BunkerProcess.run(["wal", "push", next], environment: e)
                #expect(stopped.status == 10 && stopped.stderr.contains(name) && stopped.stderr.contains("refused"), "\(stopped.stdout)\(stopped.stderr)")
                try FileManager.default.removeItem(atPath: refused)
                let resumed = try BunkerProcess.run(["wal", "push", next], environment: e)
                #expect(resumed.status == 0, "\(resumed.stdout)\(resumed.stderr)")
            }
        }
    }

    @Test func anAsyncPushKilledBeforeItsFileIsInPlaceIsRetriedAndShipped() async throws {
        try await withTemporaryDirectory { dir in
            try await withPostgres { cluster in
                let e = try setUp(dir, cluster, extra: "[source.wal]\nasync = true\nspool_dir = \"\(dir)/spool\"\n")
                let segment = try completedSegment(of: cluster, into: dir + "/wal")
                let name = (segment as NSString).lastPathComponent
                let killed = try BunkerProcess.run(["wal", "push", segment], environment: e.merging(["BUNKER_FAULT_KILL": "wal-spool-before-rename"]) { $1 })
                #expect(killed.killed && killed.status == SIGKILL, "\(killed.stdout)\(killed.stderr)")
                #expect(!FileManager.default.fileExists(atPath: dir + "/spool/clinic/" + name), "no partial file under the segment's name")

                let retried = try BunkerProcess.run(["wal", "push", segment], environment: e)
                #expect(retried.status == 0 && retried.stdout.contains("spooled"), "\(retried.stdout)\(retried.stderr)")
                let deadline = Date().addingTimeInterval(60)
                while FileManager.default.fileExists(atPath: dir + "/spool/clinic/" + name) && Date() < deadline {
                    try await Task.sleep(for: .milliseconds(100))
                }
                let fetched = try BunkerProcess.run(["wal", "fetch", name, dir + "/restored"], environment: e)
                #expect(fetched.status == 0, "\(fetched.stderr)")
                #expect(FileManager.default.contents(atPath: dir + "/restored") == FileManager.default.contents(atPath: segment))
                let objects = try FileManager.default.contentsOfDirectory(atPath: dir + "/repo/wal")
                #expect(objects.contains { $0.hasPrefix("clinic-\(name)-") }, "the drainer shipped it: \(objects)")
            }
        }
    }

    @Test(arguments: ["wal-push-before-save", "storage-before-rename:2", "wal-push-after-save"])
    func aPushKilledWithSIGKILLSucceedsWhenRetried(at point: String) async throws {
        try await withTemporaryDirectory { dir in
            try await withPostgres { cluster in
                let e = try setUp(dir, cluster)
                let segment = try completedSegment(of: cluster, into: dir + "/wal")
                let name = (segment as NSString).lastPathComponent
                let killed = try BunkerProcess.run(["wal", "push", segment], environment: e.merging(["BUNKER_FAULT_KILL": point]) { $1 })
                #expect(killed.killed && killed.status == SIGKILL, "\(killed.stdout)\(killed.stderr)")

                let retried = try BunkerProcess.run(["wal", "push", segment], environment: e)
                #expect(retried.status == 0, "no false \"different content\" after a kill at \(point): \(retried.stderr)")
                #expect(retried.stdout.contains(point == "wal-push-after-save" ? "already archived, identical" : "archived for clinic"), "\(retried.stdout)")
                // restore_command as the restore writes it: the full path, --config first, --source.
                let fetched = try BunkerProcess.run(["--config", dir + "/bunker.toml", "wal", "fetch", "--source", "clinic", name, dir + "/restored"])
                #expect(fetched.status == 0, "\(fetched.stderr)")
                #expect(FileManager.default.contents(atPath: dir + "/restored") == FileManager.default.contents(atPath: segment))
                let verify = try BunkerProcess.run(["verify", "--read-data"], environment: e)
                #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
            }
        }
    }

    @Test func aClusterArchivingWithArchiveCommandHasAChainThatVerifiesAndGapsAreNamed() async throws {
        try await withTemporaryDirectory { dir in
            try await withPostgres { cluster in
                let e = try setUp(dir, cluster)
                // PostgreSQL runs archive_command as its own user: it reads the configuration and
                // the password, and writes the repository (and, on a refusal, the catalog).
                if geteuid() == 0, let pw = getpwnam("postgres") {
                    for path in [dir + "/repo", dir + "/data"] {
                        _ = try shell("chown -R \(pw.pointee.pw_uid):\(pw.pointee.pw_gid) '\(path)'")
                    }
                }
                // The lines `bunker wal setup` prints: this binary's full path, the configuration's.
                let setup = try BunkerProcess.run(["wal", "setup", "--json"], environment: e)
                #expect(setup.status == 0, "\(setup.stderr)")
                let lines = try #require(try JSONSerialization.jsonObject(with: Data(setup.stdout.utf8)) as? [String: String])
                let command = try #require(lines["archive_command"])
                #expect(command.hasPrefix("/") && command.contains("--config \(dir)/bunker.toml wal push --source clinic %p"), "\(command)")
                #expect(lines["restore_command"]?.hasSuffix("wal fetch --source clinic %f %p") == true)
                try cluster.psql("ALTER SYSTEM SET archive_mode = on")
                try cluster.psql("ALTER SYSTEM SET archive_command = '\(command)'")
                try cluster.psql("ALTER SYSTEM SET archive_timeout = '1s'")
                try cluster.restart()

                var switched: [String] = []
                for round in 1...4 {
                    try cluster.psql("CREATE TABLE IF NOT EXISTS visits (id int, note text); INSERT INTO visits SELECT i, 'visit \(round)' FROM generate_series(1, 5000) i;")
                    switched.append(try cluster.psql("SELECT pg_walfile_name(pg_current_wal_lsn())"))
                    try cluster.psql("SELECT pg_switch_wal()")
                }
                let deadline = Date().addingTimeInterval(90)
                var status = ""
                while Date() < deadline {
                    status = try cluster.psql("SELECT archived_count, coalesce(last_archived_wal, ''), failed_count, coalesce(last_failed_wal, '') FROM pg_stat_archiver")
                    let last = status.split(separator: "|").dropFirst().first.map(String.init) ?? ""
                    if last >= switched.last! && !last.isEmpty { break }
                    try await Task.sleep(for: .milliseconds(200))
                }
                let fields = status.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
                #expect(fields.count == 4 && fields[1] >= switched.last!, "archiver: \(status)\n\((try? String(contentsOfFile: cluster.directory + "/server.log", encoding: .utf8))?.suffix(3000) ?? "")")
                #expect(fields.count == 4 && fields[2] == "0", "archive_command failed: \(status)")

                let objects = try FileManager.default.contentsOfDirectory(atPath: dir + "/repo/wal")
                for name in switched {
                    #expect(objects.contains { $0.hasPrefix("clinic-\(name)-") }, "\(name) is archived: \(objects.sorted())")
                }
                let verify = try BunkerProcess.run(["verify", "--json"], environment: e)
                #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
                #expect(verify.stdout.contains("\"wal_gap\"") == false)
                let stats = try BunkerProcess.run(["stats", "--json"], environment: e)
                #expect(stats.status == 0 && stats.stdout.contains("archive_lag_seconds"), "\(stats.stdout)\(stats.stderr)")

                // A segment removed from the repository: verify names the gap.
                let middle = switched[1]
                for object in objects where object.hasPrefix("clinic-\(middle)-") {
                    try FileManager.default.removeItem(atPath: dir + "/repo/wal/" + object)
                }
                let gap = try BunkerProcess.run(["verify"], environment: e)
                #expect(gap.status == 7, "\(gap.stdout)\(gap.stderr)")
                #expect(gap.stderr.contains(middle), "\(gap.stderr)")
            }
        }
    }
}

/// Whether another process holds a drainer's lock.
enum WalSpoolProbe {
    static func locked(_ path: String) -> Bool {
        let fd = open(path, O_RDWR)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return true }
        flock(fd, LOCK_UN)
        return false
    }
}
