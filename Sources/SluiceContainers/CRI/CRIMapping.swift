#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceSystem

/// A pod sandbox as Sluice needs it: identity, labels, IP, log directory.
public struct CRISandbox: Sendable, Equatable {
    public var id: String
    public var name: String
    public var namespace: String
    public var uid: String
    public var attempt: Int
    public var ready: Bool
    public var createdAt: Int64
    public var labels: [String: String]
    public var annotations: [String: String]
    /// The pod IP; for a host-network pod without one, the node's primary IPv4 (as Kubernetes reports it).
    public var ip: String
    public var hostNetwork: Bool
    /// The kubelet's pod log directory (`/var/log/pods/<ns>_<pod>_<uid>`), from the verbose config.
    public var logDirectory: String
    public var pid: Int
    public var image: String

    public init(id: String, name: String = "", namespace: String = "", uid: String = "", attempt: Int = 0,
                ready: Bool = true, createdAt: Int64 = 0, labels: [String: String] = [:],
                annotations: [String: String] = [:], ip: String = "", hostNetwork: Bool = false,
                logDirectory: String = "", pid: Int = 0, image: String = "") {
        self.id = id
        self.name = name
        self.namespace = namespace
        self.uid = uid
        self.attempt = attempt
        self.ready = ready
        self.createdAt = createdAt
        self.labels = labels
        self.annotations = annotations
        self.ip = ip
        self.hostNetwork = hostNetwork
        self.logDirectory = logDirectory
        self.pid = pid
        self.image = image
    }

    public init(status s: Runtime_V1_PodSandboxStatus, verbose: CRIVerboseSandboxInfo?) {
        let hostNet = s.linux.namespaces.options.network == .node
        var ip = s.network.ip
        if ip.isEmpty, hostNet { ip = CRIHostNetwork.nodeIPv4() ?? "" }
        self.init(
            id: s.id, name: s.metadata.name, namespace: s.metadata.namespace, uid: s.metadata.uid,
            attempt: Int(s.metadata.attempt), ready: s.state == .sandboxReady, createdAt: s.createdAt,
            labels: s.labels, annotations: s.annotations, ip: ip, hostNetwork: hostNet,
            logDirectory: verbose?.logDirectory ?? "", pid: verbose?.pid ?? 0, image: verbose?.image ?? "")
    }

    /// Pod labels: the sandbox's labels less those the kubelet adds for itself.
    public var podLabels: [String: String] {
        labels.filter { !CRIMapping.kubeletPodLabelKeys.contains($0.key) }
    }

    /// The sandbox (pause) container as a registry entry: never matched by filters.
    public func containerInfo(runtime: ContainerRuntimeKind) -> ContainerInfo {
        var info = ContainerInfo(id: id, name: name, image: image, state: ready ? .running : .exited, runtime: runtime)
        info.pid = pid
        info.createdAt = createdAt
        info.ip = ip
        info.labels = labels
        info.isSandbox = true
        info.kubernetes = KubernetesInfo(
            namespace: namespace, podName: name, podUID: uid, containerName: "POD", restartCount: attempt,
            podLabels: podLabels)
        return info
    }
}

/// CRI messages → `ContainerInfo`.
public enum CRIMapping {
    public static let podNameLabel = "io.kubernetes.pod.name"
    public static let podNamespaceLabel = "io.kubernetes.pod.namespace"
    public static let podUIDLabel = "io.kubernetes.pod.uid"
    public static let containerNameLabel = "io.kubernetes.container.name"
    static let kubeletPodLabelKeys: Set<String> = [podNameLabel, podNamespaceLabel, podUIDLabel]

    public static func state(_ s: Runtime_V1_ContainerState) -> ContainerState {
        switch s {
        case .containerCreated: return .created
        case .containerRunning: return .running
        case .containerExited: return .exited
        default: return .unknown
        }
    }

    /// A container's facts from its (verbose) status, its list entry and its pod; rootfs is left
    /// to `CRIClient.resolveRootfs`.
    public static func containerInfo(
        status s: Runtime_V1_ContainerStatus, verbose: CRIVerboseContainerInfo?, listed: Runtime_V1_Container?,
        sandbox: CRISandbox?, runtime: ContainerRuntimeKind
    ) -> ContainerInfo {
        let id = s.id.isEmpty ? (listed?.id ?? "") : s.id
        var image = s.image.image
        if image.isEmpty { image = listed?.image.image ?? "" }
        if image.isEmpty { image = s.imageRef }
        let name = s.metadata.name.isEmpty ? (listed?.metadata.name ?? "") : s.metadata.name
        var info = ContainerInfo(id: id, name: name, image: image, state: state(s.state), runtime: runtime)
        info.createdAt = s.createdAt
        info.startedAt = s.startedAt
        info.finishedAt = s.finishedAt
        info.pid = info.state == .running ? (verbose?.pid ?? 0) : 0
        var labels = s.labels
        if labels.isEmpty, let l = listed?.labels { labels = l }
        info.labels = labels
        info.env = verbose?.runtimeSpec?.environment ?? [:]
        info.mounts = mounts(status: s.mounts, spec: verbose?.runtimeSpec)
        info.ip = sandbox?.ip ?? ""

        var logPath = s.logPath
        if !logPath.isEmpty, !logPath.hasPrefix("/"), let dir = sandbox?.logDirectory, !dir.isEmpty {
            logPath = dir.hasSuffix("/") ? dir + logPath : dir + "/" + logPath
        }
        info.logPath = logPath

        let podName = labels[podNameLabel] ?? sandbox?.name ?? ""
        let podNamespace = labels[podNamespaceLabel] ?? sandbox?.namespace ?? ""
        if !podName.isEmpty || !podNamespace.isEmpty {
            let attempt = s.hasMetadata ? s.metadata.attempt : (listed?.metadata.attempt ?? 0)
            info.kubernetes = KubernetesInfo(
                namespace: podNamespace, podName: podName,
                podUID: labels[podUIDLabel] ?? sandbox?.uid ?? "",
                containerName: labels[containerNameLabel] ?? name,
                restartCount: Int(attempt),
                podLabels: sandbox?.podLabels ?? [:])
        }
        return info
    }

    /// Mounts: the CRI mounts (host_path → container_path), then every other bind mount of the
    /// runtime spec (/etc/hosts, /etc/resolv.conf, /dev/termination-log, ...), by destination.
    public static func mounts(status: [Runtime_V1_Mount], spec: OCISpec?) -> [ContainerMount] {
        var out: [ContainerMount] = []
        var seen = Set<String>()
        for m in status where !m.hostPath.isEmpty && !m.containerPath.isEmpty {
            if seen.insert(m.containerPath).inserted {
                out.append(ContainerMount(source: m.hostPath, destination: m.containerPath))
            }
        }
        for m in spec?.bindMounts ?? [] where seen.insert(m.destination).inserted {
            out.append(m)
        }
        return out
    }
}

/// The node's IPv4 address, for host-network pods (the runtime reports no IP for them).
public enum CRIHostNetwork {
    /// The node's address as the DaemonSet's downward API gives it (`_node_ip_` from
    /// `status.hostIP`), else the first up, non-loopback interface's: that is the node's only
    /// when Sluice itself runs in the host's network (in its own pod network it is Sluice's).
    public static func nodeIPv4(environment: (String) -> String? = Sys.environment) -> String? {
        if let ip = environment("_node_ip_"), !ip.isEmpty { return ip }
        return primaryIPv4()
    }

    public static func primaryIPv4() -> String? {
        var head: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&head) == 0, let first = head else { return nil }
        defer { freeifaddrs(head) }
        var p: UnsafeMutablePointer<ifaddrs>? = first
        while let cur = p {
            defer { p = cur.pointee.ifa_next }
            let flags = Int32(bitPattern: cur.pointee.ifa_flags)
            guard let addr = cur.pointee.ifa_addr, addr.pointee.sa_family == sa_family_t(AF_INET),
                  flags & Int32(IFF_UP) != 0, flags & Int32(IFF_LOOPBACK) == 0 else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            let rc = getnameinfo(addr, socklen_t(MemoryLayout<sockaddr_in>.size), &host, socklen_t(host.count),
                                 nil, 0, NI_NUMERICHOST)
            if rc == 0 {
                return String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
        return nil
    }
}

/// Default CRI socket resolution and runtime kind.
public enum CRISocket {
    /// Checked in order, under the host root: containerd, k3s's containerd, CRI-O.
    public static let defaultCandidates = [
        "/run/containerd/containerd.sock", "/run/k3s/containerd/containerd.sock", "/var/run/crio/crio.sock",
    ]
    public static let environmentVariable = "CONTAINERD_SOCK_PATH"

    /// `unix:///x` → `/x`.
    public static func stripScheme(_ s: String) -> String {
        if s.hasPrefix("unix://") { return String(s.dropFirst("unix://".count)) }
        if s.hasPrefix("unix:") { return String(s.dropFirst("unix:".count)) }
        return s
    }

    /// The socket to use: `explicit` (`--cri-socket`), else `CONTAINERD_SOCK_PATH`, else the first
    /// default candidate that exists under `hostRoot` (returned with the prefix). nil: none found.
    public static func resolve(
        explicit: String?, environment: [String: String], hostRoot: String = "/",
        exists: (String) -> Bool = CRIRootfs.exists
    ) -> String? {
        if let e = explicit, !e.isEmpty { return stripScheme(e) }
        if let e = environment[environmentVariable], !e.isEmpty { return stripScheme(e) }
        for c in defaultCandidates {
            let p = CRIRootfs.join(hostRoot, c)
            if exists(p) { return p }
        }
        return nil
    }

    /// Runtime kind guessed from a socket path (`crio` in it → CRI-O, else containerd).
    public static func kind(forSocketPath path: String) -> ContainerRuntimeKind {
        path.contains("crio") || path.contains("cri-o") ? .crio : .containerd
    }

    /// Runtime kind from `Version`'s RuntimeName (`containerd`, `cri-o`); nil if unknown.
    public static func kind(runtimeName: String) -> ContainerRuntimeKind? {
        let n = runtimeName.lowercased()
        if n.contains("containerd") { return .containerd }
        if n.contains("cri-o") || n.contains("crio") { return .crio }
        return nil
    }
}

