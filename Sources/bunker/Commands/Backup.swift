import ArgumentParser
import BunkerCore
import Foundation

extension BunkerCommand {
    struct Backup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Back up files and directories into a new snapshot.",
            discussion: "Files whose size, mtime and inode are unchanged since the last snapshot of the same paths are not read again.")

        @OptionGroup var repository: RepositoryOptions

        @Argument(help: ArgumentHelp("Files or directories to back up.", valueName: "path"))
        var paths: [String]

        @Option(name: .customLong("tag"), help: ArgumentHelp("Label the snapshot (repeatable).", valueName: "tag"))
        var tags: [String] = []

        @Option(help: "A description stored with the snapshot.")
        var description: String?

        @Option(name: [.customShort("e"), .customLong("exclude")], help: ArgumentHelp("Leave out matching entries: *.tmp, cache/, dir/sub/* (repeatable).", valueName: "pattern"))
        var excludes: [String] = []

        @Option(help: ArgumentHelp("zstd level 1–19 (default: $BACKUP_COMPRESSION_LEVEL, else the repository's).", valueName: "level"))
        var compressionLevel: Int?

        @Option(help: ArgumentHelp("Compare against this snapshot instead of the latest of the same paths.", valueName: "id"))
        var parent: String?

        @Flag(help: "Read every file, even unchanged ones.")
        var force = false

        func validate() throws {
            if force && parent != nil {
                throw ValidationError("--force and --parent exclude each other.")
            }
        }

        func run() async throws {
            try await repository.output.run {
                let level = try compressionLevelSetting(compressionLevel)
                let repo = try await repository.open()
                var request = BackupRequest(paths: paths)
                request.excludes = excludes
                request.tags = tags
                request.description = description
                request.compressionLevel = level
                if force {
                    request.parent = .none
                } else if let parent {
                    request.parent = .snapshot(try await repo.findSnapshot(parent).id)
                }
                let progress = repository.output.showsProgress ? OperationProgress() : nil
                let archiver = try Archiver(repository: repo, request: request, progress: progress)
                let result = try await repo.withLock(exclusive: false) {
                    try await ProgressLine.with(progress, verb: "backup") { try await archiver.run() }
                }
                let s = result.snapshot.summary ?? BackupSummary()
                if repository.output.json {
                    Output.printJSON(BackupOutput(result))
                } else {
                    for warning in result.warnings { Output.warning(warning) }
                    if !repository.output.quiet {
                        print("Files: \(s.filesNew) new, \(s.filesChanged) changed, \(s.filesUnmodified) unmodified; \(s.directories) directories")
                        print("Added to the repository: \(Output.bytes(s.dataAdded)) (\(Output.bytes(s.dataAddedStored)) stored)")
                        print("Processed \(s.totalFiles) files, \(Output.bytes(s.totalBytes)) in \(Output.duration(s.durationSeconds))")
                        print("Snapshot \(result.snapshotID.short) saved\(result.snapshot.parent.map { " (parent \($0.short))" } ?? "")")
                    }
                }
                if !result.warnings.isEmpty {
                    throw ExitCode(3)
                }
            }
        }
    }
}

struct BackupOutput: Encodable {
    var snapshotID: String
    var shortID: String
    var time: Date
    var paths: [String]
    var tags: [String]
    var parent: String?
    var summary: BackupSummary?
    var warnings: [String]

    init(_ result: BackupResult) {
        snapshotID = result.snapshotID.hex
        shortID = result.snapshotID.short
        time = result.snapshot.time
        paths = result.snapshot.paths
        tags = result.snapshot.tags
        parent = result.snapshot.parent?.hex
        summary = result.snapshot.summary
        warnings = result.warnings
    }

    enum CodingKeys: String, CodingKey {
        case snapshotID = "snapshot_id"
        case shortID = "short_id"
        case time, paths, tags, parent, summary, warnings
    }
}
