import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Testing

/// The export ZIP, unpacked with the real `unzip` and checked with the real `sha256sum`.
@Suite struct ExportTests {
    /// Backs up three plain paths whose names clash with the archive's own files or with each
    /// other once made safe, exports the snapshot, unpacks it into `<dir>/out`; the summary.
    private func exportClashingNames(in dir: String) async throws -> ExportSummary {
        let plain = dir + "/plain"
        let tree = plain + "/tree"
        try FileManager.default.createDirectory(atPath: tree + "/Docs", withIntermediateDirectories: true)
        try "mine\n".write(toFile: plain + "/metadata.json", atomically: true, encoding: .utf8)
        try "not sums\n".write(toFile: plain + "/SHA256SUMS", atomically: true, encoding: .utf8)
        try "backslash\n".write(toFile: tree + "/..\\..\\escaped.txt", atomically: true, encoding: .utf8)
        try "underscore\n".write(toFile: tree + "/.._.._escaped.txt", atomically: true, encoding: .utf8)
        try "in Docs\n".write(toFile: tree + "/Docs/note.txt", atomically: true, encoding: .utf8)
        try "target\n".write(toFile: tree + "/target.txt", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: tree + "/link", withDestinationPath: "target.txt")
        try FileManager.default.createSymbolicLink(atPath: tree + "/docs", withDestinationPath: "/etc")

        let service = try await makeService(in: dir, sources: "")
        _ = try await service.backup(paths: BackupRequest(paths: [plain + "/metadata.json", plain + "/SHA256SUMS", tree]), by: testAdmin)
        let summary = try await service.export(snapshot: "latest", to: dir + "/out.zip", by: testAdmin)
        try FileManager.default.createDirectory(atPath: dir + "/out", withIntermediateDirectories: true)
        let unzip = try shell("unzip -q '\(dir)/out.zip' -d '\(dir)/out'")
        #expect(unzip.status == 0, "\(unzip.output)")
        return summary
    }

    @Test func treeEntriesNamedLikeBunkersOwnFilesAreRenamedAndListed() async throws {
        try await withTemporaryDirectory { dir in
            let summary = try await exportClashingNames(in: dir)
            let out = dir + "/out"
            let metadata = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/metadata.json"))) as? [String: Any])
            #expect(metadata["snapshot_id"] as? String == summary.snapshotID, "metadata.json is Bunker's own")
            #expect(try String(contentsOfFile: out + "/metadata.json~1", encoding: .utf8) == "mine\n")
            #expect(try String(contentsOfFile: out + "/SHA256SUMS~1", encoding: .utf8) == "not sums\n")
            let check = try shell("sha256sum -c --quiet SHA256SUMS", in: out)
            #expect(check.status == 0, "\(check.output)")
            let renamed = try #require(metadata["renamed"] as? [[String: String]])
            #expect(renamed.contains(["path": "metadata.json~1", "original": "metadata.json"]))
            #expect(renamed.contains(["path": "SHA256SUMS~1", "original": "SHA256SUMS"]))
        }
    }

    @Test func backslashesAreMadeSafeAndNoTwoEntriesDifferOnlyInCase() async throws {
        try await withTemporaryDirectory { dir in
            let summary = try await exportClashingNames(in: dir)
            let names = try shell("unzip -Z1 '\(dir)/out.zip'").output.split(separator: "\n").map(String.init)
            #expect(!names.contains { $0.contains("\\") }, "\(names)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/escaped.txt"))
            let out = dir + "/out/tree/"
            #expect(try String(contentsOfFile: out + ".._.._escaped.txt", encoding: .utf8) == "backslash\n")
            #expect(try String(contentsOfFile: out + ".._.._escaped.txt~1", encoding: .utf8) == "underscore\n")
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "docs~1") == "/etc", "docs would be written through Docs elsewhere")
            #expect(try String(contentsOfFile: out + "Docs/note.txt", encoding: .utf8) == "in Docs\n")
            #expect(summary.renamed.map(\.original).sorted() == ["SHA256SUMS", "metadata.json", "tree/..\\..\\escaped.txt", "tree/.._.._escaped.txt", "tree/docs"])
        }
    }

    @Test func symbolicLinksAreKeptAsZipSymlinksAndListedInTheMetadata() async throws {
        try await withTemporaryDirectory { dir in
            let summary = try await exportClashingNames(in: dir)
            let out = dir + "/out"
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/tree/link") == "target.txt")
            #expect(try String(contentsOfFile: out + "/tree/link", encoding: .utf8) == "target\n")
            #expect(summary.symlinks.map { "\($0.path) -> \($0.target)" }.sorted() == ["tree/docs~1 -> /etc", "tree/link -> target.txt"])
            let metadata = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/metadata.json"))) as? [String: Any])
            let links = try #require(metadata["symlinks"] as? [[String: String]])
            #expect(links.contains(["path": "tree/link", "target": "target.txt"]))
            let sums = try String(contentsOfFile: out + "/SHA256SUMS", encoding: .utf8)
            #expect(!sums.contains("tree/link"), "a link has no content of its own to check")
        }
    }
}
