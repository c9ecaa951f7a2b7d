import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct Copy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "copy",
            abstract: "Copy snapshots into another repository (an off-site or cloud copy), with only the data it lacks.",
            discussion: """
                Copies the snapshots named (ids, prefixes or latest), or every snapshot the filters keep, from the \
                repository (--repo, the source) into --to. What the destination already holds is neither read nor \
                shipped again when the two share key material (made with `bunker init --copy-params-from`); otherwise \
                every blob is read, checked and re-encoded, except what an earlier copy of the same host's and paths' \
                data says the destination holds. A copy stopped at any point is completed by the next one; \
                a snapshot already copied is skipped. Audited as copy; a failure is notified as copy_failed.
                """)

        @OptionGroup var repository: RepositoryOptions

        @Option(help: ArgumentHelp("The destination: a [repositories.NAME] of bunker.toml, or a location.", valueName: "name|location"))
        var to: String

        @Option(help: ArgumentHelp("The source, if not the primary repository: a [repositories.NAME] of bunker.toml, or a location (as --repository or --repo).", valueName: "name|location"))
        var from: String?

        @Option(help: ArgumentHelp("The destination's password file (default: its password_file in bunker.toml, else $BUNKER_TO_PASSWORD, else a prompt).", valueName: "file"))
        var toPasswordFile: String?

        func validate() throws {
            if from != nil && (repository.repo != nil || repository.repositoryName != nil) {
                throw ValidationError("--from names the source; drop --repo and --repository.")
            }
        }

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
                var source = repository
                let configuration = try Configuration.load(explicit: repository.config)
                if let from {
                    if configuration.repositories[from] != nil { source.repositoryName = from } else { source.repo = from }
                }
                let service = try await source.service()
                let destination = try await openDestination(configuration)
                destination.lockWait = try repository.lockWait()
                var request = CopyRequest(destinationName: to)
                request.snapshots = snapshots
                request.latestOnly = latest
                request.tags = tags
                request.type = type
                let chosen = request
                let report = try await source.job(service, "copy", access: .writes) {
                    try await service.copy(chosen, to: destination, progress: $0)
                }
                if repository.output.json {
                    Output.printJSON(report)
                } else if !repository.output.quiet {
                    for copy in report.copied { print("Copied snapshot \(copy.source.prefix(8)) → \(copy.destination.prefix(8))") }
                    for copy in report.alreadyThere { print("Snapshot \(copy.source.prefix(8)) is already there as \(copy.destination.prefix(8))") }
                    if report.walObjectsCopied > 0 { print("Copied \(report.walObjectsCopied) archived WAL objects (point-in-time recovery from the destination)") }
                    print("Shipped \(report.blobsCopied) blobs, \(Output.bytes(report.bytesCopied)) (\(Output.bytes(report.bytesStored)) stored)\(report.sharedKeys ? "; the repositories share key material, so the data travelled encrypted as it was (\(report.packsUnchanged) packs unchanged)" : "").")
                    if report.blobsReused > 0 { print("Took \(report.blobsReused) blobs the destination held from an earlier copy without reading them again") }
                }
            }
        }

        /// The destination: a named repository with its settings and password file, or a
        /// location with the primary's object-store settings (but not its `read_only`: that
        /// says how to open the primary, the source here).
        private func openDestination(_ configuration: Configuration) async throws -> Repository {
            do {
                if let named = configuration.repositories[to] {
                    let file = toPasswordFile ?? named.settings.passwordFile
                    let password = try readSecret(file: file, environment: "BUNKER_TO_PASSWORD", prompt: "Password of \(to): ", confirm: false, flag: "--to-password-file")
                    return try await RepositoryStorage.open(named.settings.location ?? to, settings: named.settings, password: password, loadIndex: false)
                }
                // Neither a name nor a repository: say so before asking for a password.
                if !to.contains("://"), !FileManager.default.fileExists(atPath: (to.hasPrefix("local:") ? String(to.dropFirst("local:".count)) : to) + "/config") {
                    let known = configuration.repositories.keys.sorted()
                    throw BunkerError(.repositoryNotFound, "--to \(to) names no repository: no [repositories.\(to)] in \(configuration.file ?? "bunker.toml")\(known.isEmpty ? "" : " (configured: \(known.joined(separator: ", ")))"), and no repository at \(URL(fileURLWithPath: to).standardizedFileURL.path). Give a configured name, or a location made with `bunker init --copy-params-from`.")
                }
                let password = try readSecret(file: toPasswordFile, environment: "BUNKER_TO_PASSWORD", prompt: "Password of \(to): ", confirm: false, flag: "--to-password-file")
                var settings = configuration.repository
                settings.readOnly = nil
                return try await RepositoryStorage.open(to, settings: settings, password: password, loadIndex: false)
            } catch let error as BunkerError where error.code == .wrongPassword {
                throw BunkerError(.wrongPassword, "Wrong password for the copy's destination \(to): no key of it opens with it. Check --to-password-file, BUNKER_TO_PASSWORD or its password_file in bunker.toml.")
            }
        }
    }
}
