import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct Hold: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "hold",
            abstract: "Protect snapshots from retention (legal holds).",
            discussion: "A held snapshot is never forgotten or pruned until every hold on it is removed. Holds are stored in the repository.",
            subcommands: [Add.self, List.self, Remove.self])

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "add", abstract: "Place a hold on a snapshot.")
            @OptionGroup var repository: RepositoryOptions
            @Argument(help: "Snapshot id, unique prefix, or `latest`.") var snapshot: String
            @Option(help: "Why the snapshot must be kept (a case number, a request).") var reason: String

            func run() async throws {
                try await repository.output.run {
                    let record = try await repository.service(loadIndex: false).addHold(to: snapshot, reason: reason)
                    if repository.output.json {
                        Output.printJSON(HoldOutput(record))
                    } else if !repository.output.quiet {
                        print("Snapshot \(record.hold.snapshot.short) is held (\(record.hold.reason)); hold \(record.id.short).")
                    }
                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "list", abstract: "List the holds, oldest first.")
            @OptionGroup var repository: RepositoryOptions

            func run() async throws {
                try await repository.output.run {
                    let holds = try await repository.service(loadIndex: false).holds()
                    if repository.output.json {
                        Output.printJSON(holds.map(HoldOutput.init))
                        return
                    }
                    print("Hold      Snapshot  Placed               By               Reason")
                    for record in holds {
                        let by = record.hold.username.padding(toLength: 16, withPad: " ", startingAt: 0)
                        print("\(record.id.short)  \(record.hold.snapshot.short)  \(Output.localTime(record.hold.time))  \(by) \(record.hold.reason)")
                    }
                    print("\(holds.count) hold\(holds.count == 1 ? "" : "s")")
                }
            }
        }

        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "remove", abstract: "Release a snapshot: remove every hold on it.")
            @OptionGroup var repository: RepositoryOptions
            @Argument(help: "Snapshot id or unique prefix (or a hold's id).") var snapshot: String

            func run() async throws {
                try await repository.output.run {
                    let removed = try await repository.service(loadIndex: false).removeHolds(snapshot)
                    if repository.output.json {
                        Output.printJSON(removed.map(HoldOutput.init))
                    } else if !repository.output.quiet {
                        print("Removed \(removed.count) hold\(removed.count == 1 ? "" : "s") on snapshot \(removed[0].hold.snapshot.short).")
                    }
                }
            }
        }
    }
}

struct HoldOutput: Encodable {
    var id: String
    var snapshot: String
    var reason: String
    var time: Date
    var username: String
    var hostname: String

    init(_ record: HoldRecord) {
        id = record.id.hex
        snapshot = record.hold.snapshot.hex
        reason = record.hold.reason
        time = record.hold.time
        username = record.hold.username
        hostname = record.hold.hostname
    }
}
