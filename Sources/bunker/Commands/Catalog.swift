import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct CatalogCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "catalog",
            abstract: "Maintain the catalog (users, backup metadata, jobs, audit trail) in the data directory.",
            subcommands: [Rebuild.self])

        struct Rebuild: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Re-create the backup metadata of every snapshot in the repository that the catalog lacks.",
                discussion: """
                    The repository is the source of truth for which backups exist; use this after the catalog was lost \\
                    or when a repository made elsewhere is attached. Rows already in the catalog are kept as they are.
                    """)

            @OptionGroup var repository: RepositoryOptions

            func run() async throws {
                try await repository.output.run {
                    let service = try await repository.service(loadIndex: false)
                    let added = try await service.rebuildCatalog()
                    let total = try service.catalog().backups(limit: Int.max).count
                    if repository.output.json {
                        Output.printJSON(["added": added, "backups": total])
                    } else if !repository.output.quiet {
                        print("Added \(added) backups to the catalog; it now lists \(total).")
                    }
                }
            }
        }
    }
}
