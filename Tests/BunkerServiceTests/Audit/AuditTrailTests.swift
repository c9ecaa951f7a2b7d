import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import GRDB
import Testing

/// A change made behind Bunker's back, with the real sqlite3 tool, and the row that
/// `verifyAudit` must name first.
struct Tampering: Sendable, CustomTestStringConvertible {
    var name: String
    /// SQL, given the rows as they are (to forge hashes where the attacker would).
    var sql: @Sendable ([AuditRecord]) -> String
    var firstBadSeq: Int64
    var says: String

    var testDescription: String { name }
}

@Suite struct AuditTrailTests {
    @Test func auditRowsAreHashChainedFromTheGenesisHash() async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalogWithFiveRows(in: dir)
            let rows = try catalog.auditRecords()
            #expect(rows.map(\.seq) == [1, 2, 3, 4, 5])
            #expect(rows[0].prevHash == AuditRecord.genesisHash)
            for (previous, row) in zip(rows, rows.dropFirst()) {
                #expect(row.prevHash == previous.hash)
            }
            for row in rows {
                #expect(row.hash == row.computedHash(previous: row.prevHash))
                #expect(row.actor == "test-admin" && row.action == "user.add" && row.outcome == .success)
                #expect(row.timestamp.hasSuffix("Z"))
            }
            let verification = try catalog.verifyAudit()
            #expect(verification.ok, "\(verification.problem ?? "")")
            #expect(verification.rows == 5 && verification.headSeq == 5 && verification.headHash == rows[4].hash)
            #expect(verification.anchors == 5, "each change is an operation whose end anchors the head")
        }
    }

    @Test func triggersRefuseUpdatesAndDeletesOfTheAuditTable() async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalogWithFiveRows(in: dir)
            let update = try sqlite3(catalog.path, "UPDATE audit SET actor = 'mallory' WHERE seq = 2;")
            #expect(update.output.contains("append-only"), "\(update.output)")
            let delete = try sqlite3(catalog.path, "DELETE FROM audit WHERE seq = 5;")
            #expect(delete.output.contains("append-only"), "\(delete.output)")
            #expect(try catalog.verifyAudit().ok)
        }
    }

    static let tamperings: [Tampering] = [
        Tampering(name: "an UPDATE of a row's actor", sql: { _ in
            "DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'mallory' WHERE seq = 3;"
        }, firstBadSeq: 3, says: "row 3 is not the row that was written"),
        Tampering(name: "a DELETE of a row", sql: { _ in
            "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = 3;"
        }, firstBadSeq: 4, says: "row 3 is missing"),
        Tampering(name: "a row inserted at the end with a made-up hash", sql: { rows in
            """
            DROP TRIGGER audit_mac_required;
            INSERT INTO audit (seq, timestamp, actor, action, target, outcome, prev_hash, hash)
            VALUES (6, '2026-12-01T00:00:00.000000000Z', 'mallory', 'restore', 'latest', 'success', '\(rows[4].hash)', '\(String(repeating: "a", count: 64))');
            """
        }, firstBadSeq: 6, says: "row 6 is not the row that was written"),
        Tampering(name: "a row inserted in the middle with a correctly computed hash", sql: { rows in
            var forged = rows[2]
            forged.actor = "mallory"
            forged.prevHash = rows[1].hash
            forged.hash = forged.computedHash(previous: forged.prevHash)
            return """
                DROP TRIGGER audit_chained; DROP TRIGGER audit_no_update; DROP TRIGGER audit_mac_required;
                UPDATE audit SET seq = seq + 100 WHERE seq >= 3;
                UPDATE audit SET seq = seq - 99 WHERE seq >= 100;
                INSERT INTO audit (seq, timestamp, actor, action, target, outcome, details, prev_hash, hash)
                VALUES (3, '\(forged.timestamp)', 'mallory', '\(forged.action)', '\(forged.target!)', 'success', '\(forged.details!)', '\(forged.prevHash)', '\(forged.hash)');
                """
        }, firstBadSeq: 3, says: "row 3 carries no MAC"),
    ]

    @Test(arguments: tamperings)
    func tamperingWithSqlite3IsDetectedAtTheFirstBadRow(_ tampering: Tampering) async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalogWithFiveRows(in: dir)
            let rows = try catalog.auditRecords()
            let run = try sqlite3(catalog.path, tampering.sql(rows))
            #expect(run.status == 0 && run.output.isEmpty, "sqlite3: \(run.output)")
            let verification = try catalog.verifyAudit()
            #expect(!verification.ok)
            #expect(verification.firstBadSeq == tampering.firstBadSeq, "\(verification.problem ?? "")")
            #expect(verification.problem?.contains(tampering.says) == true, "\(verification.problem ?? "")")
        }
    }

    @Test func aChainRewrittenWithRecomputedHashesIsCaughtByTheSignedAnchors() async throws {
        try await withTemporaryDirectory { dir in
            // Rows of a Bunker before MACs, which only the anchors protect from a rewrite.
            let catalog = try makeCatalogWithFiveRowsOfABunkerBeforeMACs(in: dir)
            // The attacker knows the algorithm: row 2 is changed and every hash after it
            // recomputed, so the chain itself is consistent again.
            var rows = try catalog.auditRecords()
            rows[1].actor = "mallory"
            for index in 1..<rows.count {
                rows[index].prevHash = rows[index - 1].hash
                rows[index].hash = rows[index].computedHash(previous: rows[index].prevHash)
            }
            let updates = rows.dropFirst().map { "UPDATE audit SET actor = '\($0.actor)', prev_hash = '\($0.prevHash)', hash = '\($0.hash)' WHERE seq = \($0.seq);" }
            let run = try sqlite3(catalog.path, "DROP TRIGGER audit_no_update;\n" + updates.joined(separator: "\n"))
            #expect(run.status == 0 && run.output.isEmpty, "sqlite3: \(run.output)")
            for row in try catalog.auditRecords() {
                #expect(row.hash == row.computedHash(previous: row.prevHash), "the rewritten chain is self-consistent")
            }

            let verification = try catalog.verifyAudit()
            #expect(!verification.ok)
            #expect(verification.firstBadSeq == 2, "\(verification.problem ?? "")")
            #expect(verification.problem?.contains("rewritten") == true, "\(verification.problem ?? "")")
        }
    }

    @Test func aTrailCutShortOrAForgedAnchorIsDetected() async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalogWithFiveRows(in: dir)
            let truncated = try verifyAfterRemovingAuditRows(from: 4, of: catalog)
            #expect(!truncated.ok && truncated.firstBadSeq == 4, "\(truncated.problem ?? "")")
            #expect(truncated.problem?.contains("rows after 3 were removed") == true, "\(truncated.problem ?? "")")

            try await withTemporaryDirectory { other in
                let second = try makeCatalogWithFiveRows(in: other)
                let rows = try second.auditRecords()
                let line = "v1 5 \(rows[4].hash) 2026-12-01T00:00:00.000000000Z \(String(repeating: "0", count: 64))\n"
                let handle = try #require(FileHandle(forWritingAtPath: other + "/data/audit-anchors.log"))
                try handle.seekToEnd()
                try handle.write(contentsOf: Data(line.utf8))
                try handle.close()
                let forged = try second.verifyAudit()
                #expect(!forged.ok)
                #expect(forged.problem?.contains("not signed") == true, "\(forged.problem ?? "")")
            }
        }
    }

    @Test func anOperationWhoseProcessDiedIsClosedAsInterruptedAtTheNextStart() async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalog(in: dir)
            let operation = try catalog.begin("backup", target: "sources:db", by: testAdmin)
            let run = try sqlite3(catalog.path, "UPDATE jobs SET pid = \(try exitedProcessID()) WHERE id = '\(operation.jobID)';")
            #expect(run.status == 0, "\(run.output)")

            let reopened = try makeCatalog(in: dir)
            let rows = try reopened.auditRecords()
            #expect(rows.map(\.outcome) == [.started, .interrupted])
            #expect(rows[1].operationSeq == operation.startSeq && rows[1].actor == "test-admin" && rows[1].action == "backup")
            #expect(try reopened.jobs().first?.state == .interrupted)
            #expect(try reopened.verifyAudit().ok)

            // A job of a live process is left running.
            let live = try reopened.begin("verify", target: "repository", by: testAdmin)
            _ = try makeCatalog(in: dir)
            #expect(try reopened.jobs().first { $0.id == live.jobID }?.state == .running)

            // A job with this process's pid but another start (pid 1 of a crashed container,
            // or a job written before start times were kept) is a dead process's job.
            let reused = try reopened.begin("backup", target: "sources:db", by: testAdmin)
            let legacy = try reopened.begin("restore", target: "latest", by: testAdmin)
            try sqlite3(catalog.path, """
                UPDATE jobs SET process_start = 'another-boot:12345' WHERE id = '\(reused.jobID)';
                UPDATE jobs SET process_start = NULL WHERE id = '\(legacy.jobID)';
                """)
            let again = try makeCatalog(in: dir)
            let states = Dictionary(uniqueKeysWithValues: try again.jobs().map { ($0.id, $0.state) })
            #expect(states[reused.jobID] == .interrupted && states[legacy.jobID] == .interrupted)
            #expect(states[live.jobID] == .running)
        }
    }

    @Test func listFiltersAndPagesAndExportWritesEveryRow() async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalogWithFiveRows(in: dir)
            try catalog.setRole("bob", .auditor, by: AuditActor(name: "carol", channel: .cli))
            var filter = AuditFilter()
            filter.action = "user"
            filter.limit = 4
            let first = try catalog.auditRecords(filter)
            #expect(first.map(\.seq) == [1, 2, 3, 4])
            filter.afterSeq = 4
            #expect(try catalog.auditRecords(filter).map(\.seq) == [5, 6])
            var byActor = AuditFilter()
            byActor.actor = "carol"
            #expect(try catalog.auditRecords(byActor).map(\.action) == ["user.role"])
            var exact = AuditFilter()
            exact.action = "user.role"
            #expect(try catalog.auditRecords(exact).map(\.seq) == [6])

            var jsonl = ""
            try catalog.exportAudit(format: .jsonl) { jsonl += $0 }
            let lines = jsonl.split(separator: "\n")
            #expect(lines.count == 6)
            let decoded = try JSONDecoder().decode(AuditRecord.self, from: Data(lines[5].utf8))
            #expect(decoded == (try catalog.auditRecords()).last)

            var csv = ""
            try catalog.exportAudit(format: .csv) { csv += $0 }
            let csvLines = csv.split(separator: "\r\n")
            #expect(csvLines.count == 7)
            #expect(csvLines[0] == "seq,timestamp,actor,action,target,outcome,reason,request_id,details,operation_seq,prev_hash,hash,mac")
            #expect(csvLines[6].hasPrefix("6,") && csvLines[6].contains(",carol,user.role,bob,success,"))
        }
    }

    @Test func aDeletedTrailingDeniedRowOrStartRowIsDetected() async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalogWithFiveRows(in: dir)
            try catalog.recordDenied("restore", target: "/api/v1/restore/x", reason: "role VIEWER is not SYSTEM_ADMIN", by: testAdmin)
            let denied = try verifyAfterRemovingAuditRows(from: 6, of: catalog)
            #expect(!denied.ok && denied.firstBadSeq == 6, "\(denied.problem ?? "")")
            #expect(denied.problem?.contains("rows after 5 were removed") == true, "\(denied.problem ?? "")")
        }
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalogWithFiveRows(in: dir)
            let operation = try catalog.begin("restore", target: "latest", by: testAdmin)
            try sqlite3(catalog.path, "DELETE FROM jobs WHERE id = '\(operation.jobID)';")
            let started = try verifyAfterRemovingAuditRows(from: 6, of: catalog)
            #expect(!started.ok && started.firstBadSeq == 6, "\(started.problem ?? "")")
        }
    }

    @Test func anchorFileCutShortTogetherWithTheRowsIsDetected() async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalogWithFiveRows(in: dir)
            try rewriteAnchorLines(in: dir) { lines in
                #expect(lines.count == 5)
                lines.removeLast(min(2, lines.count))
            }
            let verification = try verifyAfterRemovingAuditRows(from: 4, of: catalog)
            #expect(!verification.ok && verification.firstBadSeq == 4, "\(verification.problem ?? "")")
            #expect(verification.problem?.contains("cut short") == true, "\(verification.problem ?? "")")
        }
        try await withTemporaryDirectory { dir in
            // A line removed from the middle breaks the next line's chained signature.
            let catalog = try makeCatalogWithFiveRows(in: dir)
            try rewriteAnchorLines(in: dir) { lines in
                #expect(lines.count == 5)
                if lines.count > 2 { lines.remove(at: 2) }
            }
            let verification = try catalog.verifyAudit()
            #expect(!verification.ok && verification.problem?.contains("Line 3 of") == true, "\(verification.problem ?? "")")
        }
    }

    @Test func everyRowCarriesTheAuditKeysMAC() async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalogWithFiveRows(in: dir)
            let key = try auditKey(in: dir)
            for row in try catalog.auditRecords() {
                #expect(row.mac == rowMAC(row, key: key), "row \(row.seq)")
            }
            let anchors = try String(contentsOfFile: dir + "/data/audit-anchors.log", encoding: .utf8).split(separator: "\n")
            #expect(anchors.allSatisfy { $0.hasPrefix("v3 ") && $0.split(separator: " ")[4] == "1" }, "every anchor signs that MACs start at row 1: \(anchors)")
        }
    }

    static let appendedRows: [(name: String, mac: String?, says: String)] = [
        ("without a MAC", nil, "Audit row 6 carries no MAC"),
        ("with a made-up MAC", String(repeating: "ab", count: 32), "Audit row 6 carries a MAC that is not the audit key's"),
    ]

    @Test(arguments: appendedRows)
    func aCorrectlyChainedRowAppendedWithoutTheKeyIsNamedAfterTheNextCommitAnchorsIt(_ appended: (name: String, mac: String?, says: String)) async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalogWithFiveRows(in: dir)
            let rows = try catalog.auditRecords()
            // Someone who can write catalog.sqlite but not read audit.key appends the next row,
            // chained exactly as Bunker would chain it.
            var forged = rows[4]
            forged.seq = 6
            forged.timestamp = "2026-12-01T00:00:00.000000000Z"
            forged.actor = "mallory"
            forged.action = "restore"
            forged.target = "latest"
            forged.reason = "approved"
            forged.details = nil
            forged.prevHash = rows[4].hash
            forged.hash = forged.computedHash(previous: forged.prevHash)
            let run = try sqlite3(catalog.path, """
                DROP TRIGGER IF EXISTS audit_mac_required;
                INSERT INTO audit (seq, timestamp, actor, action, target, outcome, reason, prev_hash, hash, mac)
                VALUES (6, '\(forged.timestamp)', 'mallory', 'restore', 'latest', 'success', 'approved', '\(forged.prevHash)', '\(forged.hash)', \(appended.mac.map { "'\($0)'" } ?? "NULL"));
                """)
            #expect(run.status == 0 && run.output.isEmpty, "sqlite3: \(run.output)")
            // The next legitimate commit chains to the forged row and anchors it.
            try catalog.recordDenied("audit.read", target: nil, reason: "role VIEWER is not AUDITOR", by: testAdmin)
            #expect(try catalog.auditRecords().map(\.seq) == [1, 2, 3, 4, 5, 6, 7])

            let verification = try catalog.verifyAudit()
            #expect(!verification.ok)
            #expect(verification.firstBadSeq == 6, "\(verification.problem ?? "")")
            #expect(verification.problem?.contains(appended.says) == true, "\(verification.problem ?? "")")
        }
    }

    @Test func clearingEveryMACToPassAForgedRowOffAsAnOlderOneIsDetected() async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalogWithFiveRows(in: dir)
            let rows = try catalog.auditRecords()
            var forged = rows[4]
            forged.seq = 6
            forged.actor = "mallory"
            forged.prevHash = rows[4].hash
            forged.hash = forged.computedHash(previous: forged.prevHash)
            // As if the trail had been written by a Bunker before MACs.
            let run = try sqlite3(catalog.path, """
                DROP TRIGGER audit_no_update; DROP TRIGGER audit_mac_required;
                UPDATE audit SET mac = NULL;
                INSERT INTO audit (seq, timestamp, actor, action, target, outcome, details, prev_hash, hash)
                VALUES (6, '\(forged.timestamp)', 'mallory', '\(forged.action)', '\(forged.target!)', 'success', '\(forged.details!)', '\(forged.prevHash)', '\(forged.hash)');
                """)
            #expect(run.status == 0 && run.output.isEmpty, "sqlite3: \(run.output)")
            try catalog.recordDenied("audit.read", target: nil, reason: "test", by: testAdmin)

            let verification = try catalog.verifyAudit()
            #expect(!verification.ok)
            #expect(verification.firstBadSeq == 1, "the signed anchors say MACs start at row 1: \(verification.problem ?? "")")
            #expect(verification.problem?.contains("Audit row 1 carries no MAC") == true, "\(verification.problem ?? "")")
        }
    }

    @Test func rowsOfABunkerBeforeMACsStayVerifiableAndEveryRowAfterTheUpgradeNeedsOne() async throws {
        try await withTemporaryDirectory { dir in
            _ = try makeCatalogWithFiveRowsOfABunkerBeforeMACs(in: dir)
            let upgraded = try makeCatalog(in: dir)
            #expect(try upgraded.appliedMigrations().contains("v3-audit-mac"))
            let before = try upgraded.verifyAudit()
            #expect(before.ok, "\(before.problem ?? "")")
            #expect(try upgraded.auditRecords().allSatisfy { $0.mac == nil }, "older rows are left as they were")
            let last = try #require(try String(contentsOfFile: dir + "/data/audit-anchors.log", encoding: .utf8).split(separator: "\n").last)
            #expect(last.hasPrefix("v3 5 ") && last.split(separator: " ")[4] == "6", "the first start signs that MACs start after row 5: \(last)")

            try upgraded.recordDenied("audit.read", target: nil, reason: "test", by: testAdmin)
            let sixth = try #require(try upgraded.auditRecords().last)
            let key = try auditKey(in: dir)
            #expect(sixth.seq == 6 && sixth.mac == rowMAC(sixth, key: key))
            #expect(try upgraded.verifyAudit().ok)

            var forged = sixth
            forged.seq = 7
            forged.actor = "mallory"
            forged.prevHash = sixth.hash
            forged.hash = forged.computedHash(previous: forged.prevHash)
            let run = try sqlite3(upgraded.path, """
                DROP TRIGGER audit_mac_required;
                INSERT INTO audit (seq, timestamp, actor, action, outcome, reason, details, prev_hash, hash)
                VALUES (7, '\(forged.timestamp)', 'mallory', '\(forged.action)', 'denied', 'test', '\(forged.details!)', '\(forged.prevHash)', '\(forged.hash)');
                """)
            #expect(run.status == 0 && run.output.isEmpty, "sqlite3: \(run.output)")
            try upgraded.recordDenied("audit.read", target: nil, reason: "test", by: testAdmin)
            let verification = try upgraded.verifyAudit()
            #expect(!verification.ok && verification.firstBadSeq == 7, "\(verification.problem ?? "")")
            #expect(verification.problem?.contains("Audit row 7 carries no MAC") == true, "\(verification.problem ?? "")")
        }
    }

    @Test func aMissingAuditKeyIsNotRecreatedForAnExistingTrail() async throws {
        try await withTemporaryDirectory { dir in
            _ = try makeCatalogWithFiveRows(in: dir)
            try FileManager.default.removeItem(atPath: dir + "/data/audit.key")
            try FileManager.default.removeItem(atPath: dir + "/data/audit-anchors.log")
            try FileManager.default.removeItem(atPath: dir + "/data/audit-anchors.head")
            for readOnly in [false, true] {
                var options = testCatalogOptions()
                options.readOnly = readOnly
                do {
                    _ = try Catalog(dataDirectory: dir + "/data", options: options)
                    Issue.record("a catalog with rows opened without its audit key (read-only: \(readOnly))")
                } catch let error as BunkerError {
                    #expect(error.code == .auditTampered && error.message.contains("audit.key is missing"), "\(error.message)")
                }
            }
            #expect(!FileManager.default.fileExists(atPath: dir + "/data/audit.key"))
        }
    }

    @Test func theAuditKeyCanBeKeptOutsideTheDataDirectory() async throws {
        try await withTemporaryDirectory { dir in
            let configuration = try Configuration(text: """
                data_dir = "data"

                [audit]
                key_file = "keys/audit.key"
                """, file: dir + "/bunker.toml", environment: [:])
            #expect(configuration.auditKeyFile == dir + "/keys/audit.key")
            try FileManager.default.createDirectory(atPath: dir + "/keys", withIntermediateDirectories: true)
            let catalog = try configuration.openCatalog()
            try catalog.recordDenied("audit.read", target: nil, reason: "test", by: testAdmin)
            #expect(FileManager.default.fileExists(atPath: dir + "/keys/audit.key"))
            #expect(!FileManager.default.fileExists(atPath: dir + "/data/audit.key"))
            #expect(try configuration.openCatalog(readOnly: true).verifyAudit().ok)
            #expect(throws: BunkerError.self) {
                try Configuration(text: "[audit]\nkey = \"x\"", file: dir + "/bunker.toml", environment: [:])
            }
        }
    }

    @Test func aReadOnlyCatalogWritesNothing() async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalog(in: dir)
            let operation = try catalog.begin("backup", target: "sources:db", by: testAdmin)
            try sqlite3(catalog.path, "UPDATE jobs SET pid = \(try exitedProcessID()) WHERE id = '\(operation.jobID)';")
            var options = testCatalogOptions()
            options.readOnly = true
            let reader = try Catalog(dataDirectory: dir + "/data", options: options)
            #expect(try reader.verifyAudit().ok)
            #expect(try reader.auditRecords().map(\.outcome) == [.started], "a reader closes nothing")
            #expect(try reader.jobs().first?.state == .running)
            #expect(throws: BunkerError.self) { try reader.recordDenied("x", target: nil, reason: "y", by: testAdmin) }
        }
    }
}
