import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Check the repository's structure, and with --read-data every stored byte; or one backup's data.",
            discussion: """
                Damaged or missing objects are named with the snapshots and files they affect. \
                `bunker verify ID` (or `latest`) reads and authenticates every stored object one backup \
                needs, as the API's POST /api/v1/backup/{id}/verify does: the DermAI strategy's `verify latest`.
                """)

        @OptionGroup var repository: RepositoryOptions

        @Argument(help: ArgumentHelp("Check only this backup's data: a snapshot id, an unambiguous prefix, or `latest`.", valueName: "snapshot"))
        var snapshot: String?

        @Flag(help: "Read and authenticate every pack (or a subset).")
        var readData = false

        @Option(help: ArgumentHelp("Read only part of the data: n/m (e.g. 1/5, rotating) or a percentage (e.g. 10%). Implies --read-data.", valueName: "subset"))
        var readDataSubset: String?

        func validate() throws {
            if snapshot != nil && readDataSubset != nil {
                throw ValidationError("--read-data-subset reads part of the whole repository; a single backup (\(snapshot!)) is always read whole. Give one or the other.")
            }
        }

        func run() async throws {
            try await repository.output.run {
                let subset = try readDataSubset.map(DataSubset.init(parsing:))
                let service = try await repository.service(loadIndex: snapshot != nil)
                // `latest` or a prefix, said as the backup it is.
                var chosen: ID?
                if let snapshot { chosen = try await service.repository.findSnapshot(snapshot).id }
                let backup = chosen
                let report = try await repository.job(service, "verify", access: .reads) { progress in
                    if let backup {
                        return try await service.verify(snapshot: backup.hex, progress: progress)
                    }
                    return try await service.verify(readData: readData, subset: subset, progress: progress)
                }
                if repository.output.json {
                    Output.printJSON(report)
                } else {
                    for warning in report.warnings { Output.warning(warning) }
                    for issue in report.errors {
                        Output.error(issue.message)
                        for file in issue.affected.prefix(50) {
                            FileHandle.standardError.write(Data("    affects snapshot \(file.snapshot.prefix(8)): \(file.path)\n".utf8))
                        }
                        if issue.affected.count > 50 {
                            FileHandle.standardError.write(Data("    … and \(issue.affected.count - 50) more files\n".utf8))
                        }
                    }
                    if !repository.output.quiet {
                        var line = "Checked \(report.snapshots) snapshots, \(report.indexFiles) index files, \(report.packs) packs, \(report.blobs) blobs"
                        if let backup {
                            line = "Checked backup \(backup.short): read \(report.packsRead) pack\(report.packsRead == 1 ? "" : "s") (\(Output.bytes(report.bytesRead))) holding its \(report.blobs) blobs"
                        } else if readData || subset != nil {
                            line += "; read \(report.packsRead) packs (\(Output.bytes(report.bytesRead)))"
                            if let s = report.subset { line += " of subset \(s)" }
                        }
                        print(line)
                        for wal in report.wal {
                            let ranges = wal.timelines.map { "timeline \($0.timeline) \($0.firstSegment)…\($0.lastSegment)" }.joined(separator: ", ")
                            print("WAL of \(wal.source): \(wal.objects) files\(ranges.isEmpty ? "" : ", " + ranges)\(wal.gaps.isEmpty ? ", no gaps" : ", \(wal.gaps.count) gaps")")
                        }
                        print(report.ok ? "No errors were found." : "\(report.errors.count) errors found: the data listed above cannot be restored as it is.")
                    }
                }
                if !report.ok { throw ExitCode(7) }
            }
        }
    }
}
