import BunkerTesting
import Foundation
import Testing

@Suite struct CatalogStartupTests {
    /// Two commands started at the same moment on a new data directory (a backup and a prune
    /// from cron) both create the catalog: neither may fail on the other's half-made schema.
    @Test func processesStartingTogetherOnANewDataDirectoryAllSucceed() async throws {
        for round in 0..<3 {
            try await withTemporaryDirectory { dir in
                let environment = ["BUNKER_DATA_DIR": dir + "/data-\(round)"]
                let outcomes = try await withThrowingTaskGroup(of: BunkerProcess.Outcome.self) { group in
                    for _ in 0..<4 {
                        group.addTask { try BunkerProcess.run(["user", "list", "--json"], environment: environment) }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                for outcome in outcomes {
                    #expect(outcome.status == 0, "\(outcome.stdout) \(outcome.stderr)")
                }
            }
        }
    }
}
