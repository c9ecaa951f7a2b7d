import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct Prune: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "prune",
            abstract: "Remove data that no snapshot references.",
            discussion: """
                Deletes packs no snapshot uses, repacks packs that are mostly unused, and rewrites the index. \
                Runs under an exclusive lock: a backup started meanwhile fails with "repository is busy" (exit 6). \
                Interrupted at any point, the repository stays whole and the next prune finishes the cleaning.
                """)

        @OptionGroup var repository: RepositoryOptions
        @OptionGroup var tuning: PruneFlags

        @Flag(help: "Report what would be deleted and repacked, change nothing.")
        var dryRun = false

        func run() async throws {
            try await repository.output.run {
                var options = try tuning.options()
                options.dryRun = dryRun
                let service = try await repository.service()
                let chosen = options
                let report = try await repository.job(service, "prune", access: dryRun ? .reads : .writes) { try await service.prune(chosen, progress: $0) }
                if repository.output.json {
                    Output.printJSON(report)
                } else if !repository.output.quiet {
                    RetentionOutput.print(report)
                }
            }
        }
    }
}
