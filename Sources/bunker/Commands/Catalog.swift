import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct CatalogCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "catalog",
            abstract: "Maintain the catalog (users, backup metadata, jobs, audit trail) in the data directory.",
            subcommands: [Rebuild.self, Restore.self])

        struct Rebuild: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "rebuild",
                abstract: "Re-create the backup metadata of every snapshot in the repository that the catalog lacks.",
                discussion: """
                    The repository is the source of truth for which backups exist; use this after the catalog was lost \
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

        struct Restore: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "restore",
                abstract: "Bring the catalog and the audit trail back from the repository, on a new machine.",
                discussion: """
                    Every operation copies the audit trail's new rows (with their signed anchors and the audit key, \
                    sealed by the repository's encryption) and the users into the repository. On a machine with an empty \
                    data directory this rebuilds the trail exactly as written, the users, and the backup metadata of every \
                    snapshot; `bunker audit verify` then passes. It refuses a data directory that already has a catalog. \
                    When several machines back up into the repository, choose whose trail with --installation.
                    """)

            @OptionGroup var repository: RepositoryOptions

            @Option(help: ArgumentHelp("Whose trail, when several machines ship theirs into the repository (as the error lists them).", valueName: "id"))
            var installation: String?

            func run() async throws {
                try await repository.output.run {
                    let configuration = try repository.configuration()
                    let repo = try await repository.open(loadIndex: false)
                    let result = try await BunkerService.restoreCatalog(configuration: configuration, repository: repo, installation: installation)
                    if repository.output.json {
                        Output.printJSON(result)
                    } else if !repository.output.quiet {
                        print("Restored the audit trail of installation \(result.installation) (last shipped from \(result.host)): \(result.auditRows) rows in \(result.segments) segments, \(result.users) users; the catalog lists \(result.backups) backups.")
                        print("This data directory continues the trail as installation \(result.newInstallation), and ships it into the repository under that id.")
                        print("Run `bunker audit verify` to check the trail.")
                    }
                }
            }
        }
    }
}
