import BunkerCore
import BunkerS3
import BunkerTesting
import Foundation
import Testing

/// Prune against a real S3 server whose listings a proxy spoils: it deletes nothing on the
/// strength of a listing that disagrees with the index.
@Suite(.serialized) struct S3PruneTests {
    @Test func pruneDeletesNothingOnAListingCutShortOrMissingEntries() async throws {
        try await S3Fixture.withProxy { server, proxy in
            try await withTemporaryDirectory { dir in
                let prefix = "repo-" + UUID().uuidString.lowercased()
                let direct = try S3Fixture.storage(server, prefix: prefix, options: S3Fixture.smallOptions)
                let proxied = try S3Fixture.storage(server, endpoint: proxy.endpoint, prefix: prefix, options: S3Fixture.smallOptions)
                let repo = try await TestRepository.create(storage: proxied)
                _ = try await Generations.backUp(repo, clock: nil, in: dir, count: 3)
                var policy = RetentionPolicy()
                policy.keepLast = 1
                policy.minimumAge = RetentionDuration()
                _ = try await repo.forget(policy: policy)
                var options = PruneOptions()
                options.maxUnused = .percent(0)
                let packs = try await direct.list(.pack).map(\.handle.name).sorted()
                #expect(packs.count > 3, "the data listing spans pages")

                for action in [S3FaultProxy.Rule.Action.endListing, .dropEntries] {
                    try proxy.inject([.init(id: action.rawValue, method: "GET", query: "data", action: action)])
                    let error = await #expect(throws: BunkerError.self) { try await Pruner(repository: repo, options: options).run() }
                    #expect(error?.code == .storageIO && error?.message.contains("listing of data/ lacks") == true, "\(action): \(String(describing: error))")
                    #expect(!proxy.hits(action.rawValue).isEmpty)
                    try proxy.inject([])
                    #expect(try await direct.list(.pack).map(\.handle.name).sorted() == packs, "\(action): nothing was deleted")
                }
                let check = try await Checker(repository: try await Repository.open(storage: direct, password: TestRepository.password)).check(readData: true)
                #expect(check.ok, "\(check.errors.map(\.message))")

                // Listed whole, the same prune deletes, and the repository still verifies.
                let report = try await Pruner(repository: repo, options: options).run()
                #expect(report.packsDeleted + report.packsRepacked > 0 && report.packsNotDeleted.isEmpty, "\(report)")
                let after = try await Checker(repository: try await Repository.open(storage: direct, password: TestRepository.password)).check(readData: true)
                #expect(after.ok, "\(after.errors.map(\.message))")
            }
        }
    }
}
