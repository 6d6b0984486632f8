import Logging

/// Where the runtimes are and how to find containers (command-line options, with the environment
/// variables beside them).
public struct DiscoveryOptions: Sendable {
    /// `--docker-host` / `DOCKER_HOST`; nil: the environment, else `unix:///var/run/docker.sock`.
    public var dockerHost: String?
    /// `--cri-socket` / `CONTAINERD_SOCK_PATH`; nil: the first that exists of the usual sockets.
    public var criSocket: String?
    /// `--pod-log-dir`: the kubelet's pod log directory (a host path).
    public var podLogDir: String = "/var/log/pods"
    /// `--host-root`: where the host's `/` is mounted; nil: `/logtail_host` if it exists, else `/`.
    public var hostRoot: String?
    /// `--static-container-info` / `ALIYUN_LOG_STATIC_CONTAINER_INFO`: serverless mode, the only source.
    public var staticContainerInfo: String?
    /// How often the CRI runtime is polled when it has no event stream (docker_config_update_interval).
    public var pollIntervalSeconds: Double = 1
    /// How long a removed container's metadata stays available.
    public var gracePeriodSeconds: Double = 600
    public var environment: [String: String] = [:]

    public init() {}
}

/// The container registry and the sources that fill it, run together. One per daemon, shared by
/// every pipeline that collects from containers.
public final class ContainerDiscovery: Sendable {
    public let registry: ContainerRegistry
    public let hostPaths: HostPaths
    public let options: DiscoveryOptions
    public let sources: [any ContainerSource]
    let logger: Logger

    /// `runtimeSources` builds the Docker and CRI sources (they live in targets with heavier
    /// dependencies); the pod log dir and static file sources are built here.
    public init(options: DiscoveryOptions, logger: Logger,
                runtimeSources: (DiscoveryOptions, Logger) -> [any ContainerSource]) {
        self.options = options
        self.logger = logger
        hostPaths = HostPaths.resolve(option: options.hostRoot)
        registry = ContainerRegistry(gracePeriodSeconds: options.gracePeriodSeconds, logger: logger)
        var s: [any ContainerSource] = []
        if let path = options.staticContainerInfo ?? options.environment["ALIYUN_LOG_STATIC_CONTAINER_INFO"], !path.isEmpty {
            // Serverless: the file is the whole truth; there is no runtime socket to ask.
            s.append(StaticContainerFileSource(path: path, logger: logger))
        } else {
            s.append(contentsOf: runtimeSources(options, logger))
            s.append(PodLogDirSource(directory: hostPaths.hostPath(options.podLogDir), reportedRoot: options.podLogDir, logger: logger))
        }
        sources = s
    }

    /// Runs every source and the expiry of removed containers until cancelled.
    public func run() async {
        await withDiscardingTaskGroup { group in
            for s in sources {
                group.addTask { await s.run(registry: self.registry) }
            }
            group.addTask { await self.registry.runExpiry(intervalSeconds: 30) }
        }
    }
}
