import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Testing

/// A configuration with one file source, a repository and a data directory under `dir`.
private func configure(_ dir: String) async throws -> [String: String] {
    try TreeGenerator.makeSampleTree(at: dir + "/studies", largeFileSize: 256 << 10)
    _ = try await TestRepository.create(at: dir + "/repo")
    try """
        data_dir = "\(dir)/data"

        [repository]
        path = "\(dir)/repo"

        [[source]]
        name = "studies"
        kind = "files"
        path = "\(dir)/studies"
        """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
    return ["BUNKER_CONFIG": dir + "/bunker.toml", "BUNKER_PASSWORD": TestRepository.password]
}

private func auditRows(_ environment: [String: String]) throws -> [[String: Any]] {
    let list = try BunkerProcess.run(["audit", "list", "--json"], environment: environment)
    #expect(list.status == 0, "\(list.stderr)")
    return try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
}

/// The number of audit rows, read with the real sqlite3 tool (opening no Bunker catalog).
private func auditRowCount(_ database: String) throws -> Int? {
    let sqlite = Process()
    sqlite.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
    sqlite.arguments = [database, "SELECT count(*) FROM audit;"]
    let pipe = Pipe()
    sqlite.standardOutput = pipe
    try sqlite.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    sqlite.waitUntilExit()
    return Int(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
}

@Suite(.serialized) struct AuditCommandTests {
    @Test func aCommandLineBackupWritesStartAndEndRowsAsTheLocalUser() async throws {
        try await withTemporaryDirectory { dir in
            let e = try await configure(dir)
            let backup = try BunkerProcess.run(["backup", "--json"], environment: e)
            #expect(backup.status == 0, "\(backup.stderr)")
            let snapshot = try #require(try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any])["snapshot_id"] as? String

            let rows = try auditRows(e)
            #expect(rows.map { $0["action"] as? String } == ["backup", "backup"])
            #expect(rows.map { $0["outcome"] as? String } == ["started", "success"])
            let me = AuditActor.localUser().name
            #expect(rows.allSatisfy { $0["actor"] as? String == me }, "actor is the local user \(me): \(rows)")
            #expect(rows[1]["operation_seq"] as? Int == 1)
            #expect(rows[1]["target"] as? String == snapshot)
            #expect((rows[0]["details"] as? String)?.contains("\"via\":\"cli\"") == true)

            let verify = try BunkerProcess.run(["audit", "verify"], environment: e)
            #expect(verify.status == 0, "\(verify.stderr)")
            #expect(verify.stdout.contains("Audit trail intact: 2 rows"))

            let csv = try BunkerProcess.run(["audit", "export", "--format", "csv"], environment: e)
            #expect(csv.stdout.split(separator: "\r\n").count == 3)

            // Someone edits the trail with sqlite3: verify fails, names the row, exits 9.
            let sqlite = Process()
            sqlite.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
            sqlite.arguments = [dir + "/data/catalog.sqlite", "DROP TRIGGER audit_no_update; UPDATE audit SET outcome = 'failure' WHERE seq = 2;"]
            try sqlite.run()
            sqlite.waitUntilExit()
            #expect(sqlite.terminationStatus == 0)
            let tampered = try BunkerProcess.run(["audit", "verify"], environment: e)
            #expect(tampered.status == 9)
            #expect(tampered.stderr.contains("Audit row 2 is not the row that was written"), "\(tampered.stderr)")
        }
    }

    @Test func verifyNamesARowAppendedWithoutTheAuditKeyAndExits9() async throws {
        try await withTemporaryDirectory { dir in
            let e = try await configure(dir)
            #expect(try BunkerProcess.run(["backup", "--quiet"], environment: e).status == 0)
            var options = Catalog.Options()
            options.readOnly = true
            let rows = try Catalog(dataDirectory: dir + "/data", options: options).auditRecords()
            var forged = rows[1]
            forged.seq = 3
            forged.actor = "mallory"
            forged.prevHash = rows[1].hash
            forged.hash = forged.computedHash(previous: forged.prevHash)
            // Written with sqlite3 by someone who cannot read audit.key, chained like Bunker's own.
            let sqlite = Process()
            sqlite.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
            sqlite.arguments = [dir + "/data/catalog.sqlite", """
                DROP TRIGGER audit_mac_required;
                INSERT INTO audit (seq, timestamp, actor, action, target, outcome, details, operation_seq, prev_hash, hash)
                VALUES (3, '\(forged.timestamp)', 'mallory', 'backup', '\(forged.target!)', 'success', '\(forged.details!)', 1, '\(forged.prevHash)', '\(forged.hash)');
                """]
            try sqlite.run()
            sqlite.waitUntilExit()
            #expect(sqlite.terminationStatus == 0)
            // The next command's rows chain to it, and its anchor names them all.
            #expect(try BunkerProcess.run(["backup", "--quiet"], environment: e).status == 0)

            let verify = try BunkerProcess.run(["audit", "verify"], environment: e)
            #expect(verify.status == 9, "\(verify.stdout) \(verify.stderr)")
            #expect(verify.stderr.contains("Audit row 3 carries no MAC"), "\(verify.stderr)")
            let json = try BunkerProcess.run(["audit", "verify", "--json"], environment: e)
            let result = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            #expect(result["first_bad_seq"] as? Int == 3 && result["ok"] as? Bool == false)
        }
    }

    @Test func aBackupKilledMidwayIsClosedAsInterruptedAtTheNextStart() async throws {
        try await withTemporaryDirectory { dir in
            let e = try await configure(dir)
            let killed = try BunkerProcess.run(["backup"], environment: e.merging(["BUNKER_FAULT_KILL": "backup-before-snapshot"]) { $1 })
            #expect(killed.killed && killed.status == SIGKILL, "\(killed.stderr)")

            // verify reads only: it neither closes the dead process's operation nor anchors.
            let anchors = try String(contentsOfFile: dir + "/data/audit-anchors.log", encoding: .utf8)
            let readOnly = try BunkerProcess.run(["audit", "verify", "--json"], environment: e)
            #expect(readOnly.status == 0, "\(readOnly.stdout) \(readOnly.stderr)")
            #expect(try auditRowCount(dir + "/data/catalog.sqlite") == 1)
            #expect(try String(contentsOfFile: dir + "/data/audit-anchors.log", encoding: .utf8) == anchors)

            // The next command to open the catalog closes the dead process's operation.
            let rows = try auditRows(e)
            #expect(rows.map { $0["outcome"] as? String } == ["started", "interrupted"])
            #expect(rows[1]["action"] as? String == "backup" && rows[1]["operation_seq"] as? Int == 1)
            #expect(rows[1]["actor"] as? String == AuditActor.localUser().name)
            let verify = try BunkerProcess.run(["audit", "verify", "--json"], environment: e)
            #expect(verify.status == 0, "\(verify.stdout)")
        }
    }

    @Test func verifyRefusesATrailWhoseKeyWasDeletedAndDoesNotMakeANewOne() async throws {
        try await withTemporaryDirectory { dir in
            let e = try await configure(dir)
            let backup = try BunkerProcess.run(["backup"], environment: e)
            #expect(backup.status == 0, "\(backup.stderr)")
            for file in ["audit.key", "audit-anchors.log", "audit-anchors.head"] {
                try FileManager.default.removeItem(atPath: dir + "/data/" + file)
            }
            let verify = try BunkerProcess.run(["audit", "verify"], environment: e)
            #expect(verify.status == 9, "\(verify.stdout) \(verify.stderr)")
            #expect(verify.stderr.contains("audit.key is missing"), "\(verify.stderr)")
            let list = try BunkerProcess.run(["audit", "list"], environment: e)
            #expect(list.status == 9, "no command makes a new key for an existing trail: \(list.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/data/audit.key"))
        }
    }

    @Test func userCommandsAddListChangeRoleAndDisable() async throws {
        try await withTemporaryDirectory { dir in
            let e = try await configure(dir)
            let add = try BunkerProcess.run(["user", "add", "alice", "--full-name", "Alice Martin", "--role", "SYSTEM_ADMIN", "--json"],
                                            environment: e.merging(["BUNKER_USER_PASSWORD": "alice-password"]) { $1 })
            #expect(add.status == 0, "\(add.stderr)")
            #expect(!add.stdout.contains("$2b$"), "the hash is never printed")
            #expect(try BunkerProcess.run(["user", "role", "alice", "AUDITOR"], environment: e).status == 0)
            #expect(try BunkerProcess.run(["user", "disable", "alice"], environment: e).status == 0)
            let missing = try BunkerProcess.run(["user", "disable", "nobody"], environment: e)
            #expect(missing.status == 1 && missing.stderr.contains("no user named nobody"))

            let list = try BunkerProcess.run(["user", "list", "--json"], environment: e)
            let users = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
            #expect(users.count == 1)
            #expect(users[0]["role"] as? String == "AUDITOR" && users[0]["active"] as? Bool == false)
            let rows = try auditRows(e)
            #expect(rows.map { $0["action"] as? String } == ["user.add", "user.role", "user.disable"])
        }
    }
}
