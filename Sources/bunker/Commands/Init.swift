import ArgumentParser
import BunkerCore
import Foundation

extension BunkerCommand {
    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a new, encrypted repository.")

        @OptionGroup var repository: RepositoryOptions

        @Option(help: ArgumentHelp("Default zstd level for backups, 1–19 (default: $BACKUP_COMPRESSION_LEVEL, else 3).", valueName: "level"))
        var compressionLevel: Int?

        @Option(help: ArgumentHelp("Chunk size for SQLite database files, cut at page boundaries (default 4096: one chunk per page; 0 chunks them like other files).", valueName: "bytes"))
        var databaseChunkSize: Int?

        func run() async throws {
            try await repository.output.run {
                let level = try compressionLevelSetting(compressionLevel) ?? 3
                var chunker = ChunkerParameters.standard()
                if let databaseChunkSize {
                    chunker.pageAlignedSize = databaseChunkSize == 0 ? nil : databaseChunkSize
                }
                let location = try repository.location()
                let password = try repository.password(confirm: true)
                let storage = try StorageLocation.storage(for: location, create: true)
                let repo = try await Repository.create(storage: storage, password: password, config: .new(compressionLevel: level, chunker: chunker))
                if repository.output.json {
                    Output.printJSON(InitOutput(repository: location, id: repo.config.id, key: repo.keyName, version: repo.config.version, compressionLevel: level))
                } else if !repository.output.quiet {
                    print("Created repository \(repo.config.id.prefix(8)) at \(location) (format version \(repo.config.version), zstd level \(level)).")
                    print("Keep the password safe: without it, the backups cannot be read by anyone.")
                }
            }
        }
    }
}

struct InitOutput: Encodable {
    var repository: String
    var id: String
    var key: String
    var version: Int
    var compressionLevel: Int

    enum CodingKeys: String, CodingKey {
        case repository, id, key, version
        case compressionLevel = "compression_level"
    }
}

/// The compression level from the flag, else `BACKUP_COMPRESSION_LEVEL`, validated.
func compressionLevelSetting(_ flag: Int?) throws -> Int? {
    var level = flag
    if level == nil, let env = ProcessInfo.processInfo.environment["BACKUP_COMPRESSION_LEVEL"], !env.isEmpty {
        guard let value = Int(env) else {
            throw BunkerError(.invalidArgument, "BACKUP_COMPRESSION_LEVEL=\(env) is not a number; use 1 to 19.")
        }
        level = value
    }
    if let level { try validateCompressionLevel(level) }
    return level
}
