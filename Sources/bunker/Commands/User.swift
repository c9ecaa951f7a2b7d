import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct User: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "user",
            abstract: "Manage the users of the API: add, list, disable, enable, passwd, role.",
            discussion: """
                Roles: SYSTEM_ADMIN (backs up, restores, verifies), AUDITOR (reads the audit trail and reports), \
                VIEWER (lists backups). Users are deactivated, never deleted or renamed. Every change is audited \
                with the local user's name. Passwords come from --password-file, BUNKER_USER_PASSWORD, or a prompt.
                """,
            subcommands: [Add.self, List.self, Disable.self, Enable.self, Passwd.self, SetRole.self])

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "add", abstract: "Add a user.")

            @OptionGroup var options: CatalogOptions

            @Argument(help: "The login name (letters, digits, . _ @ -).")
            var username: String

            @Option(help: ArgumentHelp("The user's full name, shown in electronic signatures.", valueName: "name"))
            var fullName: String

            @Option(help: ArgumentHelp("The user's e-mail address.", valueName: "address"))
            var email: String?

            @Option(help: ArgumentHelp("SYSTEM_ADMIN, AUDITOR or VIEWER.", valueName: "role"))
            var role: Role = .viewer

            @Option(help: ArgumentHelp("Read the password from this file.", valueName: "file"))
            var passwordFile: String?

            func run() async throws {
                try await options.output.run {
                    let password = try readSecret(file: passwordFile, environment: "BUNKER_USER_PASSWORD", prompt: "Password for \(username): ", confirm: true)
                    let user = try options.catalog().addUser(
                        NewUser(username: username, fullName: fullName, email: email, role: role, password: password), by: .localUser())
                    print(user, options.output, "Added user \(user.username) (\(user.role.rawValue)).")
                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "list", abstract: "List the users.")

            @OptionGroup var options: CatalogOptions

            func run() async throws {
                try await options.output.run {
                    let users = try options.catalog().users()
                    if options.output.json {
                        Output.printJSON(users.map(UserOutput.init))
                        return
                    }
                    for user in users {
                        var line = "\(user.username)  \(user.role.rawValue)  \(user.active ? "active" : "DISABLED")  \(user.fullName)"
                        if let email = user.email { line += " <\(email)>" }
                        if user.isLocked(at: Date()), let until = user.lockedUntil { line += "  locked until \(Timestamp.format(until))" }
                        Swift.print(line)
                    }
                }
            }
        }

        struct Disable: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "disable", abstract: "Deactivate a user: no more logins; kept in the audit trail.")

            @OptionGroup var options: CatalogOptions

            @Argument var username: String

            func run() async throws {
                try await options.output.run {
                    let user = try options.catalog().setActive(username, false, by: .localUser())
                    print(user, options.output, "Disabled user \(user.username).")
                }
            }
        }

        struct Enable: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "enable", abstract: "Reactivate a user (and clear a lockout).")

            @OptionGroup var options: CatalogOptions

            @Argument var username: String

            func run() async throws {
                try await options.output.run {
                    let user = try options.catalog().setActive(username, true, by: .localUser())
                    print(user, options.output, "Enabled user \(user.username).")
                }
            }
        }

        struct Passwd: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "passwd", abstract: "Set a user's password (and clear a lockout).")

            @OptionGroup var options: CatalogOptions

            @Argument var username: String

            @Option(help: ArgumentHelp("Read the new password from this file.", valueName: "file"))
            var passwordFile: String?

            func run() async throws {
                try await options.output.run {
                    let password = try readSecret(file: passwordFile, environment: "BUNKER_USER_PASSWORD", prompt: "New password for \(username): ", confirm: true)
                    let user = try options.catalog().setPassword(username, password, by: .localUser())
                    print(user, options.output, "Changed the password of \(user.username).")
                }
            }
        }

        struct SetRole: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "role", abstract: "Give a user another role.")

            @OptionGroup var options: CatalogOptions

            @Argument var username: String

            @Argument(help: "SYSTEM_ADMIN, AUDITOR or VIEWER.")
            var role: Role

            func run() async throws {
                try await options.output.run {
                    let user = try options.catalog().setRole(username, role, by: .localUser())
                    print(user, options.output, "\(user.username) is now \(user.role.rawValue).")
                }
            }
        }
    }
}

/// Prints a changed user: JSON, or one line for people.
private func print(_ user: UserRecord, _ output: OutputOptions, _ message: String) {
    if output.json {
        Output.printJSON(UserOutput(user))
    } else if !output.quiet {
        Swift.print(message)
    }
}

extension Role: ExpressibleByArgument {}

/// A user as printed: never the password hash.
struct UserOutput: Encodable {
    var id: Int64?
    var username: String
    var fullName: String
    var email: String?
    var role: String
    var active: Bool
    var failedLogins: Int
    var lockedUntil: Date?
    var createdAt: Date
    var updatedAt: Date

    init(_ user: UserRecord) {
        id = user.id
        username = user.username
        fullName = user.fullName
        email = user.email
        role = user.role.rawValue
        active = user.active
        failedLogins = user.failedLogins
        lockedUntil = user.lockedUntil
        createdAt = user.createdAt
        updatedAt = user.updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, username, email, role, active
        case fullName = "full_name"
        case failedLogins = "failed_logins"
        case lockedUntil = "locked_until"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }
}
