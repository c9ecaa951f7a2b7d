import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Testing

/// A service with one file source, `studies`, and the policy keep_last 1 without a minimum age.
private func makeKeepLastOneService(in dir: String) async throws -> BunkerService {
    try FileManager.default.createDirectory(atPath: dir + "/studies", withIntermediateDirectories: true)
    return try await makeService(in: dir, sources: """
        [[source]]
        name = "studies"
        kind = "files"
        path = "\(dir)/studies"

        [retention]
        keep_last = 1
        min_age_days = 0
        """)
}

@Suite struct CleanupTests {
    @Test func cleanupAppliesTheConfiguredPolicyAndItsDryRunPredictsThePrune() async throws {
        try await withTemporaryDirectory { dir in
            let service = try await makeKeepLastOneService(in: dir)
            #expect(try await service.stats().sourcesNeverBackedUp == ["studies"])
            var ids: [ID] = []
            for generation in 0..<3 {
                try TreeGenerator.writeRandomFile(dir + "/studies/scan.dcm", size: 1 << 20, seed: UInt64(generation + 1))
                ids.append(try await service.backup(SourceBackupRequest()).snapshotID)
            }

            let plan = try await service.cleanup({ var r = CleanupRequest(); r.dryRun = true; return r }())
            #expect(plan.forget.removeCount == 2 && plan.forget.removed.isEmpty)
            #expect(plan.forget.decisions.allSatisfy { $0.group.contains("sources studies") })
            #expect(plan.prune.dryRun && plan.prune.bytesFreed > 2 << 20, "the plan counts the data the forget would free")
            #expect(try await service.repository.snapshots().count == 3)

            let done = try await service.cleanup(CleanupRequest())
            #expect(Set(done.forget.removed) == Set(ids.prefix(2)))
            #expect(abs(done.prune.bytesFreed - plan.prune.bytesFreed) < 64 << 10, "plan \(plan.prune.bytesFreed), done \(done.prune.bytesFreed)")
            #expect(try await service.repository.snapshots().map(\.id) == [ids[2]])
            let stats = try await service.stats()
            #expect(stats.sourcesNeverBackedUp == [] && stats.sources.map(\.name) == ["studies"])
            #expect(stats.snapshotsByKind == ["full": 1])
            let check = try await Checker(repository: service.repository).check(readData: true)
            #expect(check.ok && check.warnings.isEmpty)
        }
    }

    @Test func forgetPruneCleanupAndHoldsAreAuditedAsTheLocalUserAndForgetDropsBackupRows() async throws {
        try await withTemporaryDirectory { dir in
            let service = try await makeKeepLastOneService(in: dir)
            var ids: [ID] = []
            for generation in 0..<4 {
                try TreeGenerator.writeRandomFile(dir + "/studies/scan.dcm", size: 64 << 10, seed: UInt64(generation + 1))
                ids.append(try await service.backup(SourceBackupRequest()).snapshotID)
            }
            let catalog = try service.catalog()
            let before = try catalog.auditRecords(AuditFilter(limit: 1000)).count

            _ = try await service.addHold(to: ids[0].hex, reason: "case 7")
            #expect(try await service.holds().map(\.hold.snapshot) == [ids[0]])
            let forget = try await service.forget()
            #expect(Set(forget.removed) == Set([ids[1], ids[2]]))
            _ = try await service.removeHolds(ids[0].hex)
            _ = try await service.prune(PruneOptions())
            let cleanup = try await service.cleanup(CleanupRequest())
            #expect(cleanup.forget.removed == [ids[0]])

            let rows = Array(try catalog.auditRecords(AuditFilter(limit: 1000)).dropFirst(before))
            let me = AuditActor.localUser().name
            #expect(rows.map(\.action) == ["hold.add", "hold.add", "forget", "forget", "hold.remove", "hold.remove", "prune", "prune", "cleanup", "cleanup"])
            #expect(rows.map(\.outcome) == Array(repeating: [AuditOutcome.started, .success], count: 5).flatMap { $0 })
            #expect(rows.allSatisfy { $0.actor == me }, "\(rows.map(\.actor))")
            #expect(rows[0].reason == "case 7" && rows[1].target == ids[0].hex)
            #expect(rows[3].detailValues["removed"]?.split(separator: ",").map(String.init).sorted() == [ids[1].hex, ids[2].hex].sorted())
            #expect(rows[9].detailValues["removed"] == ids[0].hex)

            // The forgotten snapshots' metadata rows are gone; the kept one's stays.
            #expect(try catalog.backups().map(\.snapshotID) == [ids[3].hex])
            #expect(try catalog.verifyAudit().ok)
        }
    }
}
