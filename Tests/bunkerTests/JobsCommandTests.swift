import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// `bunker jobs` lists the catalog's jobs, whichever process ran them; `bunker jobs cancel`
/// refuses what it cannot cancel with a usage error that says why.
@Suite(.serialized) struct JobsCommandTests {
    @Test func jobsListsABackupAndCancellingItOnceEndedIsAUsageError() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 1 << 20)
            _ = try await TestRepository.create(at: dir + "/repo")
            let environment = ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password, "BUNKER_DATA_DIR": dir + "/data"]
            let backup = try BunkerProcess.run(["backup", dir + "/src"], environment: environment)
            #expect(backup.status == 0, "\(backup.stderr)")

            let list = try BunkerProcess.run(["jobs", "--json"], environment: environment)
            #expect(list.status == 0, "\(list.stderr)")
            let jobs = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]], "\(list.stdout)")
            let job = try #require(jobs.first)
            #expect(job["kind"] as? String == "backup")
            #expect(job["state"] as? String == "succeeded")
            let id = try #require(job["id"] as? String)

            let human = try BunkerProcess.run(["jobs"], environment: environment)
            #expect(human.stdout.contains(id) && human.stdout.contains("succeeded"), "\(human.stdout)")

            let ended = try BunkerProcess.run(["jobs", "cancel", id], environment: environment)
            #expect(ended.status == 64, "\(ended.stderr)")
            #expect(ended.stderr.contains("has already ended"), "\(ended.stderr)")
            let unknown = try BunkerProcess.run(["jobs", "cancel", UUID().uuidString], environment: environment)
            #expect(unknown.status == 64, "\(unknown.stderr)")
            #expect(unknown.stderr.contains("bunker jobs"), "\(unknown.stderr)")
        }
    }
}
