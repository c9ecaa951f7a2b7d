import ArgumentParser
import BunkerCore
import Foundation

extension BunkerCommand {
    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a snapshot, or chosen paths of it, into a directory.",
            discussion: "Every restored file's SHA-256 is checked against the one recorded at backup time; a file that fails is not left in the target.")

        @OptionGroup var repository: RepositoryOptions

        @Argument(help: ArgumentHelp("Snapshot id (or a unique prefix, or latest).", valueName: "id"))
        var snapshot: String

        @Option(name: [.customShort("t"), .long], help: ArgumentHelp("Directory to restore into (created if missing).", valueName: "dir"))
        var target: String

        @Option(name: [.customShort("i"), .customLong("include")], help: ArgumentHelp("Restore only this path of the snapshot, e.g. studies/2024 (repeatable).", valueName: "path"))
        var includes: [String] = []

        func run() async throws {
            try await repository.output.run {
                let repo = try await repository.open()
                let (id, s) = try await repo.findSnapshot(snapshot)
                let progress = repository.output.showsProgress ? OperationProgress() : nil
                if let progress, let total = s.summary?.totalBytes, includes.isEmpty {
                    progress.update {
                        $0.bytesTotal = total
                        $0.filesTotal = s.summary?.totalFiles ?? 0
                        $0.totalsKnown = true
                    }
                }
                let restorer = Restorer(loader: repo, includes: includes, progress: progress)
                let report = try await repo.withLock(exclusive: false) {
                    try await ProgressLine.with(progress, verb: "restore") {
                        try await restorer.restore(tree: s.tree, to: target)
                    }
                }
                if repository.output.json {
                    Output.printJSON(RestoreOutput(snapshotID: id.hex, target: target, report: report))
                } else {
                    for failure in report.failures { Output.error("\(failure.path): \(failure.message)") }
                    if !repository.output.quiet {
                        print("Restored \(report.filesRestored) files (\(Output.bytes(report.bytesRestored))), \(report.directoriesRestored) directories, \(report.symlinksRestored) symlinks from snapshot \(id.short) to \(target); every file's SHA-256 checked.")
                        if !report.failures.isEmpty {
                            print("\(report.failures.count) entries could NOT be restored (listed above); run `bunker verify --read-data` to see the damage.")
                        }
                    }
                }
                if !report.failures.isEmpty { throw ExitCode(7) }
            }
        }
    }
}

struct RestoreOutput: Encodable {
    var snapshotID: String
    var target: String
    var report: RestoreReport

    enum CodingKeys: String, CodingKey {
        case snapshotID = "snapshot_id"
        case target, report
    }
}
