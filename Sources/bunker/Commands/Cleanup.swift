import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct Cleanup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cleanup",
            abstract: "Apply the retention policy, then prune: the command to run on a schedule.",
            discussion: "`bunker forget` followed by `bunker prune`, under one exclusive lock.")

        @OptionGroup var repository: RepositoryOptions
        @OptionGroup var policy: PolicyOptions
        @OptionGroup var tuning: PruneFlags

        @Flag(help: "List what would be kept, removed and repacked; change nothing.")
        var dryRun = false

        func run() async throws {
            try await repository.output.run {
                let service = try await repository.service()
                var request = CleanupRequest(policy: try policy.policy(configured: service.configuration.retention))
                request.prune = try tuning.options()
                request.dryRun = dryRun
                let chosen = request
                let outcome = try await repository.job(service, "cleanup", access: dryRun ? .reads : .writes) { try await service.cleanup(chosen, progress: $0) }
                if repository.output.json {
                    Output.printJSON(outcome)
                } else if !repository.output.quiet {
                    RetentionOutput.print(outcome.forget)
                    print("")
                    RetentionOutput.print(outcome.prune)
                }
            }
        }
    }
}
