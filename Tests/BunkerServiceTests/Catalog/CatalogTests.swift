import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import GRDB
import Testing

@Suite struct CatalogTests {
    @Test func migrationsCreateTheSchemaWithItsConstraints() async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalog(in: dir)
            #expect(try catalog.appliedMigrations() == ["v1-audit", "v1-backups", "v1-jobs", "v1-users", "v2-jobs-process-start", "v3-audit-mac", "v3-users-token-generation", "v4-jobs-cancel-requested", "v5-jobs-progress", "v6-backups-archive-checksum", "v7-service-tokens", "v8-revoked-sessions"])
            let tables = try sqlite3(catalog.path, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name;").output
            for table in ["audit", "backups", "jobs", "users"] {
                #expect(tables.split(separator: "\n").contains(Substring(table)), "table \(table) in \(tables)")
            }
            for secret in ["catalog.sqlite", "audit.key"] {
                let mode = try FileManager.default.attributesOfItem(atPath: dir + "/data/" + secret)[.posixPermissions] as? NSNumber
                #expect(mode?.intValue == 0o600, "\(secret) is private")
            }
            // The schema, not only Bunker, refuses a role that does not exist.
            let badRole = try sqlite3(catalog.path, """
                INSERT INTO users (username, full_name, role, password_hash, created_at, updated_at, password_changed_at)
                VALUES ('x', 'X', 'ROOT', '$2b$04$abc', '2026-01-01', '2026-01-01', '2026-01-01');
                """)
            #expect(badRole.output.contains("CHECK constraint failed"), "\(badRole.output)")
            // An export ZIP's checksum is 64 lowercase hex digits or nothing.
            let hex = String(repeating: "ab", count: 32)
            func insert(_ archive: String) throws -> (status: Int32, output: String) {
                try sqlite3(catalog.path, """
                    INSERT INTO backups (snapshot_id, created_by, size_bytes, stored_bytes, file_count, checksum, created_at, hostname, archive_sha256)
                    VALUES (hex(randomblob(32)), 'x', 0, 0, 0, '\(hex)', '2026-01-01', 'h', \(archive));
                    """)
            }
            let upper = try insert("'\(hex.uppercased())'")
            #expect(upper.output.contains("CHECK constraint failed"), "\(upper.output)")
            let short = try insert("'abc'")
            #expect(short.output.contains("CHECK constraint failed"), "\(short.output)")
            for good in ["'\(hex)'", "NULL"] {
                let row = try insert(good)
                #expect(row.status == 0 && !row.output.contains("constraint"), "\(good): \(row.output)")
            }
            // Opening it again migrates nothing and keeps the key.
            let key = try String(contentsOfFile: dir + "/data/audit.key", encoding: .utf8)
            _ = try makeCatalog(in: dir)
            #expect(try String(contentsOfFile: dir + "/data/audit.key", encoding: .utf8) == key)
        }
    }

    @Test func backupMetadataIsRecordedWithItsEndRowAndRebuiltFromTheRepository() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/studies", largeFileSize: 64 << 10)
            let service = try await makeService(in: dir, sources: """
                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/studies"
                """)
            let alice = AuditActor(name: "alice", channel: .api, requestID: "req-1")
            var request = SourceBackupRequest(type: .files)
            request.description = "before the upgrade"
            let result = try await service.backup(request, by: alice)

            let record = try #require(try service.catalog().backup(id: result.snapshotID.hex))
            #expect(record.createdBy == "alice")
            #expect(record.description == "before the upgrade")
            #expect(record.backupType == "files")
            #expect(record.checksum == result.snapshot.tree.hex)
            #expect(record.sizeBytes == Int64(result.snapshot.summary!.totalBytes) && record.sizeBytes > 0)
            let rows = try service.catalog().auditRecords()
            #expect(rows.map(\.outcome) == [.started, .success])
            #expect(rows[1].target == result.snapshotID.hex && rows[1].operationSeq == rows[0].seq)
            #expect(rows.allSatisfy { $0.actor == "alice" && $0.requestID == "req-1" })

            // The catalog is lost: a new one learns the backup again from the repository.
            removeTree(dir + "/data")
            let fresh = BunkerService(configuration: service.configuration, repository: service.repository)
            #expect(try fresh.catalog().backups().isEmpty)
            #expect(try await fresh.rebuildCatalog(by: testAdmin) == 1)
            let rebuilt = try #require(try fresh.catalog().backup(id: result.snapshotID.hex))
            #expect(rebuilt.createdBy.hasSuffix("(rebuilt)"))
            #expect(rebuilt.checksum == record.checksum && rebuilt.sizeBytes == record.sizeBytes)
            #expect(try fresh.catalog().auditRecords().map(\.action) == ["catalog.rebuild"])
            #expect(try await fresh.rebuildCatalog(by: testAdmin) == 0, "a second rebuild adds nothing")
        }
    }

    @Test func aDataDirectoryThatARestoreWouldOverwriteIsRefused() throws {
        let text = """
            data_dir = "/srv/studies/.bunker"

            [[source]]
            name = "studies"
            kind = "files"
            path = "/srv/studies"
            """
        // Refused as the configuration is read: `init` and `snapshots` open no catalog.
        let error = #expect(throws: BunkerError.self) { try Configuration(text: text, file: "/etc/bunker.toml", environment: [:]) }
        #expect(error?.message.contains("inside source studies") == true, "\(error?.message ?? "")")
        let beside = try Configuration(text: text.replacingOccurrences(of: "/srv/studies/.bunker", with: "/srv/studies-bunker"), file: "/etc/bunker.toml", environment: [:])
        try beside.checkDataDirectoryIsOutsideSources()
    }

    @Test func aDataDirectoryInsideASourceNamedThroughASymlinkIsRefused() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/srv/studies", withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: dir + "/studies-link", withDestinationPath: dir + "/srv/studies")
            try FileManager.default.createSymbolicLink(atPath: dir + "/data-link", withDestinationPath: dir + "/srv/studies/.bunker")
            for (dataDir, sourcePath) in [(dir + "/srv/studies/.bunker", dir + "/studies-link"), (dir + "/data-link", dir + "/srv/studies")] {
                #expect(throws: BunkerError.self, "\(dataDir) in \(sourcePath)") {
                    try Configuration(text: """
                        data_dir = "\(dataDir)"

                        [[source]]
                        name = "studies"
                        kind = "files"
                        path = "\(sourcePath)"
                        """, file: dir + "/bunker.toml", environment: [:])
                }
            }
            let beside = try Configuration(text: """
                data_dir = "\(dir)/srv/bunker"

                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/studies-link"
                """, file: dir + "/bunker.toml", environment: [:])
            try beside.checkDataDirectoryIsOutsideSources()
        }
    }
}

@Suite struct AuditedOperationTests {
    @Test func anInPlaceRestoreAuditsItsReasonAndItsSafetyBackupInsideIt() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/studies", largeFileSize: 64 << 10)
            let service = try await makeService(in: dir, sources: """
                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/studies"
                """)
            let backup = try await service.backup(SourceBackupRequest(), by: testAdmin)
            var request = SourceRestoreRequest(snapshot: backup.snapshotID.hex)
            request.reason = "ticket 4711"
            let outcome = try await service.restore(request, by: testAdmin)

            let rows = try service.catalog().auditRecords()
            #expect(rows.map { "\($0.action) \($0.outcome.rawValue)" } == [
                "backup started", "backup success",
                "restore started", "backup started", "backup success", "restore success",
            ])
            #expect(rows[2].reason == "ticket 4711")
            #expect(rows[3].reason?.hasPrefix("safety copy before restoring snapshot") == true)
            #expect(rows[4].operationSeq == 4 && rows[5].operationSeq == 3)
            #expect(rows[5].detailValues["safety_snapshot"] == outcome.safetySnapshotID)
            #expect(try service.catalog().backups().count == 2, "the safety snapshot is in the catalog too")
            #expect(try service.catalog().jobs().allSatisfy { $0.state == .succeeded })
        }
    }

    @Test func verifyDrillAndExportAreEachAuditedWithTheirResult() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/studies", largeFileSize: 256 << 10)
            let service = try await makeService(in: dir, sources: """
                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/studies"
                """)
            let backup = try await service.backup(SourceBackupRequest(), by: testAdmin)
            _ = try await service.verify(readData: true, by: testAdmin)
            let drill = try await service.drill(snapshot: nil, by: testAdmin)
            let export = try await service.export(snapshot: "latest", to: dir + "/out.zip", by: testAdmin)
            _ = try damageLargestPack(in: dir + "/repo")
            let damaged = try await service.verify(readData: true, by: testAdmin)
            #expect(!damaged.ok)

            let ends = try service.catalog().auditRecords().filter { $0.operationSeq != nil }
            #expect(ends.map { "\($0.action) \($0.outcome.rawValue)" } == ["backup success", "verify success", "drill success", "export success", "verify failure"])
            #expect(ends[2].target == backup.snapshotID.hex && ends[2].detailValues["report"] == drill.reportPath)
            #expect(ends[3].detailValues["file"] == export.file)
            #expect(ends[4].detailValues["errors"] == String(damaged.errors.count))
        }
    }

    @Test func aFailedOperationEndsWithOutcomeFailureAndItsError() async throws {
        try await withTemporaryDirectory { dir in
            let service = try await makeService(in: dir, sources: "")
            await #expect(throws: BunkerError.self) {
                _ = try await service.restore(SourceRestoreRequest(snapshot: "deadbeef"), by: testAdmin)
            }
            let rows = try service.catalog().auditRecords()
            #expect(rows.map(\.outcome) == [.started, .failure])
            #expect(rows[1].detailValues["error"]?.contains("deadbeef") == true, "\(rows[1].details ?? "")")
            #expect(try service.catalog().jobs().first?.state == .failed)
        }
    }

    @Test func aBackupWhoseEndRowCannotBeWrittenStillSucceedsAndIsLaterClosedAsInterrupted() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/studies", withIntermediateDirectories: true)
            try TreeGenerator.writeRandomFile(dir + "/studies/scan.dcm", size: 16 << 10, seed: 1)
            let service = try await makeService(in: dir, sources: """
                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/studies"
                """)
            let catalog = try service.catalog()
            // The end row's transaction fails (as on a full disk): every job update is refused.
            try sqlite3(catalog.path, "CREATE TRIGGER jobs_fail BEFORE UPDATE ON jobs BEGIN SELECT RAISE(ABORT, 'disk full'); END;")
            let result = try await service.backup(SourceBackupRequest(), by: testAdmin)
            #expect(try await service.repository.snapshots().map(\.id) == [result.snapshotID])
            #expect(try catalog.auditRecords().map(\.outcome) == [.started])
            #expect(try catalog.jobs().first?.state == .running)
        }
    }
}

@Suite struct CatalogConcurrencyTests {
    @Test func twoConnectionsWritingAtOnceKeepTheChainGapFree() async throws {
        try await withTemporaryDirectory { dir in
            let first = try makeCatalog(in: dir)
            let second = try makeCatalog(in: dir)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, catalog) in [first, second].enumerated() {
                    group.addTask {
                        for n in 0..<20 {
                            let operation = try catalog.begin("verify", target: "writer \(index) #\(n)", by: testAdmin)
                            try catalog.finish(operation, outcome: .success)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let rows = try first.auditRecords(AuditFilter(limit: 1000))
            #expect(rows.map(\.seq) == Array(1...80))
            let verification = try second.verifyAudit()
            #expect(verification.ok, "\(verification.problem ?? "")")
        }
    }

    @Test func everyCommitIsAnchoredInAChainOfSignedLines() async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalog(in: dir)
            for n in 1...4 {
                try catalog.recordDenied("audit.read", target: "/api/v1/audit", reason: "attempt \(n)", by: testAdmin)
            }
            let anchors = try String(contentsOfFile: dir + "/data/audit-anchors.log", encoding: .utf8).split(separator: "\n")
            #expect(anchors.map { $0.split(separator: " ")[1] } == ["1", "2", "3", "4"])
            #expect(anchors.allSatisfy { $0.hasPrefix("v3 ") })
            let head = try String(contentsOfFile: dir + "/data/audit-anchors.head", encoding: .utf8).split(separator: " ")
            #expect(head[1] == "4" && head[2] == anchors[3].split(separator: " ")[5])
            try catalog.writeAnchor()
            let afterStop = try String(contentsOfFile: dir + "/data/audit-anchors.log", encoding: .utf8).split(separator: "\n")
            #expect(afterStop.count == 4, "an anchored head is not anchored twice")
            #expect(try catalog.verifyAudit().ok)
        }
    }

    @Test func theCatalogItsWalFilesAndTheDataDirectoryArePrivate() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            let catalog = try makeCatalog(in: dir)
            try catalog.recordDenied("audit.read", target: nil, reason: "test", by: testAdmin)
            func mode(_ path: String) throws -> Int {
                try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
            }
            #expect(try mode(dir + "/data") == 0o700, "an open data directory is made private")
            for file in ["catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm", "audit.key", "audit-anchors.log", "audit-anchors.head"] {
                #expect(try mode(dir + "/data/" + file) == 0o600, "\(file)")
            }
        }
    }

    @Test func aCatalogFromANewerBunkerIsRefused() async throws {
        try await withTemporaryDirectory { dir in
            let catalog = try makeCatalog(in: dir)
            try sqlite3(catalog.path, "INSERT INTO grdb_migrations (identifier) VALUES ('v9-from-the-future');")
            do {
                _ = try makeCatalog(in: dir)
                Issue.record("a newer catalog was opened")
            } catch let error as BunkerError {
                #expect(error.code == .unsupportedFormat && error.message.contains("upgrade Bunker"))
            }
        }
    }
}
