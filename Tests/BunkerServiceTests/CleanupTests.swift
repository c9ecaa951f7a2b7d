import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Testing

@Suite struct CleanupTests {
    @Test func cleanupAppliesTheConfiguredPolicyAndItsDryRunPredictsThePrune() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/studies", withIntermediateDirectories: true)
            let service = try await makeService(in: dir, sources: """
                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/studies"

                [retention]
                keep_last = 1
                min_age_days = 0
                """)
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
}
