import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct Forget: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "forget",
            abstract: "Remove the snapshots the retention policy does not keep.",
            discussion: """
                The policy is [retention] in bunker.toml (default: the newest backup of every day for 7 days, \
                of every week for 30 days, of every month for a year, of every year for BACKUP_RETENTION_DAYS), \
                or the --keep-* options. Held snapshots, snapshots younger than the minimum age and safety \
                snapshots younger than 30 days are always kept. Every snapshot is listed with the rule that \
                keeps it. Only snapshots are removed; `bunker prune` (or `bunker cleanup`) frees their data.
                """)

        @OptionGroup var repository: RepositoryOptions
        @OptionGroup var policy: PolicyOptions

        @Flag(help: "List what would be kept and removed, remove nothing.")
        var dryRun = false

        func run() async throws {
            try await repository.output.run {
                let service = try await repository.service()
                let chosen = try policy.policy(configured: service.configuration.retention)
                let report = try await repository.job(service, "forget", access: dryRun ? .reads : .writes) { _ in
                    try await service.forget(policy: chosen, dryRun: dryRun)
                }
                if repository.output.json {
                    Output.printJSON(report)
                } else if !repository.output.quiet {
                    RetentionOutput.print(report)
                }
            }
        }
    }
}
