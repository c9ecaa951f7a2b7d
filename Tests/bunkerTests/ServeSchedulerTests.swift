import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// `bunker serve` runs the schedules: a backup missed while the server was down runs once when
/// it starts, as the actor `scheduler`, and stopping the server stops the scheduler cleanly.
@Suite(.serialized) struct ServeSchedulerTests {
    @Test func aBackupMissedWhileTheServerWasDownRunsAtItsStart() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/studies", withIntermediateDirectories: true)
            try Data("notes\n".utf8).write(to: URL(fileURLWithPath: dir + "/studies/a.txt"))
            let port = try freeTCPPort()
            try """
                data_dir = "\(dir)/data"

                [repository]
                path = "\(dir)/repo"

                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/studies"

                [[schedule]]
                job = "backup"
                cron = "0 2 * * *"
                backup_type = "files"
                """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
            _ = try await TestRepository.create(at: dir + "/repo")
            // The server last looked three days ago: at least two nightly runs were missed.
            try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
            let threeDaysAgo = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-3 * 86400))
            try #"{"backup 0 2 * * * files": "\#(threeDaysAgo)"}"#.write(toFile: dir + "/data/scheduler.json", atomically: true, encoding: .utf8)

            let pid = try spawn(BunkerProcess.executable, ["serve", "--listen", "127.0.0.1:\(port)"], environment: [
                "BUNKER_CONFIG": dir + "/bunker.toml", "BUNKER_PASSWORD": TestRepository.password, "BUNKER_ADMIN_PASSWORD": "admin-password",
            ], outputFile: dir + "/serve.log")
            var snapshots: [(id: ID, snapshot: Snapshot)] = []
            for _ in 0..<300 where snapshots.isEmpty {
                try await Task.sleep(for: .milliseconds(100))
                snapshots = (try? await TestRepository.open(at: dir + "/repo").snapshots()) ?? []
            }
            // Give a wrongly repeated run the time to show itself before stopping.
            try await Task.sleep(for: .seconds(2))
            kill(pid, SIGTERM)
            let status = try waitForExit(pid, "bunker serve")
            let log = (try? String(contentsOfFile: dir + "/serve.log", encoding: .utf8)) ?? ""
            #expect(status == 0, "SIGTERM stops the server and its scheduler: \(log)")
            #expect(log.contains("Scheduler: backup (files) at \"0 2 * * *\""), "\(log)")

            let final = try await TestRepository.open(at: dir + "/repo").snapshots()
            #expect(final.count == 1, "the missed runs make one backup: \(log)")
            #expect(final.first?.snapshot.tags == ["scheduled"])
            #expect(final.first?.snapshot.backupType == "files")

            let audit = try BunkerProcess.run(["audit", "list", "--action", "backup", "--json"], environment: ["BUNKER_CONFIG": dir + "/bunker.toml"])
            #expect(audit.stdout.contains("\"actor\":\"scheduler\"") || audit.stdout.contains("\"actor\" : \"scheduler\""), "\(audit.stdout)")
            let state = try String(contentsOfFile: dir + "/data/scheduler.json", encoding: .utf8)
            #expect(!state.contains(threeDaysAgo), "the state moved on: \(state)")
        }
    }
}
