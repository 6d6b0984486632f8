import Glibc
import ArgumentParser
import Logging
import SluiceCore
import ServiceLifecycle
import SluiceConfig
import SluiceContainers
import SluiceRuntime
import SluiceSystem
import UnixSignals

let sluiceVersion = sluiceRuntimeVersion

@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "Sluice collects logs from files and containers and delivers them, losing nothing.",
        version: sluiceVersion,
        subcommands: [Run.self, Validate.self, Explain.self, Version.self, Docs.self],
        defaultSubcommand: nil)
}

/// Reads the environment into global parameters, or exits with a clear error.
func loadGlobals(overrides: [String: String]) throws -> (GlobalParameters, [String]) {
    var env: [String: String] = [:]
    var p = environ
    while let e = p.pointee {
        let s = String(cString: e)
        if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
        p += 1
    }
    for (k, v) in overrides { env[k] = v }
    do {
        return try GlobalParameters.from(environment: env)
    } catch {
        throw ValidationError("\(error)")
    }
}

func makeLogger(level: String, format: LogFormat = .text) -> Logger {
    let lvl = Logger.Level(rawValue: level) ?? .info
    LoggingSystem.bootstrap { label in
        switch format {
        case .text:
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = lvl
            return h
        case .json:
            var h = JSONLogHandler(label: label)
            h.logLevel = lvl
            return h
        }
    }
    return Logger(label: "sluice")
}

/// `--log-format`: how Sluice writes its own log lines to stderr.
enum LogFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the collector.",
        discussion: """
        Runs every pipeline file (*.yaml, *.yml, *.json) of --config-dir and the files given with --config.
        The directory is watched: a file added, changed or deleted starts, restarts or stops its pipeline.
        Global parameters are read from environment variables of the iLogtail names (max_read_buffer_size,
        force_release_deleted_file_fd_timeout, mem_usage_limit, ...); see README.md.
        """)

    @Option(name: .long, help: "Directory of pipeline config files (watched for changes).")
    var configDir: String?

    @Option(name: .customLong("config"), help: "A pipeline config file (repeatable).")
    var configFiles: [String] = []

    @Option(name: .long, help: "Where checkpoints are kept.")
    var dataDir: String = "/var/lib/sluice"

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .long, help: "Log line format on stderr: text or json (one JSON object per line; also SLUICE_LOG_FORMAT).")
    var logFormat: LogFormat?

    @Option(name: .long, help: "Where /metrics, /healthz and /readyz listen, HOST:PORT (also SLUICE_HTTP_ADDRESS; default 127.0.0.1:9188; \"off\" turns it off).")
    var httpAddress: String?

    @Option(name: .long, help: "Sidecar mode: when this file appears, read every file to its end, deliver everything, persist checkpoints and exit 0 (also SLUICE_EXIT_WHEN_FILE).")
    var exitWhenFile: String?

    @Option(name: .long, help: "Seconds the drain of --exit-when-file may take; past it Sluice exits 3 and lists what it could not deliver (also SLUICE_DRAIN_TIMEOUT; default 60).")
    var drainTimeout: Double?

    @Option(name: .long, help: "Seconds a graceful stop may take before undelivered data is left for the next start.")
    var shutdownTimeout: Double = 30

    @Option(name: .long, help: "Write counters as JSON to this file every 200 ms (also SLUICE_STATS_FILE).")
    var statsFile: String?

    @Option(name: .long, help: "Host name written as __hostname__ (default: this host's name).")
    var hostname: String?

    @Option(name: .long, help: "Largest single read and event in bytes (env max_read_buffer_size).")
    var maxReadBufferSize: Int?

    @OptionGroup(title: "Container runtimes")
    var runtime: RuntimeOptions

    func validate() throws {
        if configDir == nil && configFiles.isEmpty {
            throw ValidationError("give --config-dir DIR or --config FILE")
        }
    }

    func run() async throws {
        ProcessUsage.tuneAllocator()
        var overrides: [String: String] = [:]
        if let m = maxReadBufferSize { overrides["max_read_buffer_size"] = String(m) }
        let (globals, warnings) = try loadGlobals(overrides: overrides)
        let env = processEnvironment()
        let format = try logFormat ?? env["SLUICE_LOG_FORMAT"].map { v in
            guard let f = LogFormat(rawValue: v) else { throw ValidationError("SLUICE_LOG_FORMAT=\(v): expected text or json") }
            return f
        } ?? .text
        let logger = makeLogger(level: logLevel, format: format)
        for w in warnings { logger.warning("\(w)") }
        raiseOpenFileLimit(logger)
        var settings = DaemonSettings(globals: globals)
        settings.configDirectory = configDir
        settings.configFiles = configFiles
        settings.dataDirectory = absolutePath(dataDir)
        settings.shutdownTimeoutSeconds = shutdownTimeout
        settings.statsFile = statsFile ?? env["SLUICE_STATS_FILE"]
        settings.exitWhenFile = (exitWhenFile ?? env["SLUICE_EXIT_WHEN_FILE"]).flatMap { $0.isEmpty ? nil : absolutePath($0) }
        if let t = try drainTimeout ?? env["SLUICE_DRAIN_TIMEOUT"].map({ v in
            guard let d = Double(v), d > 0 else { throw ValidationError("SLUICE_DRAIN_TIMEOUT=\(v): expected seconds > 0") }
            return d
        }) {
            guard t > 0 else { throw ValidationError("--drain-timeout must be > 0") }
            settings.drainTimeoutSeconds = t
        }
        // Every counter lands in one Prometheus registry, created before any component.
        let exporter = PrometheusExporter()
        exporter.bootstrap()
        if let h = hostname { settings.hostname = h }
        settings.discovery = runtime.discoveryOptions(environment: processEnvironment())
        settings.discovery.pollIntervalSeconds = Double(globals.dockerConfigUpdateIntervalSec)
        settings.runtimeSources = makeRuntimeSources
        settings.queueBytes = max(1 << 20, min(64 << 20, globals.memUsageLimitMB * 1024 * 1024 / 256))
        let manager = PipelineManager(settings: settings, logger: logger)
        // The manager returns when it is told to stop or, with --exit-when-file, when its drain is done;
        // either way the rest of the group (the monitoring endpoint) follows.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: manager, successTerminationBehavior: .gracefullyShutdownGroup)]
        let address = httpAddress ?? env["SLUICE_HTTP_ADDRESS"] ?? "127.0.0.1:9188"
        if !["off", "none", ""].contains(address) {
            let server: MonitoringServer
            do {
                server = try MonitoringServer(address: address, exporter: exporter, logger: logger,
                                              samples: { manager.gaugeSamples() }, readiness: { manager.readiness() })
            } catch {
                throw ValidationError("\(error)")
            }
            services.append(.init(service: server))
        }
        var config = ServiceGroupConfiguration(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        // Pipelines drain within --shutdown-timeout; past that plus a margin, the group cancels
        // them, and past a further margin it gives up waiting.
        config.maximumGracefulShutdownDuration = .milliseconds(Int((shutdownTimeout + 10) * 1000))
        config.maximumCancellationDuration = .seconds(5)
        let group = ServiceGroup(configuration: config)
        try await group.run()
        if let report = manager.drainReport, !report.complete {
            var lines = ["The drain did not finish within --drain-timeout (\(settings.drainTimeoutSeconds) s): \(report.abandonedEvents) events were not delivered."]
            for f in report.unreadFiles {
                lines.append("  \(f.path): delivered up to byte \(f.position) of \(f.size) (\(f.size - f.position) bytes not delivered)")
            }
            logger.error("\(lines.joined(separator: "\n"))")
            throw ExitCode(3)
        }
    }

    func raiseOpenFileLimit(_ logger: Logger) {
        var rl = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) == 0, rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) != 0 {
                logger.debug("Could not raise the open file limit.")
            }
        }
    }
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check pipeline config files without running them.",
        discussion: "Prints every error as FILE:LINE:COLUMN: KEY.PATH: MESSAGE and exits 1 if there is any.")

    @Argument(help: "Pipeline files or directories of them.")
    var paths: [String]

    func run() throws {
        let (globals, _) = try loadGlobals(overrides: [:])
        var files: [String] = []
        for p in paths {
            if Sys.isDirectory(p) {
                switch PipelineFiles.list(directory: p) {
                case .success(let found): files += found
                case .failure(let e):
                    printErr("\(p): cannot read the directory: \(e.errno)")
                    throw ExitCode(1)
                }
            } else {
                files.append(p)
            }
        }
        var failed = false
        for f in files {
            do {
                let doc = try PluginRegistry.standard.validate(file: f, globals: globals)
                for w in doc.warnings { printErr("\(w.description) (warning)") }
                print("\(f): ok (\(doc.inputs.count) input, \(doc.processors.count) processors, \(doc.flushers.count) flushers\((doc.document.enable ? "" : ", disabled")))")
            } catch {
                failed = true
                for e in error.errors { printErr(e.description) }
            }
        }
        if files.isEmpty {
            printErr("no pipeline files found in \(paths.joined(separator: " "))")
            throw ExitCode(1)
        }
        if failed { throw ExitCode(1) }
    }
}

func absolutePath(_ p: String) -> String {
    if p.hasPrefix("/") { return p }
    var buf = [CChar](repeating: 0, count: 4096)
    guard getcwd(&buf, 4096) != nil else { return p }
    return String(cString: buf) + "/" + p
}

func printErr(_ s: String) {
    let line = s + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

/// The Docker and CRI sources (wired in with their clients).
@Sendable func makeRuntimeSources(_ options: DiscoveryOptions, _ logger: Logger) -> [any ContainerSource] {
    var sources: [any ContainerSource] = []
    do {
        var docker = try DockerSource(host: options.dockerHost, environment: options.environment, logger: logger)
        docker.hostRoot = HostPaths.resolve(option: options.hostRoot).hostRoot
        sources.append(docker)
    } catch {
        logger.error("Docker discovery is off.", metadata: ["error": "\(error)"])
    }
    sources.append(CRISource(options: .init(socketPath: options.criSocket, environment: options.environment,
                                            hostRoot: HostPaths.resolve(option: options.hostRoot).hostRoot,
                                            pollInterval: .milliseconds(Int64(options.pollIntervalSeconds * 1000))),
                             logger: logger))
    return sources
}

struct Docs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the configuration reference (Markdown), generated from the plugin specs.")
    func run() {
        print(PluginRegistry.standard.referenceMarkdown(), terminator: "")
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() {
        print("sluice \(sluiceVersion)")
    }
}
