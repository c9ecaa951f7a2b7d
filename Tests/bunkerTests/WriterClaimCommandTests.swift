import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// Every CLI command runs through the job runner: a second writer of the same data directory is
/// told "busy" (exit 6) or waits with --retry-lock, `bunker jobs` shows a running command's
/// progress, and `bunker jobs cancel` stops it.
@Suite(.serialized) struct WriterClaimCommandTests {
    /// A `bunker` process started in the background, held at a fault point until resumed.
    struct Held {
        let pid: pid_t
        let log: String
        let resume: String

        init(_ arguments: [String], at point: String, environment: [String: String], dir: String, name: String) throws {
            log = dir + "/\(name).log"
            resume = dir + "/\(name).resume"
            var environment = environment
            environment["BUNKER_FAULT_PAUSE"] = point
            environment["BUNKER_FAULT_RESUME"] = resume
            pid = try spawn(BunkerProcess.executable, arguments, environment: environment, outputFile: log)
        }

        /// Waits until the process is held at its fault point.
        func waitUntilHeld() throws {
            for _ in 0..<3000 {
                if FileManager.default.fileExists(atPath: resume + ".paused") { return }
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    throw FixtureError("the held process ended before its fault point: \(output)")
                }
                usleep(20_000)
            }
            throw FixtureError("the held process never reached its fault point: \(output)")
        }

        func release() { FileManager.default.createFile(atPath: resume, contents: nil) }

        func finish() throws -> Int32 { try waitForExit(pid, "bunker") }

        var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
    }

    func jobs(_ environment: [String: String]) throws -> [[String: Any]] {
        let list = try BunkerProcess.run(["jobs", "--json"], environment: environment)
        guard list.status == 0, let jobs = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]] else {
            throw FixtureError("bunker jobs failed: \(list.stderr)\(list.stdout)")
        }
        return jobs
    }

    func setUp(_ dir: String) async throws -> [String: String] {
        try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 4 << 20)
        _ = try await TestRepository.create(at: dir + "/repo")
        return ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password, "BUNKER_DATA_DIR": dir + "/data"]
    }

    @Test func aSecondWriterIsBusyOrWaitsAndNeverRunsBesideTheFirst() async throws {
        try await withTemporaryDirectory { dir in
            let environment = try await setUp(dir)
            let first = try Held(["backup", dir + "/src"], at: "backup-before-snapshot", environment: environment, dir: dir, name: "first")
            defer { kill(first.pid, SIGKILL) }
            try first.waitUntilHeld()

            // While it runs: `bunker jobs` shows it running, with what it has read so far.
            let running = try #require(try jobs(environment).first)
            #expect(running["state"] as? String == "running")
            for _ in 0..<100 where (try jobs(environment).first?["progress"] as? [String: Any])?["files_done"] == nil {
                usleep(50_000)
            }
            let progress = try #require(try jobs(environment).first?["progress"] as? [String: Any], "the running backup never published its progress")
            #expect((progress["files_done"] as? Int ?? 0) > 0, "\(progress)")

            // Another writer is told at once who holds the repository, and writes nothing.
            for command in [["backup", dir + "/src"], ["forget", "--keep-last", "1"], ["prune"]] {
                let busy = try BunkerProcess.run(command, environment: environment)
                #expect(busy.status == 6, "\(command): \(busy.stderr)")
                #expect(busy.stderr.contains("busy") && busy.stderr.contains("a backup by"), "\(busy.stderr)")
            }
            // A reader runs beside it.
            let verify = try BunkerProcess.run(["verify"], environment: environment)
            #expect(verify.status == 0, "\(verify.stderr)")

            // With --retry-lock the second waits, and starts only once the first has ended.
            let second = try spawn(BunkerProcess.executable, ["backup", "--retry-lock", "2m", dir + "/src"], environment: environment, outputFile: dir + "/second.log")
            usleep(500_000)
            first.release()
            #expect(try first.finish() == 0, "\(first.output)")
            #expect(try waitForExit(second, "bunker") == 0, "\((try? String(contentsOfFile: dir + "/second.log", encoding: .utf8)) ?? "")")

            let backups = try jobs(environment).filter { $0["kind"] as? String == "backup" }
            #expect(backups.count == 2 && backups.allSatisfy { $0["state"] as? String == "succeeded" }, "\(backups)")
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            func date(_ job: [String: Any], _ key: String) -> Date? {
                (job[key] as? String).flatMap { formatter.date(from: $0) ?? ISO8601DateFormatter().date(from: $0) }
            }
            let newer = try #require(date(backups[0], "started_at"))
            let olderEnd = try #require(date(backups[1], "finished_at"))
            #expect(newer >= olderEnd, "the waiting backup started at \(newer), before the first ended at \(olderEnd)")
        }
    }

    @Test func jobsCancelStopsARunningCommandAndTheRepositoryStaysWhole() async throws {
        try await withTemporaryDirectory { dir in
            let environment = try await setUp(dir)
            let held = try Held(["backup", dir + "/src"], at: "backup-after-pack", environment: environment, dir: dir, name: "held")
            defer { kill(held.pid, SIGKILL) }
            try held.waitUntilHeld()
            let id = try #require(try jobs(environment).first?["id"] as? String)

            let cancel = try BunkerProcess.run(["jobs", "cancel", id], environment: environment)
            #expect(cancel.status == 0, "\(cancel.stderr)")
            // The held process sees the request within a second or two; give it ample time, then
            // let it go on to its next safe point.
            try await Task.sleep(for: .seconds(5))
            held.release()
            let status = try held.finish()
            #expect(status != 0, "a cancelled backup exited 0: \(held.output)")
            #expect(held.output.contains("error: The operation was cancelled"), "\(held.output)")
            #expect(!held.output.contains("CancellationError"), "\(held.output)")

            let job = try #require(try jobs(environment).first { $0["id"] as? String == id })
            #expect(job["state"] as? String == "failed", "\(job)")
            #expect((job["message"] as? String ?? "").contains("cancelled"), "\(job)")
            let snapshots = try BunkerProcess.run(["snapshots", "--json"], environment: environment)
            let listed = try JSONSerialization.jsonObject(with: Data(snapshots.stdout.utf8)) as? [Any]
            #expect(listed?.isEmpty == true, "the cancelled backup left a snapshot: \(snapshots.stdout)")

            let verify = try BunkerProcess.run(["verify"], environment: environment)
            #expect(verify.status == 0, "\(verify.stderr)")
            let again = try BunkerProcess.run(["backup", dir + "/src"], environment: environment)
            #expect(again.status == 0, "\(again.stderr)")
        }
    }
}
