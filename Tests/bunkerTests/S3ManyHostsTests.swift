import BunkerCore
import BunkerS3
import BunkerTesting
import Foundation
import Testing

/// Many hosts, one repository: `bunker` processes with their own host names
/// (`BUNKER_HOSTNAME`) and data directories share one S3 repository (SeaweedFS).
@Suite(.serialized) struct S3ManyHostsTests {
    /// A `bunker` process started and not waited for; its output goes to files.
    private final class Running {
        let process = Process()
        let output: String
        init(_ arguments: [String], environment: [String: String], output: String) throws {
            self.output = output
            process.executableURL = URL(fileURLWithPath: BunkerProcess.executable)
            process.arguments = arguments
            var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": NSTemporaryDirectory()]
            for (k, v) in environment { env[k] = v }
            process.environment = env
            FileManager.default.createFile(atPath: output + ".out", contents: nil)
            FileManager.default.createFile(atPath: output + ".err", contents: nil)
            process.standardOutput = FileHandle(forWritingAtPath: output + ".out")
            process.standardError = FileHandle(forWritingAtPath: output + ".err")
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }

        func wait() -> (status: Int32, stdout: String, stderr: String) {
            process.waitUntilExit()
            let read = { (path: String) in (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
            return (process.terminationStatus, read(output + ".out"), read(output + ".err"))
        }
    }

    private func dataAdded(_ stdout: String) -> Int? {
        let object = try? JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any]
        return (object?["summary"] as? [String: Any])?["data_added"] as? Int
    }

    @Test func twoHostsBackUpAtOnceShareDataAndPruneLeavesAWritingHostAlone() async throws {
        try await withSeaweedFS { server in
            try await withTemporaryDirectory { dir in
                let location = "s3://\(server.bucket)/shared"
                let storage = try S3Backend.open(location, environment: S3Environment(server.awsEnvironment))
                _ = try await TestRepository.create(storage: storage)
                func host(_ name: String) -> [String: String] {
                    var e = server.awsEnvironment
                    e["BUNKER_REPOSITORY"] = location
                    e["BUNKER_PASSWORD"] = TestRepository.password
                    e["BUNKER_DATA_DIR"] = dir + "/\(name)-data"
                    e["BUNKER_HOSTNAME"] = name
                    return e
                }
                for (name, seed) in [("host-a", 1), ("host-b", 2)] {
                    try FileManager.default.createDirectory(atPath: dir + "/\(name)/files", withIntermediateDirectories: true)
                    for i in 0..<3 { try TreeGenerator.writeRandomFile(dir + "/\(name)/files/\(i).bin", size: 2 << 20, seed: UInt64(seed * 10 + i)) }
                }

                // Both at once, each with its own data directory.
                let a = try Running(["backup", dir + "/host-a/files", "--json"], environment: host("host-a"), output: dir + "/a1")
                let b = try Running(["backup", dir + "/host-b/files", "--json"], environment: host("host-b"), output: dir + "/b1")
                let (first, second) = (a.wait(), b.wait())
                #expect(first.status == 0, "\(first.stderr)")
                #expect(second.status == 0, "\(second.stderr)")
                let addedByA = try #require(dataAdded(first.stdout), "\(first.stdout)")
                #expect(addedByA >= 6 << 20)

                let list = try BunkerProcess.run(["snapshots", "--json"], environment: host("host-a"))
                let hosts = ((try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]]) ?? []).compactMap { $0["hostname"] as? String }
                #expect(hosts.sorted() == ["host-a", "host-b"], "\(list.stdout)")

                // The same data from the other host is stored once.
                try FileManager.default.copyItem(atPath: dir + "/host-a/files", toPath: dir + "/host-b/copy-of-a")
                let again = try BunkerProcess.run(["backup", dir + "/host-b/copy-of-a", "--json"], environment: host("host-b"))
                #expect(again.status == 0, "\(again.stderr)")
                let addedByB = try #require(dataAdded(again.stdout), "\(again.stdout)")
                #expect(addedByB < addedByA / 20, "host-b added \(addedByB) bytes for data host-a stored (\(addedByA))")

                let verify = try BunkerProcess.run(["verify", "--read-data"], environment: host("host-b"))
                #expect(verify.status == 0, "\(verify.stderr)\(verify.stdout)")

                // Host A writes, paused after its first pack (written, not yet indexed); host B's
                // prune must not take the exclusive lock, and nothing of A's is deleted.
                try TreeGenerator.writeRandomFile(dir + "/host-a/files/new.bin", size: 3 << 20, seed: 99)
                var paused = host("host-a")
                paused["BUNKER_FAULT_PAUSE"] = "backup-after-pack"
                paused["BUNKER_FAULT_RESUME"] = dir + "/resume"
                let writing = try Running(["backup", dir + "/host-a/files", "--json"], environment: paused, output: dir + "/a2")
                defer { if writing.process.isRunning { kill(writing.process.processIdentifier, SIGKILL) } }
                for _ in 0..<3000 where !FileManager.default.fileExists(atPath: dir + "/resume.paused") { usleep(20_000) }
                #expect(FileManager.default.fileExists(atPath: dir + "/resume.paused"), "host-a's backup reached its first pack")
                // Host A goes on uploading its other packs (several at once) while this one waits:
                // nothing may go, more may come.
                let packsWhileWriting = Set(try await storage.list(.pack).map(\.handle.name))
                let prune = try BunkerProcess.run(["prune"], environment: host("host-b"))
                #expect(prune.status == 6, "refused as busy: \(prune.stderr)")
                #expect(prune.stderr.contains("busy") && prune.stderr.contains("host-a"), "\(prune.stderr)")
                #expect(packsWhileWriting.isSubset(of: Set(try await storage.list(.pack).map(\.handle.name))), "nothing was deleted")
                FileManager.default.createFile(atPath: dir + "/resume", contents: nil)
                let written = writing.wait()
                #expect(written.status == 0, "\(written.stderr)")

                // Once host A is done, prune runs; the repository verifies and A's backup restores.
                let later = try BunkerProcess.run(["prune"], environment: host("host-b"))
                #expect(later.status == 0, "\(later.stderr)")
                let final = try BunkerProcess.run(["verify", "--read-data", "--json"], environment: host("host-b"))
                #expect(final.status == 0, "\(final.stderr)\(final.stdout)")
                let id = try #require((try JSONSerialization.jsonObject(with: Data(written.stdout.utf8)) as? [String: Any])?["snapshot_id"] as? String)
                let restore = try BunkerProcess.run(["restore", id, "--target", dir + "/back"], environment: host("host-b"))
                #expect(restore.status == 0, "\(restore.stderr)")
                #expect(compareTrees(dir + "/host-a/files", dir + "/back/files") == [])
            }
        }
    }
}
