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
            8 storage full; 9 the audit trail was tampered with; 10 a WAL file refused (different content
            under an archived name, or another cluster's WAL); 64 invalid command line.
            `wal fetch` exits 1 when the file is not archived and 128 plus the code above for any other failure.
            """,
        version: "bunker \(bunkerVersion)",
        subcommands: [
            Init.self, Backup.self, Snapshots.self, Show.self, Restore.self, Drill.self, Export.self, Verify.self, Stats.self,
            Copy.self, Forget.self, Prune.self, Cleanup.self, Hold.self, Key.self, User.self, Audit.self, CatalogCommand.self, Notify.self, Jobs.self, Serve.self,
            Wal.self,
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
            // restore_command reads every exit code up to 125 as "not archived" and would end
            // recovery early: a `wal fetch` it cannot even parse must stop recovery instead.
            let code = exitCode(for: error).rawValue
            if !(error is ExitCode), code != 0, code < 126, Wal.Fetch.isInvoked(by: CommandLine.arguments) {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                exit(withError: ExitCode(Wal.Fetch.failureCode(code)))
            }
            exit(withError: error)
        }
    }
}
