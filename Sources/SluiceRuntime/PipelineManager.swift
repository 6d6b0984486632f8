import Glibc
import Logging
import ServiceLifecycle
import SluiceConfig
import SluiceContainers
import SluiceCore
import SluiceFiles
import Synchronization
import SluiceSystem

/// Settings of the daemon (command line and environment).
public struct DaemonSettings: Sendable {
    public var configDirectory: String?
    public var configFiles: [String] = []
    public var dataDirectory: String = "/var/lib/sluice"
    public var hostname: String = DaemonSettings.systemHostname()
    public var globals: GlobalParameters
    /// How long a pipeline may take to drain when stopped.
    public var shutdownTimeoutSeconds: Double = 30
    /// How often the config directory is read again in full, besides its inotify watch (a fallback
    /// for file systems that do not report changes, and for `--config` files outside it).
    public var reloadIntervalMs: Int = 10_000
    /// Per flusher queue, bytes (high watermark; low is half).
    public var queueBytes: Int = 8 << 20
    /// Where to write counters as JSON every 200 ms (SLUICE_STATS_FILE), if set.
    public var statsFile: String?
    /// Where the container runtimes are.
    public var discovery = DiscoveryOptions()
    /// `--exit-when-file`: when this file exists, every pipeline is drained (every file read to
    /// its end and delivered), checkpoints are persisted and the daemon exits.
    public var exitWhenFile: String?
    /// `--drain-timeout`: how long that drain may take before the daemon gives up and exits non-zero.
    public var drainTimeoutSeconds: Double = 60
    /// Builds the Docker and CRI sources.
    public var runtimeSources: @Sendable (DiscoveryOptions, Logger) -> [any ContainerSource] = { _, _ in [] }

    public init(globals: GlobalParameters) {
        self.globals = globals
    }

    public static func systemHostname() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        return String(cString: buf)
    }
}

/// Runs every pipeline of the config directory and keeps them in step with it: a file added,
/// changed or deleted starts, restarts or stops that pipeline only. A broken file is reported and
/// the previous version of its pipeline keeps running. Checkpoints are persisted on a timer and
/// at the end.
public final class PipelineManager: Service, Sendable {
    struct Running: Sendable {
        var pipeline: Pipeline
        var hash: UInt64
        var file: String
    }
    struct State: Sendable {
        var running: [String: Running] = [:]
        /// Content hash of files seen broken, so each breakage is reported once.
        var reportedBroken: [String: UInt64] = [:]
        /// Content hash of files that are valid but disabled (enable: false).
        var disabled: [String: UInt64] = [:]
        var tables: [String: CheckpointTable] = [:]
        var metrics: [String: PipelineMetrics] = [:]
        /// Last persist error per pipeline, so a lasting failure is logged once, not every interval.
        var persistErrors: [String: String] = [:]
        /// Files (or the directory) that could not be read, with the error, so each is reported once.
        var unreadable: [String: String] = [:]
        /// The config was read and applied at least once.
        var reconciled = false
        /// Pipelines that should run and do not (config errors, a failed build), with why.
        var notRunning: [String: String] = [:]
        /// Monotonic time of each pipeline's last successful checkpoint persist.
        var lastPersisted: [String: Int64] = [:]
        /// The exit file appeared: drain instead of stop.
        var exitRequested = false
    }

    /// How a drain for `--exit-when-file` ended.
    public struct DrainReport: Sendable {
        /// Events the flushers gave up at the deadline.
        public var abandonedEvents: Int
        /// Files whose acknowledged position is short of their size: (path, position, size).
        public var unreadFiles: [(path: String, position: Int64, size: Int64)]
        public var complete: Bool { abandonedEvents == 0 && unreadFiles.isEmpty }
    }
    private let drainResult = Mutex<DrainReport?>(nil)
    /// Set when the daemon stopped because the exit file appeared.
    public var drainReport: DrainReport? { drainResult.withLock { $0 } }

    public let settings: DaemonSettings
    let registry: PluginRegistry
    let logger: Logger
    let state = Mutex(State())
    private let rateLimiter: RateLimiter?
    /// `mem_usage_limit` / `cpu_usage_limit`, sampled every 100 ms.
    public let governor: ResourceGovernor
    /// Container discovery, shared by every container pipeline; started by the first one.
    public let discovery: ContainerDiscovery
    private let discoveryStarted = Atomic<Bool>(false)
    private let work: (stream: AsyncStream<@Sendable () async -> Void>, continuation: AsyncStream<@Sendable () async -> Void>.Continuation)
        = AsyncStream.makeStream(of: (@Sendable () async -> Void).self)

    public init(settings: DaemonSettings, registry: PluginRegistry = .standard, logger: Logger) {
        self.settings = settings
        self.registry = registry
        self.logger = logger
        self.rateLimiter = settings.globals.maxBytesPerSec > 0 ? RateLimiter(bytesPerSecond: settings.globals.maxBytesPerSec) : nil
        self.governor = ResourceGovernor(memoryLimitBytes: settings.globals.memUsageLimitMB << 20, cpuLimitCores: settings.globals.cpuUsageLimit)
        self.discovery = ContainerDiscovery(options: settings.discovery, logger: logger, runtimeSources: settings.runtimeSources)
    }

    /// Whether a container pipeline has started the discovery.
    var discoveryIsStarted: Bool { discoveryStarted.load(ordering: .acquiring) }

    /// The discovery, started on first use (a daemon with no container pipeline asks no runtime).
    func startedDiscovery() -> ContainerDiscovery {
        if !discoveryStarted.exchange(true, ordering: .acquiringAndReleasing) {
            logger.info("Starting container discovery.", metadata: ["sources": "\(discovery.sources.map { $0.kind.rawValue })", "host.root": "\(discovery.hostPaths.hostRoot)"])
            let d = discovery
            work.continuation.yield { await d.run() }
        }
        return discovery
    }

    public func run() async throws {
        logger.info("Sluice is starting.", metadata: ["config.dir": "\(settings.configDirectory ?? "-")", "data.dir": "\(settings.dataDirectory)"])
        await withTaskGroup(of: Void.self) { group in
            // Pipelines run as children of this task, added as they are started.
            group.addTask {
                await withDiscardingTaskGroup { inner in
                    for await job in self.work.stream { inner.addTask { await job() } }
                    // The stream ended (at the end of a shutdown, or early when this task was
                    // cancelled, dropping what it held): a pipeline registered whose run has not
                    // begun never will, and must not keep its stop waiting.
                    for r in self.state.withLock({ Array($0.running.values) }) { r.pipeline.cancelUnstarted() }
                }
            }
            group.addTask { await self.commitLoop() }
            group.addTask { await self.governLoop() }
            if let stats = settings.statsFile {
                group.addTask { await self.statsLoop(path: stats) }
            }
            // Watch the configuration until a graceful shutdown is requested: inotify on the config
            // directory wakes a reconcile within milliseconds; a slow full read is the fallback.
            let (changes, changed) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
            if let dir = settings.configDirectory {
                group.addTask { await ConfigDirectoryWatcher(directory: dir, logger: self.logger).run { changed.yield() } }
            }
            try? await cancelWhenGracefulShutdown {
                await withTaskGroup(of: Void.self) { timers in
                    timers.addTask {
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .milliseconds(self.settings.reloadIntervalMs))
                            changed.yield()
                        }
                    }
                    await self.reconcile()
                    if let exitFile = self.settings.exitWhenFile {
                        timers.addTask {
                            // A stat every 50 ms: the exit is within ~50 ms of the file's creation.
                            while !Task.isCancelled && !Sys.exists(exitFile) {
                                try? await Task.sleep(for: .milliseconds(50))
                            }
                            if Task.isCancelled { return }
                            self.state.withLock { $0.exitRequested = true }
                            self.logger.info("The exit file exists: draining every pipeline, then exiting.", metadata: ["file": "\(exitFile)"])
                            changed.finish()
                        }
                    }
                    for await _ in changes {
                        if Task.isCancelled { break }
                        // Editors write a file in several steps: let them finish.
                        try? await Task.sleep(for: .milliseconds(50))
                        await self.reconcile()
                    }
                    timers.cancelAll()
                }
            }
            changed.finish()
            let all = state.withLock { s in Array(s.running.values) }
            if state.withLock({ $0.exitRequested }) {
                let timeout = settings.drainTimeoutSeconds
                let abandoned = await withTaskGroup(of: Int.self) { g -> Int in
                    for r in all { g.addTask { await r.pipeline.drain(timeoutSeconds: timeout) } }
                    return await g.reduce(0, +)
                }
                persistAll()
                let report = DrainReport(abandonedEvents: abandoned, unreadFiles: unreadFiles())
                drainResult.withLock { $0 = report }
            } else {
                logger.info("Stopping: inputs first, then draining flushers.")
                await withTaskGroup(of: Void.self) { g in
                    for r in all { g.addTask { await r.pipeline.stop() } }
                }
            }
            state.withLock { $0.running.removeAll() }
            work.continuation.finish()
            persistAll()
            group.cancelAll()
        }
        persistAll()
        logger.info("Sluice stopped.")
    }

    // MARK: - Configuration

    /// Files that define pipelines now; nil when the config directory cannot be read (the
    /// running pipelines are kept, never taken as deleted).
    func pipelineFiles() -> [String]? {
        var files: [String] = []
        if let dir = settings.configDirectory {
            switch PipelineFiles.list(directory: dir) {
            case .success(let found):
                files = found
                if state.withLock({ $0.unreadable.removeValue(forKey: dir) }) != nil {
                    logger.info("The config directory can be read again.", metadata: ["config.dir": "\(dir)"])
                }
            case .failure(let e):
                reportUnreadable(dir, "\(e.errno)", what: "The config directory cannot be read; the running pipelines are kept.")
                return nil
            }
        }
        files.append(contentsOf: settings.configFiles)
        return files.sorted()
    }

    /// Logs that `path` cannot be read, once per distinct error.
    private func reportUnreadable(_ path: String, _ error: String, what: String) {
        if state.withLock({ s in defer { s.unreadable[path] = error }; return s.unreadable[path] != error }) {
            logger.error("\(what)", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    /// Brings the running pipelines in line with the files.
    func reconcile() async {
        guard let files = pipelineFiles() else { return }
        let running = state.withLock { $0.running }
        // What each file holds now (nil: unreadable, the running version is kept).
        var wanted: [String: (file: String, hash: UInt64, bytes: [UInt8]?)] = [:]
        for f in files {
            let name = PipelineFiles.pipelineName(of: f)
            if let other = wanted[name] {
                logger.error("Two files define the same pipeline name; ignoring the second.", metadata: ["pipeline": "\(name)", "file": "\(f)", "other": "\(other.file)"])
                continue
            }
            switch Sys.readFile(f, limit: 16 << 20) {
            case .success(let bytes):
                if state.withLock({ $0.unreadable.removeValue(forKey: f) }) != nil {
                    logger.info("The pipeline file can be read again.", metadata: ["pipeline": "\(name)", "file": "\(f)"])
                }
                wanted[name] = (f, PipelineFiles.contentHash(bytes), bytes)
            case .failure(let e) where e.code == ENOENT:
                continue
            case .failure(let e):
                // Unreadable is not deleted: keep what runs, report it.
                reportUnreadable(f, "\(e)", what: running[name] != nil ? "A pipeline file cannot be read; the running version is kept." : "A pipeline file cannot be read; the pipeline is not started.")
                if let r = running[name] { wanted[name] = (f, r.hash, nil) }
            }
        }
        defer { state.withLock { $0.reconciled = true } }
        // Stopped: file deleted.
        for (name, r) in running where wanted[name] == nil {
            logger.info("Pipeline file removed; stopping the pipeline.", metadata: ["pipeline": "\(name)", "file": "\(r.file)"])
            await r.pipeline.stop()
            state.withLock { s in _ = s.running.removeValue(forKey: name); s.notRunning[name] = nil }
            persist(name)
        }
        state.withLock { s in for name in s.notRunning.keys where wanted[name] == nil { s.notRunning[name] = nil } }
        for (name, w) in wanted.sorted(by: { $0.key < $1.key }) {
            if let r = running[name], r.hash == w.hash { continue }
            if state.withLock({ $0.reportedBroken[w.file] == w.hash || $0.disabled[w.file] == w.hash }) { continue }
            guard let bytes = w.bytes else { continue }
            let validated: ValidatedPipeline
            do {
                validated = try registry.validate(bytes: bytes, file: w.file, globals: settings.globals)
            } catch {
                state.withLock { s in
                    s.reportedBroken[w.file] = w.hash
                    if running[name] == nil { s.notRunning[name] = "\(w.file) has config errors" }
                }
                let keeping = running[name] != nil
                logger.error(keeping ? "Pipeline file has errors; the previous version keeps running." : "Pipeline file has errors; the pipeline is not started.",
                             metadata: ["pipeline": "\(name)", "file": "\(w.file)", "errors": "\(error)"])
                continue
            }
            let doc = validated.document
            state.withLock { $0.reportedBroken[w.file] = nil; $0.disabled[w.file] = nil; $0.notRunning[name] = nil }
            for warn in doc.warnings {
                logger.warning("\(warn.description)", metadata: ["pipeline": "\(name)"])
            }
            if let r = running[name] {
                logger.info("Pipeline file changed; restarting the pipeline.", metadata: ["pipeline": "\(name)"])
                await r.pipeline.stop()
                state.withLock { _ = $0.running.removeValue(forKey: name) }
                persist(name)
            }
            guard doc.enable else {
                logger.info("Pipeline is disabled (enable: false).", metadata: ["pipeline": "\(name)"])
                // Remember the hash so an unchanged disabled file is not re-read each time.
                state.withLock { $0.disabled[w.file] = w.hash }
                continue
            }
            start(validated, hash: w.hash)
        }
    }

    private func start(_ validated: ValidatedPipeline, hash: UInt64) {
        let doc = validated.document
        let name = doc.name
        var log = logger
        log[metadataKey: "pipeline"] = "\(name)"
        let (table, metrics): (CheckpointTable, PipelineMetrics)
        do {
            (table, metrics) = try state.withLock { s throws -> (CheckpointTable, PipelineMetrics) in
                let m = s.metrics[name] ?? PipelineMetrics(pipeline: name)
                s.metrics[name] = m
                if let t = s.tables[name] { return (t, m) }
                let t: CheckpointTable
                do { t = try CheckpointTable(dataDir: settings.dataDirectory, pipeline: name) } catch {
                    log.error("\(error)")
                    try? CheckpointTable.moveAside(dataDir: settings.dataDirectory, pipeline: name)
                    t = try CheckpointTable(dataDir: settings.dataDirectory, pipeline: name)
                }
                s.tables[name] = t
                return (t, m)
            }
        } catch {
            log.error("Cannot open the checkpoints; the pipeline is not started.", metadata: ["error": "\(error)"])
            return
        }
        var services = PluginServices()
        services.checkpoints = table
        services.discovery = DiscoveryProvider { [self] in self.startedDiscovery() }
        let hostTags = validated.document.metaTagKeys.eventTags(hostname: settings.hostname, hostIP: { CRIHostNetwork.nodeIPv4() })
        let env = PipelineEnvironment(logger: log, pipelineMetrics: metrics, globals: settings.globals, hostname: settings.hostname, hostTags: hostTags,
                                      dataDirectory: settings.dataDirectory, rateLimiter: rateLimiter, governor: governor, services: services)
        let p: Pipeline
        do {
            p = try Pipeline(validated, environment: env, queueBytes: settings.queueBytes, shutdownTimeoutSeconds: settings.shutdownTimeoutSeconds)
        } catch {
            log.error("Pipeline could not be built.", metadata: ["error": "\(error)"])
            state.withLock { $0.notRunning[name] = "could not be built: \(error)" }
            return
        }
        state.withLock { $0.running[name] = Running(pipeline: p, hash: hash, file: doc.file) }
        // Registered first, so a shutdown that collects the running pipelines from here on stops
        // this one too. If the shutdown already ended the job stream (the daemon's task was
        // cancelled), the pipeline never runs: it is marked done so that stop does not wait for it.
        guard case .enqueued = work.continuation.yield({ await p.run() }) else {
            p.cancelUnstarted()
            log.info("Pipeline not started: Sluice is stopping.", metadata: ["file": "\(doc.file)"])
            return
        }
        log.info("Pipeline started.", metadata: ["file": "\(doc.file)"])
    }

    // MARK: - Checkpoints and stats

    private func commitLoop() async {
        let interval = max(10, settings.globals.checkpointFlushIntervalMs)
        while !Task.isCancelled {
            do { try await Task.sleep(for: .milliseconds(interval)) } catch { return }
            persistAll()
        }
    }

    func persistAll() {
        let names = state.withLock { Array($0.tables.keys) }
        for n in names { persist(n) }
    }

    func persist(_ name: String) {
        guard let t = state.withLock({ $0.tables[name] }) else { return }
        do {
            try t.persist()
            let now = Sys.monotonicNanos()
            if state.withLock({ s in s.lastPersisted[name] = now; return s.persistErrors.removeValue(forKey: name) }) != nil {
                logger.info("Checkpoints are persisted again.", metadata: ["pipeline": "\(name)"])
            }
        } catch {
            let text = "\(error)"
            if state.withLock({ s in defer { s.persistErrors[name] = text }; return s.persistErrors[name] != text }) {
                logger.error("Cannot persist checkpoints; will retry.", metadata: ["pipeline": "\(name)", "error": "\(text)"])
            }
        }
    }

    /// Samples RSS and CPU every 100 ms for the resource limits, and logs what they do.
    private func governLoop() async {
        let g = governor
        var staleReleases = 0
        while !Task.isCancelled {
            let stale = g.staleReleases.load(ordering: .relaxed)
            if stale > staleReleases {
                logger.warning("The resource limits' sampling stopped for a second or more; paused inputs went on reading without it.",
                               metadata: ["times": "\(stale - staleReleases)"])
                staleReleases = stale
            }
            let rss = ProcessUsage.residentBytes()
            for change in g.observe(rss: rss, cpuSeconds: ProcessUsage.cpuSeconds(), nowNanos: Sys.monotonicNanos()) {
                let limits: Logger.Metadata = ["mem_usage_limit": "\(settings.globals.memUsageLimitMB) MB", "rss": "\(rss >> 20) MB"]
                switch change {
                case .memoryPaused: logger.warning("Memory is close to mem_usage_limit: reading is paused until it is back under 80 %.", metadata: limits)
                case .memoryResumed: logger.info("Memory is back under mem_usage_limit: reading goes on.", metadata: limits)
                case .memoryStuck: logger.error("Memory stays above mem_usage_limit although nothing is read (the limit is too low for this daemon); reading goes on slowly.", metadata: limits)
                case .cpuPaused: logger.debug("CPU above cpu_usage_limit: reading paused.", metadata: ["cores": "\(g.averageCores)"])
                case .cpuResumed, .none: break
                }
            }
            do { try await Task.sleep(for: .milliseconds(100)) } catch { return }
        }
    }

    private func statsLoop(path: String) async {
        while !Task.isCancelled {
            writeStats(path: path)
            do { try await Task.sleep(for: .milliseconds(200)) } catch { break }
        }
        writeStats(path: path)
    }

    func writeStats(path: String) {
        let (all, components) = state.withLock { s in (s.metrics, s.running.mapValues { $0.pipeline.components }) }
        var totals: [String: Int] = [:]
        var per = ""
        for (name, m) in all.sorted(by: { $0.key < $1.key }) {
            let snap = m.snapshot()
            for (k, v) in snap { totals[k, default: 0] += v }
            if !per.isEmpty { per += "," }
            per += "\"\(jsonEscape(name))\":{" + snap.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
        }
        var comps = ""
        for (_, list) in components.sorted(by: { $0.key < $1.key }) {
            for c in list {
                if !comps.isEmpty { comps += "," }
                let id = c.component
                comps += "{\"pipeline\":\"\(jsonEscape(id.pipeline))\",\"kind\":\"\(id.kind)\",\"type\":\"\(jsonEscape(id.type))\",\"id\":\"\(id.id)\","
                comps += c.snapshot().map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
            }
        }
        let gauges = gaugeSamples().map { "\"\(jsonEscape($0.key))\":\(jsonNumber($0.value))" }.joined(separator: ",")
        let body = "{" + PipelineMetrics.names.map { "\"\($0)\":\(totals[$0] ?? 0)" }.joined(separator: ",") + ",\"pipelines\":{" + per
            + "},\"components\":[" + comps + "],\"gauges\":{" + gauges + "}}\n"
        _ = Sys.writeAtomically(path, Array(body.utf8), durable: false)
    }

    /// Names of the pipelines running now.
    public var runningPipelines: [String] { state.withLock { $0.running.keys.sorted() } }

    /// Counters of a pipeline by name (tests).
    public func metrics(of pipeline: String) -> PipelineMetrics? { state.withLock { $0.metrics[pipeline] } }
}

func jsonEscape(_ s: String) -> String {
    let out = OutputBuffer(capacity: s.utf8.count + 8)
    var s = s
    s.withUTF8 { JSONLineEncoder.appendEscaped($0.baseAddress ?? UnsafePointer(bitPattern: 1)!, $0.count, to: out) }
    return String(decoding: out.bytes, as: UTF8.self)
}

