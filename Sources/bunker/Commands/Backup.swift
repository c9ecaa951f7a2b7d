import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct Backup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "backup",
            abstract: "Back up the configured sources (or the paths given) into a new snapshot.",
            discussion: """
                Without paths, every source in bunker.toml goes into one snapshot: SQLite databases copied online, \
                PostgreSQL databases dumped with pg_dump, file trees walked. --type and --source narrow it. \
                Files whose size, mtime and inode are unchanged since the last snapshot of the same sources are not read again.
                """)

        @OptionGroup var repository: RepositoryOptions

        @Argument(help: ArgumentHelp("Files or directories to back up instead of the configured sources.", valueName: "path"))
        var paths: [String] = []

        @Option(help: ArgumentHelp("Which sources: full (all), database or files.", valueName: "type"))
        var type: BackupType = .full

        @Option(name: .customLong("source"), help: ArgumentHelp("Back up only this configured source (repeatable).", valueName: "name"))
        var sources: [String] = []

        @Option(name: .customLong("tag"), help: ArgumentHelp("Label the snapshot (repeatable).", valueName: "tag"))
        var tags: [String] = []

        @Option(help: "A description stored with the snapshot.")
        var description: String?

        @Option(name: [.customShort("e"), .customLong("exclude")], help: ArgumentHelp("Leave out matching entries: *.tmp, cache/, dir/sub/* (repeatable).", valueName: "pattern"))
        var excludes: [String] = []

        @Option(help: ArgumentHelp("zstd level 1–19 (default: $BACKUP_COMPRESSION_LEVEL, else the configuration's compression_level, else the repository's).", valueName: "level"))
        var compressionLevel: Int?

        @Option(help: ArgumentHelp("Compare against this snapshot instead of the latest of the same paths.", valueName: "id"))
        var parent: String?

        @Flag(help: "Read every file, even unchanged ones.")
        var force = false

        func validate() throws {
            if force && parent != nil {
                throw ValidationError("--force and --parent exclude each other.")
            }
            if !paths.isEmpty && (type != .full || !sources.isEmpty) {
                throw ValidationError("--type and --source select configured sources; they cannot be combined with paths.")
            }
        }

        func run() async throws {
            try await repository.output.run {
                let level = try validatedCompressionLevel(compressionLevel)
                let result: BackupResult
                if paths.isEmpty {
                    let service = try await repository.service()
                    var request = SourceBackupRequest(type: type)
                    request.sourceNames = sources
                    request.tags = tags
                    request.description = description
                    request.compressionLevel = level
                    let chosen = request
                    result = try await repository.job(service, "backup", access: .writes) { try await service.backup(chosen, progress: $0) }
                } else {
                    result = try await backupPaths(level: level)
                }
                try report(result)
            }
        }

        private func backupPaths(level: Int?) async throws -> BackupResult {
                let service = try await repository.service()
                let repo = service.repository
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
                let chosen = request
                return try await repository.job(service, "backup", access: .writes) { try await service.backup(paths: chosen, progress: $0) }
        }

        private func report(_ result: BackupResult) throws {
                let s = result.snapshot.summary ?? BackupSummary()
                if repository.output.json {
                    Output.printJSON(BackupOutput(result))
                } else {
                    for warning in result.warnings { Output.warning(warning) }
                    if !repository.output.quiet {
                        print("Files: \(s.filesNew) new, \(s.filesChanged) changed, \(s.filesUnmodified) unmodified; \(s.directories) directories")
                        print("Added to the repository: \(Output.bytes(s.dataAdded)) (\(Output.bytes(s.dataAddedStored)) stored)")
                        print("Processed \(s.totalFiles) files, \(Output.bytes(s.totalBytes)) in \(Output.duration(s.durationSeconds))")
                        if let sources = result.snapshot.sources {
                            print("Sources: \(sources.map { "\($0.name) (\($0.kind))" }.joined(separator: ", "))")
                        }
                        print("Snapshot \(result.snapshotID.short) saved\(result.snapshot.parent.map { " (parent \($0.short))" } ?? "")")
                    }
                }
                if !result.warnings.isEmpty {
                    throw ExitCode(3)
                }
        }
    }
}

extension BackupType: ExpressibleByArgument {}

struct BackupOutput: Encodable {
    var snapshotID: String
    var shortID: String
    var time: Date
    var paths: [String]
    var tags: [String]
    var parent: String?
    var backupType: String?
    var sources: [SnapshotSource]?
    var summary: BackupSummary?
    var warnings: [String]

    init(_ result: BackupResult) {
        snapshotID = result.snapshotID.hex
        shortID = result.snapshotID.short
        time = result.snapshot.time
        paths = result.snapshot.paths
        tags = result.snapshot.tags
        parent = result.snapshot.parent?.hex
        backupType = result.snapshot.backupType
        sources = result.snapshot.sources
        summary = result.snapshot.summary
        warnings = result.warnings
    }

    enum CodingKeys: String, CodingKey {
        case snapshotID = "snapshot_id"
        case shortID = "short_id"
        case time, paths, tags, parent, summary, warnings, sources
        case backupType = "backup_type"
    }
}
