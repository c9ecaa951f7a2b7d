import ArgumentParser
import BunkerCore
import BunkerServer
import BunkerService
import Foundation
import Hummingbird

extension BunkerCommand {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the HTTP API (login and health for now) until SIGINT or SIGTERM.",
            discussion: """
                Listens on [server] listen in bunker.toml (default 127.0.0.1:8080). When the catalog has no user, \\
                a first administrator is created: BUNKER_ADMIN_USER (default admin), BUNKER_ADMIN_PASSWORD (else a \\
                generated one, printed once) and BUNKER_ADMIN_EMAIL.
                """)

        @Option(help: ArgumentHelp("Configuration file (default: $BUNKER_CONFIG, else bunker.toml beside the data directory).", valueName: "file"))
        var config: String?

        @Option(help: ArgumentHelp("Listen here instead of [server] listen (host:port).", valueName: "address"))
        var listen: String?

        func run() async throws {
            try await OutputOptions().run {
                var configuration = try Configuration.load(explicit: config)
                if let listen { configuration.server.listen = listen }
                let catalog = try configuration.openCatalog()
                let environment = ProcessInfo.processInfo.environment
                if let (user, generated) = try catalog.ensureFirstAdministrator(
                    username: environment["BUNKER_ADMIN_USER"].flatMap { $0.isEmpty ? nil : $0 } ?? "admin",
                    password: environment["BUNKER_ADMIN_PASSWORD"].flatMap { $0.isEmpty ? nil : $0 },
                    email: environment["BUNKER_ADMIN_EMAIL"]) {
                    print("Created the first administrator \(user.username)\(generated.map { " with the password \($0) (shown only this once)" } ?? "").")
                }
                let app = try await buildApplication(configuration, catalog: catalog)
                let (host, port) = configuration.server.listenAddress
                print("Bunker API on http://\(host):\(port)/api/v1 — log in with POST /api/v1/auth/login.")
                defer { try? catalog.writeAnchor() }
                try await app.runService()
            }
        }
    }
}
