// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Bunker",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "bunker", targets: ["bunker"]),
        .library(name: "BunkerCore", targets: ["BunkerCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        .target(
            name: "BunkerCore",
            dependencies: [
                "CZstd",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
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
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "BunkerCoreTests",
            dependencies: ["BunkerCore", "BunkerTesting"]
        ),
        .testTarget(
            name: "bunkerTests",
            dependencies: ["bunker", "BunkerCore", "BunkerTesting"]
        ),
    ]
)
