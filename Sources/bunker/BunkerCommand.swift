import ArgumentParser
import BunkerCore
import BunkerS3
import Foundation

@main
struct BunkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bunker",
        abstract: "Verified, deduplicated, compressed and encrypted backups.",
        discussion: """
            The repository (a directory, or s3://BUCKET/PREFIX with the AWS_* credentials) comes from
            --repo or BUNKER_REPOSITORY; the password from BUNKER_PASSWORD,
            --password-file, or a prompt on a terminal. Every command takes --json.

            Exit codes: 0 success; 1 failure; 3 backup written but some files could not be read;
            4 no repository there; 5 wrong password; 6 repository busy (locked);
            7 damaged or missing data (verify found errors, restore could not restore some files, prune refused a damaged repository);
            8 storage full; 9 the audit trail was tampered with; 64 invalid command line.
            """,
        version: "bunker \(bunkerVersion)",
        subcommands: [
            Init.self, Backup.self, Snapshots.self, Show.self, Restore.self, Drill.self, Export.self, Verify.self, Stats.self,
            Copy.self, Forget.self, Prune.self, Cleanup.self, Hold.self, Key.self, User.self, Audit.self, CatalogCommand.self, Notify.self, Jobs.self, Serve.self,
        ]
    )

    static func main() async {
        tuneAllocator()
        // s3:// locations, with the AWS environment alone until a configuration adds settings.
        S3Backend.register()
        do {
            var command = try parseAsRoot()
            if var async = command as? any AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
