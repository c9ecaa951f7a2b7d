import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "init", abstract: "Create a new, encrypted repository.")

        @OptionGroup var repository: RepositoryOptions

        @Option(help: ArgumentHelp("Default zstd level for backups, 1–19 (default: $BACKUP_COMPRESSION_LEVEL, else the configuration's compression_level, else 3).", valueName: "level"))
        var compressionLevel: Int?

        @Option(help: ArgumentHelp("Chunk size for SQLite database files, cut at page boundaries (default 4096: one chunk per page; 0 chunks them like other files).", valueName: "bytes"))
        var databaseChunkSize: Int?

        @Option(help: ArgumentHelp("Make a copy destination of this repository (a [repositories.NAME] or a location): the same chunking parameters and key material, so that `bunker copy` ships its packs' data without re-encoding and deduplication works across the two. Its password: --from-password-file, else $BUNKER_FROM_PASSWORD, else a prompt.", valueName: "location"))
        var copyParamsFrom: String?

        @Option(help: ArgumentHelp("The password file of the --copy-params-from repository.", valueName: "file"))
        var fromPasswordFile: String?

        @Option(help: ArgumentHelp("Write every object under an S3 object lock: `compliance` (nobody can delete it before the lock ends) or `governance`. Needs an s3:// bucket created with object lock enabled, and --lock-days.", valueName: "mode"))
        var objectLock: String?

        @Option(help: ArgumentHelp("How many days every object stays undeletable under --object-lock (2555 is 7 years).", valueName: "days"))
        var lockDays: Int?

        func validate() throws {
            if (objectLock == nil) != (lockDays == nil) {
                throw ValidationError("--object-lock and --lock-days go together: give the mode (compliance or governance) and the number of days every object stays undeletable.")
            }
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
                        file: fromPasswordFile ?? named?.settings.passwordFile, environment: "BUNKER_FROM_PASSWORD", prompt: "Password of \(copyParamsFrom): ", confirm: false,
                        flag: "--from-password-file")
                    let from = try await RepositoryStorage.open(
                        named?.settings.location ?? copyParamsFrom, settings: named?.settings ?? configuration.repository, password: fromPassword, loadIndex: false)
                    chunker = from.config.chunker
                    packSize = from.config.packSize
                    sharing = from.key
                }
                let location = try repository.location(configuration)
                let password = try repository.password(confirm: true, configuration)
                let storage = try RepositoryAccess.storage(location, configuration, create: true)
                var lock: (settings: ObjectLockSettings, probe: ImmutabilityProbe)?
                if let objectLock, let lockDays {
                    let asked = ObjectLockSettings(mode: try ObjectLockMode(parsing: objectLock), days: lockDays)
                    if let configured = configuration.repository.objectLock, configured != asked {
                        throw BunkerError(.invalidArgument, "--object-lock \(objectLock) --lock-days \(lockDays) disagrees with the configuration's object_lock = { mode = \"\(configured.mode.rawValue.lowercased())\", days = \(configured.days) }; give the same, or drop the flags to use the configuration's.")
                    }
                    lock = try await probedObjectLock(asked, storage)
                } else if let configured = configuration.repository.objectLock {
                    lock = try await probedObjectLock(configured, storage)
                }
                let repo = try await Repository.create(
                    storage: storage, password: password,
                    config: .new(compressionLevel: level, chunker: chunker, packSize: packSize, objectLock: lock?.settings), sharing: sharing)
                if let lock, !lock.settings.enforced {
                    Output.warning("The repository is NOT immutable: \(lock.probe.detail) Its objects carry a \(lock.settings.mode.rawValue) retention the bucket does not honour, and `bunker stats` says so. For an immutable archive, create a bucket with object lock enabled on a server that enforces it, and run init there.")
                }
                if repository.output.json {
                    Output.printJSON(InitOutput(
                        repository: location, id: repo.config.id, key: repo.keyName, version: repo.config.version, compressionLevel: level,
                        objectLock: lock.map { ObjectLockStatus($0.settings) }, lockProbe: lock?.probe.detail))
                } else if !repository.output.quiet {
                    print("Created repository \(repo.config.id.prefix(8)) at \(location) (format version \(repo.config.version), zstd level \(level)).")
                    if let lock, lock.settings.enforced {
                        print("Every object is written under \(lock.settings.mode.rawValue) object lock for \(lock.settings.days) days; the bucket refused to delete a locked probe, so the repository is immutable.")
                    }
                    print("Keep the password safe: without it, the backups cannot be read by anyone.")
                }
            }
        }
    }
}

/// Checks the storage can keep objects locked and probes whether the bucket enforces the lock;
/// the settings come back with `enforced` as the probe found it. A bucket that does not enforce
/// it still gets the repository (its objects carry the retention for a server that later
/// honours it), but never called immutable.
private func probedObjectLock(_ settings: ObjectLockSettings, _ storage: any Storage) async throws -> (settings: ObjectLockSettings, probe: ImmutabilityProbe) {
    try settings.validate()
    guard let retaining = storage.retention else {
        throw BunkerError(.invalidArgument, "--object-lock needs an s3:// repository in a bucket created with object lock enabled; a local directory cannot keep objects undeletable. Give an s3:// location, or drop --object-lock and --lock-days.")
    }
    let probe = try await retaining.probeImmutability(mode: settings.mode)
    var probed = settings
    probed.enforced = probe.enforced
    return (probed, probe)
}

struct InitOutput: Encodable {
    var repository: String
    var id: String
    var key: String
    var version: Int
    var compressionLevel: Int
    var objectLock: ObjectLockStatus?
    /// What the object-lock probe saw, in words.
    var lockProbe: String?

    enum CodingKeys: String, CodingKey {
        case repository, id, key, version
        case compressionLevel = "compression_level"
        case objectLock = "object_lock"
        case lockProbe = "lock_probe"
    }
}

/// The `--compression-level` flag, validated. Without the flag the level is the configuration's
/// (`compression_level`, with `BACKUP_COMPRESSION_LEVEL` over it): `Configuration` is the one
/// place that reads the variable.
func validatedCompressionLevel(_ flag: Int?) throws -> Int? {
    if let flag { try validateCompressionLevel(flag) }
    return flag
}
