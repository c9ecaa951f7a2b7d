import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a new, encrypted repository.")

        @OptionGroup var repository: RepositoryOptions

        @Option(help: ArgumentHelp("Default zstd level for backups, 1–19 (default: $BACKUP_COMPRESSION_LEVEL, else the configuration's compression_level, else 3).", valueName: "level"))
        var compressionLevel: Int?

        @Option(help: ArgumentHelp("Chunk size for SQLite database files, cut at page boundaries (default 4096: one chunk per page; 0 chunks them like other files).", valueName: "bytes"))
        var databaseChunkSize: Int?

        @Option(help: ArgumentHelp("Make a copy destination of this repository (a [repositories.NAME] or a location): the same chunking parameters and key material, so that `bunker copy` ships its packs' data without re-encoding and deduplication works across the two. Its password: --from-password-file, else $BUNKER_FROM_PASSWORD, else a prompt.", valueName: "location"))
        var copyParamsFrom: String?

        @Option(help: ArgumentHelp("The password file of the --copy-params-from repository.", valueName: "file"))
        var fromPasswordFile: String?

        func validate() throws {
            if copyParamsFrom != nil && databaseChunkSize != nil {
                throw ValidationError("--copy-params-from takes the chunking parameters of that repository; drop --database-chunk-size.")
            }
        }

        func run() async throws {
            try await repository.output.run {
                let configuration = try repository.configuration()
                let level = try validatedCompressionLevel(compressionLevel) ?? configuration.repository.compressionLevel ?? 3
                var chunker = ChunkerParameters.standard()
                if let databaseChunkSize {
                    chunker.pageAlignedSize = databaseChunkSize == 0 ? nil : databaseChunkSize
                }
                var packSize = RepositoryConfig.new().packSize
                var sharing: MasterKey?
                if let copyParamsFrom {
                    // A [repositories.NAME] of bunker.toml, or a location.
                    let named = try Configuration.load(explicit: repository.config).repositories[copyParamsFrom]
                    let fromPassword = try readSecret(
                        file: fromPasswordFile ?? named?.settings.passwordFile, environment: "BUNKER_FROM_PASSWORD", prompt: "Password of \(copyParamsFrom): ", confirm: false)
                    let from = try await RepositoryStorage.open(
                        named?.settings.location ?? copyParamsFrom, settings: named?.settings ?? configuration.repository, password: fromPassword, loadIndex: false)
                    chunker = from.config.chunker
                    packSize = from.config.packSize
                    sharing = from.key
                }
                let location = try repository.location(configuration)
                let password = try repository.password(confirm: true, configuration)
                let storage = try RepositoryAccess.storage(location, configuration, create: true)
                let repo = try await Repository.create(
                    storage: storage, password: password, config: .new(compressionLevel: level, chunker: chunker, packSize: packSize), sharing: sharing)
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

/// The `--compression-level` flag, validated. Without the flag the level is the configuration's
/// (`compression_level`, with `BACKUP_COMPRESSION_LEVEL` over it): `Configuration` is the one
/// place that reads the variable.
func validatedCompressionLevel(_ flag: Int?) throws -> Int? {
    if let flag { try validateCompressionLevel(flag) }
    return flag
}
