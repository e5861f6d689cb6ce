// swift-tools-version:6.2
// 6.2: SwiftPM accepts the unsafe flags below from a dependency only from tools version 6.2 on,
// so that other packages can depend on `CodebookEngine`.
import PackageDescription

/// Numeric modules are built with `-Ounchecked` in release: their inner loops run on
/// validated, pointer-addressed data and must not pay for overflow checks.
/// The price: `-Ounchecked` also removes every `precondition`, bounds check and overflow trap
/// in those modules. So their public functions check what callers pass in (sizes, pointers,
/// dimensions, indices) with `guard … throw`, once per call or per block of rows, which costs
/// nothing measurable; `precondition` there states only the modules' own invariants.
/// On x86-64 they target Haswell (AVX2, FMA), the baseline of every server CPU since 2013.
#if arch(x86_64)
let numericFlags = ["-Ounchecked", "-target-cpu", "haswell"]
#else
let numericFlags = ["-Ounchecked"]
#endif
let numericSettings: [SwiftSetting] = [.unsafeFlags(numericFlags, .when(configuration: .release))]

let package = Package(
    name: "Codebook",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "codebook", targets: ["codebook"]),
        .library(name: "CodebookEngine", targets: ["Descriptors", "Clustering", "Encoding", "Features"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // C libraries: a module map and a shim header each, found through pkg-config.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CLAPACK", path: "Sources/CLAPACK", pkgConfig: "lapacke",
                       providers: [.apt(["liblapacke-dev"])]),
        .systemLibrary(name: "CZeroMQ", path: "Sources/CZeroMQ", pkgConfig: "libzmq",
                       providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "CRocksDB", path: "Sources/CRocksDB", pkgConfig: "rocksdb",
                       providers: [.apt(["librocksdb-dev"])]),
        .systemLibrary(name: "CVLFeat", path: "Sources/CVLFeat",
                       providers: [.apt(["libvlfeat-dev"])]),
        .systemLibrary(name: "CMalloc", path: "Sources/CMalloc"),
        .systemLibrary(name: "CImageCodecs", path: "Sources/CImageCodecs", pkgConfig: "libpng16",
                       providers: [.apt(["libjpeg62-turbo-dev", "libpng-dev"])]),
        // libjpeg and libpng behind error handlers that return instead of exiting.
        .target(name: "ImageCodecs", dependencies: ["CImageCodecs"],
                cSettings: [.unsafeFlags(["-O2"])],
                linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png16")]),

        // Our own C kernels (AVX-512 where the CPU has it, chosen at run time), optimised in every
        // configuration; no FMA contraction, so their documented arithmetic holds on every CPU.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O2", "-ffp-contract=off"])]),

        .target(name: "Descriptors", swiftSettings: numericSettings),
        .target(name: "Clustering", dependencies: ["Descriptors", "CBLAS", "CLAPACK", "CKernels",
                                                   .product(name: "Logging", package: "swift-log")],
                swiftSettings: numericSettings),
        .target(name: "Encoding", dependencies: ["Descriptors", "Clustering", "CBLAS"],
                swiftSettings: numericSettings),
        .target(name: "Search", dependencies: ["Clustering"], swiftSettings: numericSettings),
        .target(name: "Features", dependencies: ["Descriptors", "ImageCodecs", "CVLFeat"], swiftSettings: numericSettings),
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ"]),
        .target(name: "JSONDecoding"),
        .target(name: "Storage", dependencies: ["CRocksDB", "JSONDecoding"]),
        // Metric definitions (swift-metrics over a Prometheus registry) and the `/metrics` HTTP server;
        // the only module that sees NIO.
        .target(name: "Telemetry", dependencies: [
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        // The wire protocol: messages and their encoding, no sockets and no store.
        .target(name: "ClusterProtocol", dependencies: ["Descriptors", "Clustering", "Encoding", "Features", "Search", "JSONDecoding"]),
        .target(name: "Cluster", dependencies: ["ClusterProtocol", "Descriptors", "Clustering", "Encoding", "Features", "Search", "ZeroMQ", "Storage", "Telemetry",
                                                .product(name: "Logging", package: "swift-log")]),
        .executableTarget(name: "codebook", dependencies: [
            "Descriptors", "Clustering", "Encoding", "Features", "ClusterProtocol", "Cluster", "Storage", "CMalloc", "Telemetry",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "codebook-bench", dependencies: [
            "Descriptors", "Clustering", "Encoding", "Search", "Features", "CBLAS", "CVLFeat", "ClusterProtocol", "Cluster", "Storage", "ZeroMQ",
            "Telemetry",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: numericSettings),

        // Helpers every test target shares (temporary directories, the built `codebook`); in no product.
        .target(name: "TestSupport", dependencies: ["Descriptors", "Features"], path: "Tests/TestSupport"),
        .testTarget(name: "DescriptorsTests", dependencies: ["Descriptors", "TestSupport"]),
        .testTarget(name: "FeaturesTests", dependencies: ["Features", "Descriptors", "CVLFeat", "Search", "codebook-bench", "TestSupport"]),
        .testTarget(name: "ClusteringTests", dependencies: ["Clustering", "Descriptors", "CKernels"]),
        .testTarget(name: "SearchTests", dependencies: ["Search", "Descriptors"]),
        .testTarget(name: "EncodingTests", dependencies: ["Encoding", "Clustering", "Descriptors", "CVLFeat", "TestSupport"]),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"]),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "Descriptors", "TestSupport"]),
        .testTarget(name: "ClusterProtocolTests", dependencies: ["ClusterProtocol", "Clustering", "Descriptors", "Features"]),
        .testTarget(name: "ClusterTests", dependencies: ["ClusterProtocol", "Cluster", "Clustering", "Descriptors", "Features", "Search", "ZeroMQ", "Storage", "Telemetry", "codebook",
                                                         "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["codebook", "ClusterProtocol", "Descriptors", "Features", "TestSupport"], exclude: ["Goldens"]),
    ]
)
