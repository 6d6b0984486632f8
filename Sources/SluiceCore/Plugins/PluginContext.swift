import Logging
import SluiceConfig

/// Shared objects a plugin may need that belong to the daemon, not to the plugin (the pipeline's
/// checkpoint table, the container discovery). Keyed by type; each target that provides one adds a
/// typed accessor in an extension, so Core needs to know none of them.
public struct PluginServices: Sendable {
    private var items: [ObjectIdentifier: any Sendable] = [:]
    public init() {}
    public subscript<T: Sendable>(_ type: T.Type) -> T? {
        get { items[ObjectIdentifier(type)] as? T }
        set { items[ObjectIdentifier(type)] = newValue }
    }
}

/// A plugin was built without a service it needs (a runtime wiring error).
public struct MissingService: Error, CustomStringConvertible {
    public var name: String
    public init(name: String) { self.name = name }
    public var description: String { "the pipeline provides no \(name) to this plugin" }
}

extension PipelineMetaTagKeys {
    /// `tags(hostname:hostIP:)` as batch tags.
    public func eventTags(hostname: String, hostIP: () -> String?) -> [EventTag] {
        tags(hostname: hostname, hostIP: hostIP).map { EventTag($0.name, $0.value) }
    }
}

/// What every plugin of a pipeline is given when it is built: who it is, where to log and count,
/// where to keep state, and the daemon's settings.
public struct PluginContext: Sendable {
    public var component: ComponentID
    /// Logger with `pipeline` and `component.id` metadata set.
    public var logger: Logger
    public var metrics: ComponentMetrics
    /// The pipeline's own counters (files, rotations, events in and out), shared by its components.
    public var pipelineMetrics: PipelineMetrics
    public var globals: GlobalParameters
    public var hostname: String
    /// The host's tags on every event of the pipeline (`__hostname__`, and `__host_ip__` when
    /// `global.PipelineMetaTagKey` asks for it, under the names it gives).
    public var hostTags: [EventTag]
    /// A directory of this component's own (`<data-dir>/components/<pipeline>/<id>`), for state
    /// such as a disk buffer. Created by whoever uses it.
    public var stateDirectory: String
    /// Shared read budget (`max_bytes_per_sec`), nil when unlimited.
    public var rateLimiter: RateLimiter?
    /// `mem_usage_limit` / `cpu_usage_limit`: inputs wait on it before reading; nil in tests.
    public var governor: ResourceGovernor?
    public var services: PluginServices

    public var pipelineName: String { component.pipeline }

    public init(component: ComponentID, logger: Logger, metrics: ComponentMetrics? = nil, pipelineMetrics: PipelineMetrics,
                globals: GlobalParameters = GlobalParameters(), hostname: String, hostTags: [EventTag]? = nil, stateDirectory: String,
                rateLimiter: RateLimiter? = nil, governor: ResourceGovernor? = nil, services: PluginServices = PluginServices()) {
        var log = logger
        log[metadataKey: "pipeline"] = "\(component.pipeline)"
        log[metadataKey: "component.id"] = "\(component.id)"
        log[metadataKey: "component.type"] = "\(component.type)"
        self.component = component
        self.logger = log
        self.metrics = metrics ?? ComponentMetrics(component: component)
        self.pipelineMetrics = pipelineMetrics
        self.globals = globals
        self.hostname = hostname
        self.hostTags = hostTags ?? PipelineMetaTagKeys().eventTags(hostname: hostname, hostIP: { nil })
        self.stateDirectory = stateDirectory
        self.rateLimiter = rateLimiter
        self.governor = governor
        self.services = services
    }
}
