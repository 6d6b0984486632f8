#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftProtobuf

/// The fast path for containerd: a container's identity read from the runtime's own state the
/// moment its task is created, before the CRI API is asked anything.
///
/// containerd publishes `/tasks/create` with the container id, its bundle directory and its rootfs
/// mounts (the overlay `upperdir=`). The bundle's `config.json` is the OCI spec the CRI plugin
/// wrote, whose annotations name the pod, namespace, pod uid, container and image, and which holds
/// the env and mounts. That is a local file read, so a Job that runs for a few milliseconds and is
/// deleted 0.2 s later is known, with its rootfs, while it still exists. What the spec lacks
/// (labels, restart count, log path, IP) comes from the CRI status a moment later.
public enum CRITaskBundle {
    static let containerType = "io.kubernetes.cri.container-type"
    static let containerName = "io.kubernetes.cri.container-name"
    static let imageName = "io.kubernetes.cri.image-name"
    static let sandboxName = "io.kubernetes.cri.sandbox-name"
    static let sandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
    static let sandboxUID = "io.kubernetes.cri.sandbox-uid"

    /// The `TaskCreate` payload of an event envelope, if it is one.
    public static func taskCreate(_ envelope: Containerd_Types_Envelope) -> Containerd_Events_TaskCreate? {
        guard envelope.topic == "/tasks/create", envelope.event.typeURL.hasSuffix("containerd.events.TaskCreate") else { return nil }
        return try? Containerd_Events_TaskCreate(serializedBytes: envelope.event.value)
    }

    /// The id of a container the `/containers/create` event announces, if it is one.
    public static func containerCreated(_ envelope: Containerd_Types_Envelope) -> String? {
        guard envelope.topic == "/containers/create", envelope.event.typeURL.hasSuffix("containerd.events.ContainerCreate"),
              let e = try? Containerd_Events_ContainerCreate(serializedBytes: envelope.event.value), !e.id.isEmpty else { return nil }
        return e.id
    }

    /// The container as its task bundle describes it; nil when the bundle is unreadable or the
    /// container was not made by the CRI plugin (no CRI annotations).
    public static func containerInfo(_ e: Containerd_Events_TaskCreate, hostRoot: String, runtime: ContainerRuntimeKind) -> ContainerInfo? {
        guard !e.containerID.isEmpty, e.bundle.hasPrefix("/") else { return nil }
        let specPath = CRIRootfs.join(hostRoot, e.bundle + "/config.json")
        guard let data = FileManager.default.contents(atPath: specPath),
              let spec = try? JSONDecoder().decode(OCISpec.self, from: data) else {
            // The task is gone already (a container that ran for milliseconds, its event late):
            // its id and rootfs still let its files be found and held until the CRI says whose it is.
            var info = ContainerInfo(id: e.containerID, state: .unknown, runtime: runtime)
            for m in e.rootfs where m.type == "overlay" {
                if let upper = CRIRootfs.upperDir(fromOptions: m.options) { info.upperDir = upper; break }
            }
            guard !info.upperDir.isEmpty else { return nil }
            info.metadataLevel = .bare
            return info
        }
        return containerInfo(id: e.containerID, bundle: e.bundle, pid: Int(e.pid), rootfs: e.rootfs.map { ($0.type, $0.options) },
                             spec: spec, runtime: runtime)
    }

    /// The mapping itself (separate for unit tests). `bundle`: where containerd's task bundle is,
    /// for the merged rootfs; nil when the spec was read elsewhere (no merged dir reported).
    public static func containerInfo(id: String, bundle: String?, pid: Int, rootfs: [(type: String, options: [String])],
                                     spec: OCISpec, runtime: ContainerRuntimeKind) -> ContainerInfo? {
        let a = spec.annotations ?? [:]
        guard let type = a[containerType] else { return nil }
        let sandbox = type == "sandbox"
        let podName = a[sandboxName] ?? ""
        let name = sandbox ? podName : (a[containerName] ?? "")
        var info = ContainerInfo(id: id, name: name, image: sandbox ? "" : (a[imageName] ?? ""), state: .created, runtime: runtime)
        info.pid = pid
        info.env = spec.environment
        info.mounts = spec.bindMounts
        info.isSandbox = sandbox
        for m in rootfs where m.type == "overlay" {
            if let upper = CRIRootfs.upperDir(fromOptions: m.options) { info.upperDir = upper; break }
        }
        if let bundle {
            if let root = spec.root?.path, root.hasPrefix("/") {
                info.mergedDir = root
            } else {
                info.mergedDir = bundle.hasSuffix("/") ? bundle + "rootfs" : bundle + "/rootfs"
            }
        }
        if !podName.isEmpty || a[sandboxNamespace] != nil {
            info.kubernetes = KubernetesInfo(
                namespace: a[sandboxNamespace] ?? "", podName: podName, podUID: a[sandboxUID] ?? "",
                containerName: sandbox ? "POD" : name, restartCount: -1)
        }
        info.metadataLevel = .identified
        return info
    }
}

/// A containerd container record (containers service `Get`) → `ContainerInfo`.
///
/// The CRI plugin writes the record when the container is created: labels (the kubelet's
/// `io.kubernetes.*`), the OCI spec (annotations naming pod, namespace, pod uid, container and
/// image; env; mounts) and the extension `io.cri-containerd.container.metadata` (JSON: log path,
/// attempt). Pod labels and IP come later from the CRI (level `identified`).
public enum CRIContainerRecord {
    static let metadataExtension = "io.cri-containerd.container.metadata"

    struct CRIMetadata: Decodable {
        struct Inner: Decodable {
            var LogPath: String?
            var Config: Config?
        }
        struct Config: Decodable {
            struct Meta: Decodable { var attempt: Int? }
            var metadata: Meta?
        }
        var Metadata: Inner?
    }

    public static func containerInfo(_ c: Containerd_Services_Containers_V1_Container, runtime: ContainerRuntimeKind) -> ContainerInfo? {
        guard c.hasSpec, let spec = try? JSONDecoder().decode(OCISpec.self, from: c.spec.value),
              var info = CRITaskBundle.containerInfo(id: c.id, bundle: nil, pid: 0, rootfs: [], spec: spec, runtime: runtime) else { return nil }
        info.state = .unknown
        info.labels = c.labels.filter { !$0.key.hasPrefix("io.cri-containerd.") }
        if let ext = c.extensions[metadataExtension], let meta = try? JSONDecoder().decode(CRIMetadata.self, from: ext.value) {
            if let path = meta.Metadata?.LogPath, path.hasPrefix("/") { info.logPath = path }
            // encoding/json leaves out a zero attempt.
            if let m = meta.Metadata?.Config?.metadata, info.kubernetes != nil { info.kubernetes?.restartCount = m.attempt ?? 0 }
        } else if info.kubernetes != nil {
            info.kubernetes?.restartCount = -1
        }
        if info.kubernetes?.restartCount == -1, let r = c.labels["io.kubernetes.container.restartCount"], let n = Int(r) {
            info.kubernetes?.restartCount = n
        }
        return info
    }
}
