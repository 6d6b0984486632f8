#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftProtobuf
import Synchronization
import SluiceTesting
import Testing
@testable import SluiceContainers

/// The runtimes' on-disk state read before their APIs answer (containerd task bundle and
/// container record, dockerd's files), and what the registry and filters make of partial metadata.
@Suite("Fast discovery paths and partial metadata")
struct FastPathTests {
    static let annotations = [
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": "job",
        "io.kubernetes.cri.image-name": "docker.io/library/busybox:1",
        "io.kubernetes.cri.sandbox-name": "pi-42",
        "io.kubernetes.cri.sandbox-namespace": "batch",
        "io.kubernetes.cri.sandbox-uid": "uid-1",
    ]
    static let spec = OCISpec(
        process: .init(env: ["PATH=/bin", "APP=web"]),
        mounts: [.init(destination: "/data", type: "bind", source: "/srv/data", options: ["rbind"]),
                 .init(destination: "/proc", type: "proc", source: "proc")],
        annotations: annotations)

    @Test("containerd task bundle: names, uid, image, env, bind mounts and the overlay upper dir; restart not known (-1)")
    func taskBundle() throws {
        let info = try #require(CRITaskBundle.containerInfo(
            id: "c1", bundle: "/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1", pid: 77,
            rootfs: [(type: "overlay", options: ["workdir=/w", "upperdir=/snap/9/fs", "lowerdir=/snap/1/fs"])],
            spec: Self.spec, runtime: .containerd))
        #expect(info.id == "c1" && info.name == "job" && info.image == "docker.io/library/busybox:1" && info.pid == 77)
        #expect(info.kubernetes == KubernetesInfo(namespace: "batch", podName: "pi-42", podUID: "uid-1", containerName: "job", restartCount: -1))
        #expect(info.env == ["PATH": "/bin", "APP": "web"])
        #expect(info.mounts == [ContainerMount(source: "/srv/data", destination: "/data")])
        #expect(info.upperDir == "/snap/9/fs")
        #expect(info.mergedDir == "/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1/rootfs")
        #expect(info.metadataLevel == .identified && !info.isSandbox)

        var sandboxAnn = Self.annotations
        sandboxAnn["io.kubernetes.cri.container-type"] = "sandbox"
        let sb = try #require(CRITaskBundle.containerInfo(id: "s1", bundle: "/b", pid: 1, rootfs: [], spec: OCISpec(annotations: sandboxAnn), runtime: .containerd))
        #expect(sb.isSandbox && sb.kubernetes?.containerName == "POD")
        // Not made by the CRI plugin (no annotations): not reported.
        #expect(CRITaskBundle.containerInfo(id: "x", bundle: "/b", pid: 1, rootfs: [], spec: OCISpec(), runtime: .containerd) == nil)
    }

    @Test("containerd task event whose bundle is gone: only id and upper dir (level bare); a missing bundle and no overlay: nothing")
    func taskBundleGone() throws {
        var e = Containerd_Events_TaskCreate()
        e.containerID = "c2"
        e.bundle = "/nonexistent/bundle/c2"
        var m = Containerd_Types_Mount()
        m.type = "overlay"
        m.options = ["upperdir=/snap/10/fs"]
        e.rootfs = [m]
        let info = try #require(CRITaskBundle.containerInfo(e, hostRoot: "/", runtime: .containerd))
        #expect(info.id == "c2" && info.upperDir == "/snap/10/fs" && info.metadataLevel == .bare && info.kubernetes == nil)
        e.rootfs = []
        #expect(CRITaskBundle.containerInfo(e, hostRoot: "/", runtime: .containerd) == nil)
        // The envelope decoders pick only their own topics.
        var env = Containerd_Types_Envelope()
        env.topic = "/tasks/create"
        env.event.typeURL = "containerd.events.TaskCreate"
        env.event.value = try e.serializedBytes()
        #expect(CRITaskBundle.taskCreate(env)?.containerID == "c2")
        #expect(CRITaskBundle.containerCreated(env) == nil)
        var cc = Containerd_Events_ContainerCreate()
        cc.id = "c3"
        env.topic = "/containers/create"
        env.event.typeURL = "containerd.events.ContainerCreate"
        env.event.value = try cc.serializedBytes()
        #expect(CRITaskBundle.containerCreated(env) == "c3")
        #expect(CRITaskBundle.taskCreate(env) == nil)
        env.event.value = Data([0xff, 0xff, 0xff])
        #expect(CRITaskBundle.containerCreated(env) == nil, "a malformed payload is ignored")
    }

    @Test("containerd container record: spec annotations, labels (less containerd's own), log path and attempt from the CRI extension")
    func containerRecord() throws {
        var c = Containerd_Services_Containers_V1_Container()
        c.id = "c4"
        c.labels = ["io.kubernetes.pod.name": "pi-42", "io.cri-containerd.kind": "container", "team": "a"]
        c.spec.typeURL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
        c.spec.value = Data(#"{"process":{"env":["A=1"]},"annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.container-name":"job","io.kubernetes.cri.sandbox-name":"pi-42","io.kubernetes.cri.sandbox-namespace":"batch","io.kubernetes.cri.sandbox-uid":"uid-1","io.kubernetes.cri.image-name":"busybox"}}"#.utf8)
        var ext = Google_Protobuf_Any()
        ext.typeURL = "github.com/containerd/cri/pkg/store/container/Metadata"
        ext.value = Data(#"{"Version":"v1","Metadata":{"ID":"c4","LogPath":"/var/log/pods/batch_pi-42_uid-1/job/2.log","Config":{"metadata":{"name":"job","attempt":2}}}}"#.utf8)
        c.extensions = ["io.cri-containerd.container.metadata": ext]
        let info = try #require(CRIContainerRecord.containerInfo(c, runtime: .containerd))
        #expect(info.logPath == "/var/log/pods/batch_pi-42_uid-1/job/2.log")
        #expect(info.kubernetes?.restartCount == 2 && info.kubernetes?.podUID == "uid-1")
        #expect(info.labels == ["io.kubernetes.pod.name": "pi-42", "team": "a"])
        #expect(info.env == ["A": "1"] && info.image == "busybox" && info.metadataLevel == .identified)
        // encoding/json leaves out attempt 0.
        ext.value = Data(#"{"Metadata":{"LogPath":"/l/0.log","Config":{"metadata":{"name":"job"}}}}"#.utf8)
        c.extensions = ["io.cri-containerd.container.metadata": ext]
        #expect(CRIContainerRecord.containerInfo(c, runtime: .containerd)?.kubernetes?.restartCount == 0)
        // A record without a parsable spec is not reported.
        c.spec.value = Data("not json".utf8)
        #expect(CRIContainerRecord.containerInfo(c, runtime: .containerd) == nil)
    }

    @Test("Registry: a report without restart count joins the pod log dir's entry of the same pod and container, in either order")
    func registryJoinsUnknownRestart() async throws {
        for fastFirst in [true, false] {
            let registry = ContainerRegistry(logger: modelTestLogger)
            var podLog = ContainerInfo(id: "", runtime: .podLogs)
            podLog.logPath = "/var/log/pods/batch_pi-42_uid-1/job/0.log"
            podLog.kubernetes = KubernetesInfo(namespace: "batch", podName: "pi-42", podUID: "uid-1", containerName: "job", restartCount: 0)
            var fast = ContainerInfo(id: "c1", name: "job", image: "busybox", runtime: .containerd)
            fast.kubernetes = KubernetesInfo(namespace: "batch", podName: "pi-42", podUID: "uid-1", containerName: "job", restartCount: -1)
            fast.metadataLevel = .identified
            fast.upperDir = "/snap/9/fs"
            // Another container of the same pod stays apart.
            var other = ContainerInfo(id: "", runtime: .podLogs)
            other.logPath = "/var/log/pods/batch_pi-42_uid-1/side/0.log"
            other.kubernetes = KubernetesInfo(namespace: "batch", podName: "pi-42", podUID: "uid-1", containerName: "side", restartCount: 0)
            registry.upsert(other)
            if fastFirst { registry.upsert(fast); registry.upsert(podLog) } else { registry.upsert(podLog); registry.upsert(fast) }
            let all = registry.snapshot()
            #expect(all.count == 2, "fastFirst \(fastFirst): \(all.map(\.id))")
            let joined = try #require(registry.lookup(id: "c1"))
            #expect(joined.logPath == podLog.logPath && joined.upperDir == "/snap/9/fs")
            #expect(joined.kubernetes?.restartCount == 0 && joined.metadataLevel == .identified)
        }
    }

    @Test("A fast-path report raises a container known only bare (id + rootfs) to what it carries; the state stays the CRI's")
    func announceRaisesBareEntry() throws {
        let registry = ContainerRegistry(logger: modelTestLogger)
        let announced = CRIAnnounced()
        var bare = ContainerInfo(id: "c9", state: .running, runtime: .containerd)
        bare.upperDir = "/snap/9/fs"
        bare.metadataLevel = .bare
        #expect(CRISource.announce(bare, registry: registry, announced: announced, at: 100))
        var record = try #require(CRITaskBundle.containerInfo(id: "c9", bundle: nil, pid: 0, rootfs: [], spec: Self.spec, runtime: .containerd))
        record.state = .created
        #expect(!CRISource.announce(record, registry: registry, announced: announced, at: 200))
        let merged = try #require(registry.lookup(id: "c9"))
        #expect(merged.metadataLevel == .identified && merged.kubernetes?.namespace == "batch")
        #expect(merged.upperDir == "/snap/9/fs" && merged.state == .running && merged.discoveredAt == 100)
        #expect(announced.entries.withLock { $0["c9"]?.info.metadataLevel } == .bare)
    }

    @Test("Filters decide only on what is known: names settle a rejection early, label and env rules wait for the metadata they read")
    func decideOnPartialMetadata() throws {
        var c = ContainerInfo(id: "", runtime: .podLogs)
        c.kubernetes = KubernetesInfo(namespace: "batch", podName: "pi-42", podUID: "u", containerName: "job")
        #expect(c.metadataLevel == .located)
        let byNamespace = try ContainerFilters(k8sNamespaceRegex: "^batch$")
        #expect(byNamespace.decide(c) == .selected)
        #expect(try ContainerFilters(k8sNamespaceRegex: "^prod$").decide(c) == .rejected)
        let byLabel = try ContainerFilters(k8sNamespaceRegex: "^batch$", includeK8sLabel: ["app": "pi"])
        #expect(byLabel.decide(c) == .undecided)
        let byEnv = try ContainerFilters(includeEnv: ["APP": "web"])
        #expect(byEnv.decide(c) == .undecided)
        c.metadataLevel = .identified
        #expect(byEnv.decide(c) == .rejected)
        c.env = ["APP": "web"]
        #expect(byEnv.decide(c) == .selected)
        #expect(byLabel.decide(c) == .undecided)
        c.metadataLevel = .complete
        #expect(byLabel.decide(c) == .rejected)
        c.kubernetes?.podLabels = ["app": "pi"]
        #expect(byLabel.decide(c) == .selected)
        var bare = ContainerInfo(id: "x", runtime: .containerd)
        bare.metadataLevel = .bare
        #expect(byNamespace.decide(bare) == .undecided)
        #expect(ContainerFilters.none.decide(bare) == .undecided)
    }

    @Test("dockerd's files: name, image, labels, env, mounts, json-file log path and overlay2 upper dir; missing or bad files give nothing")
    func dockerDiskState() throws {
        let tmp = TempDir("sluice-dockerdisk")
        defer { tmp.remove() }
        let root = tmp.path + "/docker"
        let id = String(repeating: "ab", count: 32)
        let dir = "\(root)/containers/\(id)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(root)/image/overlay2/layerdb/mounts/\(id)", withIntermediateDirectories: true)
        writeFile("\(root)/image/overlay2/layerdb/mounts/\(id)/mount-id", "cache123")
        writeFile("\(dir)/config.v2.json", """
            {"ID":"\(id)","Name":"/k8s_job_pi-42_batch_uid-1_0","Created":"2026-11-22T03:00:00.5Z","Image":"sha256:1",
             "Driver":"overlay2","LogPath":"","State":{"Running":false,"Pid":0,"StartedAt":"0001-01-01T00:00:00Z"},
             "Config":{"Image":"busybox","Env":["APP=web"],"Labels":{"io.kubernetes.pod.namespace":"batch","io.kubernetes.pod.name":"pi-42","io.kubernetes.pod.uid":"uid-1","io.kubernetes.container.name":"job"}},
             "MountPoints":{"/data":{"Source":"/srv/data","Destination":"/data"}}}
            """)
        writeFile("\(dir)/hostconfig.json", #"{"LogConfig":{"Type":"json-file","Config":{}}}"#)
        let disk = DockerDiskState(rootDir: root, storageDriver: "overlay2", defaultLogDriver: "json-file", hostRoot: "/")
        let info = try #require(disk.containerInfo(id: id))
        #expect(info.name == "k8s_job_pi-42_batch_uid-1_0" && info.image == "busybox" && info.state == .created)
        #expect(info.logPath == "\(dir)/\(id)-json.log")
        #expect(info.upperDir == "\(root)/overlay2/cache123/diff")
        #expect(info.mounts == [ContainerMount(source: "/srv/data", destination: "/data")])
        #expect(info.env == ["APP": "web"])
        #expect(info.kubernetes?.namespace == "batch" && info.kubernetes?.podName == "pi-42" && info.kubernetes?.containerName == "job")
        // Another log driver: no json-file path.
        writeFile("\(dir)/hostconfig.json", #"{"LogConfig":{"Type":"journald"}}"#)
        #expect(disk.containerInfo(id: id)?.logPath == "")
        // Unknown container, bad JSON, path tricks: nothing.
        #expect(disk.containerInfo(id: String(repeating: "cd", count: 32)) == nil)
        #expect(disk.containerInfo(id: "../\(id)") == nil)
        writeFile("\(dir)/config.v2.json", "{truncated")
        #expect(disk.containerInfo(id: id) == nil)
    }
}

@Suite("containerd task dir watcher")
struct TaskDirWatcherTests {
    @Test("A bundle whose config.json appears (after the watcher started, or before) is reported once; a partial or non-CRI one is not")
    func reportsBundles() async throws {
        let tmp = TempDir("sluice-taskdir")
        defer { tmp.remove() }
        let dir = tmp.path + "/io.containerd.runtime.v2.task/k8s.io"
        let seen = LockedList()
        let watcher = CRITaskDirWatcher(directory: dir, logger: modelTestLogger) { seen.append($0.id) }
        let task = Task { await watcher.run() }
        defer { task.cancel() }
        let spec = #"{"process":{"env":["A=1"]},"annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.container-name":"job","io.kubernetes.cri.sandbox-name":"p","io.kubernetes.cri.sandbox-namespace":"n","io.kubernetes.cri.sandbox-uid":"u","io.kubernetes.cri.image-name":"busybox"}}"#
        // The namespace dir does not exist yet: found within ~1 s once it does.
        try FileManager.default.createDirectory(atPath: dir + "/early", withIntermediateDirectories: true)
        writeFile(dir + "/early/config.json", spec)
        #expect(await eventually(3) { seen.items == ["early"] })
        try FileManager.default.createDirectory(atPath: dir + "/c1", withIntermediateDirectories: true)
        writeFile(dir + "/c1/config.json", "{\"process\":")  // torn write: not reported (yet)
        try FileManager.default.createDirectory(atPath: dir + "/plain", withIntermediateDirectories: true)
        writeFile(dir + "/plain/config.json", "{}")  // not a CRI container
        try await Task.sleep(for: .milliseconds(200))
        #expect(seen.items == ["early"])
        writeFile(dir + "/c1/config.json", spec)
        #expect(await eventually(3) { seen.items == ["early", "c1"] })
        writeFile(dir + "/c1/config.json", spec)  // rewritten: still once
        try await Task.sleep(for: .milliseconds(200))
        #expect(seen.items == ["early", "c1"])
    }

}

final class LockedList: Sendable {
    private let list = Mutex<[String]>([])
    func append(_ s: String) { list.withLock { $0.append(s) } }
    var items: [String] { list.withLock { $0 } }
}
