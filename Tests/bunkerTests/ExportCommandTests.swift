import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// `bunker export` as a user runs it: twice the same bytes, and the SHA-256 it prints is what
/// `sha256sum` prints for the file.
@Suite struct ExportCommandTests {
    @Test func exportingTwiceWritesTheSameBytesWhoseSHA256ItPrints() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 1 << 20)
            _ = try await TestRepository.create(at: dir + "/repo")
            let env = ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password, "BUNKER_DATA_DIR": dir + "/data"]
            let backup = try BunkerProcess.run(["backup", dir + "/src"], environment: env)
            #expect(backup.status == 0, "\(backup.stderr)")
            let first = try BunkerProcess.run(["export", "latest", "--zip", dir + "/a.zip", "--json"], environment: env)
            #expect(first.status == 0, "\(first.stderr)")
            let summary = try #require(try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any], "\(first.stdout)")
            let sha256 = try #require(summary["sha256"] as? String)
            // A second later: no time of the export may reach the bytes.
            try await Task.sleep(for: .milliseconds(1100))
            let second = try BunkerProcess.run(["export", "latest", "--zip", dir + "/b.zip"], environment: env)
            #expect(second.status == 0, "\(second.stderr)")
            #expect(second.stdout.contains("SHA-256: \(sha256)"), "\(second.stdout)")

            let same = try shell("cmp a.zip b.zip", in: dir)
            #expect(same.status == 0, "\(same.output)")
            let sum = try shell("sha256sum a.zip", in: dir)
            #expect(sum.output == "\(sha256)  a.zip\n")
            let test = try shell("unzip -tq a.zip", in: dir)
            #expect(test.status == 0, "\(test.output)")
            #expect((summary["zip_bytes"] as? NSNumber)?.int64Value == Int64((try FileManager.default.attributesOfItem(atPath: dir + "/a.zip")[.size] as? NSNumber)?.int64Value ?? -1))
        }
    }
}
