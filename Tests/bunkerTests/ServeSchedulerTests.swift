import BunkerCore
import BunkerTesting
import Foundation
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

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

    /// The issue-14 overlap test: scheduled backups and cleanups fire (every minute, and the runs
    /// missed before the start at once) while API backups loop, all in one `bunker serve`; the
    /// audit trail's start and end rows of writers never interleave.
    @Test func aScheduleFiringWhileAPIBackupsLoopNeverOverlapsThemInOneServe() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/studies", largeFileSize: 4 << 20)
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
                cron = "* * * * *"
                backup_type = "files"

                [[schedule]]
                job = "cleanup"
                cron = "* * * * *"
                """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
            _ = try await TestRepository.create(at: dir + "/repo")
            try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
            let lastLook = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-86400))
            try #"{"backup * * * * * files": "\#(lastLook)", "cleanup * * * * *": "\#(lastLook)"}"#
                .write(toFile: dir + "/data/scheduler.json", atomically: true, encoding: .utf8)

            let environment = ["BUNKER_CONFIG": dir + "/bunker.toml", "BUNKER_PASSWORD": TestRepository.password, "BUNKER_ADMIN_PASSWORD": "admin-password"]
            let pid = try spawn(BunkerProcess.executable, ["serve", "--listen", "127.0.0.1:\(port)"], environment: environment, outputFile: dir + "/serve.log")
            let base = "http://127.0.0.1:\(port)/api/v1"
            var token: String?
            for _ in 0..<300 where token == nil {
                var login = URLRequest(url: URL(string: base + "/auth/login")!)
                login.httpMethod = "POST"
                login.setValue("application/json", forHTTPHeaderField: "Content-Type")
                login.httpBody = Data(#"{"username":"admin","password":"admin-password"}"#.utf8)
                if let (body, _) = try? await URLSession.shared.data(for: login) {
                    token = (try? JSONSerialization.jsonObject(with: body) as? [String: Any])?["access_token"] as? String
                } else {
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            // API backups, one after another, past the next minute's fire.
            var statuses: [Int] = []
            let until = Date().addingTimeInterval(65)
            while let token, Date() < until {
                var request = URLRequest(url: URL(string: base + "/backup")!)
                request.httpMethod = "POST"
                request.timeoutInterval = 300
                request.setValue("application/json", forHTTPHeaderField: "Content-Type")
                request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
                request.httpBody = Data(#"{"backup_type":"files","description":"loop"}"#.utf8)
                let (_, response) = try await URLSession.shared.data(for: request)
                statuses.append((response as? HTTPURLResponse)?.statusCode ?? 0)
            }
            kill(pid, SIGTERM)
            let status = try waitForExit(pid, "bunker serve")
            let log = (try? String(contentsOfFile: dir + "/serve.log", encoding: .utf8)) ?? ""
            #expect(token != nil, "logged in: \(log)")
            #expect(status == 0, "\(log)")
            #expect(statuses.allSatisfy { $0 == 200 || $0 == 409 }, "\(statuses) \(log)")
            #expect(statuses.contains(200), "\(statuses)")

            let audit = try BunkerProcess.run(["audit", "list", "--json", "--limit", "100000"], environment: ["BUNKER_CONFIG": dir + "/bunker.toml"])
            let rows = try #require(try JSONSerialization.jsonObject(with: Data(audit.stdout.utf8)) as? [[String: Any]], "\(audit.stdout)")
            let writes: Set = ["backup", "cleanup", "restore", "forget", "prune"]
            let writers = rows.filter { writes.contains($0["action"] as? String ?? "") }
            let scheduled = writers.filter { $0["actor"] as? String == "scheduler" && $0["outcome"] as? String == "started" }
            #expect(scheduled.count >= 3, "the missed runs and the next minute's fired: \(scheduled.count)")
            var open: [String: Any]?
            for row in writers {
                let seq = row["seq"] as? Int
                if row["outcome"] as? String == "started" {
                    #expect(open == nil, "row \(seq ?? -1) (\(row["actor"] ?? "")'s \(row["action"] ?? "")) started while row \(open?["seq"] ?? "") ran")
                    open = row
                } else if let started = row["operation_seq"] as? Int {
                    #expect(started == open?["seq"] as? Int, "row \(seq ?? -1) ends \(started), not the open operation")
                    open = nil
                }
            }
            #expect(open == nil)
            let verify = try BunkerProcess.run(["verify", "--read-data"], environment: environment)
            #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
        }
    }
}
