import BunkerCore
import BunkerService
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

/// One writer per repository.
@Suite struct ConcurrencyTests {
    @Test func twoConcurrentBackupsOneRunsTheOtherGets409AndTheRepositoryVerifies() async throws {
        // Large files, so that the first backup is still running when the second arrives.
        try await withAPI(.live, largeFileSize: 24 << 20) { api in
            // Two connections (one would carry the requests one after the other), with a timeout
            // that a loaded machine does not trip.
            let port = try #require(api.client.port)
            let clients = (0..<2).map { _ in TestClient(host: "127.0.0.1", port: port, configuration: .init(timeout: .seconds(600))) }
            for client in clients { client.connect() }
            let login = try await clients[0].execute(TestClient.Request(
                "/api/v1/auth/login", method: .post, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"username": "alice", "password": "alice-password"}"#)))
            let token = try #require(try JSONSerialization.jsonObject(with: Data(buffer: login.body ?? ByteBuffer())) as? [String: Any])["access_token"] as? String
            let headers: HTTPFields = [.authorization: "Bearer \(try #require(token))", .contentType: "application/json"]
            async let first = clients[0].execute(TestClient.Request("/api/v1/backup", method: .post, headers: headers, body: ByteBuffer(string: #"{"description": "one"}"#)))
            async let second = clients[1].execute(TestClient.Request("/api/v1/backup", method: .post, headers: headers, body: ByteBuffer(string: #"{"description": "two"}"#)))
            let responses = try await [first, second]
            let statuses = responses.map(\.status.code).sorted()
            #expect(statuses == [200, 409])
            let refused = try #require(responses.first { $0.status == .conflict })
            let body = try #require(try JSONSerialization.jsonObject(with: Data(buffer: refused.body ?? ByteBuffer())) as? [String: Any])
            #expect(body.keys.sorted() == ["error", "message"])
            #expect(body["error"] as? String == "repository_locked")
            #expect((body["message"] as? String)?.contains("a backup by alice is running") == true)

            #expect(try api.catalog.backups().count == 1)
            let report = try await api.service.verify(readData: true, by: .system)
            #expect(report.ok, "\(report.errors.map(\.message))")

            // The gate is free again: a third backup runs.
            let third = try await clients[1].execute(TestClient.Request("/api/v1/backup", method: .post, headers: headers, body: ByteBuffer(string: #"{"description": "three"}"#)))
            #expect(third.status == .ok)
            #expect(try api.catalog.backups().count == 2)
            for client in clients { try await client.shutdown() }
        }
    }

    @Test func aScheduleFiringWhileAPIBackupsRunNeverOverlapsThem() async throws {
        try await withAPI { api in
            // One server, one service: the scheduler that `bunker serve` runs beside the API, over
            // a clock that moves a minute each time it is read, so every look finds a backup and
            // a cleanup due.
            let minutes = Atomic(0)
            let start = Date()
            let scheduler = api.service.makeScheduler(
                schedules: [
                    Schedule(job: .backup, cron: try CronExpression("* * * * *"), backupType: .files),
                    Schedule(job: .cleanup, cron: try CronExpression("* * * * *")),
                ],
                now: { start.addingTimeInterval(Double(minutes.add(1, ordering: .relaxed).newValue) * 60) })
            let token = try await api.token("alice")
            var statuses: [Int] = []
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await scheduler.run(sleep: { _ in try await Task.sleep(for: .milliseconds(10)) }) }
                // API backups one after another until the schedules have started four writers.
                let deadline = Date().addingTimeInterval(120)
                var round = 0
                while Date() < deadline,
                      try api.catalog.auditRecords(AuditFilter(actor: "scheduler", limit: 100_000)).filter({ $0.outcome == .started }).count < 4 {
                    let response = try await api.send(.post, "/api/v1/backup", token: token, json: ["description": "round \(round)", "backup_type": "files"])
                    statuses.append(response.status.code)
                    round += 1
                    try await Task.sleep(for: .milliseconds(5))
                }
                group.cancelAll()
            }
            // Each API backup ran or was told the repository is busy; none failed otherwise.
            #expect(statuses.allSatisfy { $0 == 200 || $0 == 409 }, "\(statuses)")
            #expect(statuses.contains(200), "\(statuses)")

            let writes: Set = ["backup", "cleanup", "restore", "forget", "prune"]
            let rows = try api.catalog.auditRecords(AuditFilter(limit: 100_000)).filter { writes.contains($0.action) }
            let scheduled = rows.filter { $0.actor == "scheduler" && $0.outcome == .started }
            #expect(scheduled.count >= 4, "the schedules fired while the API backups ran")
            // Every writer's end row comes before the next writer's start row.
            var open: AuditRecord?
            for row in rows {
                if row.outcome == .started {
                    #expect(open == nil, "\(row.actor)'s \(row.action) (row \(row.seq)) started while \(open.map { "\($0.actor)'s \($0.action) (row \($0.seq))" } ?? "") ran")
                    open = row
                } else if let started = row.operationSeq {
                    #expect(started == open?.seq, "row \(row.seq) ends operation \(started), not the open one")
                    open = nil
                }
            }
            #expect(open == nil)
            let report = try await api.service.verify(readData: true, by: .system)
            #expect(report.ok, "\(report.errors.map(\.message))")
        }
    }

    @Test func deleteOfARunningJobCancelsItAndTheRepositoryVerifies() async throws {
        // A large file, so that the backup is still running when the DELETE arrives.
        try await withAPI(largeFileSize: 96 << 20) { api in
            let alice = try await api.token("alice")
            let olga = try await api.token("olga")
            let started = try await api.send(.post, "/api/v1/backup", token: alice, json: ["backup_type": "files", "async": true])
            #expect(started.status == .accepted)
            let job = try #require(try object(started)["job_id"] as? String)
            #expect(try await api.send(.delete, "/api/v1/jobs/\(job)", token: olga).status == .forbidden)
            let cancel = try await api.send(.delete, "/api/v1/jobs/\(job)", token: alice)
            #expect(cancel.status == .accepted, "\(String(buffer: cancel.body))")
            #expect(try object(cancel)["id"] as? String == job)
            var state: [String: Any] = [:]
            for _ in 0..<1200 {
                state = try object(try await api.send(.get, "/api/v1/jobs/\(job)", token: alice))
                if state["state"] as? String != "running" { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(state["state"] as? String == "failed")
            #expect((state["message"] as? String)?.contains("cancelled") == true, "\(state)")
            #expect(try await api.send(.delete, "/api/v1/jobs/\(job)", token: alice).status == .conflict)
            #expect(try api.catalog.backups().isEmpty)
            let listed = try array(try await api.send(.get, "/api/v1/jobs", token: olga))
            #expect(listed.first?["id"] as? String == job, "GET /jobs lists the newest job first")

            let report = try await api.service.verify(readData: true, by: .system)
            #expect(report.ok, "\(report.errors.map(\.message))")
            // The writer claim is free again: the next backup completes.
            _ = try await api.backup(alice, type: "files")
        }
    }
}
