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
            subcommands: [Push.self, Fetch.self])

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
                    let service = try await Wal.service(repository)
                    let source = try service.walSource(named: wal.source)
                    let started = ContinuousClock.now
                    let result = try await service.pushWal(path: path, source: source)
                    let elapsed = ContinuousClock.now - started
                    if repository.output.json {
                        Output.printJSON(WalPushOutput(result, source: source, elapsed: elapsed))
                    } else if !repository.output.quiet {
                        switch result.outcome {
                        case .stored:
                            print("\(result.file): archived for \(source) (\(Output.bytes(UInt64(result.size))) stored as \(Output.bytes(UInt64(result.storedBytes))), \(elapsed.formatted(.units(allowed: [.milliseconds]))))")
                        case .alreadyArchived:
                            print("\(result.file): already archived, identical")
                        }
                    }
                }
            }
        }

        struct Fetch: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
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
    var object: String
    var milliseconds: Double

    init(_ result: WalPushResult, source: String, elapsed: Duration) {
        self.source = source
        file = result.file
        outcome = result.outcome.rawValue
        size = result.size
        storedBytes = result.storedBytes
        object = result.object
        milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
    }

    enum CodingKeys: String, CodingKey {
        case source, file, outcome, size, object, milliseconds
        case storedBytes = "stored_bytes"
    }
}
