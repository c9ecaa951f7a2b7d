import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Synchronization
import Testing

/// The export ZIP is the same bytes every time, its compressible files are deflated, and its
/// SHA-256 is the one `sha256sum` prints for it: checked with the real `sha256sum`, `unzip` and
/// Python's `zipfile`, as a user holding the file would.
@Suite struct ExportChecksumTests {
    /// A service with an SQLite database and a files source holding a compressible report larger
    /// than deflate's blocks and an incompressible (random) image, backed up once.
    private func backedUp(in dir: String) async throws -> BunkerService {
        try makeDatabase(at: dir + "/app.db", rows: 300)
        try FileManager.default.createDirectory(atPath: dir + "/studies/2024", withIntermediateDirectories: true)
        let report = (1...20_000).map { "line \($0): blood pressure normal, no findings\n" }.joined()
        try report.write(toFile: dir + "/studies/2024/report.txt", atomically: true, encoding: .utf8)
        var random = SystemRandomNumberGenerator()
        try Data((0..<300_000).map { _ in UInt8.random(in: 0...255, using: &random) }).write(to: URL(fileURLWithPath: dir + "/studies/2024/image.jpg"))
        let service = try await makeService(in: dir, sources: """
            [[source]]
            name = "app-db"
            kind = "sqlite"
            path = "\(dir)/app.db"

            [[source]]
            name = "studies"
            kind = "files"
            path = "\(dir)/studies"
            """)
        _ = try await service.backup(SourceBackupRequest())
        return service
    }

    /// Python's zipfile: each entry's name and compression method (0 stored, 8 deflated), after
    /// reading every entry back and checking its CRC (`testzip`).
    private func methods(of zip: String) throws -> [String: Int] {
        let script = """
            import json, sys, zipfile
            z = zipfile.ZipFile(sys.argv[1])
            bad = z.testzip()
            if bad: sys.exit("bad entry: " + bad)
            print(json.dumps({i.filename: i.compress_type for i in z.infolist()}))
            """
        try script.write(toFile: zip + ".py", atomically: true, encoding: .utf8)
        let run = try shell("python3 '\(zip).py' '\(zip)'")
        #expect(run.status == 0, "\(run.output)")
        return try JSONDecoder().decode([String: Int].self, from: Data(run.output.utf8))
    }

    @Test func theSameSnapshotExportsToTheSameBytesWhoseSHA256SumMatches() async throws {
        try await withTemporaryDirectory { dir in
            let service = try await backedUp(in: dir)
            let first = try await service.export(snapshot: "latest", to: dir + "/first.zip", by: testAdmin)
            // Another second: nothing of the export's own time may reach the bytes.
            try await Task.sleep(for: .milliseconds(1100))
            let collected = Mutex(Data())
            let second = try await service.export(snapshot: "latest", by: testAdmin) { data in collected.withLock { $0.append(data) } }
            let streamed = collected.withLock { $0 }
            #expect(FileManager.default.contents(atPath: dir + "/first.zip") == streamed)
            #expect(first.sha256 == second.sha256)
            #expect(first.zipBytes == UInt64(streamed.count))

            let sum = try shell("sha256sum first.zip", in: dir)
            #expect(sum.status == 0)
            #expect(sum.output == "\(first.sha256)  first.zip\n")
            let test = try shell("unzip -t -q first.zip", in: dir)
            #expect(test.status == 0, "\(test.output)")
            try FileManager.default.createDirectory(atPath: dir + "/out", withIntermediateDirectories: true)
            let check = try shell("unzip -q ../first.zip && sha256sum -c --quiet SHA256SUMS", in: dir + "/out")
            #expect(check.status == 0, "\(check.output)")
            let metadata = try String(contentsOfFile: dir + "/out/metadata.json", encoding: .utf8)
            #expect(!metadata.contains("exported_at"), "the time of the export is in no entry")
        }
    }

    @Test func compressibleFilesAreDeflatedAndIncompressibleOnesStored() async throws {
        try await withTemporaryDirectory { dir in
            let service = try await backedUp(in: dir)
            let summary = try await service.export(snapshot: "latest", to: dir + "/backup.zip", by: testAdmin)
            let methods = try methods(of: dir + "/backup.zip")
            #expect(methods["studies/2024/report.txt"] == 8)
            #expect(methods["studies/2024/image.jpg"] == 0)
            #expect(methods["database.sql"] == 8)
            #expect(methods["metadata.json"] == 8)
            #expect(methods["studies/2024/"] == 0, "a directory holds nothing to deflate")
            #expect(summary.zipBytes < summary.bytes, "the report and the SQL shrink")
            try FileManager.default.createDirectory(atPath: dir + "/out", withIntermediateDirectories: true)
            let unzip = try shell("unzip -q ../backup.zip && cmp studies/2024/report.txt '\(dir)/studies/2024/report.txt' && cmp studies/2024/image.jpg '\(dir)/studies/2024/image.jpg'", in: dir + "/out")
            #expect(unzip.status == 0, "\(unzip.output)")
        }
    }

    /// `[server] archive_checksum = "on_export"`: nothing is worked out after the backup, and the
    /// checksum is unknown (null in the API) until the first export records it.
    @Test func onExportTheChecksumIsUnknownUntilTheFirstExport() async throws {
        try await withTemporaryDirectory { dir in
            try makeDatabase(at: dir + "/app.db", rows: 10)
            let service = try await makeService(in: dir, sources: """
                [server]
                archive_checksum = "on_export"

                [[source]]
                name = "app-db"
                kind = "sqlite"
                path = "\(dir)/app.db"
                """)
            let id = try await service.backup(SourceBackupRequest()).snapshotID.hex
            #expect(service.archiveChecksum(ofSnapshot: id) == nil)
            let summary = try await service.export(snapshot: id, to: dir + "/backup.zip", by: testAdmin)
            #expect(service.archiveChecksum(ofSnapshot: id) == summary.sha256)
            #expect(throws: BunkerError.self) {
                _ = try Configuration(text: "[server]\narchive_checksum = \"sometimes\"\n", file: dir + "/bad.toml", environment: [:])
            }
        }
    }

    @Test func theArchiveChecksumIsRecordedForTheFormatItWasWrittenIn() async throws {
        try await withTemporaryDirectory { dir in
            let service = try await backedUp(in: dir)
            let id = try await service.repository.findSnapshot("latest").id.hex
            // Worked out right after the backup (the default), and what the export then writes.
            let before = try #require(try service.catalog().backup(id: id))
            let recorded = try #require(service.archiveChecksum(of: before), "recorded after the backup")
            let summary = try await service.export(snapshot: "latest", to: dir + "/backup.zip", by: testAdmin)
            #expect(recorded == summary.sha256)
            let after = try #require(try service.catalog().backup(id: id))
            #expect(service.archiveChecksum(of: after) == summary.sha256)
            #expect(after.archiveFormat == service.exportFormat)

            // Another deflate level writes other bytes: the recorded checksum does not hold for it.
            let other = BunkerService(
                configuration: try Configuration(
                    text: try String(contentsOfFile: dir + "/bunker.toml", encoding: .utf8), file: dir + "/bunker.toml",
                    environment: ["BACKUP_COMPRESSION_LEVEL": "9"]),
                repository: service.repository)
            #expect(other.exportDeflateLevel == 9 && service.exportDeflateLevel == 3)
            #expect(other.archiveChecksum(of: after) == nil)
            let redone = try await other.export(snapshot: "latest", to: dir + "/level9.zip", by: testAdmin)
            #expect(redone.sha256 != summary.sha256)
            let sum = try shell("sha256sum level9.zip", in: dir)
            #expect(sum.output == "\(redone.sha256)  level9.zip\n")
            #expect(other.archiveChecksum(of: try #require(try other.catalog().backup(id: id))) == redone.sha256)
        }
    }
}
