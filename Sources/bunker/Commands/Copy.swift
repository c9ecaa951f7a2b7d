import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct Copy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy snapshots into another repository (an off-site or cloud copy), with only the data it lacks.",
            discussion: """
                Copies the snapshots named (ids, prefixes or latest), or every snapshot the filters keep, from the \\
                repository (--repo, the source) into --to. What the destination already holds is neither read nor \\
                shipped again when the two share key material (made with `bunker init --copy-params-from`); otherwise \\
                every blob is read, checked and re-encoded. A copy stopped at any point is completed by the next one; \\
                a snapshot already copied is skipped. Audited as copy; a failure is notified as copy_failed.
                """)

        @OptionGroup var repository: RepositoryOptions

        @Option(help: ArgumentHelp("The destination repository's location.", valueName: "location"))
        var to: String

        @Option(help: ArgumentHelp("The destination's password file (default: $BUNKER_TO_PASSWORD, else a prompt).", valueName: "file"))
        var toPasswordFile: String?

        @Argument(help: ArgumentHelp("Snapshots to copy (ids, prefixes or latest); default: every snapshot the filters keep.", valueName: "snapshot"))
        var snapshots: [String] = []

        @Flag(help: "Copy only the newest snapshot (after the filters).")
        var latest = false

        @Option(name: .customLong("tag"), help: ArgumentHelp("Only snapshots with this tag (repeatable).", valueName: "tag"))
        var tags: [String] = []

        @Option(help: ArgumentHelp("Only snapshots of this backup type: full, database or files.", valueName: "type"))
        var type: BackupType?

        func run() async throws {
            try await repository.output.run {
                let service = try await repository.service()
                let password = try readSecret(file: toPasswordFile, environment: "BUNKER_TO_PASSWORD", prompt: "Password of \(to): ", confirm: false)
                let destination = try await RepositoryAccess.open(to, try repository.configuration(), password: password, loadIndex: false)
                destination.lockWait = try repository.lockWait()
                var request = CopyRequest(destinationName: to)
                request.snapshots = snapshots
                request.latestOnly = latest
                request.tags = tags
                request.type = type
                let chosen = request
                let report = try await repository.job(service, "copy", access: .writes) {
                    try await service.copy(chosen, to: destination, progress: $0)
                }
                if repository.output.json {
                    Output.printJSON(report)
                } else if !repository.output.quiet {
                    for copy in report.copied { print("Copied snapshot \(copy.source.prefix(8)) → \(copy.destination.prefix(8))") }
                    for copy in report.alreadyThere { print("Snapshot \(copy.source.prefix(8)) is already there as \(copy.destination.prefix(8))") }
                    print("Shipped \(report.blobsCopied) blobs, \(Output.bytes(report.bytesCopied)) (\(Output.bytes(report.bytesStored)) stored)\(report.sharedKeys ? "; the repositories share key material" : "").")
                }
            }
        }
    }
}
