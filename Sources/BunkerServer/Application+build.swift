import BunkerCore
import BunkerService
import Foundation
import Hummingbird
import Logging

/// Builds the HTTP API for `bunker serve` and for the tests: the same routes, middleware and
/// services either way.
///
/// `catalog` defaults to the one in the configuration's data directory; tests pass their own
/// (with a cheap bcrypt cost and a clock they move).
public func buildApplication(_ configuration: Configuration, catalog: Catalog? = nil, logger: Logger? = nil) async throws -> some ApplicationProtocol {
    let catalog = try catalog ?? configuration.openCatalog()
    let tokens = try await TokenService(settings: configuration.server, dataDirectory: configuration.dataDirectory, now: catalog.options.now)
    var logger = logger ?? Logger(label: "bunker")
    logger.logLevel = .info

    let router = Router(context: BunkerRequestContext.self)
    router.add(middleware: ErrorMiddleware())
    let api = router.group("api/v1")
    HealthController().register(on: api)
    AuthController(catalog: catalog, tokens: tokens).register(on: api)
    AuditController(catalog: catalog, tokens: tokens).register(on: api)

    let (host, port) = configuration.server.listenAddress
    return Application(
        router: router,
        configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "Bunker"),
        logger: logger)
}
