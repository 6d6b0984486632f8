/// Which source told us about a container.
public enum ContainerRuntimeKind: String, Sendable, Codable, Equatable {
    case docker, containerd, crio, cri, `static`, podLogs
}

public enum ContainerState: String, Sendable, Codable, Equatable {
    case created, running, exited, unknown
}

/// A bind or volume mount: `source` on the host (as the runtime reports it), `destination` inside.
public struct ContainerMount: Sendable, Codable, Equatable {
    public var source: String
    public var destination: String
    public init(source: String, destination: String) {
        self.source = source
        self.destination = destination
    }
}

/// Kubernetes identity of a container, when it belongs to a pod.
public struct KubernetesInfo: Sendable, Codable, Equatable {
    public var namespace: String
    public var podName: String
    public var podUID: String
    public var containerName: String
    public var restartCount: Int
    public var podLabels: [String: String]
    public init(namespace: String, podName: String, podUID: String, containerName: String, restartCount: Int = 0, podLabels: [String: String] = [:]) {
        self.namespace = namespace
        self.podName = podName
        self.podUID = podUID
        self.containerName = containerName
        self.restartCount = restartCount
        self.podLabels = podLabels
    }
}

/// Everything Sluice knows of one container. Paths are as the runtime reports them (host paths
/// without the host-root prefix); `HostPaths` maps them for reading.
public struct ContainerInfo: Sendable, Codable, Equatable {
    /// Runtime id (64 hex for Docker/containerd); empty while only the pod log dir knows the container.
    public var id: String
    /// Runtime name (Docker: without the leading "/").
    public var name: String
    public var image: String
    public var state: ContainerState
    public var pid: Int
    /// Unix nanoseconds; 0 when unknown.
    public var createdAt: Int64
    public var startedAt: Int64
    public var finishedAt: Int64
    public var ip: String
    /// Container (runtime) labels.
    public var labels: [String: String]
    /// Environment, from the container's config / OCI spec.
    public var env: [String: String]
    /// stdout/stderr log file (Docker json-file `LogPath`, CRI `LogPath`, or the pod log dir file).
    public var logPath: String
    /// Overlay upper dir (writable layer) of the rootfs.
    public var upperDir: String
    /// Merged rootfs while running.
    public var mergedDir: String
    public var mounts: [ContainerMount]
    public var kubernetes: KubernetesInfo?
    /// Pod sandbox (pause) container: never matched by filters.
    public var isSandbox: Bool
    public var runtime: ContainerRuntimeKind
    /// Monotonic nanoseconds when Sluice first learned of the container (discovery latency).
    public var discoveredAt: Int64

    public init(id: String, name: String = "", image: String = "", state: ContainerState = .unknown, runtime: ContainerRuntimeKind) {
        self.id = id
        self.name = name
        self.image = image
        self.state = state
        self.pid = 0
        self.createdAt = 0
        self.startedAt = 0
        self.finishedAt = 0
        self.ip = ""
        self.labels = [:]
        self.env = [:]
        self.logPath = ""
        self.upperDir = ""
        self.mergedDir = ""
        self.mounts = []
        self.kubernetes = nil
        self.isSandbox = false
        self.runtime = runtime
        self.discoveredAt = 0
    }
}
