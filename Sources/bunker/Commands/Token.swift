import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "token",
            abstract: "Manage service tokens for machines that call the API: create, list, revoke.",
            discussion: """
                A service token lets a machine (a Prometheus server, a CI job, the clinical application) call the \
                API as Authorization: Bearer <token> with a role, for longer than a login's hour and without a \
                person's password. The token is printed once; the catalog keeps only its SHA-256. What a token does \
                is audited as token:NAME; it never signs a restore. Tokens are revoked, never deleted or renamed.
                """,
            subcommands: [Create.self, List.self, Revoke.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "create",
                abstract: "Make a service token and print it, once.",
                discussion: "With --quiet only the token is printed, for a file: bunker token create prometheus --role VIEWER -q > /etc/prometheus/bunker-token")

            @OptionGroup var options: CatalogOptions

            @Argument(help: "The token's name, as the audit trail shows it (letters, digits, . _ -).")
            var name: String

            @Option(help: ArgumentHelp("SYSTEM_ADMIN, AUDITOR or VIEWER: what the token may do.", valueName: "role"))
            var role: Role

            @Option(help: ArgumentHelp("How long the token lasts: 90d, 12h, 2w, 6m (months), 1y, combined as 1y6m, or never.", valueName: "duration"))
            var expires = "365d"

            /// The lifetime, in the calendar units retention and the rest of Bunker use (`m` is
            /// months); nil for `never`.
            var lifetime: RetentionDuration? {
                get throws {
                    guard expires != "never" else { return nil }
                    let lifetime = try RetentionDuration(parsing: expires)
                    guard !lifetime.isZero else {
                        throw BunkerError(.invalidArgument, "--expires \(expires) would end the token at once; give a duration such as 90d, or never.")
                    }
                    return lifetime
                }
            }

            func validate() throws {
                do {
                    _ = try lifetime
                } catch let error as BunkerError {
                    throw ValidationError("--expires: \(error.message)")
                }
            }

            func run() async throws {
                try await options.output.run {
                    let catalog = try options.catalog()
                    let expiresAt = try lifetime.map { $0.added(to: catalog.options.now()) }
                    let (token, record) = try catalog.createServiceToken(named: name, role: role, expiresAt: expiresAt, by: .localUser())
                    if options.output.json {
                        Output.printJSON(CreatedTokenOutput(token: token, listed: TokenOutput(record, now: catalog.options.now())))
                    } else if options.output.quiet {
                        Swift.print(token)
                    } else {
                        let until = record.expiresAt.map { "until \(Timestamp.format($0))" } ?? "until revoked"
                        Swift.print("Created service token \(record.name) (\(record.role.rawValue)), valid \(until):")
                        Swift.print(token)
                        Swift.print("Store it now (Authorization: Bearer <token>): it is not shown again.")
                    }
                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "list", abstract: "List the service tokens (never the tokens themselves).")

            @OptionGroup var options: CatalogOptions

            func run() async throws {
                try await options.output.run {
                    let catalog = try options.catalog()
                    let now = catalog.options.now()
                    let tokens = try catalog.serviceTokens()
                    if options.output.json {
                        Output.printJSON(tokens.map { TokenOutput($0, now: now) })
                        return
                    }
                    for token in tokens {
                        var line = "\(token.name)  \(token.role.rawValue)  \(token.state(at: now))"
                        line += token.expiresAt.map { "  expires \(Timestamp.format($0))" } ?? "  never expires"
                        if let revoked = token.revokedAt { line += "  revoked \(Timestamp.format(revoked)) by \(token.revokedBy ?? "?")" }
                        Swift.print(line)
                    }
                }
            }
        }

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke a service token: every request with it is refused from now on.")

            @OptionGroup var options: CatalogOptions

            @Argument var name: String

            func run() async throws {
                try await options.output.run {
                    let catalog = try options.catalog()
                    let token = try catalog.revokeServiceToken(named: name, by: .localUser())
                    if options.output.json {
                        Output.printJSON(TokenOutput(token, now: catalog.options.now()))
                    } else if !options.output.quiet {
                        Swift.print("Revoked service token \(token.name).")
                    }
                }
            }
        }
    }
}

/// A service token as listed: never the token, nor its hash.
struct TokenOutput: Encodable {
    var name: String
    var role: String
    var state: String
    var createdAt: Date
    var createdBy: String
    var expiresAt: Date?
    var revokedAt: Date?
    var revokedBy: String?

    init(_ token: ServiceTokenRecord, now: Date) {
        name = token.name
        role = token.role.rawValue
        state = token.state(at: now)
        createdAt = token.createdAt
        createdBy = token.createdBy
        expiresAt = token.expiresAt
        revokedAt = token.revokedAt
        revokedBy = token.revokedBy
    }

    enum CodingKeys: String, CodingKey {
        case name, role, state
        case createdAt = "created_at"
        case createdBy = "created_by"
        case expiresAt = "expires_at"
        case revokedAt = "revoked_at"
        case revokedBy = "revoked_by"
    }

    /// Absent dates are written as null, so that a script reads `expires_at` whatever it is.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(role, forKey: .role)
        try container.encode(state, forKey: .state)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(createdBy, forKey: .createdBy)
        try container.encode(expiresAt, forKey: .expiresAt)
        try container.encode(revokedAt, forKey: .revokedAt)
        try container.encode(revokedBy, forKey: .revokedBy)
    }
}

/// `bunker token create --json`: the token, shown this once, beside what `token list` says of it.
struct CreatedTokenOutput: Encodable {
    var token: String
    var listed: TokenOutput

    private enum CodingKeys: String, CodingKey {
        case token
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(token, forKey: .token)
        try listed.encode(to: encoder)
    }
}
