import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

/// Options every repository command shares.
struct RepositoryOptions: ParsableArguments {
    @Option(name: [.customShort("r"), .long], help: ArgumentHelp("Repository location (default: $BUNKER_REPOSITORY).", valueName: "path"))
    var repo: String?

    @Option(name: .customLong("repository"), help: ArgumentHelp("Work on [repositories.NAME] of bunker.toml (an off-site copy, say) instead of the primary repository: its location, password file and retention.", valueName: "name"))
    var repositoryName: String?

    @Option(help: ArgumentHelp("Read the password from this file (default: $BUNKER_PASSWORD, else a prompt).", valueName: "file"))
    var passwordFile: String?

    @Option(help: ArgumentHelp("Configuration file (default: $BUNKER_CONFIG, else bunker.toml beside the data directory).", valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("If another process holds a conflicting lock, wait this long for it (30s, 10m, 1h) before failing with \"repository is busy\".", valueName: "duration"))
    var retryLock: String?

    @Flag(help: ArgumentHelp("Open the repository read-only: take no lock and write nothing into it, so that credentials that can only read (an off-site archive's) still list, verify and restore to a new place. Commands that write refuse. Also read_only = true in the repository's table of bunker.toml."))
    var readOnly = false

    @OptionGroup var output: OutputOptions

    func validate() throws {
        if repo != nil && repositoryName != nil {
            throw ValidationError("--repo and --repository both name a repository; give one.")
        }
    }

    /// --retry-lock in seconds.
    func lockWait() throws -> TimeInterval {
        guard let retryLock else { return 0 }
        return try seconds(retryLock, option: "--retry-lock")
    }

    /// The configuration file (if any) with the environment over it, aimed at --repository, or
    /// at the named repository --repo gives the location of.
    func configuration() throws -> Configuration {
        var configuration = try Configuration.load(explicit: config)
        configuration = try chosenName(configuration).map(configuration.selecting(repository:)) ?? configuration
        if readOnly { configuration.repository.readOnly = true }
        return configuration
    }

    /// --repository, else the `[repositories]` table whose location --repo gives.
    private func chosenName(_ configuration: Configuration) -> String? {
        repositoryName ?? repo.flatMap(configuration.repositoryName(at:))
    }

    /// Whether a named repository is worked on (its password file then comes before
    /// BUNKER_PASSWORD, which is the primary's). Asked of the configuration as written, before
    /// ``configuration()`` aims it at the named one.
    private func isNamed() throws -> Bool {
        if repositoryName != nil { return true }
        guard repo != nil else { return false }
        return try chosenName(Configuration.load(explicit: config)) != nil
    }

    /// The repository location: the flag, BUNKER_REPOSITORY, BACKUP_DIR, then the configuration;
    /// with --repository, that repository's.
    func location(_ configuration: Configuration? = nil) throws -> String {
        let configuration = try configuration ?? self.configuration()
        if let chosen = try RepositoryAccess.location(flag: repo, configuration, named: try isNamed()) { return chosen }
        throw BunkerError(.invalidArgument, "No repository given: use --repo PATH (or s3://BUCKET/PREFIX), set BUNKER_REPOSITORY or BACKUP_DIR, or set [repository] path or url in bunker.toml.")
    }

    /// The password: --password-file, BUNKER_PASSWORD, the configuration's password_file, a prompt.
    func password(confirm: Bool = false, _ configuration: Configuration? = nil) throws -> String {
        let configuration = try configuration ?? self.configuration()
        return try RepositoryAccess.password(file: passwordFile, configuration, confirm: confirm, named: try isNamed())
    }

    /// Opens the repository.
    func open(loadIndex: Bool = true) async throws -> Repository {
        let configuration = try configuration()
        let repository = try await RepositoryAccess.open(location(configuration), configuration, password: password(configuration), loadIndex: loadIndex)
        repository.lockWait = try lockWait()
        return repository
    }

    /// Runs a command's operation as a job of `service`'s runner, as the API and the schedules
    /// run theirs: a writer claims the one-writer slot first (shared with `bunker serve` and
    /// other commands through the data directory), waiting up to --retry-lock, else failing
    /// with "busy" (exit 6); `bunker jobs` shows its progress and can cancel it. Draws the
    /// progress line when there is a terminal.
    func job<R: Sendable>(
        _ service: BunkerService, _ verb: String, access: JobAccess, _ body: @escaping @Sendable (OperationProgress) async throws -> R
    ) async throws -> R {
        let progress = OperationProgress()
        let article = verb.first.map { "aeiou".contains($0) } == true ? "an" : "a"
        let options = JobOptions("\(article) \(verb) by \(AuditActor.localUser().name)", access: access, wait: .seconds(try lockWait()), progress: progress)
        return try await ProgressLine.with(output.showsProgress ? progress : nil, verb: verb) {
            try await service.jobs.run(options) { try await body(progress) }
        }
    }

    /// Opens the repository with the configured sources and the catalog, which audits what the
    /// command does as the local user.
    func service(loadIndex: Bool = true) async throws -> BunkerService {
        let configuration = try configuration()
        let catalog = try configuration.openCatalog()
        let repository = try await RepositoryAccess.open(location(configuration), configuration, password: password(configuration), loadIndex: loadIndex)
        repository.lockWait = try lockWait()
        return BunkerService(configuration: configuration, repository: repository, catalog: catalog)
    }
}

/// How every command (and `bunker serve`) finds the repository, its password, and opens it: one
/// place, so that the faces cannot drift apart.
enum RepositoryAccess {
    /// The location: `flag`, BUNKER_REPOSITORY, then the configuration's (BACKUP_DIR over
    /// `[repository] path`, or its url); nil when none is given. A local location inside a files source is
    /// refused.
    static func location(flag: String?, _ configuration: Configuration, named: Bool = false) throws -> String? {
        var chosen = flag
        // BUNKER_REPOSITORY names the primary; a repository chosen by name is its table's.
        if (chosen?.isEmpty ?? true) && !named { chosen = ProcessInfo.processInfo.environment["BUNKER_REPOSITORY"] }
        if chosen?.isEmpty ?? true { chosen = configuration.repository.location }
        guard let chosen, !chosen.isEmpty else { return nil }
        try configuration.checkRepositoryIsOutsideSources(chosen)
        return chosen
    }

    /// The password: the `file` flag, BUNKER_PASSWORD, the configuration's password_file, a prompt.
    static func password(file: String?, _ configuration: Configuration, confirm: Bool, named: Bool = false) throws -> String {
        // BUNKER_PASSWORD is the primary's; a repository chosen by name uses its own file.
        if file == nil, ProcessInfo.processInfo.environment["BUNKER_PASSWORD"] == nil || named, let configured = configuration.repository.passwordFile {
            return try readSecret(file: configured, environment: "BUNKER_PASSWORD", prompt: "", confirm: false)
        }
        return try readSecret(file: file, environment: "BUNKER_PASSWORD", prompt: "Repository password: ", confirm: confirm)
    }

    /// The storage at `location`; an `s3://` one with the configuration's endpoint, region and
    /// path style over the AWS environment.
    static func storage(_ location: String, _ configuration: Configuration, create: Bool = false) throws -> any Storage {
        try RepositoryStorage.storage(location, settings: configuration.repository, create: create)
    }

    /// Opens the repository at `location`.
    static func open(_ location: String, _ configuration: Configuration, password: String, loadIndex: Bool = true) async throws -> Repository {
        try await Repository.open(storage: storage(location, configuration), password: password, loadIndex: loadIndex)
    }
}

/// Options of the commands that use only the catalog (users, the audit trail), not the repository.
struct CatalogOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Configuration file (default: $BUNKER_CONFIG, else bunker.toml beside the data directory).", valueName: "file"))
    var config: String?

    @OptionGroup var output: OutputOptions

    /// Opens the catalog in the configured data directory; `readOnly` writes nothing.
    func catalog(readOnly: Bool = false) throws -> Catalog {
        try Configuration.load(explicit: config).openCatalog(readOnly: readOnly)
    }
}

/// Output format options.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print machine-readable JSON on standard output.")
    var json = false

    @Flag(name: [.customShort("q"), .long], help: "Print nothing but errors (no progress).")
    var quiet = false

    /// Whether to draw a progress line: a terminal on stderr, not --json or --quiet.
    var showsProgress: Bool { !json && !quiet && isatty(STDERR_FILENO) == 1 }

    /// Runs `body`, turning a ``BunkerError`` into a message and an exit code.
    func run(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as BunkerError {
            report(error)
            throw ExitCode(Self.exitCode(for: error.code))
        } catch is CancellationError {
            // `bunker jobs cancel`, the API's DELETE /jobs/{id} or the console's Cancel.
            let error = BunkerError(.cancelled, "The operation was cancelled (bunker jobs cancel, the API or the web console). What it wrote is left as after a kill: the repository verifies, and the next run completes.")
            report(error)
            throw ExitCode(Self.exitCode(for: error.code))
        }
    }

    func report(_ error: BunkerError) {
        if json {
            Output.printJSON(ErrorOutput(error: error.code.rawValue, message: error.description))
        } else {
            Output.error(error.description)
        }
    }

    static func exitCode(for code: BunkerError.Code) -> Int32 {
        switch code {
        case .repositoryNotFound: return 4
        case .wrongPassword, .keyNotFound: return 5
        case .repositoryLocked: return 6
        case .corruptObject, .integrity, .objectNotFound: return 7
        case .storageFull: return 8
        case .invalidArgument: return 64
        case .auditTampered: return 9
        case .walConflict, .walClusterMismatch: return 10
        default: return 1
        }
    }
}

struct ErrorOutput: Encodable {
    var error: String
    var message: String
}

/// A wait such as `30s`, `10m` (minutes), `1h` or `2d`, in seconds; a bare number is seconds.
func seconds(_ text: String, option: String) throws -> TimeInterval {
    let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
    if let unit = text.last.flatMap({ units[$0] }), let value = Double(text.dropLast()), value >= 0 {
        return value * unit
    }
    if let value = Double(text), value >= 0 { return value }
    throw BunkerError(.invalidArgument, "\(option) \"\(text)\" is not a duration; write e.g. 30s, 10m, 1h or 2d.")
}

/// A secret from a file (first line), else an environment variable, else a prompt on a terminal.
func readSecret(file: String?, environment: String, prompt: String, confirm: Bool, flag: String = "--password-file") throws -> String {
    if let file {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw BunkerError(.invalidArgument, "Cannot read the password file \(file).")
        }
        return text.trimmingCharacters(in: .newlines)
    }
    if let value = ProcessInfo.processInfo.environment[environment] { return value }
    return try Terminal.readPassword(prompt: prompt, confirm: confirm, environment: environment, flag: flag)
}
