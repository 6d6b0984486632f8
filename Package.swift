// swift-tools-version:6.1
import PackageDescription

// Linux only: inotify, /proc, Glibc. There is no macOS build.

// The data path's modules (events, readers, processors, flushers) are built for release without
// Swift's dynamic exclusivity checks: each access to a class's stored property there (an encode
// buffer's length read from another module, a decoder's state per line) cost a thread-local
// lookup and an access-set insert, 5 % of the loki-json bench. Debug builds, and so the test
// suite, keep the checks, where a conflicting access still traps.
let dataPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "sluice",
    products: [
        .executable(name: "sluice", targets: ["sluice"]),
        .executable(name: "sluice-bench", targets: ["sluice-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // The operating system, once: clocks, stat, whole-file reads, atomic writes, mkdir -p,
        // directory listing, inotify, the wake-up pipe, dedicated threads, FNV-1a, CRC-32C.
        .target(name: "SluiceSystem", dependencies: ["CCRC32C"]),
        // CRC-32C with the CPU's crc32 instruction (SSE 4.2), a table otherwise: for SluiceSystem.
        .target(name: "CCRC32C"),
        // JSON text in C (SSE2): the string escaper, for SluiceCore; the brace scan of the JSON
        // reader, for SluiceFiles; the plain-byte scan and a double as `%f`, for the JSON parser
        // of SluiceProcessors.
        .target(name: "CJSONText"),
        // PCRE2 from Debian's libpcre2-dev (8-bit), for SluiceRegex.
        .systemLibrary(name: "CPCRE2", pkgConfig: "libpcre2-8", providers: [.apt(["libpcre2-dev"])]),
        // Regular expressions on bytes: PCRE2 with JIT, full / prefix / search anchoring, a match limit.
        .target(name: "SluiceRegex", dependencies: ["CPCRE2"]),
        // The iLogtail pipeline document: parsing with line/column, validation, field specs, global parameters.
        .target(name: "SluiceConfig", dependencies: ["SluiceSystem", .product(name: "Yams", package: "Yams")]),
        // Events (arena + views), batches, the delivery contract (statuses, outcomes, backoff),
        // queues, plugin protocols and context, component metrics. No file or network I/O.
        .target(name: "SluiceCore", dependencies: [
            "SluiceConfig", "SluiceSystem", "CJSONText",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
        ], swiftSettings: dataPath),
        // input_file: path patterns, inotify + polling discovery, readers, rotation, checkpoints.
        .target(name: "SluiceFiles", dependencies: [
            "SluiceCore", "SluiceConfig", "SluiceSystem", "SluiceRegex", "CJSONText", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: dataPath),
        // Container discovery straight from the runtimes: the registry, filters, host paths, Docker
        // (Engine API over its socket), CRI (gRPC: containerd, CRI-O), the kubelet pod log dir, the
        // static container file; and the container inputs. CRI Swift is generated from CRI/proto
        // once and committed.
        .target(name: "SluiceContainers", dependencies: [
            "SluiceCore", "SluiceConfig", "SluiceFiles", "SluiceRegex", "SluiceSystem", .product(name: "Logging", package: "swift-log"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], exclude: ["CRI/proto"]),
        // The processors: native parsers (regex, JSON, delimiter, apsara, timestamp), filter, desensitize,
        // and the extended ones users write most. They write fields through SluiceCore's FieldWriter.
        .target(name: "SluiceProcessors", dependencies: [
            "SluiceCore", "SluiceConfig", "SluiceRegex", "SluiceSystem", "CJSONText",
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: dataPath),
        // zstd and Snappy from Debian's libzstd-dev and libsnappy-dev (request body compression).
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CSnappy", pkgConfig: "snappy", providers: [.apt(["libsnappy-dev"])]),
        // librdkafka from Debian's librdkafka-dev (2.0.2): the Kafka flushers' producer, and the
        // mock cluster the tests inject broker faults with.
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        // flusher_stdout, flusher_file, flusher_blackhole; the network flushers (flusher_http,
        // flusher_elasticsearch, flusher_loki, flusher_clickhouse) on one HTTP sender
        // (AsyncHTTPClient), the incumbent's Convert shapes, body compression; the Kafka
        // flushers (flusher_kafka_v2, flusher_kafka_native) on librdkafka.
        .target(name: "SluiceFlushers", dependencies: [
            "SluiceCore", "SluiceConfig", "SluiceSystem", "CZstd", "CSnappy", "CRdKafka", .product(name: "Logging", package: "swift-log"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "CompressNIO", package: "compress-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "GRPCCore", package: "grpc-swift-2"), .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"), .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"), .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], exclude: ["OTLP/proto", "Loki/proto"], swiftSettings: dataPath),
        // Pipeline manager, plugin registry, hot reload, checkpoint committer, lifecycle; the
        // monitoring endpoint (/metrics through swift-prometheus, /healthz, /readyz on NIO HTTP/1).
        .target(name: "SluiceRuntime", dependencies: [
            "SluiceCore", "SluiceConfig", "SluiceFiles", "SluiceFlushers", "SluiceContainers", "SluiceProcessors", "SluiceSystem",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        .executableTarget(name: "sluice", dependencies: [
            "SluiceRuntime", "SluiceConfig", "SluiceContainers", "SluiceSystem",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // Benchmark driver: generates inputs, runs the real binary, prints figures.
        .executableTarget(name: "sluice-bench", dependencies: ["SluiceRegex", "CSnappy"]),
        // In-memory inputs/flushers and helpers to drive the real binary in tests.
        // The HTTP test receiver (NIO) decodes bodies as the real backends do.
        .target(name: "SluiceTesting", dependencies: [
            "SluiceCore", "SluiceConfig", "SluiceSystem", "SluiceFiles", "SluiceRuntime", "SluiceFlushers", "CRdKafka",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "GRPCCore", package: "grpc-swift-2"), .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"), .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        ]),
        .testTarget(name: "SluiceCoreTests", dependencies: ["SluiceCore", "SluiceTesting"]),
        .testTarget(name: "SluiceConfigTests", dependencies: ["SluiceConfig", "SluiceRuntime"]),
        // The runner, the delivery contract end to end, reconcile, the registry, flusher compliance.
        .testTarget(name: "SluiceRuntimeTests", dependencies: [
            "SluiceRuntime", "SluiceCore", "SluiceConfig", "SluiceFlushers", "SluiceFiles", "SluiceSystem", "SluiceTesting", "sluice",
        ]),
        .testTarget(name: "SluiceProcessorsTests", dependencies: [
            "SluiceProcessors", "SluiceRegex", "SluiceCore", "SluiceConfig", "SluiceRuntime", "SluiceTesting",
        ]),
        // The network flushers against the test receiver and real servers (ClickHouse, an
        // OpenSearch-compatible bulk server).
        .testTarget(name: "SluiceFlushersTests", dependencies: [
            "SluiceFlushers", "SluiceCore", "SluiceConfig", "SluiceRuntime", "SluiceSystem", "SluiceTesting", "CRdKafka",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ]),
        .testTarget(name: "SluiceFilesTests", dependencies: ["SluiceFiles", "SluiceCore", "SluiceTesting", "CJSONText"]),
        .testTarget(name: "SluiceE2ETests", dependencies: ["SluiceTesting", "sluice"]),
        .testTarget(name: "SluiceContainersTests", dependencies: [
            "SluiceContainers", "SluiceConfig", "SluiceTesting", .product(name: "Logging", package: "swift-log"),
            .product(name: "GRPCCore", package: "grpc-swift-2"), "sluice",
        ]),
    ]
)
