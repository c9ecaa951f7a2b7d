import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the repository's structure, and with --read-data every stored byte.",
            discussion: "Damaged or missing objects are named with the snapshots and files they affect.")

        @OptionGroup var repository: RepositoryOptions

        @Flag(help: "Read and authenticate every pack (or a subset).")
        var readData = false

        @Option(help: ArgumentHelp("Read only part of the data: n/m (e.g. 1/5, rotating) or a percentage (e.g. 10%). Implies --read-data.", valueName: "subset"))
        var readDataSubset: String?

        func run() async throws {
            try await repository.output.run {
                let subset = try readDataSubset.map(DataSubset.init(parsing:))
                let service = try await repository.service(loadIndex: false)
                let report = try await repository.job(service, "verify", access: .reads) {
                    try await service.verify(readData: readData, subset: subset, progress: $0)
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
                        if readData || subset != nil {
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
