import ArgumentParser
import BunkerCore
import Foundation

/// Options every repository command shares.
struct RepositoryOptions: ParsableArguments {
    @Option(name: [.customShort("r"), .long], help: ArgumentHelp("Repository location (default: $BUNKER_REPOSITORY).", valueName: "path"))
    var repo: String?

    @Option(help: ArgumentHelp("Read the password from this file (default: $BUNKER_PASSWORD, else a prompt).", valueName: "file"))
    var passwordFile: String?

    @OptionGroup var output: OutputOptions

    /// The repository location from the flag or the environment.
    func location() throws -> String {
        if let repo, !repo.isEmpty { return repo }
        if let env = ProcessInfo.processInfo.environment["BUNKER_REPOSITORY"], !env.isEmpty { return env }
        throw BunkerError(.invalidArgument, "No repository given: use --repo PATH or set BUNKER_REPOSITORY.")
    }

    /// The password from the file, the environment or the terminal.
    func password(confirm: Bool = false) throws -> String {
        try readSecret(file: passwordFile, environment: "BUNKER_PASSWORD", prompt: "Repository password: ", confirm: confirm)
    }

    /// Opens the repository.
    func open(loadIndex: Bool = true) async throws -> Repository {
        let storage = try StorageLocation.storage(for: location())
        return try await Repository.open(storage: storage, password: password(), loadIndex: loadIndex)
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
        default: return 1
        }
    }
}

struct ErrorOutput: Encodable {
    var error: String
    var message: String
}

/// A secret from a file (first line), else an environment variable, else a prompt on a terminal.
func readSecret(file: String?, environment: String, prompt: String, confirm: Bool) throws -> String {
    if let file {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw BunkerError(.invalidArgument, "Cannot read the password file \(file).")
        }
        return text.trimmingCharacters(in: .newlines)
    }
    if let value = ProcessInfo.processInfo.environment[environment] { return value }
    return try Terminal.readPassword(prompt: prompt, confirm: confirm)
}
