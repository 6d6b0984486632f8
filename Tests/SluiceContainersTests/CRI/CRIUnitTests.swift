import Foundation
import GRPCCore
@testable import SluiceContainers
import Synchronization
import Testing

/// CRI pieces that need no daemon: verbose-info parsing (including malformed replies), mount
/// tables, socket resolution, CRI → ContainerInfo mapping.
@Suite("CRI unit")
struct CRIUnitTests {
    static let containerdVerbose = #"""
        {"sandboxID":"sb1","pid":4242,"removing":false,"snapshotKey":"c1","snapshotter":"overlayfs",
         "runtimeType":"io.containerd.runc.v2","config":{"metadata":{"name":"app"}},
         "runtimeSpec":{"ociVersion":"1.0.2","process":{"env":["PATH=/bin","FOO=bar=baz","EMPTY=","BARE"]},
           "root":{"path":"rootfs"},
           "mounts":[{"destination":"/proc","type":"proc","source":"proc","options":["nosuid"]},
                     {"destination":"/data","type":"bind","source":"/srv/data","options":["rbind","rw"]},
                     {"destination":"/etc/hosts","type":"bind","source":"/var/lib/c/hosts","options":["rbind"]},
                     {"destination":"/dev/shm","type":"bind","source":"/run/c/shm","options":["rbind"]},
                     {"destination":"/x","source":"/host/x","options":["bind"]}],
           "annotations":{"io.kubernetes.cri.container-type":"container"}}}
        """#

    /// A host-network pod's IP: the node's, from the DaemonSet's `_node_ip_` (status.hostIP) when
    /// set; an interface of Sluice's own network is the node's only with hostNetwork.
    @Test func hostNetworkPodsTakeTheNodeIPFromTheDownwardAPI() {
        #expect(CRIHostNetwork.nodeIPv4(environment: { $0 == "_node_ip_" ? "192.0.2.7" : nil }) == "192.0.2.7")
        #expect(CRIHostNetwork.nodeIPv4(environment: { $0 == "_node_ip_" ? "" : nil }) == CRIHostNetwork.primaryIPv4())
        #expect(CRIHostNetwork.nodeIPv4(environment: { _ in nil }) == CRIHostNetwork.primaryIPv4())
    }

    @Test func parsesContainerdVerboseInfo() throws {
        let v = try #require(CRIVerboseContainerInfo.parse(["info": Self.containerdVerbose]))
        #expect(v.pid == 4242)
        #expect(v.sandboxID == "sb1")
        #expect(v.snapshotter == "overlayfs")
        #expect(v.snapshotKey == "c1")
        let spec = try #require(v.runtimeSpec)
        #expect(spec.environment == ["PATH": "/bin", "FOO": "bar=baz", "EMPTY": "", "BARE": ""])
        #expect(spec.root?.path == "rootfs")
        #expect(spec.bindMounts.map(\.destination) == ["/data", "/etc/hosts", "/dev/shm", "/x"])
        #expect(spec.bindMounts.first?.source == "/srv/data")
    }

    @Test func malformedVerboseInfoCostsOnlyWhatIsBroken() {
        // Not JSON, wrong top-level type, missing key: no facts, no crash.
        #expect(CRIVerboseContainerInfo.parse(["info": "{not json"]) == nil)
        #expect(CRIVerboseContainerInfo.parse(["info": "[1,2,3]"]) == nil)
        #expect(CRIVerboseContainerInfo.parse([:]) == nil)
        #expect(CRIVerboseContainerInfo.parse(["info": ""]) == nil)
        // Wrong types for some fields: the others survive.
        let odd = #"{"pid":"not-a-number","snapshotKey":7,"snapshotter":"overlayfs","runtimeSpec":{"process":{"env":"x"},"mounts":[{"source":"/a"},{"destination":"/b","type":"bind","source":"/hb"},42]}}"#
        let v = CRIVerboseContainerInfo.parse(["info": odd])
        #expect(v != nil)
        #expect(v?.pid == nil)
        #expect(v?.snapshotKey == nil)
        #expect(v?.snapshotter == "overlayfs")
        #expect(v?.runtimeSpec?.environment == [:])
        #expect(v?.runtimeSpec?.bindMounts == [ContainerMount(source: "/hb", destination: "/b")])
        // A mapping from a malformed status still yields a usable entry.
        var status = Runtime_V1_ContainerStatus()
        status.id = "abc"
        status.state = .containerRunning
        let info = CRIMapping.containerInfo(status: status, verbose: nil, listed: nil, sandbox: nil, runtime: .containerd)
        #expect(info.id == "abc")
        #expect(info.state == .running)
        #expect(info.pid == 0)
        #expect(info.kubernetes == nil)
    }

    @Test func parsesSandboxVerboseInfo() {
        let text = #"{"pid":77,"image":"registry.k8s.io/pause:3.6","config":{"metadata":{"name":"p"},"log_directory":"/var/log/pods/ns_p_u"}}"#
        let v = CRIVerboseSandboxInfo.parse(["info": text])
        #expect(v?.pid == 77)
        #expect(v?.image == "registry.k8s.io/pause:3.6")
        #expect(v?.logDirectory == "/var/log/pods/ns_p_u")
    }

    @Test func mountTablesAndUpperDir() {
        let text = """
            overlay / overlay rw,relatime,lowerdir=/l1:/l2,upperdir=/var/lib/c/snapshots/9/fs,workdir=/var/lib/c/snapshots/9/work 0 0
            proc /proc proc rw,nosuid 0 0
            /dev/vda /with\\040space ext4 rw 0 0
            """
        let entries = CRIRootfs.parseMounts(text)
        #expect(entries.count == 3)
        #expect(entries[2].mountPoint == "/with space")
        #expect(CRIRootfs.overlayUpperDir(in: entries, mountPoint: "/") == "/var/lib/c/snapshots/9/fs")
        #expect(CRIRootfs.overlayUpperDir(in: entries, mountPoint: "/proc") == nil)
        #expect(CRIRootfs.upperDir(fromOptions: ["rw", "upperdir=/u", "workdir=/w"]) == "/u")
        #expect(CRIRootfs.join("/logtail_host", "/proc/1/mounts") == "/logtail_host/proc/1/mounts")
        #expect(CRIRootfs.join("/", "/proc/1/mounts") == "/proc/1/mounts")
        #expect(CRIRootfs.join("/h/", "x") == "/h/x")
        #expect(CRIRootfs.containerdBundleRootfs(stateDir: "/run/containerd", id: "abc")
                == "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs")
        // Our own process: "/" is a real mount, so parsing the live table works.
        #expect(CRIRootfs.upperDirFromProc(pid: 0, hostRoot: "/") == nil)
    }

    @Test func socketResolution() {
        let existing: Set<String> = ["/run/k3s/containerd/containerd.sock", "/var/run/crio/crio.sock"]
        #expect(CRISocket.resolve(explicit: nil, environment: [:], exists: existing.contains) == "/run/k3s/containerd/containerd.sock")
        #expect(CRISocket.resolve(explicit: "unix:///x.sock", environment: ["CONTAINERD_SOCK_PATH": "/y"], exists: existing.contains) == "/x.sock")
        #expect(CRISocket.resolve(explicit: nil, environment: ["CONTAINERD_SOCK_PATH": "/y"], exists: existing.contains) == "/y")
        #expect(CRISocket.resolve(explicit: nil, environment: [:], exists: { _ in false }) == nil)
        #expect(CRISocket.resolve(explicit: nil, environment: [:], hostRoot: "/logtail_host",
                                  exists: { $0 == "/logtail_host/run/containerd/containerd.sock" })
                == "/logtail_host/run/containerd/containerd.sock")
        #expect(CRISocket.kind(forSocketPath: "/var/run/crio/crio.sock") == .crio)
        #expect(CRISocket.kind(forSocketPath: "/run/containerd/containerd.sock") == .containerd)
        #expect(CRISocket.kind(runtimeName: "containerd") == .containerd)
        #expect(CRISocket.kind(runtimeName: "cri-o") == .crio)
        #expect(CRISocket.kind(runtimeName: "other") == nil)
        #expect(CRIClientConfig(socketPath: "/run/k3s/containerd/containerd.sock").effectiveStateDir == "/run/k3s/containerd")
        // In a DaemonSet the socket is under the host root; the state dir is reported as a host path.
        #expect(CRIClientConfig(socketPath: "/logtail_host/run/containerd/containerd.sock", hostRoot: "/logtail_host")
                    .effectiveStateDir == "/run/containerd")
        #expect(CRIRootfs.stripHostRoot("/logtail_host/run/x", "/logtail_host/") == "/run/x")
        #expect(CRIRootfs.stripHostRoot("/logtail_hostile/x", "/logtail_host") == "/logtail_hostile/x")
        #expect(CRIRootfs.stripHostRoot("/run/x", "/") == "/run/x")
    }

    @Test func mapsStatusAndSandbox() throws {
        var st = Runtime_V1_ContainerStatus()
        st.id = "c1"
        st.metadata = .with { $0.name = "app"; $0.attempt = 3 }
        st.state = .containerRunning
        st.createdAt = 10
        st.startedAt = 20
        st.image = .with { $0.image = "docker.io/library/nginx:1" }
        st.labels = [CRIMapping.containerNameLabel: "app", CRIMapping.podNameLabel: "web-0",
                     CRIMapping.podNamespaceLabel: "shop", CRIMapping.podUIDLabel: "u-1"]
        st.logPath = "app/3.log"
        st.mounts = [.with { $0.hostPath = "/srv/data"; $0.containerPath = "/data" }]
        let verbose = CRIVerboseContainerInfo.parse(["info": Self.containerdVerbose])
        let sandbox = CRISandbox(
            id: "sb1", name: "web-0", namespace: "shop", uid: "u-1", labels: [
                "app": "web", CRIMapping.podNameLabel: "web-0", CRIMapping.podNamespaceLabel: "shop",
                CRIMapping.podUIDLabel: "u-1",
            ], ip: "10.1.2.3", logDirectory: "/var/log/pods/shop_web-0_u-1")
        let info = CRIMapping.containerInfo(status: st, verbose: verbose, listed: nil, sandbox: sandbox, runtime: .containerd)
        #expect(info.pid == 4242)
        #expect(info.image == "docker.io/library/nginx:1")
        #expect(info.logPath == "/var/log/pods/shop_web-0_u-1/app/3.log")
        #expect(info.ip == "10.1.2.3")
        #expect(info.env["FOO"] == "bar=baz")
        // CRI mount first, then the spec's other bind mounts; /data not twice.
        #expect(info.mounts.map(\.destination) == ["/data", "/etc/hosts", "/dev/shm", "/x"])
        let k = try #require(info.kubernetes)
        #expect(k == KubernetesInfo(namespace: "shop", podName: "web-0", podUID: "u-1", containerName: "app",
                                    restartCount: 3, podLabels: ["app": "web"]))
        let sbInfo = sandbox.containerInfo(runtime: .containerd)
        #expect(sbInfo.isSandbox)
        #expect(sbInfo.kubernetes?.podLabels == ["app": "web"])
        // Exited: no pid.
        st.state = .containerExited
        #expect(CRIMapping.containerInfo(status: st, verbose: verbose, listed: nil, sandbox: nil, runtime: .containerd).pid == 0)
    }

    @Test func retryPolicyCoversEveryService() throws {
        let config = CRIClient.serviceConfig()
        let method = try #require(config.methodConfig.first)
        #expect(Set(method.names.map(\.service)) == Set(CRIClient.serviceNames))
        let retry = try #require(method.executionPolicy?.retry)
        #expect(retry.maxAttempts == 3)
        #expect(retry.retryableStatusCodes == [.unavailable])
    }

    /// A re-list that fails (the runtime slow past the call deadline) is retried inside the
    /// session; two failures in a row do not end it, the third does, with its error.
    @Test func failedRelistsEndTheSessionOnlyAfterThreeInARow() async throws {
        let (wake, wakeUp) = AsyncStream<Void>.makeStream()
        let results = Mutex<[Bool]>([false, false, true, false, true, false, false, false])
        let calls = Mutex(0), reported = Mutex<[Int]>([])
        let timeout = RPCError(code: .deadlineExceeded, message: "no answer")
        for _ in 0..<4 { wakeUp.yield() }
        let loop = Task {
            try await CRISource.relist(on: wake, retryAfter: .milliseconds(1), sync: {
                calls.withLock { $0 += 1 }
                let ok = results.withLock { $0.isEmpty ? true : $0.removeFirst() }
                if !ok { throw timeout }
            }, failed: { _, inARow in reported.withLock { $0.append(inARow) } })
        }
        do {
            try await loop.value
            Issue.record("three failed re-lists in a row did not end the session")
        } catch let e as RPCError {
            #expect(e.code == .deadlineExceeded)
        }
        // fail, fail, ok (wake 1); fail, ok (wake 2); fail, fail, fail → thrown (wake 3).
        #expect(calls.withLock { $0 } == 8)
        #expect(reported.withLock { $0 } == [1, 2, 1, 1, 2])
    }
}
