import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export",
            abstract: "Write a snapshot as a ZIP archive in the Clinical Dashboard API's layout.",
            discussion: """
                The archive holds database.sql (the plain SQL of the database source; with several, NAME/database.sql \
                each), each SQLite database file under its source name, the file trees under their source names, \
                metadata.json, and SHA256SUMS, which `sha256sum -c SHA256SUMS` checks after unzipping. Files are \
                deflated (at the compression level, at most 9) unless their start does not compress. The same snapshot \
                always gives the same bytes; the ZIP's SHA-256 is printed (`sha256` with --json) and recorded in the \
                catalog, where the API's `checksum` of the backup reads it.
                """)

        @OptionGroup var repository: RepositoryOptions

        @Argument(help: ArgumentHelp("Snapshot id (or a unique prefix, or latest).", valueName: "id"))
        var snapshot: String

        @Option(help: ArgumentHelp("The ZIP file to write (must not exist).", valueName: "file"))
        var zip: String

        func run() async throws {
            try await repository.output.run {
                let service = try await repository.service()
                let summary = try await repository.job(service, "export", access: .reads) {
                    try await service.export(snapshot: snapshot, to: zip, progress: $0)
                }
                if repository.output.json {
                    Output.printJSON(summary)
                } else if !repository.output.quiet {
                    print("Wrote \(summary.file): \(summary.entries.count) files, \(Output.bytes(summary.bytes)) (\(Output.bytes(summary.zipBytes)) zipped), from snapshot \(summary.snapshotID.prefix(8)).")
                    print("SHA-256: \(summary.sha256)")
                }
            }
        }
    }
}
