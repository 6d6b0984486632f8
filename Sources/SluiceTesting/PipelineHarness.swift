import Foundation
import Glibc
import Logging
import SluiceConfig
import SluiceCore
import SluiceFiles
import SluiceRuntime
import SluiceSystem
import Synchronization

/// Scripted flushers a test put in place, by the `Name` a pipeline's `flusher_scripted` gives.
public final class ScriptedFlushers: Sendable {
    private let byName = Mutex<[String: ScriptedFlusher]>([:])
    public init() {}
    public func named(_ name: String) -> ScriptedFlusher? { byName.withLock { $0[name] } }
    public func put(_ f: ScriptedFlusher, as name: String = "default") { byName.withLock { $0[name] = f } }
}

/// `flusher_scripted` (tests only): hands its requests to the `ScriptedFlusher` registered under
/// its `Name`, so a YAML pipeline can end in outcomes a test scripts.
public final class FlusherScripted: FlusherPlugin {
    public static let spec = PluginSpec(type: "flusher_scripted", kind: .flusher, summary: "Test flusher with scripted outcomes.", fields: [
        FieldSpec(name: "Name", type: .string, doc: "Which ScriptedFlusher of the test.", defaultValue: "default"),
        FlusherRoute.matchField,
    ])
    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> String {
        try c.string("Name") ?? "default"
    }
    let target: ScriptedFlusher
    public var delivery: DeliveryOptions { target.delivery }
    public init(options name: String, context: PluginContext) throws {
        guard let f = context.services[ScriptedFlushers.self]?.named(name) else { throw MissingService(name: "scripted flusher \(name)") }
        target = f
    }
    public func start() async throws { try await target.start() }
    public func makeRequest(_ batches: [EventBatch]) async throws(FlushError) -> ScriptedFlusher.Request { try await target.makeRequest(batches) }
    public func send(_ request: ScriptedFlusher.Request) async -> SendOutcome<ScriptedFlusher.Request> { await target.send(request) }
    public func stop() async { await target.stop() }
}

/// Something that runs one pipeline written in YAML: in this process (`InProcessPipeline`) or as
/// the real binary (`BinaryPipeline`), so one test body can run against both.
public protocol PipelineUnderTest: AnyObject {
    /// Starts (or restarts) the pipeline.
    func start(yaml: String) async throws
    /// Stops it gracefully: inputs first, flushers drain, checkpoints persisted.
    func stop() async
    /// The directory of checkpoints and component state.
    var dataDir: String { get }
}

/// Runs a YAML pipeline in this process, with the standard plugins plus `flusher_scripted`, real
/// checkpoints under `dataDir` and a shutdown deadline of its own.
public final class InProcessPipeline: PipelineUnderTest, @unchecked Sendable {
    public let dataDir: String
    public let name: String
    public let flushers = ScriptedFlushers()
    public let metrics = PipelineMetrics()
    public var shutdownTimeoutSeconds: Double
    public var globals = GlobalParameters()
    public private(set) var pipeline: Pipeline?
    public private(set) var checkpoints: CheckpointTable?
    /// The counters of the pipeline last run (kept after `stop`).
    public private(set) var lastComponents: [ComponentMetrics] = []
    private var task: Task<Void, Never>?
    static let registry: PluginRegistry = {
        var r = PluginRegistry.standard
        r.register(FlusherScripted.self)
        return r
    }()

    public init(dataDir: String, name: String = "harness", shutdownTimeoutSeconds: Double = 5) {
        self.dataDir = dataDir
        self.name = name
        self.shutdownTimeoutSeconds = shutdownTimeoutSeconds
    }

    public func start(yaml: String) async throws {
        let doc = try PipelineLoader.parse(text: yaml, file: name + ".yaml", catalog: Self.registry.catalog)
        let validated = try Self.registry.validate(doc, globals: globals)
        let table = try CheckpointTable(dataDir: dataDir, pipeline: name)
        var services = PluginServices()
        services.checkpoints = table
        services[ScriptedFlushers.self] = flushers
        let env = PipelineEnvironment(logger: testLogger(), pipelineMetrics: metrics, globals: globals, hostname: "h",
                                      dataDirectory: dataDir, services: services)
        let p = try Pipeline(validated, environment: env, queueBytes: 8 << 20, shutdownTimeoutSeconds: shutdownTimeoutSeconds)
        pipeline = p
        checkpoints = table
        lastComponents = p.components
        task = Task { await p.run() }
    }

    public func stop() async {
        await pipeline?.stop()
        await task?.value
        try? checkpoints?.persist(force: true)
        pipeline = nil
        task = nil
    }
}

/// Runs a YAML pipeline as the real `sluice run` binary on a config directory of its own.
public final class BinaryPipeline: PipelineUnderTest, @unchecked Sendable {
    public let scenario: E2EScenario
    public var dataDir: String { scenario.dataDir }
    public var shutdownTimeoutSeconds: Double

    public init(_ scenario: E2EScenario, shutdownTimeoutSeconds: Double = 5) {
        self.scenario = scenario
        self.shutdownTimeoutSeconds = shutdownTimeoutSeconds
    }

    public func start(yaml: String) async throws {
        scenario.writePipeline("harness", yaml)
        try scenario.start(shutdownTimeout: shutdownTimeoutSeconds)
        _ = scenario.waitForLog("Pipeline started.")
    }

    public func stop() async {
        _ = scenario.process?.stop()
    }
}

/// The identity (device and inode) of the file at `path`, as checkpoints key it.
public func fileIdentity(_ path: String) throws -> FileIdentity {
    guard case .success(let st) = Sys.stat(path) else { throw Errno(ENOENT) }
    return FileIdentity(dev: st.dev, inode: st.inode)
}
