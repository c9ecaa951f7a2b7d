import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct Notify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "notify",
            abstract: "Test notifications, show the outbox, send what is waiting.",
            discussion: """
                Messages that could not be delivered wait in the data directory's outbox/ and are retried with a \
                growing delay (by `bunker serve`, or by `bunker notify flush` from cron); those given up on are in \
                outbox/failed/ with the reason.
                """,
            subcommands: [Test.self, Status.self, Flush.self])

        struct Test: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "test", abstract: "Send a test message through every configured notifier now.")

            @OptionGroup var repository: RepositoryOptions

            @Option(name: .customLong("to"), help: ArgumentHelp("Also send the e-mail to this address (repeatable).", valueName: "email"))
            var extra: [String] = []

            func run() async throws {
                try await repository.output.run {
                    let results = try await repository.service().sendTestNotification(to: extra)
                    try Notify.report(results, json: repository.output.json)
                }
            }
        }

        struct Status: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "status", abstract: "List the messages waiting in the outbox and those given up on.")

            @OptionGroup var repository: RepositoryOptions

            func run() async throws {
                try await repository.output.run {
                    guard let outbox = try await repository.service().notificationOutbox() else {
                        print("No notifier is configured.")
                        return
                    }
                    struct Entry: Encodable {
                        var id: String, channel: String, event: String, attempts: Int, last_error: String?, state: String
                    }
                    let entries = outbox.pending.map { Entry(id: $0.id, channel: $0.channel, event: $0.kind.rawValue, attempts: $0.attempts, last_error: $0.lastError, state: "waiting") }
                        + outbox.failed.map { Entry(id: $0.id, channel: $0.channel, event: $0.kind.rawValue, attempts: $0.attempts, last_error: $0.lastError, state: "failed") }
                    if repository.output.json {
                        Output.printJSON(entries)
                        return
                    }
                    if entries.isEmpty { print("The outbox is empty: every message was delivered.") }
                    for entry in entries {
                        print("\(entry.state == "failed" ? "FAILED " : "waiting")  \(entry.event)  \(entry.channel)  \(entry.attempts) attempts  \(entry.last_error ?? "")")
                    }
                }
            }
        }

        struct Flush: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "flush", abstract: "Try to deliver the waiting messages whose time has come.")

            @OptionGroup var repository: RepositoryOptions

            func run() async throws {
                try await repository.output.run {
                    try Notify.report(await repository.service().deliverNotifications(), json: repository.output.json)
                }
            }
        }

        /// Prints delivery results; exits 1 when one failed.
        static func report(_ results: [DeliveryResult], json: Bool) throws {
            struct Row: Encodable {
                var channel: String, event: String, delivered: Bool, attempts: Int, error: String?, will_retry: Bool
            }
            let rows = results.map { Row(channel: $0.channel, event: $0.kind.rawValue, delivered: $0.delivered, attempts: $0.attempts, error: $0.error, will_retry: !$0.delivered && !$0.gaveUp) }
            if json {
                Output.printJSON(rows)
            } else {
                if rows.isEmpty { print("Nothing to deliver.") }
                for row in rows {
                    print(row.delivered ? "Delivered \(row.event) by \(row.channel)." : "NOT delivered \(row.event) by \(row.channel)\(row.will_retry ? " (will retry)" : ""): \(row.error ?? "")")
                }
            }
            if rows.contains(where: { !$0.delivered }) { throw ExitCode(1) }
        }
    }
}
