// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "sluice",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sluice", targets: ["sluice"]),
        .executable(name: "sluice-bench", targets: ["sluice-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    ],
    targets: [
        // Events (arena + views), batches, acknowledgements, queues, plugin protocols. No I/O.
        .target(name: "SluiceCore", dependencies: [.product(name: "Logging", package: "swift-log")]),
        // The iLogtail pipeline document: parsing with line/column, validation, field specs, global parameters.
        .target(name: "SluiceConfig", dependencies: [.product(name: "Yams", package: "Yams")]),
        // input_file: path patterns, inotify + polling discovery, readers, rotation, checkpoints.
        .target(name: "SluiceFiles", dependencies: [
            "SluiceCore", "SluiceConfig", .product(name: "Logging", package: "swift-log"),
        ]),
        // Container discovery: the registry, filters, host paths, the kubelet pod log dir, the static
        // container file; Docker (Engine API) and CRI (gRPC) clients join once integrated.
        .target(name: "SluiceContainers", dependencies: [
            "SluiceCore", "SluiceConfig", "SluiceFiles", .product(name: "Logging", package: "swift-log"),
        ], exclude: ["Docker", "CRI"]),
        // flusher_stdout, flusher_file, flusher_blackhole.
        .target(name: "SluiceFlushers", dependencies: [
            "SluiceCore", "SluiceConfig", .product(name: "Logging", package: "swift-log"),
        ]),
        // Pipeline manager, plugin registry, hot reload, checkpoint committer, lifecycle.
        .target(name: "SluiceRuntime", dependencies: [
            "SluiceCore", "SluiceConfig", "SluiceFiles", "SluiceFlushers", "SluiceContainers",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(name: "sluice", dependencies: [
            "SluiceRuntime", "SluiceConfig", "SluiceContainers",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // Benchmark driver: generates inputs, runs the real binary, prints figures.
        .executableTarget(name: "sluice-bench"),
        // In-memory inputs/flushers and helpers to drive the real binary in tests.
        .target(name: "SluiceTesting", dependencies: ["SluiceCore", "SluiceConfig", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "SluiceCoreTests", dependencies: ["SluiceCore", "SluiceTesting"]),
        .testTarget(name: "SluiceConfigTests", dependencies: ["SluiceConfig", "SluiceRuntime"]),
        .testTarget(name: "SluiceFilesTests", dependencies: ["SluiceFiles", "SluiceCore", "SluiceTesting"]),
        .testTarget(name: "SluiceE2ETests", dependencies: ["SluiceTesting", "sluice"]),
        .testTarget(name: "SluiceContainersTests", dependencies: ["SluiceContainers", "SluiceConfig", "SluiceTesting"], exclude: ["Docker", "CRI"]),
    ]
)
