import ArgumentParser
import BunkerCore
import Foundation

extension BunkerCommand {
    struct Key: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "key",
            abstract: "Manage the passwords that open the repository.",
            subcommands: [List.self, Add.self, Remove.self, Passwd.self])

        struct NewPassword: ParsableArguments {
            @Option(help: ArgumentHelp("Read the new password from this file (default: $BUNKER_NEW_PASSWORD, else a prompt).", valueName: "file"))
            var newPasswordFile: String?

            func read() throws -> String {
                try readSecret(file: newPasswordFile, environment: "BUNKER_NEW_PASSWORD", prompt: "New password: ", confirm: true)
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "list", abstract: "List the keys; * marks the one in use.")
            @OptionGroup var repository: RepositoryOptions

            func run() async throws {
                try await repository.output.run {
                    let keys = try await repository.open(loadIndex: false).listKeys()
                    if repository.output.json {
                        Output.printJSON(keys)
                        return
                    }
                    print("  ID        Created              Host             User")
                    for k in keys {
                        print("\(k.current ? "*" : " ") \(k.id.prefix(8))  \(Output.localTime(k.created))  \(k.hostname.padding(toLength: 16, withPad: " ", startingAt: 0)) \(k.username)")
                    }
                }
            }
        }

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "add", abstract: "Add another password.")
            @OptionGroup var repository: RepositoryOptions
            @OptionGroup var newPassword: NewPassword

            func run() async throws {
                try await repository.output.run {
                    let service = try await repository.service(loadIndex: false)
                    let id = try await service.addKey(password: newPassword.read())
                    if repository.output.json {
                        Output.printJSON(["id": id])
                    } else if !repository.output.quiet {
                        print("Added key \(id.prefix(8)).")
                    }
                }
            }
        }

        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a password (not the one in use, never the last).")
            @OptionGroup var repository: RepositoryOptions
            @Argument(help: "Key id or unique prefix.") var id: String

            func run() async throws {
                try await repository.output.run {
                    let removed = try await repository.service(loadIndex: false).removeKey(id)
                    if repository.output.json {
                        Output.printJSON(["removed": removed])
                    } else if !repository.output.quiet {
                        print("Removed key \(removed.prefix(8)).")
                    }
                }
            }
        }

        struct Passwd: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "passwd", abstract: "Change the password of the key in use.")
            @OptionGroup var repository: RepositoryOptions
            @OptionGroup var newPassword: NewPassword

            func run() async throws {
                try await repository.output.run {
                    let id = try await repository.service(loadIndex: false).changePassword(to: newPassword.read())
                    if repository.output.json {
                        Output.printJSON(["id": id])
                    } else if !repository.output.quiet {
                        print("Password changed; the key is now \(id.prefix(8)).")
                    }
                }
            }
        }
    }
}
