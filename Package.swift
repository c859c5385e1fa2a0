// swift-tools-version: 6.0
// SSSonector: a TCP relay host that runs connections through stage plugins loaded with libltdl.
import PackageDescription

/// Hot-path code (the relay, the chain, StageKit's glue, the stages) runs without dynamic
/// exclusivity checks in release builds: they cost a few ns per class-property access on
/// every chunk and hook. Debug builds (and so the tests) keep them and catch violations.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

/// Stock and example stages are shared libraries (`lib<name>.so`) that the host loads at run time.
/// They depend on `StageABI` and `StageKit` only: a Swift target linked by both the host and a
/// plugin would exist twice in the process, with separate globals and type metadata.
func stagePlugin(_ name: String, path: String, extra: [Target.Dependency] = []) -> (Product, Target) {
    (
        .library(name: name, type: .dynamic, targets: [name]),
        .target(name: name, dependencies: ["StageABI", "StageKit"] + extra, path: path, swiftSettings: hotPath)
    )
}

let plugins = [
    // SharedBudget (the Redis client of `shared`) lives only in this library, never in the host.
    stagePlugin("ratelimit", path: "Plugins/ratelimit", extra: ["SharedBudget"]),
    stagePlugin("tracker", path: "Plugins/tracker"),
    stagePlugin("balancer", path: "Plugins/balancer"),
    stagePlugin("breaker", path: "Plugins/breaker"),
    stagePlugin("bytecap", path: "Plugins/examples/bytecap"),
    // Test-only: a stage scripted by its config that records every hook call.
    stagePlugin("scriptstage", path: "Tests/StagePlugins/scriptstage"),
]

let package = Package(
    name: "SSSonector",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sssonector", targets: ["sssonector"]),
        .executable(name: "sssonector-bench", targets: ["sssonector-bench"]),
        .executable(name: "stage-hook-bench", targets: ["stage-hook-bench"]),
        // For stage packages outside this repository (`sssonector plugin new`): the SDK a stage
        // links, and the kit its tests use to load the built .so through the host's loader.
        .library(name: "StageKit", targets: ["StageKit"]),
        .library(name: "StageTestKit", targets: ["StageTestKit"]),
    ] + plugins.map(\.0),
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
    ],
    targets: [
        .target(name: "StageABI", path: "Sources/StageABI"),
        .systemLibrary(name: "CLTDL", path: "Sources/CLTDL"),
        // epoll, eventfd and accept4 for the relay's own event loop (the epoll data path).
        .systemLibrary(name: "CEpoll", path: "Sources/CEpoll"),
        .target(name: "CrashReport", path: "Sources/CrashReport"),
        .target(name: "ConfigValues", path: "Sources/ConfigValues"),
        .target(name: "Locking", path: "Sources/Locking"),
        // hiredis, Debian's libhiredis-dev (scripts/install-dependencies.sh): the Redis client of
        // ratelimit's shared budget. No pkgConfig: its flags add -D_FILE_OFFSET_BITS=64, which
        // SwiftPM refuses with a warning on every build; the headers are in /usr/include.
        .systemLibrary(name: "CHiredis", path: "Sources/CHiredis"),
        .target(name: "SharedBudget", dependencies: ["CHiredis", "Locking"], path: "Sources/SharedBudget"),
        .target(name: "StageKit", dependencies: ["StageABI", "ConfigValues", "Locking"], path: "Sources/StageKit", swiftSettings: hotPath),
        .target(
            name: "SSSonectorCore",
            dependencies: [
                "StageABI", "CLTDL", "CEpoll", "ConfigValues", "CrashReport", "Locking",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "HeapModule", package: "swift-collections"),
            ],
            path: "Sources/SSSonectorCore",
            swiftSettings: hotPath
        ),
        // The quick start's echo upstream and blocking client (the demo, the bench, the tests):
        // not part of the host library.
        .target(
            name: "SSSonectorDemo",
            dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")],
            path: "Sources/SSSonectorDemo"
        ),
        .target(
            name: "StageTestKit",
            dependencies: ["SSSonectorCore", "ConfigValues", "StageABI", .product(name: "Logging", package: "swift-log")],
            path: "Sources/StageTestKit"
        ),
        .executableTarget(
            name: "sssonector",
            dependencies: [
                "SSSonectorCore", "SSSonectorDemo", "Locking",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Sources/sssonector"
        ),
        .executableTarget(
            name: "sssonector-bench",
            dependencies: [
                "SSSonectorCore", "SSSonectorDemo", "ConfigValues", "Locking",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Sources/sssonector-bench"
        ),
        .executableTarget(
            name: "stage-hook-bench",
            dependencies: ["SSSonectorCore", .product(name: "Logging", package: "swift-log")],
            path: "benchmarks/stage-hook-bench"
        ),
        // The libFuzzer targets (scripts/fuzz.sh builds this with -sanitize=fuzzer); in an
        // ordinary build it replays the kept corpus, which the tests run.
        .executableTarget(name: "sssonector-fuzz", dependencies: [
            "SSSonectorCore", "ConfigValues", "StageABI", .product(name: "Logging", package: "swift-log"),
        ], path: "Fuzz/Sources"),
        .target(name: "ABIGoldenLayout", dependencies: ["StageABI"], path: "Tests/ABIGoldenLayout"),
        .testTarget(
            name: "SSSonectorTests",
            dependencies: [
                "SSSonectorCore", "SSSonectorDemo", "ConfigValues", "ABIGoldenLayout", "Locking", "SharedBudget", "StageTestKit",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/SSSonectorTests"
        ),
    ] + plugins.map(\.1)
)
