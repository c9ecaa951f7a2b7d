import BunkerCore
import BunkerServer
import BunkerService
import BunkerTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// The Clinical Dashboard API's backup routes, their shapes compared field by field with issue 6.
@Suite struct BackupRoutesTests {
    static func isHex64(_ text: String?) -> Bool {
        guard let text else { return false }
        return text.utf8.count == 64 && text.allSatisfy(\.isHexDigit) && text == text.lowercased()
    }

    @Test func backupWaitsAndAnswersTheClinicalDashboardShape() async throws {
        try await withAPI { api in
            let body = try await api.backup(try await api.token("alice"), description: "before the upgrade")
            #expect(body.keys.sorted() == ["backup_id", "checksum", "created_at", "filename", "size_mb", "success"])
            #expect(body["success"] as? Bool == true)
            let id = try #require(body["backup_id"] as? String)
            #expect(Self.isHex64(id))
            // The ZIP's SHA-256, worked out right after the backup ([server] archive_checksum =
            // "after_backup", the default); the download test checks it against sha256sum.
            #expect((body["checksum"] as? String).map(Self.isHex64) == true, "\(body)")
            let created = try #require(body["created_at"] as? String)
            #expect(created.hasSuffix("Z"))
            let time = try #require(ISO8601DateFormatter().date(from: created))
            let expected = "backup_" + Self.compact(time) + ".zip"
            #expect(body["filename"] as? String == expected)
            let sizeMB = try #require(body["size_mb"] as? Double)
            let record = try #require(try api.catalog.backup(id: id))
            #expect(abs(sizeMB - Double(record.sizeBytes) / 1_048_576) < 0.01)
            #expect(record.description == "before the upgrade")
            #expect(record.createdByUserID == (try api.catalog.user(named: "alice"))?.id)
        }
    }

    @Test func backupsAreListedNewestFirstWithTheClinicalDashboardFields() async throws {
        try await withAPI { api in
            let alice = try await api.token("alice")
            let first = try await api.backup(alice, description: "first", type: "full")
            try await Task.sleep(for: .milliseconds(1100))
            let second = try await api.backup(alice, description: "second", type: "files")
            let list = try array(try await api.send(.get, "/api/v1/backups?limit=50", token: try await api.token("victor")))
            #expect(list.map { $0["id"] as? String } == [second["backup_id"] as? String, first["backup_id"] as? String])
            let item = try #require(list.first)
            // The Clinical Dashboard's fields, and Bunker's additions (fields may be added, none renamed).
            #expect(item.keys.sorted() == ["checksum", "created_at", "created_by", "created_by_email", "created_by_name", "description", "filename", "held", "id", "metadata", "retention_until", "size_mb"])
            #expect(item["held"] as? Bool == false)
            #expect(item["filename"] as? String == second["filename"] as? String)
            #expect(item["checksum"] as? String == second["checksum"] as? String)
            #expect(item["size_mb"] as? Double == second["size_mb"] as? Double)
            #expect(item["created_at"] as? String == second["created_at"] as? String)
            #expect(item["description"] as? String == "second")
            #expect((item["created_by"] as? NSNumber)?.int64Value == (try api.catalog.user(named: "alice"))?.id)
            #expect(item["created_by_name"] as? String == "Alice Martin")
            #expect(item["created_by_email"] as? String == "alice@clinic.example")
            let metadata = try #require(item["metadata"] as? [String: Any])
            #expect(metadata["backup_type"] as? String == "files")
            #expect(metadata["sources"] as? [String] == ["studies"])
            #expect(list.last.flatMap { ($0["metadata"] as? [String: Any])?["sources"] as? [String] } == ["app-db", "studies"])

            let one = try array(try await api.send(.get, "/api/v1/backups?limit=1", token: alice))
            #expect(one.count == 1)
            let shown = try object(try await api.send(.get, "/api/v1/backup/\(try #require(item["id"] as? String))", token: alice))
            #expect(NSDictionary(dictionary: shown) == NSDictionary(dictionary: item))
            let byPrefix = try object(try await api.send(.get, "/api/v1/backup/\(try #require(item["id"] as? String).prefix(12))", token: alice))
            #expect(byPrefix["id"] as? String == item["id"] as? String)
        }
    }

    @Test func backupsShowWhenTheRetentionPolicyCouldRemoveThem() async throws {
        try await withAPI(configure: { configuration in
            var policy = RetentionPolicy()
            policy.keepDaily = 7
            policy.minimumAge = RetentionDuration()
            configuration.retention = policy
        }) { api in
            let alice = try await api.token("alice")
            let older = try await api.backup(alice, description: "older")
            try await Task.sleep(for: .milliseconds(1100))
            let newer = try await api.backup(alice, description: "newer")
            let newerID = try #require(newer["backup_id"] as? String)
            let olderID = try #require(older["backup_id"] as? String)
            let asked = Date()
            let list = try array(try await api.send(.get, "/api/v1/backups", token: alice))
            let answered = Date()
            func until(_ id: String, in items: [[String: Any]]) throws -> Date? {
                let item = try #require(items.first { $0["id"] as? String == id })
                #expect(item.keys.contains("retention_until"))
                return (item["retention_until"] as? String).flatMap { ISO8601DateFormatter().date(from: $0) }
            }
            // keep_daily 7 keeps the newer (its day's newest) until seven more days have a backup.
            let createdAt = try #require(newer["created_at"] as? String)
            let created = try #require(ISO8601DateFormatter().date(from: createdAt))
            var utc = Calendar(identifier: .gregorian)
            utc.timeZone = TimeZone(identifier: "UTC")!
            let expected = try #require(utc.date(byAdding: .day, value: 7, to: utc.startOfDay(for: created)))
            #expect(try until(newerID, in: list) == expected)
            // No rule keeps the older one: the next cleanup may remove it.
            let olderUntil = try #require(try until(olderID, in: list))
            #expect(olderUntil >= asked.addingTimeInterval(-1) && olderUntil <= answered.addingTimeInterval(1))

            _ = try await api.service.addHold(to: newerID, reason: "case 2026-114")
            let held = try object(try await api.send(.get, "/api/v1/backup/\(newerID)", token: alice))
            #expect(held["held"] as? Bool == true)
            #expect(held["retention_until"] is NSNull)
        }
    }

    @Test func asyncBackupAnswers202WithAJobWhoseStateEndsSucceeded() async throws {
        try await withAPI { api in
            let alice = try await api.token("alice")
            let response = try await api.send(.post, "/api/v1/backup", token: alice, json: ["description": "nightly", "backup_type": "database", "async": true])
            #expect(response.status == .accepted)
            let body = try object(response)
            let job = try #require(body["job_id"] as? String)
            #expect(response.headers[.location] == "/api/v1/jobs/\(job)")
            var state: [String: Any] = [:]
            for _ in 0..<1200 {
                state = try object(try await api.send(.get, "/api/v1/jobs/\(job)", token: alice))
                if state["state"] as? String != "running" { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(state["state"] as? String == "succeeded")
            #expect(state["kind"] as? String == "backup")
            #expect(state["progress"] is [String: Any])
            let id = try #require(state["backup_id"] as? String)
            #expect(try api.catalog.backup(id: id)?.backupType == "database")
        }
    }

    @Test func pointInTimeRestoreNeedsADataDirectoryAndAPhysicalBaseBackup() async throws {
        try await withAPI { api in
            let alice = try await api.token("alice")
            let id = try #require(try await api.backup(alice)["backup_id"] as? String)
            let signed: [String: Any] = ["password": "alice-password", "reason": "ticket 4712", "target_time": "2026-12-03 14:00:00+00"]
            let noDirectory = try await api.send(.post, "/api/v1/restore/\(id)", token: alice, json: signed)
            #expect(noDirectory.status == .badRequest)
            #expect(String(buffer: noDirectory.body).contains("pgdata"), "\(String(buffer: noDirectory.body))")
            let noBaseBackup = try await api.send(.post, "/api/v1/restore/\(id)", token: alice, json: signed.merging(["pgdata": api.studies + "/pgdata"]) { $1 })
            #expect(noBaseBackup.status == .badRequest)
            #expect(String(buffer: noBaseBackup.body).contains("no physical PostgreSQL base backup"), "\(String(buffer: noBaseBackup.body))")
            #expect(!FileManager.default.fileExists(atPath: api.studies + "/pgdata"))
        }
    }

    /// `[server] restore_signature = "optional"`: the Clinical Dashboard backup guide's body
    /// restores, the audit trail says it was not signed, and a given password is still checked.
    @Test func anOptionalSignatureLetsTheClinicalDashboardBodyRestore() async throws {
        try await withAPI(configure: { $0.server.restoreSignature = .optional }) { api in
            let alice = try await api.token("alice")
            let id = try #require(try await api.backup(alice)["backup_id"] as? String)
            let note = api.studies + "/studies/2024/patient-001/note-1.txt"
            let original = try Data(contentsOf: URL(fileURLWithPath: note))
            try Data("overwritten by mistake".utf8).write(to: URL(fileURLWithPath: note))

            let wrong = try await api.send(.post, "/api/v1/restore/\(id)", token: alice, json: ["create_safety_backup": true, "password": "not-her-password", "reason": "ticket 4713"])
            #expect(wrong.status == .forbidden)
            #expect(try object(wrong)["error"] as? String == "signature_invalid")
            #expect(try Data(contentsOf: URL(fileURLWithPath: note)) != original)

            let response = try await api.send(.post, "/api/v1/restore/\(id)", token: alice, json: ["create_safety_backup": true])
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            #expect(try object(response)["safety_backup_id"] as? String != nil)
            #expect(try Data(contentsOf: URL(fileURLWithPath: note)) == original)
            let start = try #require(try api.catalog.auditRecords(AuditFilter(action: "restore")).first { $0.outcome == .started })
            #expect(start.actor == "alice")
            #expect(start.detailValues["signature"] == "none: not signed ([server] restore_signature = optional)")
            #expect(start.detailValues["signed_by"] == nil)
        }
    }

    @Test func restoreIsAnElectronicSignatureRecordedWithNameTimeAndMeaning() async throws {
        try await withAPI { api in
            let alice = try await api.token("alice")
            let id = try #require(try await api.backup(alice)["backup_id"] as? String)
            let note = api.studies + "/studies/2024/patient-001/note-1.txt"
            let original = try Data(contentsOf: URL(fileURLWithPath: note))
            try Data("overwritten by mistake".utf8).write(to: URL(fileURLWithPath: note))

            let unsigned = try await api.send(.post, "/api/v1/restore/\(id)", token: alice, json: ["reason": "ticket 4711"])
            #expect(unsigned.status == .forbidden)
            #expect(try object(unsigned)["error"] as? String == "signature_required")
            // The Clinical Dashboard backup guide's own body: refused as unsigned, not as lacking a reason.
            let guide = try await api.send(.post, "/api/v1/restore/\(id)", token: alice, json: ["create_safety_backup": true])
            #expect(guide.status == .forbidden, "\(String(buffer: guide.body))")
            #expect(try object(guide)["error"] as? String == "signature_required")
            let wrong = try await api.send(.post, "/api/v1/restore/\(id)", token: alice, json: ["password": "not-her-password", "reason": "ticket 4711"])
            #expect(wrong.status == .forbidden)
            #expect(try object(wrong)["error"] as? String == "signature_invalid")
            let noReason = try await api.send(.post, "/api/v1/restore/\(id)", token: alice, json: ["password": "alice-password"])
            #expect(noReason.status == .badRequest)
            let denied = try api.catalog.auditRecords(AuditFilter(action: "esign")).filter { $0.outcome == .denied }
            #expect(denied.count == 3)
            #expect(try Data(contentsOf: URL(fileURLWithPath: note)) != original, "nothing was restored yet")
            #expect(try api.catalog.auditRecords(AuditFilter(action: "restore")).isEmpty)

            let response = try await api.send(.post, "/api/v1/restore/\(id)", token: alice,
                                              json: ["create_safety_backup": true, "password": "alice-password", "reason": "ticket 4711: note overwritten"])
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            let body = try object(response)
            #expect(body.keys.sorted() == ["backup_filename", "backup_id", "restored_at", "safety_backup_id", "success"])
            #expect(body["success"] as? Bool == true)
            #expect(body["backup_id"] as? String == id)
            let record = try #require(try api.catalog.backup(id: id))
            #expect(body["backup_filename"] as? String == "backup_" + Self.compact(record.createdAt) + ".zip")
            #expect((body["restored_at"] as? String).flatMap { ISO8601DateFormatter().date(from: $0) } != nil)
            let safety = try #require(body["safety_backup_id"] as? String)
            #expect(try api.catalog.backup(id: safety) != nil)
            #expect(try Data(contentsOf: URL(fileURLWithPath: note)) == original)

            let start = try #require(try api.catalog.auditRecords(AuditFilter(action: "restore")).first { $0.outcome == .started })
            #expect(start.actor == "alice")
            #expect(start.reason == "ticket 4711: note overwritten")
            #expect(start.timestamp.hasSuffix("Z"))
            #expect(start.detailValues["signed_by"] == "Alice Martin")
            #expect(start.detailValues["signature_meaning"] == "approved restore")
            #expect(start.detailValues["signed_at"]?.hasSuffix("Z") == true)
        }
    }

    @Test func wrongSignaturePasswordsCountTowardsTheLockout() async throws {
        try await withAPI { api in
            let alice = try await api.token("alice")
            let id = try #require(try await api.backup(alice)["backup_id"] as? String)
            for attempt in 1...5 {
                let wrong = try await api.send(.post, "/api/v1/restore/\(id)", token: alice, json: ["password": "guess-\(attempt)", "reason": "guessing"])
                #expect(wrong.status == .forbidden)
                #expect(try object(wrong)["error"] as? String == "signature_invalid")
            }
            let locked = try await api.send(.post, "/api/v1/restore/\(id)", token: alice, json: ["password": "alice-password", "reason": "now right"])
            #expect(locked.status == .forbidden)
            #expect(try object(locked)["error"] as? String == "account_locked")
            #expect(try api.catalog.user(named: "alice")?.isLocked(at: Date()) == true)
            // A locked account answers like a wrong password (which names exist stays hidden);
            // the lock is in the audit trail.
            #expect(try await api.send(.post, "/api/v1/auth/login", json: ["username": "alice", "password": "alice-password"]).status == .unauthorized)
            #expect(try api.catalog.auditRecords(AuditFilter(action: "restore")).isEmpty)
        }
    }

    @Test func downloadIsTheExportZipWhoseChecksumsPass() async throws {
        try await withAPI { api in
            let alice = try await api.token("alice")
            let created = try await api.backup(alice)
            let id = try #require(created["backup_id"] as? String)
            let response = try await api.send(.get, "/api/v1/backup/\(id)/download", token: alice)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/zip")
            // Known since the backup: sent before the body.
            let promised = try #require(created["checksum"] as? String)
            #expect(response.headers[HTTPField.Name("X-Checksum-SHA256")!] == promised)
            let filename = try #require(created["filename"] as? String)
            #expect(response.headers[.contentDisposition] == "attachment; filename=\"\(filename)\"")
            let out = api.dir + "/download"
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try Data(buffer: response.body).write(to: URL(fileURLWithPath: out + "/" + filename))
            // What the user types: the file's SHA-256 is the API's checksum of the backup.
            let shown = try object(try await api.send(.get, "/api/v1/backup/\(id)", token: alice))
            let checksum = try #require(shown["checksum"] as? String)
            #expect(checksum == promised, "POST /backup answered the checksum the ZIP has")
            let sum = try shell("sha256sum '\(filename)'", in: out)
            #expect(sum.output == "\(checksum)  \(filename)\n", "\(sum.output)")
            let listed = try array(try await api.send(.get, "/api/v1/backups", token: try await api.token("victor")))
            #expect(listed.first { $0["id"] as? String == id }?["checksum"] as? String == checksum)
            // The audit trail's backup row names no other "checksum" than the one the API gives:
            // it records the snapshot's root listing as `tree`.
            let row = try #require(try api.catalog.auditRecords(AuditFilter(action: "backup")).last { $0.target == id && $0.outcome == .success })
            #expect(row.detailValues["checksum"] == nil, "\(row.detailValues)")
            #expect(row.detailValues["tree"]?.count == 64, "\(row.detailValues)")
            let test = try shell("unzip -tq '\(filename)'", in: out)
            #expect(test.status == 0, "\(test.output)")
            // -^ keeps control characters (the sample tree has a name with a tab) instead of escaping them.
            let unzip = try shell("unzip -q -^ '\(filename)' && sha256sum -c --quiet SHA256SUMS", in: out)
            #expect(unzip.status == 0, "\(unzip.output)")
            #expect(FileManager.default.fileExists(atPath: out + "/metadata.json"))
            // The sample tree's links come back as links.
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/studies/docs/link-relative") == "../studies/2024/image-large.dcm")
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/studies/docs/link-dangling") == "does/not/exist")

            // The next download is the same bytes, and says their digest before sending them.
            let again = try await api.send(.get, "/api/v1/backup/\(id)/download", token: alice)
            #expect(again.status == .ok)
            #expect(Data(buffer: again.body) == Data(buffer: response.body))
            #expect(again.headers[HTTPField.Name("X-Checksum-SHA256")!] == checksum)
            let digest = try #require(ID(hex: checksum)).bytes
            #expect(again.headers[HTTPField.Name("Repr-Digest")!] == "sha-256=:\(Data(digest).base64EncodedString()):")
            // `bunker export` of the same backup writes a file of the same bytes.
            let exported = try await api.service.export(snapshot: id, to: out + "/exported.zip")
            #expect(exported.sha256 == checksum)
            let same = try shell("cmp exported.zip '\(filename)'", in: out)
            #expect(same.status == 0, "\(same.output)")
        }
    }

    @Test func aDownloadStreamsWithoutWritingTheArchiveToTheServersDisk() async throws {
        try await withAPI { api in
            let alice = try await api.token("alice")
            let created = try await api.backup(alice, type: "files")
            let id = try #require(created["backup_id"] as? String)
            // No scratch directory can be made: an archive written there first could not be.
            let scratch = try api.service.configuration.scratchDirectory()
            try FileManager.default.removeItem(atPath: scratch)
            try Data("not a directory".utf8).write(to: URL(fileURLWithPath: scratch))
            let response = try await api.send(.get, "/api/v1/backup/\(id)/download", token: alice)
            #expect(response.status == .ok, "\(String(buffer: response.body).prefix(300))")
            let out = api.dir + "/download"
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try Data(buffer: response.body).write(to: URL(fileURLWithPath: out + "/backup.zip"))
            let unzip = try shell("unzip -q -^ backup.zip && sha256sum -c --quiet SHA256SUMS", in: out)
            #expect(unzip.status == 0, "\(unzip.output)")
            let end = try #require(try api.catalog.auditRecords(AuditFilter(action: "export")).last)
            #expect(end.outcome == .success && end.actor == "alice" && end.detailValues["file"] == "-")
        }
    }

    @Test func aDownloadWhoseClientStopsReadingIsCutOffAndAuditedAsFailed() async throws {
        var limits = ServerLimits()
        limits.idleTimeout = .seconds(1)
        try await withAPI(.live, largeFileSize: 24 << 20, limits: limits) { api in
            let alice = try await api.token("alice")
            let id = try #require(try await api.backup(alice, type: "files")["backup_id"] as? String)
            // A client that asks for the archive and then reads nothing: the socket's buffers
            // fill, and the export would hold the repository's shared lock for as long.
            let client = try RawConnection(port: try #require(api.port), receiveBuffer: 4096)
            #expect(client.send("GET /api/v1/backup/\(id)/download HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(alice)\r\n\r\n"))
            var end: AuditRecord?
            for _ in 0..<60 where end == nil {
                try await Task.sleep(for: .milliseconds(500))
                end = try api.catalog.auditRecords(AuditFilter(action: "export")).first { $0.outcome != .started }
            }
            let row = try #require(end, "the export ended")
            #expect(row.outcome == .failure && row.actor == "alice", "\(row.outcome): \(row.detailValues)")
            #expect(row.detailValues["error"]?.contains("stopped reading") == true, "\(row.detailValues)")
        }
    }

    @Test func aDownloadThatWouldNotMatchTheDigestInItsHeaderIsCutAndTheTrueDigestRecorded() async throws {
        try await withAPI(.live) { api in
            let alice = try await api.token("alice")
            let id = try #require(try await api.backup(alice)["backup_id"] as? String)
            // A recorded digest the export no longer gives (as if the bytes had changed).
            let wrong = String(repeating: "0", count: 64)
            try api.catalog.recordArchive(snapshotID: id, sha256: wrong, format: api.service.exportFormat)
            let port = try #require(api.port)
            let curl = "curl -sS -o backup.zip -D headers.txt -H 'Authorization: Bearer \(alice)' http://127.0.0.1:\(port)/api/v1/backup/\(id)/download"
            let cut = try shell(curl, in: api.dir)
            #expect(cut.status != 0, "curl sees the body end early: \(cut.output)")
            let headers = try String(contentsOfFile: api.dir + "/headers.txt", encoding: .utf8).lowercased()
            #expect(headers.contains("x-checksum-sha256: \(wrong)"), "\(headers)")
            // The export recorded what it gave; the next download is whole and matches it.
            let checksum = try #require(try object(try await api.send(.get, "/api/v1/backup/\(id)", token: alice))["checksum"] as? String)
            #expect(checksum != wrong)
            let whole = try shell(curl + " && sha256sum backup.zip", in: api.dir)
            #expect(whole.status == 0, "\(whole.output)")
            #expect(whole.output.hasSuffix("\(checksum)  backup.zip\n"), "\(whole.output)")
            #expect(try String(contentsOfFile: api.dir + "/headers.txt", encoding: .utf8).lowercased().contains("x-checksum-sha256: \(checksum)"))
        }
    }

    @Test func verifyAnswersValidForAnIntactBackupAndInvalidForADamagedOne() async throws {
        try await withAPI { api in
            let alice = try await api.token("alice")
            let id = try #require(try await api.backup(alice)["backup_id"] as? String)
            let good = try object(try await api.send(.post, "/api/v1/backup/\(id)/verify", token: alice))
            #expect(good.keys.sorted() == ["backup_id", "message", "valid"])
            #expect(good["backup_id"] as? String == id)
            #expect(good["valid"] as? Bool == true)
            // The verify ran as a job of the runner: listed, with the packs it read.
            let olga = try await api.token("olga")
            let jobs = try JSONSerialization.jsonObject(with: Data(buffer: try await api.send(.get, "/api/v1/jobs", token: olga).body)) as? [[String: Any]]
            let verifyJob = try #require(jobs?.first { $0["kind"] as? String == "verify" }, "\(jobs ?? [])")
            #expect(verifyJob["state"] as? String == "succeeded")
            let progress = try #require(verifyJob["progress"] as? [String: Any], "\(verifyJob)")
            #expect((progress["files_total"] as? Int ?? 0) > 0 && progress["files_done"] as? Int == progress["files_total"] as? Int, "\(progress)")
            try flipByteInLargestPack(of: api.dir + "/repo")
            let bad = try object(try await api.send(.post, "/api/v1/backup/\(id)/verify", token: alice))
            #expect(bad["valid"] as? Bool == false)
            #expect((bad["message"] as? String)?.contains("damaged") == true)
            let ends = try api.catalog.auditRecords(AuditFilter(action: "verify")).filter { $0.outcome != .started }
            #expect(ends.map(\.outcome) == [.success, .failure])
        }
    }

    @Test func statsAndMetricsDescribeTheRepositoryAndTheOperations() async throws {
        // The repository shares the host's disk: how full that is must not decide the health below.
        try await withAPI(configure: { $0.notifications.minFreeSpacePercent = 0 }) { api in
            let alice = try await api.token("alice")
            let id = try #require(try await api.backup(alice)["backup_id"] as? String)
            _ = try await api.send(.post, "/api/v1/backup/\(id)/verify", token: alice)
            let victor = try await api.token("victor")
            let stats = try object(try await api.send(.get, "/api/v1/stats", token: victor))
            #expect(stats["snapshots"] as? Int == 1)
            #expect((stats["stored_bytes"] as? Int ?? 0) > 0)
            let metrics = try await api.send(.get, "/api/v1/metrics", token: victor)
            #expect(metrics.status == .ok)
            #expect(metrics.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
            let lines = String(buffer: metrics.body).split(separator: "\n").map(String.init)
            #expect(lines.contains("bunker_backups_total{outcome=\"success\"} 1"))
            #expect(lines.contains("bunker_backups_total{outcome=\"failure\"} 0"))
            #expect(lines.contains("bunker_restores_total{outcome=\"success\"} 0"))
            #expect(lines.contains("bunker_verifies_total{outcome=\"success\"} 1"))
            #expect(lines.contains("bunker_last_verify_success 1"))
            #expect(lines.contains { $0.hasPrefix("bunker_last_backup_success_timestamp_seconds{source=\"app-db\"} ") })
            #expect(lines.contains { $0.hasPrefix("bunker_last_backup_success_timestamp_seconds{source=\"studies\"} ") })
            #expect(lines.contains("bunker_operation_duration_seconds_count{kind=\"backup\"} 1"))
            #expect(lines.contains { $0.hasPrefix("bunker_backup_bytes_added_total ") && !$0.hasSuffix(" 0") })
            #expect(lines.contains { $0.hasPrefix("bunker_repository_size_bytes ") && !$0.hasSuffix(" 0") })
            #expect(lines.contains { $0.hasPrefix("bunker_repository_free_bytes ") })
            #expect(lines.contains { $0.hasPrefix("bunker_scheduler_next_run_timestamp_seconds{job=\"backup:database\",cron=\"0 2 * * *\"} ") },
                    "the default schedules' next runs")

            // Health in detail, for administrators and auditors only.
            let health = try await api.send(.get, "/api/v1/health/detail", token: try await api.token("olga"))
            #expect(health.status == .ok)
            let detail = try object(health)
            #expect(detail["status"] as? String == "ok", "\(detail)")
            #expect((detail["last_verify"] as? [String: Any])?["outcome"] as? String == "success")
            #expect((detail["scheduler"] as? [[String: Any]])?.count == 5)
            #expect(try await api.send(.get, "/api/v1/health/detail", token: victor).status == .forbidden)
        }
    }

    @Test func cleanupAppliesTheRetentionPolicyAndIsAudited() async throws {
        try await withAPI { api in
            let alice = try await api.token("alice")
            _ = try await api.backup(alice)
            let response = try await api.send(.post, "/api/v1/cleanup", token: alice, json: ["dry_run": true])
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            let body = try object(response)
            #expect(body.keys.sorted() == ["bytes_freed", "dry_run", "forgotten", "kept", "packs_deleted", "success"])
            #expect(body["dry_run"] as? Bool == true)
            #expect(body["kept"] as? Int == 1)
            let end = try #require(try api.catalog.auditRecords(AuditFilter(action: "cleanup")).last)
            #expect(end.outcome == .success && end.actor == "alice")
            #expect(end.detailValues["removed_count"] == "0")
        }
    }

    @Test func badIdsAndBodiesAreJSON4xxNever500() async throws {
        try await withAPI { api in
            let alice = try await api.token("alice")
            let cases: [(HTTPRequest.Method, String, String?, Int)] = [
                (.get, "/api/v1/backup/..%2F..%2Fetc%2Fpasswd", nil, 400),
                (.get, "/api/v1/backup/ZZZZZZZZZZ", nil, 400),
                (.get, "/api/v1/backup/deadbeefdeadbeef", nil, 404),
                (.get, "/api/v1/backup/deadbeef/download", nil, 404),
                (.post, "/api/v1/restore/..", "{}", 400),
                (.get, "/api/v1/jobs/not-a-job", nil, 400),
                (.get, "/api/v1/jobs/\(UUID().uuidString.lowercased())", nil, 404),
                (.get, "/api/v1/backups?limit=0", nil, 400),
                (.get, "/api/v1/backups?limit=many", nil, 400),
                (.get, "/api/v1/backups?limit=null&limit=null", nil, 400),
                (.get, "/api/v1/audit?until=null&until=null", nil, 400),
                (.get, "/api/v1/audit/export?format=csv&format=csv", nil, 400),
                (.post, "/api/v1/backup", "{", 400),
                (.post, "/api/v1/backup", "{\"backup_type\": \"everything\"}", 400),
                (.post, "/api/v1/backup", "{\"description\": 5}", 400),
                (.post, "/api/v1/backup", "{\"async\": \"yes\"}", 400),
                (.post, "/api/v1/backup", "null", 400),
                (.post, "/api/v1/backup", "[1]", 400),
            ]
            for (method, uri, body, status) in cases {
                let response = try await api.send(method, uri, token: alice, raw: body)
                #expect(response.status.code == status, "\(method) \(uri) \(body ?? "")")
                let answer = try object(response)
                #expect(answer.keys.sorted() == ["error", "message"], "\(method) \(uri)")
                // Messages people can act on: never a decoder's "Type mismatch for `` key".
                #expect((answer["message"] as? String)?.contains("``") == false, "\(method) \(uri): \(answer)")
            }
            let everything = try object(try await api.send(.post, "/api/v1/backup", token: alice, raw: "{\"backup_type\": \"everything\"}"))
            #expect((everything["message"] as? String)?.hasPrefix("\"everything\" is not one of the values") == true, "\(everything)")
            let many = try object(try await api.send(.get, "/api/v1/backups?limit=many", token: alice))
            #expect((many["message"] as? String)?.contains("limit must be a whole number") == true, "\(many)")
        }
    }

    /// `YYYYMMDD_HHMMSS` in UTC.
    static func compact(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd_HHmmss"
        return formatter.string(from: date)
    }
}

/// Flips one byte in the middle of the largest pack of a local repository.
func flipByteInLargestPack(of repo: String) throws {
    let files = FileManager.default.enumerator(atPath: repo + "/data")!.compactMap { $0 as? String }
    let sized = files.compactMap { name -> (String, Int)? in
        let path = repo + "/data/" + name
        guard let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue, size > 0 else { return nil }
        return (path, size)
    }
    let (path, size) = try #require(sized.max { $0.1 < $1.1 })
    let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    try handle.seek(toOffset: UInt64(size / 2))
    let byte = try #require(try handle.read(upToCount: 1)).first!
    try handle.seek(toOffset: UInt64(size / 2))
    try handle.write(contentsOf: Data([byte ^ 0xFF]))
}
