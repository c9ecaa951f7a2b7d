import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Testing

private func json(_ text: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(text.utf8))
}

@Suite(.serialized) struct RetentionCommandTests {
    @Test func holdForgetCleanupAndStatsThroughTheCommandLine() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let generations = try await Generations.backUp(repo, clock: nil, in: dir)
            let e = ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password, "BUNKER_DATA_DIR": dir + "/.bunker"]
            let first = generations[0].snapshotID.hex

            let noReason = try BunkerProcess.run(["hold", "add", first, "--reason", " "], environment: e)
            #expect(noReason.status == 64, "a hold needs a reason: \(noReason.stderr)")
            let add = try BunkerProcess.run(["hold", "add", String(first.prefix(8)), "--reason", "case 114", "--json"], environment: e)
            #expect(add.status == 0, "\(add.stderr)")
            let list = try #require(try json(BunkerProcess.run(["hold", "list", "--json"], environment: e).stdout) as? [[String: Any]])
            #expect(list.map { $0["snapshot"] as? String } == [first])
            #expect(list.first?["reason"] as? String == "case 114")

            // The default policy keeps all three (they are younger than the one-day minimum age).
            let defaults = try BunkerProcess.run(["forget", "--dry-run", "--json"], environment: e)
            let planned = try #require(try json(defaults.stdout) as? [String: Any])
            let decisions = try #require(planned["decisions"] as? [[String: Any]])
            #expect(decisions.count == 3 && decisions.allSatisfy { $0["keep"] as? Bool == true })
            #expect(decisions.allSatisfy { ($0["reasons"] as? [String])?.contains { $0.hasPrefix("min_age 1d") } == true })

            let dry = try BunkerProcess.run(["forget", "--keep-last", "1", "--min-age", "0", "--dry-run"], environment: e)
            #expect(dry.status == 0, "\(dry.stderr)")
            #expect(dry.stdout.contains("remove  \(generations[1].snapshotID.short)"), "\(dry.stdout)")
            #expect(dry.stdout.contains("keep    \(generations[0].snapshotID.short)") && dry.stdout.contains("hold: case 114"))
            #expect(dry.stdout.contains("keep_last 1 (#1)"))
            #expect(try await repo.snapshots().count == 3, "a dry run removes nothing")

            for bad in [["prune", "--unindexed-grace", "5x"], ["prune", "--max-unused", "120%"], ["cleanup", "--retry-lock", "soon"], ["forget", "--keep-within", "3 days"]] {
                let refused = try BunkerProcess.run(bad, environment: e)
                #expect(refused.status == 64 && refused.stderr.contains("write"), "\(bad): \(refused.stderr)")
            }
            for short in [["prune", "--unindexed-grace", "0"], ["cleanup", "--keep-last", "1", "--unindexed-grace", "30m"]] {
                let refused = try BunkerProcess.run(short, environment: e)
                #expect(refused.status == 64 && refused.stderr.contains("--unsafe-short-grace"), "\(short): \(refused.stderr)")
            }
            let unsafe = try BunkerProcess.run(["prune", "--dry-run", "--unindexed-grace", "0", "--unsafe-short-grace"], environment: e)
            #expect(unsafe.status == 0, "\(unsafe.stderr)")
            let none = try BunkerProcess.run(["forget", "--keep-last", "0", "--min-age", "0"], environment: e)
            #expect(none.status == 64 && none.stderr.contains("no keep rule"), "\(none.stderr)")

            let cleanup = try BunkerProcess.run(["cleanup", "--keep-last", "1", "--min-age", "0", "--max-unused", "0%", "--json"], environment: e)
            #expect(cleanup.status == 0, "\(cleanup.stderr)")
            let outcome = try #require(try json(cleanup.stdout) as? [String: Any])
            let forget = try #require(outcome["forget"] as? [String: Any])
            let prune = try #require(outcome["prune"] as? [String: Any])
            #expect(forget["removed"] as? [String] == [generations[1].snapshotID.hex])
            #expect((prune["bytes_freed"] as? Int ?? 0) > 1 << 20, "\(prune)")

            let stats = try #require(try json(BunkerProcess.run(["stats", "--json"], environment: e).stdout) as? [String: Any])
            #expect(stats["snapshots"] as? Int == 2)
            #expect(stats["held_snapshots"] as? Int == 1)
            #expect(stats["snapshots_by_kind"] as? [String: Int] == ["paths": 2])
            let sources = try #require(stats["sources"] as? [[String: Any]])
            #expect(sources.first?["snapshot"] as? String == generations[2].snapshotID.hex)
            #expect(stats["free_bytes"] as? Int != nil)

            let remove = try BunkerProcess.run(["hold", "remove", String(first.prefix(8))], environment: e)
            #expect(remove.status == 0 && remove.stdout.contains("Removed 1 hold"), "\(remove.stderr)")
            let released = try BunkerProcess.run(["forget", "--keep-last", "1", "--min-age", "0", "--json"], environment: e)
            let after = try #require(try json(released.stdout) as? [String: Any])
            #expect(after["removed"] as? [String] == [first])
            let verify = try BunkerProcess.run(["verify", "--read-data"], environment: e)
            #expect(verify.status == 0, "\(verify.stdout)")

            // Every change above went through the service layer and the audit trail, as the local user.
            let audit = try BunkerProcess.run(["audit", "list", "--json", "--limit", "1000"], environment: e)
            let rows = try #require(try json(audit.stdout) as? [[String: Any]])
            let ends = rows.filter { $0["outcome"] as? String != "started" }.compactMap { row -> String? in
                guard let action = row["action"] as? String, action != "verify" else { return nil }
                return "\(action) \(row["outcome"] as? String ?? "")"
            }
            #expect(ends == ["hold.add failure", "hold.add success", "forget success", "forget success", "prune success", "forget failure", "cleanup success", "hold.remove success", "forget success"], "\(ends)")
            #expect(rows.allSatisfy { $0["actor"] as? String == AuditActor.localUser().name })
        }
    }

    /// `bunker snapshots` shows `retention_until` under the configured policy, or a named
    /// repository's own with `--repository NAME`; null while held.
    @Test func snapshotsShowWhenTheRetentionPolicyCouldRemoveEach() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let generations = try await Generations.backUp(repo, clock: nil, in: dir)
            try "\(TestRepository.password)\n".write(toFile: dir + "/password", atomically: true, encoding: .utf8)
            try """
                data_dir = "\(dir)/.bunker"
                [repository]
                path = "\(dir)/repo"
                password_file = "\(dir)/password"
                [retention]
                keep_last = 2
                min_age_days = 0
                [repositories.same]
                path = "\(dir)/repo"
                password_file = "\(dir)/password"
                [repositories.same.retention]
                keep_within = "10d"
                min_age_days = 0
                """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
            let e = ["BUNKER_CONFIG": dir + "/bunker.toml"]
            let ids = generations.map(\.snapshotID.hex)
            let times = generations.map(\.snapshot.time)
            func until(_ arguments: [String]) throws -> [String: Any] {
                let outcome = try BunkerProcess.run(["snapshots", "--json"] + arguments, environment: e)
                #expect(outcome.status == 0, "\(outcome.stderr)")
                let list = try #require(try json(outcome.stdout) as? [[String: Any]])
                #expect(list.allSatisfy { $0.keys.contains("retention_until") }, "\(outcome.stdout)")
                return Dictionary(uniqueKeysWithValues: list.map { ($0["id"] as? String ?? "", $0["retention_until"] as Any) })
            }
            var utc = Calendar(identifier: .gregorian)
            utc.timeZone = TimeZone(identifier: "UTC")!
            func date(_ value: Any?) -> Date? { (value as? String).flatMap(Timestamp.parse) }

            // keep_last 2, one backup a day assumed: the newest needs two more, the second one more.
            let asked = Date()
            let primary = try until([])
            let newestDay = utc.startOfDay(for: times[2])
            #expect(date(primary[ids[2]]) == utc.date(byAdding: .day, value: 2, to: newestDay))
            #expect(date(primary[ids[1]]) == utc.date(byAdding: .day, value: 1, to: newestDay))
            let oldest = try #require(date(primary[ids[0]]), "no rule keeps the oldest: it may go at the next cleanup")
            #expect(abs(oldest.timeIntervalSince(asked)) < 60)

            // The named repository's own policy: keep_within 10d.
            let named = try until(["--repository", "same"])
            for (id, time) in zip(ids, times) {
                #expect(date(named[id]).map { abs($0.timeIntervalSince(time) - 10 * 86400) < 0.001 } == true, "\(named)")
            }

            let add = try BunkerProcess.run(["hold", "add", ids[2], "--reason", "case 114"], environment: e)
            #expect(add.status == 0, "\(add.stderr)")
            #expect(try until([])[ids[2]] is NSNull)
            let table = try BunkerProcess.run(["snapshots"], environment: e)
            #expect(table.stdout.contains("Retention until"), "\(table.stdout)")
            let line = try #require(table.stdout.split(separator: "\n").first { $0.hasPrefix(generations[2].snapshotID.short) })
            #expect(line.contains(" held "), "\(line)")
        }
    }

    /// With no snapshot left but packs still indexed, prune and cleanup stop (exit 7) and name
    /// `--allow-empty`, which then deletes the data.
    @Test func pruneOfARepositoryWithoutSnapshotsNeedsAllowEmpty() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            _ = try await Generations.backUp(repo, clock: nil, in: dir, count: 1)
            for info in try await repo.storage.list(.snapshot) { try await repo.storage.remove(info.handle) }
            let e = ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password, "BUNKER_DATA_DIR": dir + "/.bunker"]
            for arguments in [["prune"], ["prune", "--dry-run"], ["cleanup", "--keep-last", "1", "--min-age", "0"]] {
                let refused = try BunkerProcess.run(arguments, environment: e)
                #expect(refused.status == 7 && refused.stderr.contains("--allow-empty"), "\(arguments): \(refused.stderr)")
            }
            #expect(TestRepository.packBytes(at: dir + "/repo") > 0)
            let allowed = try BunkerProcess.run(["prune", "--allow-empty"], environment: e)
            #expect(allowed.status == 0, "\(allowed.stderr)")
            #expect(TestRepository.packBytes(at: dir + "/repo") == 0)
        }
    }
}
