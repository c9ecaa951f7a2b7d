import BunkerCore
import BunkerService
import Foundation
import Hummingbird
import Logging

/// Builds the HTTP API for `bunker serve` and for the tests: the same routes, middleware and
/// services either way.
///
/// `catalog` defaults to the service's, else the one in the configuration's data directory;
/// tests pass their own (with a cheap bcrypt cost and a clock they move). Without `service`
/// (no repository configured) the routes that need the repository answer 503.
public func buildApplication(_ configuration: Configuration, catalog: Catalog? = nil, service: BunkerService? = nil, logger: Logger? = nil) async throws -> some ApplicationProtocol {
    let router = try await buildRouter(configuration, catalog: catalog, service: service)
    var logger = logger ?? Logger(label: "bunker")
    logger.logLevel = .info
    let (host, port) = configuration.server.listenAddress
    return Application(
        router: router,
        configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "Bunker"),
        logger: logger)
}

/// Every route of the API under `/api/v1`, with its middleware.
public func buildRouter(_ configuration: Configuration, catalog: Catalog? = nil, service: BunkerService? = nil) async throws -> Router<BunkerRequestContext> {
    let catalog = try catalog ?? service?.catalog() ?? configuration.openCatalog()
    let tokens = try await TokenService(settings: configuration.server, dataDirectory: configuration.dataDirectory, now: catalog.options.now)
    let deps = APIDependencies(catalog: catalog, tokens: tokens, service: service)

    let router = Router(context: BunkerRequestContext.self)
    router.add(middleware: ErrorMiddleware())
    let api = router.group("api/v1")
    HealthController().register(on: api)
    OpenAPIController().register(on: api)
    AuthController(catalog: catalog, tokens: tokens).register(on: api)
    AuditController(catalog: catalog, tokens: tokens).register(on: api)
    BackupController(deps: deps).register(on: api)
    JobsController(deps: deps).register(on: api)
    StatsController(deps: deps).register(on: api)
    CleanupController(deps: deps).register(on: api)
    return router
}
