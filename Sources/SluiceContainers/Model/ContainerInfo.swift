/// Which source told us about a container.
public enum ContainerRuntimeKind: String, Sendable, Codable, Equatable {
    case docker, containerd, crio, cri, `static`, podLogs
}

/// How much of a container's metadata a report carries (the registry keeps the highest).
public enum MetadataLevel: Int, Sendable, Codable, Comparable {
    /// Only its id and rootfs (containerd's task event, its bundle already gone): whose it is, not yet.
    case bare = 0
    /// Where its log is and its Kubernetes names (the kubelet pod log dir): no id, image or env.
    case located = 1
    /// Id, image, Kubernetes names, env, mounts, rootfs: read from the runtime's own state on disk
    /// the moment the container is created (containerd's task bundle); labels not yet.
    case identified = 2
    /// Everything the runtime's API reports.
    case complete = 3
    public static func < (a: MetadataLevel, b: MetadataLevel) -> Bool { a.rawValue < b.rawValue }
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
    /// How complete this metadata is.
    public var metadataLevel: MetadataLevel

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
        self.metadataLevel = runtime == .podLogs ? .located : .complete
    }
}
