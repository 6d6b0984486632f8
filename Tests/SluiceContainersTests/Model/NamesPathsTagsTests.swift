import Testing
@testable import SluiceContainers
import SluiceFiles
import SluiceSystem

@Suite struct KubernetesNamesTests {
    @Test func dockerNamePattern() throws {
        let info = try #require(KubernetesNames.fromDockerName("/k8s_nginx_web-7d9f8b.x2x_default_0d1c7a3e-1111-2222-3333-444455556666_3"))
        #expect(info.containerName == "nginx")
        #expect(info.podName == "web-7d9f8b.x2x")
        #expect(info.namespace == "default")
        #expect(info.podUID == "0d1c7a3e-1111-2222-3333-444455556666")
        #expect(info.restartCount == 3)
        // Without the leading slash, and with dockershim's conflict suffix.
        #expect(KubernetesNames.fromDockerName("k8s_app_p_ns_uid_0")?.podName == "p")
        #expect(KubernetesNames.fromDockerName("k8s_app_p_ns_uid_0_abcd1234")?.restartCount == 0)
        // Not the pattern.
        #expect(KubernetesNames.fromDockerName("nginx") == nil)
        #expect(KubernetesNames.fromDockerName("k8s_app_p_ns_uid") == nil)
        #expect(KubernetesNames.fromDockerName("k8s_app_p_ns_uid_x") == nil)
        #expect(KubernetesNames.fromDockerName("k8s__p_ns_uid_1") == nil)
        #expect(KubernetesNames.fromDockerName("docker_app_p_ns_uid_1") == nil)
        // Sandbox.
        #expect(KubernetesNames.isSandbox(labels: [:], name: "/k8s_POD_web_default_uid_0"))
        #expect(!KubernetesNames.isSandbox(labels: [:], name: "/k8s_nginx_web_default_uid_0"))
    }

    @Test func dockerLabels() throws {
        let labels = [
            "io.kubernetes.pod.name": "web-1", "io.kubernetes.pod.namespace": "shop",
            "io.kubernetes.pod.uid": "u-1", "io.kubernetes.container.name": "app",
            "annotation.io.kubernetes.container.restartCount": "2", "io.kubernetes.docker.type": "container",
        ]
        let info = try #require(KubernetesNames.fromDockerLabels(labels))
        #expect(info == KubernetesInfo(namespace: "shop", podName: "web-1", podUID: "u-1", containerName: "app", restartCount: 2))
        #expect(!KubernetesNames.isSandbox(labels: labels))
        #expect(KubernetesNames.fromDockerLabels(["io.kubernetes.pod.name": "x"]) == nil)
        #expect(KubernetesNames.isSandbox(labels: ["io.kubernetes.docker.type": "podsandbox"]))
        #expect(KubernetesNames.isSandbox(labels: ["io.cri-containerd.kind": "sandbox"]))
        #expect(KubernetesNames.isSandbox(labels: ["io.kubernetes.container.name": "POD"]))
        // Labels first, gaps filled from the name.
        let both = KubernetesNames.fromDocker(labels: ["io.kubernetes.pod.name": "web-1", "io.kubernetes.pod.namespace": "shop"],
                                              name: "/k8s_app_web-1_shop_u-9_4")
        #expect(both.kubernetes == KubernetesInfo(namespace: "shop", podName: "web-1", podUID: "u-9", containerName: "app", restartCount: 4))
        #expect(!both.isSandbox)
        #expect(KubernetesNames.fromDocker(labels: [:], name: "plain").kubernetes == nil)
        #expect(KubernetesNames.podLabels(fromSandboxLabels: ["app": "web", "io.kubernetes.pod.uid": "u", "annotation.x": "y"]) == ["app": "web"])
    }
}

@Suite struct PodLogPathTests {
    @Test func parsesTheKubeletLayout() throws {
        let p = try #require(PodLogPath.parse("/var/log/pods/kube-system_coredns-5d78c9869d-abcde_8f2b1c3d-aaaa-bbbb-cccc-000000000001/coredns/0.log",
                                             root: "/var/log/pods"))
        #expect(p.namespace == "kube-system")
        #expect(p.pod == "coredns-5d78c9869d-abcde")
        #expect(p.uid == "8f2b1c3d-aaaa-bbbb-cccc-000000000001")
        #expect(p.container == "coredns")
        #expect(p.restart == 0)
        let q = try #require(PodLogPath.parse("/var/log/pods/default_web.v2-1_uid/app/12.log", root: "/var/log/pods/"))
        #expect(q.pod == "web.v2-1")
        #expect(q.restart == 12)
    }

    @Test func rejectsEverythingElse() {
        let root = "/var/log/pods"
        for path in [
            "/var/log/pods/default_web_uid/app/0.log.20240102-150405",  // rotated
            "/var/log/pods/default_web_uid/app/0.log.20240102-150405.gz",
            "/var/log/pods/default_web_uid/app/0.log.tmp",
            "/var/log/pods/default_web_uid/app/x.log",
            "/var/log/pods/default_web_uid/app/.log",
            "/var/log/pods/default_web_uid/0.log",  // too shallow
            "/var/log/pods/default_web_uid/app/sub/0.log",  // too deep
            "/var/log/pods/default_uid/app/0.log",  // only one '_'
            "/var/log/pods/_web_uid/app/0.log",
            "/var/log/pods/default_web_/app/0.log",
            "/var/log/other/default_web_uid/app/0.log",
            "/var/log/podsx/default_web_uid/app/0.log",
        ] {
            #expect(PodLogPath.parse(path, root: root) == nil, "\(path)")
        }
        #expect(PodLogPath.isRotatedLogFileName("0.log.20240102-150405"))
        #expect(!PodLogPath.isRotatedLogFileName("0.log"))
        #expect(PodLogPath.parseLogFileName("3.log") == 3)
    }
}

@Suite struct HostPathsTests {
    let mounts = [
        ContainerMount(source: "/var/lib/kubelet/pods/u/volumes/data", destination: "/data"),
        ContainerMount(source: "/mnt/deep", destination: "/data/deep/"),
        ContainerMount(source: "/srv/two", destination: "/data2"),
    ]

    @Test func separatorBoundary() {
        let host = HostPaths(hostRoot: "/logtail_host")
        #expect(host.hostPath(containerPath: "/data/app.log", mounts: mounts, upperDir: "/up") == "/logtail_host/var/lib/kubelet/pods/u/volumes/data/app.log")
        #expect(host.hostPath(containerPath: "/data2/app.log", mounts: mounts, upperDir: "/up") == "/logtail_host/srv/two/app.log")
        #expect(host.hostPath(containerPath: "/data3/app.log", mounts: mounts, upperDir: "/up") == "/logtail_host/up/data3/app.log")
        #expect(host.hostPath(containerPath: "/data", mounts: mounts, upperDir: "/up") == "/logtail_host/var/lib/kubelet/pods/u/volumes/data")
    }

    @Test func longestPrefixWins() {
        let host = HostPaths(hostRoot: "/")
        #expect(host.hostPath(containerPath: "/data/deep/x/y.log", mounts: mounts, upperDir: "/up") == "/mnt/deep/x/y.log")
        #expect(host.hostPath(containerPath: "/data/deeper/y.log", mounts: mounts, upperDir: "/up") == "/var/lib/kubelet/pods/u/volumes/data/deeper/y.log")
        #expect(host.hostPath(containerPath: "/var/log/app.log", mounts: mounts, upperDir: "/var/lib/containerd/snap/12/fs")
                == "/var/lib/containerd/snap/12/fs/var/log/app.log")
        #expect(host.hostPath(containerPath: "/var/log/app.log", mounts: [], upperDir: "", mergedDir: "/run/merged") == "/run/merged/var/log/app.log")
        #expect(host.hostPath(containerPath: "/var/log/app.log", mounts: [], upperDir: "") == nil)
        #expect(host.hostPath(containerPath: "/x/a.log", mounts: [ContainerMount(source: "/rootmnt", destination: "/")], upperDir: "/up") == "/rootmnt/x/a.log")
        // A tmpfs (no host source) holding the path: no host path (it was the host's own root).
        let tmpfs = mounts + [ContainerMount(source: "", destination: "/var/log/app")]
        #expect(host.hostPath(containerPath: "/var/log/app", mounts: tmpfs, upperDir: "/up") == nil)
        #expect(host.hostPath(containerPath: "/var/log/app/a.log", mounts: tmpfs, upperDir: "/up") == nil)
        #expect(host.hostPath(containerPath: "/var/log/other.log", mounts: tmpfs, upperDir: "/up") == "/up/var/log/other.log")
    }

    @Test func hostRootPrefix() {
        #expect(HostPaths(hostRoot: "/").hostPath("/var/lib/docker/x.log") == "/var/lib/docker/x.log")
        #expect(HostPaths(hostRoot: "/logtail_host/").hostPath("/var/lib/docker/x.log") == "/logtail_host/var/lib/docker/x.log")
        #expect(HostPaths(hostRoot: "/logtail_host").hostPath("var/x") == "/logtail_host/var/x")
        #expect(HostPaths(hostRoot: "").hostRoot == "/")
        #expect(HostPaths.resolve(option: "/h").hostRoot == "/h")
        // /logtail_host does not exist on a test machine.
        #expect(HostPaths.resolve(option: nil).hostRoot == (Sys.isDirectory("/logtail_host") ? "/logtail_host" : "/"))
        var c = ContainerInfo(id: "x", runtime: .docker)
        c.upperDir = "/var/lib/docker/overlay2/abc/diff"
        #expect(HostPaths(hostRoot: "/h").hostPath(containerPath: "/app/log/a.log", in: c) == "/h/var/lib/docker/overlay2/abc/diff/app/log/a.log")
    }
}

@Suite struct ContainerTagsTests {
    @Test func kubernetesContainer() {
        var c = modelContainer(podLabels: ["app": "web", "team": "a"], env: ["VERSION": "1.2", "PATH": "/bin"])
        c.ip = "10.1.2.3"
        let tags = containerTags(c, externalEnvTag: ["VERSION": "app_version", "MISSING": "x"],
                                 externalK8sLabelTag: ["app": "k8s_app", "nope": "y"])
        #expect(tags.map(\.0) == ["_container_name_", "_container_id_", "_image_name_", "_pod_name_", "_namespace_",
                                   "_pod_uid_", "_container_ip_", "app_version", "k8s_app"])
        #expect(tags.map(\.1) == ["nginx", "abc123", "nginx:1.27", "web-7d9f8b-x2x", "default", "uid-1", "10.1.2.3", "1.2", "web"])
    }

    @Test func plainContainerOmitsKubernetesAndEmptyTags() {
        var c = ContainerInfo(id: "d1", name: "redis", image: "", runtime: .docker)
        c.env = ["ROLE": "cache"]
        let tags = containerTags(c, externalEnvTag: ["ROLE": "role"], externalK8sLabelTag: ["app": "app"])
        #expect(tags.map(\.0) == ["_container_name_", "_container_id_", "role"])
        #expect(tags.map(\.1) == ["redis", "d1", "cache"])
    }
}

/// Which containers count as existing before the input started (their logs then start at their
/// last TailSizeKB): by the runtime's start time against the previous run's last checkpoint (or
/// this start); the discovery time only when the runtime gives no start time.
@Suite struct ExistedBeforeTests {
    @Test func byTheRuntimesStartTime() {
        let wall: Int64 = 1_700_000_000_000_000_000, mono: Int64 = 5_000_000_000
        var c = ContainerInfo(id: "a", runtime: .docker)
        c.discoveredAt = mono + 1_000  // discovery always reports after the input started
        c.startedAt = wall - 3_600_000_000_000
        #expect(ContainerInput.existedBefore(c, wall: wall, monotonic: mono), "running for an hour: tail")
        c.startedAt = wall + 1
        #expect(!ContainerInput.existedBefore(c, wall: wall, monotonic: mono), "started after: whole")
        c.startedAt = 0
        #expect(!ContainerInput.existedBefore(c, wall: wall, monotonic: mono), "no start time, discovered after: whole")
        c.discoveredAt = mono - 1
        #expect(ContainerInput.existedBefore(c, wall: wall, monotonic: mono), "no start time, known before")
    }
}

/// `ExcludeFilePaths` / `ExcludeDirs` of an input reading files inside containers are container
/// paths: they apply where the container's mounts and rootfs put them on the host.
@Suite struct ContainerExclusionsTests {
    @Test func excludedPathsAreTranslatedToTheHost() {
        var c = ContainerInfo(id: "c", runtime: .docker)
        c.upperDir = "/var/lib/docker/overlay2/u/diff"
        c.mounts = [ContainerMount(source: "/srv/vol", destination: "/data"), ContainerMount(source: "", destination: "/scratch")]
        let e = PathExclusions(filePaths: ["/data/*/debug.log", "/scratch/x.log"], fileNames: ["*.tmp"], directories: ["/var/log/app/debug", "/data/old"])
        let h = ContainerInput.hostExclusions(e, of: c, hostPaths: HostPaths(hostRoot: "/logtail_host"))
        #expect(h.filePaths == ["/logtail_host/srv/vol/*/debug.log"])
        #expect(h.fileNames == ["*.tmp"])
        #expect(h.directories == ["/logtail_host/var/lib/docker/overlay2/u/diff/var/log/app/debug", "/logtail_host/srv/vol/old"])
        #expect(h.excludesFile("/logtail_host/srv/vol/a/debug.log"))
        #expect(h.excludesDirectory("/logtail_host/var/lib/docker/overlay2/u/diff/var/log/app/debug"))
    }
}
