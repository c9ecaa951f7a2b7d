import BunkerCore
import BunkerService
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOSSL
import ServiceLifecycle

/// Builds the HTTP API for `bunker serve` and for the tests: the same routes, middleware and
/// services either way.
///
/// `catalog` defaults to the service's, else the one in the configuration's data directory;
/// tests pass their own (with a cheap bcrypt cost and a clock they move). Without `service`
/// (no repository configured) the routes that need the repository answer 503. `limits` are the
/// timeouts and the failed-login limit (tests make them short).
public func buildApplication(
    _ configuration: Configuration, catalog: Catalog? = nil, service: BunkerService? = nil, logger: Logger? = nil, limits: ServerLimits = ServerLimits()
) async throws -> some ApplicationProtocol {
    let router = try await buildRouter(configuration, catalog: catalog, service: service, limits: limits)
    var logger = logger ?? Logger(label: "bunker")
    logger.logLevel = .info
    let (host, port) = configuration.server.listenAddress
    return Application(
        router: router,
        server: try serverBuilder(configuration.server, limits: limits),
        configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "Bunker"),
        services: service.map { [JobRunnerService(runner: $0.jobs)] } ?? [],
        logger: logger)
}

/// The service's job runner as a service of the application: the jobs the API starts without
/// waiting (`"async": true`) run in its task group, and stopping the server cancels them (the
/// repository is then as after a kill: it verifies, and the next run completes).
struct JobRunnerService: Service {
    let runner: JobRunner

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await runner.run()
        }
    }
}

/// HTTP/1.1 with `limits`' timeouts, inside TLS when `[server]` names a certificate and a key
/// (plain HTTP is meant for loopback only).
func serverBuilder(_ settings: Configuration.ServerSettings, limits: ServerLimits = ServerLimits()) throws -> HTTPServerBuilder {
    let http1 = HTTPServerBuilder.http1(configuration: limits.http1)
    guard let certificateFile = settings.tlsCertificateFile, let keyFile = settings.tlsKeyFile else { return http1 }
    let chain: [NIOSSLCertificate]
    let key: NIOSSLPrivateKey
    do {
        chain = try NIOSSLCertificate.fromPEMFile(certificateFile)
    } catch {
        throw BunkerError(.invalidArgument, "Cannot read the TLS certificate \(certificateFile) (\(error)): [server] tls_certificate must name a PEM certificate chain.")
    }
    do {
        key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
    } catch {
        throw BunkerError(.invalidArgument, "Cannot read the TLS key \(keyFile) (\(error)): [server] tls_key must name an unencrypted PEM private key.")
    }
    guard !chain.isEmpty else {
        throw BunkerError(.invalidArgument, "The TLS certificate file \(certificateFile) holds no certificate.")
    }
    var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
    tls.minimumTLSVersion = .tlsv12
    return try .tls(http1, tlsConfiguration: tls)
}

/// Every route of the API under `/api/v1`, with its middleware, and the web console.
public func buildRouter(
    _ configuration: Configuration, catalog: Catalog? = nil, service: BunkerService? = nil, limits: ServerLimits = ServerLimits()
) async throws -> Router<BunkerRequestContext> {
    let catalog = try catalog ?? service?.catalog() ?? configuration.openCatalog()
    let tokens = try await TokenService(settings: configuration.server, dataDirectory: configuration.dataDirectory, catalog: catalog, now: catalog.options.now)
    let deps = APIDependencies(catalog: catalog, tokens: tokens, service: service, limits: limits)

    let router = Router(context: BunkerRequestContext.self)
    router.add(middleware: ErrorMiddleware())
    // The web console's pages and scripts, at `/` and under `/console/`: not API routes.
    router.add(middleware: ConsoleMiddleware())
    let api = router.group("api/v1")
    HealthController(deps: deps).register(on: api)
    OpenAPIController().register(on: api)
    AuthController(
        catalog: catalog, tokens: tokens, throttle: LoginThrottle(policy: limits.loginPolicy),
        secureCookies: configuration.server.tlsCertificateFile != nil
    ).register(on: api)
    AuditController(catalog: catalog, tokens: tokens).register(on: api)
    BackupController(deps: deps).register(on: api)
    JobsController(deps: deps).register(on: api)
    StatsController(deps: deps).register(on: api)
    CleanupController(deps: deps).register(on: api)
    UsersController(deps: deps).register(on: api)
    return router
}
