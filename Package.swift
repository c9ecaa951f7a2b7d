// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Bunker",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "bunker", targets: ["bunker"]),
        .library(name: "BunkerCore", targets: ["BunkerCore"]),
        .library(name: "BunkerServer", targets: ["BunkerServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // Only its HummingbirdBcrypt product (plain C bcrypt, no server) is used by the service layer.
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.25.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.7.1"),
        // Already in the graph through Hummingbird: the server runs the job runner as a service.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        // Deflate for the export's ZIP entries.
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // scrypt's memory-hard core for key files (its file says why not BoringSSL's). Optimized
        // in debug builds too: at -O0 one key derivation takes 0.6 s, which every command of a
        // debug build, so every test that runs the command line, would pay.
        .target(name: "CScrypt", cSettings: [.unsafeFlags(["-O2"], .when(configuration: .debug))]),
        // SHA-256 on the SHA extensions, two messages at once (its file says why); optimized in
        // debug builds too, for the tests' backups.
        .target(name: "CSHA256", cSettings: [.unsafeFlags(["-O2"], .when(configuration: .debug))]),
        .target(
            name: "BunkerCore",
            dependencies: [
                "CZstd",
                "CScrypt",
                "CSHA256",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "BunkerSources",
            dependencies: [
                "BunkerCore",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "BunkerSMTP",
            dependencies: [
                "BunkerCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // S3-compatible object storage: the only core-level driver that needs an HTTP client.
        .target(
            name: "BunkerS3",
            dependencies: [
                "BunkerCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "BunkerService",
            dependencies: [
                "BunkerCore",
                "CZlib",
                "BunkerSources",
                "BunkerSMTP",
                "BunkerS3",
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
            ]
        ),
        .target(
            name: "BunkerServer",
            dependencies: [
                "BunkerCore",
                "BunkerService",
                // DrillCheck, in a drill's answer.
                "BunkerSources",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "JWTKit", package: "jwt-kit"),
                // HMAC for the console's CSRF tokens.
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "BunkerTesting",
            dependencies: ["BunkerCore"]
        ),
        .executableTarget(
            name: "bunker",
            dependencies: [
                "BunkerCore",
                "BunkerS3",
                "BunkerService",
                "BunkerServer",
                "BunkerSources",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // lld, for relative relocations packed (RELR, glibc 2.36): the 88,000 the binary has
            // took 2 MB of relocation table that every command read in at start, and peak memory
            // is measured per command (issue 19). Swift's default linker here, gold, cannot pack
            // them; lld ships with the toolchain. The binary then needs glibc 2.36 or later to
            // start (Debian 12, Ubuntu 23.04): build on the system it is to run on.
            linkerSettings: [.unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"], .when(platforms: [.linux]))]
        ),
        .testTarget(
            name: "BunkerCoreTests",
            dependencies: [
                "BunkerCore", "BunkerTesting",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "BunkerServiceTests",
            dependencies: [
                "BunkerService", "BunkerSources", "BunkerCore", "BunkerTesting", "BunkerSMTP",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "BunkerSourcesTests",
            dependencies: ["BunkerSources", "BunkerCore", "BunkerTesting"]
        ),
        .testTarget(
            name: "BunkerServerTests",
            dependencies: [
                "BunkerServer", "BunkerService", "BunkerCore", "BunkerTesting",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        .testTarget(
            name: "BunkerSMTPTests",
            dependencies: ["BunkerSMTP", "BunkerCore", "BunkerTesting"]
        ),
        .testTarget(
            name: "BunkerS3Tests",
            dependencies: ["BunkerS3", "BunkerCore", "BunkerTesting"]
        ),
        .testTarget(
            name: "bunkerTests",
            dependencies: ["bunker", "BunkerCore", "BunkerS3", "BunkerService", "BunkerTesting"]
        ),
    ]
)
