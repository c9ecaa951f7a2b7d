import ArgumentParser
import BunkerCore
import BunkerServer
import BunkerService
import Foundation
import Hummingbird

extension BunkerCommand {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "serve",
            abstract: "Run the HTTP API, the scheduler, notification delivery and alerts until SIGINT or SIGTERM.",
            discussion: """
                Listens on [server] listen in bunker.toml (default 127.0.0.1:8080). When the catalog has no user, \
                a first administrator is created: BUNKER_ADMIN_USER (default admin), BUNKER_ADMIN_PASSWORD (else a \
                generated one, printed once) and BUNKER_ADMIN_EMAIL. The repository is --repo, $BUNKER_REPOSITORY or \
                [repository] path, opened with --password-file, $BUNKER_PASSWORD or [repository] password_file; without \
                one, the backup routes answer 503.
                """)

        @Option(help: ArgumentHelp("Configuration file (default: $BUNKER_CONFIG, else bunker.toml beside the data directory).", valueName: "file"))
        var config: String?

        @Option(help: ArgumentHelp("Listen here instead of [server] listen (host:port).", valueName: "address"))
        var listen: String?

        @Option(name: [.customShort("r"), .long], help: ArgumentHelp("Repository location (default: $BUNKER_REPOSITORY, else [repository] path).", valueName: "path"))
        var repo: String?

        @Option(help: ArgumentHelp("Read the repository password from this file (default: $BUNKER_PASSWORD, else [repository] password_file).", valueName: "file"))
        var passwordFile: String?

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
                let service = try await openService(configuration, catalog: catalog)
                let app = try await buildApplication(configuration, catalog: catalog, service: service)
                let (host, port) = configuration.server.listenAddress
                let scheme = configuration.server.tlsCertificateFile == nil ? "http" : "https"
                print("Bunker API on \(scheme)://\(host):\(port)/api/v1 — log in with POST /api/v1/auth/login; the web console is at \(scheme)://\(host):\(port)/.")
                defer { try? catalog.writeAnchor() }
                // Beside the HTTP server: the scheduler, notification delivery and alerts, until
                // the server stops (SIGINT or SIGTERM).
                try await withThrowingTaskGroup(of: Void.self) { group in
                    if let service {
                        print("Scheduler: \(configuration.effectiveSchedules.map { "\($0.job.rawValue)\($0.backupType.map { " (\($0.rawValue))" } ?? "") at \"\($0.cron)\"" }.joined(separator: ", ")).")
                        group.addTask { await service.runBackgroundWork() }
                    }
                    // Shown now, not when a block of output fills: under systemd or a pipe the
                    // first administrator's password would otherwise wait in a buffer.
                    fflush(nil)
                    group.addTask { try await app.runService() }
                    try await group.next()
                    group.cancelAll()
                }
            }
        }

        /// The service over the configured repository, or nil (with a note) when none is.
        private func openService(_ configuration: Configuration, catalog: Catalog) async throws -> BunkerService? {
            guard let location = try RepositoryAccess.location(flag: repo, configuration) else {
                print("No repository is configured: the backup routes answer 503 until [repository] path or url (or --repo) is set.")
                return nil
            }
            let password = try RepositoryAccess.password(file: passwordFile, configuration, confirm: false)
            let repository = try await RepositoryAccess.open(location, configuration, password: password)
            // Notifications go out from the background loop, so no request waits for a mail server.
            return BunkerService(configuration: configuration, repository: repository, catalog: catalog, delivery: .background)
        }
    }
}
