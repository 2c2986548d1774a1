// swift-tools-version:6.1
import PackageDescription

import class Foundation.ProcessInfo

/// The publish path runs through these targets once per message. Dynamic exclusivity checks were ~16% of a
/// release profile (perf, 16 B PUB fan-out), and the code is single-owner by construction (loop-confined state),
/// so release builds skip them; debug builds and tests keep them.
let hotPathSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked", "-cross-module-optimization"], .when(configuration: .release)),
]

let package = Package(
    name: "brokerd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "brokerd", targets: ["brokerd"]),
        .library(name: "Protocol", targets: ["Protocol"]),
        .library(name: "Broker", targets: ["Broker"]),
        .library(name: "ClientLib", targets: ["ClientLib"]),
        .library(name: "PubSubBridge", targets: ["PubSubBridge"]),
        .executable(name: "brokerd-bench", targets: ["brokerd-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // SHA-256 for Falco alert ids (Broker); the Pub/Sub bridge: RS256 JWTs for service-account keys
        // (_CryptoExtras) and HTTPS to Google's APIs.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        // The HTTP endpoints (monitoring; the pages that come next), and metrics exposed as Prometheus text.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // The bridge's base64 (every message's data, on its hot path).
        .package(url: "https://github.com/swift-extras/swift-extras-base64.git", from: "1.2.0"),
        // TLS on the client port (NIOSSL); the peer certificate's identities for verify_and_map (X509).
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        // Heap: message TTL deadlines in order (swift-nio depends on it already).
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
    ],
    targets: [
        // The system liblz4 (Debian: liblz4-dev), for compressing sealed stream blocks.
        .systemLibrary(name: "CLZ4", path: "Sources/CLZ4", providers: [.apt(["liblz4-dev"])]),
        .target(name: "CCRC32C", path: "Sources/CCRC32C"),
        // libxcrypt (Debian's libcrypt-dev, a dependency of libc6-dev): bcrypt password hashes, as nats-server.
        .systemLibrary(name: "CCrypt", path: "Sources/CCrypt", providers: [.apt(["libcrypt-dev"])]),
        .target(
            name: "Protocol",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: hotPathSettings
        ),
        // The nats-server config file format (syntax only): no dependency beyond Foundation.
        .target(name: "NATSConfig"),
        .target(
            name: "Broker",
            dependencies: [
                "Protocol", "NATSConfig", "CLZ4", "CCRC32C", "CCrypt",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: hotPathSettings
        ),
        // The Pub/Sub bridge: a client of the broker (through ClientLib), run inside brokerd or as `brokerd bridge`.
        // It takes its configuration (BridgeConfig) from Broker and reports through BridgeStats.
        .target(
            name: "PubSubBridge",
            dependencies: [
                "Broker", "ClientLib", "Protocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ExtrasBase64", package: "swift-extras-base64"),
            ]
        ),
        .target(
            name: "ClientLib",
            dependencies: [
                "Protocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                // tls:// servers, CA files, client certificates (ClientTLS).
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "brokerd",
            dependencies: [
                "Broker",
                "ClientLib",
                "NATSConfig",
                "PubSubBridge",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // The release link's function order (Makefile RELEASE_FLAGS, Benchmarks/startup_order.py), not a resource.
            exclude: ["brokerd.order"]
        ),
        // The end-to-end load tool (`brokerd-bench --help`), always built: Benchmarks/run_bench.py drives it.
        .executableTarget(
            name: "brokerd-bench",
            dependencies: [
                "ClientLib", "Protocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                // objput/objget: the object's SHA-256 digest, as NATS clients compute and check it (ADR-20).
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Benchmarks/LoadTool"
        ),
        .testTarget(
            name: "ClientLibTests",
            dependencies: [
                "ClientLib", "Protocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "ProtocolTests", dependencies: ["Protocol", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(name: "NATSConfigTests", dependencies: ["NATSConfig"]),
        .testTarget(
            name: "BrokerTests",
            dependencies: [
                "Broker", "Protocol", "NATSConfig",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "PubSubBridgeTests",
            dependencies: [
                "PubSubBridge", "Broker", "ClientLib",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),
    ]
)

// Micro-benchmarks (ordo-one/benchmark), only with BROKERD_BENCHMARKS set so normal builds stay lean:
//   BROKERD_BENCHMARKS=1 swift package --disable-sandbox benchmark   (or `make bench`)
// Only the MallocInterposer trait: the default "RuntimeInterposer" trait would pull in swift-runtime-interposer
// (Linux + Swift 6.3), which is not needed for the metrics used here (wall clock, throughput, malloc counts).
if ProcessInfo.processInfo.environment["BROKERD_BENCHMARKS"] != nil {
    package.dependencies.append(
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"])
    )
    package.targets.append(contentsOf: [
        .executableTarget(
            name: "ProtocolBenchmarks",
            dependencies: [
                "Protocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/ProtocolBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "RouterBenchmarks",
            dependencies: [
                "Broker", "Protocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/RouterBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ])
}

// Fuzz targets (libFuzzer + AddressSanitizer), only with BROKERD_FUZZ set: `make fuzz` builds them in their own
// scratch path (.build-fuzz) with `--sanitize=fuzzer --sanitize=address` and runs them (Tests/Fuzz/README.md).
// The package then holds only what they need: Protocol, NATSConfig and the Falco alert check. FalcoAlert.swift
// is the Broker target's own file, compiled here on its own, so the fuzz build need not build the whole server
// (NIO's every module, Hummingbird, ...) with sanitizers.
if ProcessInfo.processInfo.environment["BROKERD_FUZZ"] != nil {
    let kept = ["Protocol", "NATSConfig"]
    // libFuzzer has the main function; a target's file only defines LLVMFuzzerTestOneInput.
    let entryPointOnly: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]
    package.products = []
    package.targets = package.targets.filter { kept.contains($0.name) }
    package.targets.append(contentsOf: [
        .target(
            name: "FalcoAlertCheck",
            dependencies: ["Protocol", .product(name: "Crypto", package: "swift-crypto")],
            path: "Sources/Broker/Ingest",
            exclude: ["FalcoHTTPServer.swift", "FalcoIngest.swift", "FalcoSubscribers.swift"],
            sources: ["FalcoAlert.swift"]
        ),
        .executableTarget(
            name: "fuzz-client-parser",
            dependencies: ["Protocol", .product(name: "NIOCore", package: "swift-nio")],
            path: "Tests/Fuzz/ClientParser",
            swiftSettings: entryPointOnly
        ),
        .executableTarget(
            name: "fuzz-nats-config",
            dependencies: ["NATSConfig"],
            path: "Tests/Fuzz/NATSConfig",
            swiftSettings: entryPointOnly
        ),
        .executableTarget(
            name: "fuzz-falco-alert",
            dependencies: ["FalcoAlertCheck"],
            path: "Tests/Fuzz/FalcoAlert",
            swiftSettings: entryPointOnly
        ),
    ])
}
