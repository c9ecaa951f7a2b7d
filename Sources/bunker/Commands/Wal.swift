import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct Wal: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "wal",
            abstract: "Archive and restore PostgreSQL's WAL (archive_command and restore_command).",
            discussion: """
                postgresql.conf:  archive_command = '/usr/local/bin/bunker --config /etc/bunker/bunker.toml wal push %p'
                recovery:         restore_command = '/usr/local/bin/bunker --config /etc/bunker/bunker.toml wal fetch %f %p'
                Both run as PostgreSQL's own user; see docs/postgres-pitr.md.
                """,
            subcommands: [Push.self, Fetch.self, Drain.self, Stream.self, Setup.self])

        /// The options both subcommands share.
        struct SourceOptions: ParsableArguments {
            @Option(help: ArgumentHelp("The postgres source whose WAL this is (default: the only postgres source of the configuration).", valueName: "name"))
            var source: String?
        }

        /// A service over the repository, without opening the catalog (only a refused file is audited)
        /// or reading the index (WAL objects are not in it).
        static func service(_ options: RepositoryOptions) async throws -> BunkerService {
            let configuration = try options.configuration()
            let repository = try await RepositoryAccess.open(options.location(configuration), configuration, password: options.password(configuration), loadIndex: false)
            return BunkerService(configuration: configuration, repository: repository)
        }

        struct Push: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "push",
                abstract: "Archive one WAL file: archive_command = 'bunker --config FILE wal push %p'.",
                discussion: """
                    Exits 0 only when the file is durable in the repository, or was archived before with identical content \
                    ("already archived, identical"). Exits 10, audits and alerts when a file of that name is archived with \
                    different content or when the WAL comes from another cluster than the source's; other failures exit as \
                    every command does (non-zero). Takes no writer slot and no lock: it runs beside backups and prunes.
                    """)

            @OptionGroup var repository: RepositoryOptions
            @OptionGroup var wal: SourceOptions

            @Argument(help: ArgumentHelp("The WAL file (%p).", valueName: "path"))
            var path: String

            func run() async throws {
                try await repository.output.run {
                    let started = ContinuousClock.now
                    let configuration = try repository.configuration()
                    let source = try BunkerService.walSource(in: configuration, named: wal.source)
                    let outcome: WalPushOutcome
                    if let spooled = BunkerService.spoolWal(path: path, source: source, configuration: configuration) {
                        outcome = spooled
                    } else {
                        outcome = try await Wal.service(repository).pushWal(path: path, source: source)
                    }
                    let elapsed = ContinuousClock.now - started
                    if case .spooled = outcome, let spool = BunkerService.walSpool(in: configuration, source: source), !spool.drainerRuns() {
                        Wal.startDrainer(source: source, configuration: configuration.file, spool: spool, options: repository)
                    }
                    if repository.output.json {
                        Output.printJSON(WalPushOutput(outcome, source: source, elapsed: elapsed))
                    } else if !repository.output.quiet {
                        switch outcome {
                        case .archived(let result) where result.outcome == .stored:
                            print("\(result.file): archived for \(source) (\(Output.bytes(UInt64(result.size))) stored as \(Output.bytes(UInt64(result.storedBytes))), \(elapsed.formatted(.units(allowed: [.milliseconds]))))")
                        case .archived(let result):
                            print("\(result.file): already archived, identical")
                        case .spooled(let file, _):
                            print("\(file): spooled for \(source) (\(elapsed.formatted(.units(allowed: [.milliseconds])))); the drainer ships it")
                        case .alreadySpooled(let file, _):
                            print("\(file): already spooled, identical")
                        }
                    }
                }
            }
        }

        /// Starts `bunker wal drain` for `source` as a process of its own, in a session of its
        /// own (so that PostgreSQL's signals to the archiver's process group do not reach it),
        /// writing to `<spool>/.drain.log`. A second drainer started in a race exits at once.
        static func startDrainer(source: String, configuration: String?, spool: WalSpool, options repository: RepositoryOptions) {
            var arguments = ["wal", "drain", "--source", source, "--quiet"]
            if let configuration { arguments += ["--config", configuration] }
            if let repo = repository.repo { arguments += ["--repo", repo] }
            if let name = repository.repositoryName { arguments += ["--repository", name] }
            if let file = repository.passwordFile { arguments += ["--password-file", file] }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
            process.arguments = arguments
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            let log = spool.directory + "/.drain.log"
            if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
            if let handle = FileHandle(forWritingAtPath: log) {
                handle.seekToEndOfFile()
                process.standardError = handle
            } else {
                process.standardError = FileHandle.nullDevice
            }
            do {
                try process.run()
            } catch {
                Output.warning("could not start the WAL drainer (\(error)); the spooled file waits for the next push or `bunker wal drain`.")
            }
        }

        struct Drain: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "drain",
                abstract: "Ship the WAL spooled by an asynchronous `wal push` to the repository.",
                discussion: """
                    Started by `wal push` when [source.wal] async = true and no drainer runs; runs until the spool \
                    stays empty for a moment. At most one runs per source (a lock in the spool directory).
                    """)

            @OptionGroup var repository: RepositoryOptions
            @OptionGroup var wal: SourceOptions

            @Option(help: ArgumentHelp("Files shipped at once.", valueName: "n"))
            var parallel = 4

            func run() async throws {
                try await repository.output.run {
                    let service = try await Wal.service(repository)
                    let source = try service.walSource(named: wal.source)
                    let shipped = try await service.drainWal(source: source, parallel: max(1, parallel))
                    if repository.output.json {
                        Output.printJSON(["source": source, "shipped": shipped.map(String.init) ?? "another drainer runs"])
                    } else if !repository.output.quiet {
                        print(shipped.map { "\(source): \($0) WAL files shipped" } ?? "\(source): another drainer runs")
                    }
                }
            }
        }

        struct Stream: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "stream",
                abstract: "Stream a source's WAL into the repository until stopped (bunker serve does it for every source with stream = true).",
                discussion: """
                    Runs pg_receivewal as a replication client of the source's server and stores the segment being \
                    written every stream_interval seconds ([source.wal] stream = true), so that a restore after the \
                    server is lost reaches a few seconds before the loss. archive_command still archives the complete \
                    segments. The source's user needs the REPLICATION attribute. Stop it with SIGINT or SIGTERM.
                    """)

            @OptionGroup var repository: RepositoryOptions
            @OptionGroup var wal: SourceOptions

            func run() async throws {
                try await repository.output.run {
                    let service = try await Wal.service(repository)
                    let source = try service.walSource(named: wal.source)
                    try await untilStopped { try await service.streamWal(source: source) }
                }
            }
        }

        struct Setup: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "setup",
                abstract: "Print the archive_command and restore_command of a postgres source, with this bunker's full path.",
                discussion: "Write the lines into postgresql.conf (doubling any ' inside); see docs/postgres-pitr.md.")

            @OptionGroup var repository: RepositoryOptions
            @OptionGroup var wal: SourceOptions

            func run() async throws {
                try await repository.output.run {
                    let configuration = try repository.configuration()
                    let postgres = configuration.sources.filter { $0.kind == .postgres }.map(\.name)
                    guard let source = wal.source ?? (postgres.count == 1 ? postgres[0] : nil), postgres.contains(source) else {
                        throw BunkerError(.invalidArgument, "Name a postgres source with --source (configured: \(postgres.isEmpty ? "none" : postgres.joined(separator: ", "))).")
                    }
                    let archive = BunkerService.walArchiveCommand(configuration, source: source)
                    let restore = BunkerService.walRestoreCommand(configuration, source: source)
                    if repository.output.json {
                        Output.printJSON(["source": source, "archive_command": archive, "restore_command": restore])
                    } else {
                        print("archive_mode = on")
                        print("archive_command = '\(archive.replacingOccurrences(of: "'", with: "''"))'")
                        print("restore_command = '\(restore.replacingOccurrences(of: "'", with: "''"))'")
                    }
                }
            }
        }

        struct Fetch: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "fetch",
                abstract: "Restore one archived WAL file: restore_command = 'bunker --config FILE wal fetch %f %p'.",
                discussion: """
                    Exits 0 with the file written (checked against the SHA-256 recorded when it was pushed); 1 when it is not \
                    archived (PostgreSQL then looks elsewhere, or ends recovery at the end of the archive); 128 plus the usual \
                    exit code for any other failure (no repository 132, wrong password 133, damaged object 135, a wrong \
                    command line 192), so that PostgreSQL stops recovery instead of ending it early.
                    """)

            @OptionGroup var repository: RepositoryOptions
            @OptionGroup var wal: SourceOptions

            @Argument(help: ArgumentHelp("The archived file's name (%f).", valueName: "name"))
            var name: String

            @Argument(help: ArgumentHelp("Where to write it (%p).", valueName: "path"))
            var destination: String

            /// The exit code of a real failure: above 125, so that recovery stops.
            static func failureCode(_ code: Int32) -> Int32 { code >= 126 ? code : 128 + code }

            func run() async throws {
                let found: Bool
                do {
                    let service = try await Wal.service(repository)
                    found = try await service.fetchWal(name, to: destination, source: try service.walSource(named: wal.source))
                } catch let error as BunkerError {
                    repository.output.report(error)
                    throw ExitCode(Self.failureCode(OutputOptions.exitCode(for: error.code)))
                } catch {
                    Output.error("\(error)")
                    throw ExitCode(Self.failureCode(1))
                }
                if repository.output.json {
                    Output.printJSON(["file": name, "found": found ? "true" : "false"])
                } else if !repository.output.quiet && !found {
                    FileHandle.standardError.write(Data("\(name): not archived\n".utf8))
                }
                if !found { throw ExitCode(1) }
            }

            /// Whether `arguments` (the process's) run this command: a command line it cannot
            /// parse must stop recovery too, not exit 64, which PostgreSQL reads as "not archived".
            static func isInvoked(by arguments: [String]) -> Bool {
                let words = arguments.dropFirst()
                guard let wal = words.firstIndex(of: "wal") else { return false }
                return words[wal...].dropFirst().first { !$0.hasPrefix("-") } == "fetch"
            }
        }
    }
}

struct WalPushOutput: Encodable {
    var source: String
    var file: String
    var outcome: String
    var size: Int
    var storedBytes: Int
    var object: String?
    var milliseconds: Double

    init(_ pushed: WalPushOutcome, source: String, elapsed: Duration) {
        self.source = source
        switch pushed {
        case .archived(let result):
            file = result.file
            outcome = result.outcome.rawValue
            size = result.size
            storedBytes = result.storedBytes
            object = result.object
        case .spooled(let name, let bytes), .alreadySpooled(let name, let bytes):
            file = name
            outcome = { if case .spooled = pushed { return "spooled" } else { return "already_spooled" } }()
            size = bytes
            storedBytes = 0
            object = nil
        }
        milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
    }

    enum CodingKeys: String, CodingKey {
        case source, file, outcome, size, object, milliseconds
        case storedBytes = "stored_bytes"
    }
}
