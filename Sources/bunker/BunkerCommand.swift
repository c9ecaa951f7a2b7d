import ArgumentParser
import BunkerCore
import BunkerS3
import Foundation

/// Every command names itself (`commandName`) in its configuration. Without it the argument
/// parser derives each subcommand's name from its type with `String(describing:)`, whose dynamic
/// casts scan all of the binary's protocol conformances: 8 ms of every start (`bunker --version`
/// took 22 ms, now 14).
@main
struct BunkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bunker",
        abstract: "Verified, deduplicated, compressed and encrypted backups.",
        discussion: """
            The repository (a directory, or s3://BUCKET/PREFIX with the AWS_* credentials) comes from
            --repo or BUNKER_REPOSITORY; the password from BUNKER_PASSWORD,
            --password-file, or a prompt on a terminal; the configuration from --config (also accepted
            before the subcommand: bunker --config FILE wal push %p) or BUNKER_CONFIG. Every command takes --json.

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
            Copy.self, Forget.self, Prune.self, Cleanup.self, Hold.self, Key.self, User.self, Token.self, Audit.self, CatalogCommand.self, Notify.self, Jobs.self, Serve.self,
            Wal.self, Check.self,
        ]
    )

    /// `bunker --config FILE wal push %p`, as archive_command and restore_command are usually
    /// written: a `--config` before the subcommand is moved after it, where every command that
    /// reads a configuration takes it.
    static func movingLeadingConfig(_ arguments: [String]) -> [String] {
        var rest = arguments
        var moved: [String] = []
        while let first = rest.first {
            if first == "--config", rest.count >= 2 {
                moved += rest.prefix(2)
                rest.removeFirst(2)
            } else if first.hasPrefix("--config=") {
                moved.append(rest.removeFirst())
            } else {
                break
            }
        }
        guard !moved.isEmpty else { return arguments }
        // Before a `--` that ends the options, if there is one.
        let end = rest.firstIndex(of: "--") ?? rest.endIndex
        rest.insert(contentsOf: moved, at: end)
        return rest
    }

    static func main() async {
        tuneAllocator()
        // Minutes of retrying a storage that does not answer are said on standard error.
        RetryPolicy.defaultNotice = { FileHandle.standardError.write(Data("bunker: warning: \($0)\n".utf8)) }
        // s3:// locations, with the AWS environment alone until a configuration adds settings.
        S3Backend.register()
        do {
            var command = try parseAsRoot(Self.movingLeadingConfig(Array(CommandLine.arguments.dropFirst())))
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
            if !(error is ExitCode), code != 0, Self.asksForJSON(CommandLine.arguments) {
                // A command line the parser refused, or a check made before the command's own
                // error handling (`--repo` with `--repository`): scripts get JSON here too.
                let kind = (error as? BunkerError)?.code.rawValue
                    ?? (code == ExitCode.validationFailure.rawValue ? BunkerError.Code.invalidArgument.rawValue : "error")
                Output.printJSON(ErrorOutput(error: kind, message: message(for: error).trimmingCharacters(in: .whitespacesAndNewlines)))
            }
            exit(withError: error)
        }
    }

    /// Whether `--json` is among the options (before a `--` that ends them).
    static func asksForJSON(_ arguments: [String]) -> Bool {
        arguments.dropFirst().prefix { $0 != "--" }.contains("--json")
    }
}
