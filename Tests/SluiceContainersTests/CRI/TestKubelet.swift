import SluiceTesting
import SluiceSystem
import Glibc
import Foundation
import SluiceContainers

/// What a test pod's container should run.
struct CRIContainerSpec: Sendable {
    var name: String
    var command: [String]
    var env: [String: String] = [:]
    /// (host path, container path)
    var mounts: [(String, String)] = []
    /// (host path, container path), mounted read-only.
    var readOnlyMounts: [(String, String)] = []
    var labels: [String: String] = [:]
    /// Restart count the kubelet would be at (CRI metadata attempt; log file `<attempt>.log`).
    var attempt: Int = 0
}

struct CRIKubeletContainer: Sendable {
    var id: String
    var name: String
    var attempt: Int
    /// Full log path: `<pod log dir>/<name>/<attempt>.log`.
    var logPath: String
    /// `/var/log/containers`-style symlink: `<containers dir>/<pod>_<ns>_<name>-<id>.log`.
    var symlink: String
    /// Monotonic ns: before CreateContainer was called, after it returned, before StartContainer, after.
    var createCalled: Int64 = 0
    var created: Int64 = 0
    var startCalled: Int64 = 0
    var started: Int64 = 0
}

struct CRIKubeletPod: Sendable {
    var sandboxID: String
    var name: String
    var namespace: String
    var uid: String
    /// `<pod log root>/<ns>_<pod>_<uid>`
    var logDir: String
    var config: Runtime_V1_PodSandboxConfig
    var containers: [CRIKubeletContainer]
    var runCalled: Int64 = 0
}

/// A small kubelet for tests: creates pod sandboxes (host network: no CNI here) and containers
/// through the CRI with the kubelet's log layout and `/var/log/containers` symlinks, and deletes
/// pods the way the kubelet does (containers stopped, log file and symlink removed, containers and
/// sandbox removed, pod log dir removed).
struct TestKubelet: Sendable {
    let client: CRIClient
    let podLogRoot: String
    let containersDir: String
    let image: String

    init(client: CRIClient, podLogRoot: String, containersDir: String, image: String = CRIContainerd.image) {
        self.client = client
        self.podLogRoot = podLogRoot
        self.containersDir = containersDir
        self.image = image
    }

    static func hostNamespaces() -> Runtime_V1_NamespaceOption {
        .with {
            $0.network = .node
            $0.pid = .container
            $0.ipc = .pod
        }
    }

    /// Like the kubelet before it creates a pod: the image must be present (ImageService).
    func ensureImage() async throws -> Runtime_V1_Image {
        let status = try await client.images.imageStatus(.with { $0.image = .with { $0.image = image } })
        guard status.hasImage else {
            let listed = try await client.images.listImages(Runtime_V1_ListImagesRequest()).images.flatMap(\.repoTags)
            throw CRITestError("image \(image) missing; the runtime has \(listed)")
        }
        return status.image
    }

    func runPod(
        name: String, namespace: String = "default", uid: String = UUID().uuidString.lowercased(),
        labels: [String: String] = [:], containers specs: [CRIContainerSpec]
    ) async throws -> CRIKubeletPod {
        let logDir = "\(podLogRoot)/\(namespace)_\(name)_\(uid)"
        try FileManager.default.createDirectory(atPath: logDir, withIntermediateDirectories: true)
        var config = Runtime_V1_PodSandboxConfig()
        config.metadata = .with {
            $0.name = name
            $0.namespace = namespace
            $0.uid = uid
            $0.attempt = 0
        }
        config.hostname = ""  // host network: runc cannot set a hostname without a private UTS namespace
        config.logDirectory = logDir
        var podLabels = labels
        podLabels[CRIMapping.podNameLabel] = name
        podLabels[CRIMapping.podNamespaceLabel] = namespace
        podLabels[CRIMapping.podUIDLabel] = uid
        config.labels = podLabels
        config.annotations = ["kubernetes.io/config.source": "api", "kubernetes.io/config.seen": "test"]
        config.linux = .with {
            $0.securityContext = .with { $0.namespaceOptions = Self.hostNamespaces() }
        }
        let runCalled = Sys.monotonicNanos()
        let sandboxID = try await client.runtime.runPodSandbox(.with { $0.config = config }).podSandboxID
        var pod = CRIKubeletPod(
            sandboxID: sandboxID, name: name, namespace: namespace, uid: uid, logDir: logDir, config: config,
            containers: [], runCalled: runCalled)
        for spec in specs {
            pod.containers.append(try await startContainer(spec, in: pod))
        }
        return pod
    }

    func startContainer(_ spec: CRIContainerSpec, in pod: CRIKubeletPod) async throws -> CRIKubeletContainer {
        try FileManager.default.createDirectory(atPath: "\(pod.logDir)/\(spec.name)", withIntermediateDirectories: true)
        var c = Runtime_V1_ContainerConfig()
        c.metadata = .with {
            $0.name = spec.name
            $0.attempt = UInt32(spec.attempt)
        }
        c.image = .with { $0.image = image }
        c.command = spec.command
        c.envs = spec.env.sorted { $0.key < $1.key }.map { kv in
            .with {
                $0.key = kv.key
                $0.value = Data(kv.value.utf8)
            }
        }
        c.mounts = spec.mounts.map { m in
            .with {
                $0.hostPath = m.0
                $0.containerPath = m.1
            }
        } + spec.readOnlyMounts.map { m in
            .with {
                $0.hostPath = m.0
                $0.containerPath = m.1
                $0.readonly = true
            }
        }
        var labels = spec.labels
        labels[CRIMapping.containerNameLabel] = spec.name
        labels[CRIMapping.podNameLabel] = pod.name
        labels[CRIMapping.podNamespaceLabel] = pod.namespace
        labels[CRIMapping.podUIDLabel] = pod.uid
        c.labels = labels
        c.annotations = ["io.kubernetes.container.restartCount": "\(spec.attempt)"]
        c.logPath = "\(spec.name)/\(spec.attempt).log"
        c.linux = .with {
            $0.securityContext = .with { $0.namespaceOptions = Self.hostNamespaces() }
        }
        let createCalled = Sys.monotonicNanos()
        let id = try await client.runtime.createContainer(.with {
            $0.podSandboxID = pod.sandboxID
            $0.config = c
            $0.sandboxConfig = pod.config
        }).containerID
        let created = Sys.monotonicNanos()
        let logPath = "\(pod.logDir)/\(spec.name)/\(spec.attempt).log"
        let link = "\(containersDir)/\(pod.name)_\(pod.namespace)_\(spec.name)-\(id).log"
        unlink(link)
        symlink(logPath, link)
        let startCalled = Sys.monotonicNanos()
        _ = try await client.runtime.startContainer(.with { $0.containerID = id })
        let started = Sys.monotonicNanos()
        return CRIKubeletContainer(
            id: id, name: spec.name, attempt: spec.attempt, logPath: logPath, symlink: link,
            createCalled: createCalled, created: created, startCalled: startCalled, started: started)
    }

    /// Deletes a pod as the kubelet does, which retries a stop that failed: a container that
    /// exits while it is being killed can make containerd answer "ttrpc: closed" once.
    func deletePod(_ pod: CRIKubeletPod) async throws {
        func retrying(_ body: () async throws -> Void) async throws {
            for attempt in 1...3 {
                do { return try await body() } catch where attempt < 3 {
                    try await Task.sleep(for: .milliseconds(100 * attempt))
                }
            }
        }
        for c in pod.containers {
            try await retrying {
                _ = try await client.runtime.stopContainer(.with {
                    $0.containerID = c.id
                    $0.timeout = 0
                })
            }
        }
        try await retrying { _ = try await client.runtime.stopPodSandbox(.with { $0.podSandboxID = pod.sandboxID }) }
        for c in pod.containers {
            unlink(c.logPath)
            unlink(c.symlink)
            _ = try await client.runtime.removeContainer(.with { $0.containerID = c.id })
        }
        _ = try await client.runtime.removePodSandbox(.with { $0.podSandboxID = pod.sandboxID })
        try? FileManager.default.removeItem(atPath: pod.logDir)
    }
}
