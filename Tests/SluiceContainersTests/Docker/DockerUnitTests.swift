import Foundation
import Logging
import Testing
@testable import SluiceContainers

@Suite("Docker: parsing (no daemon)")
struct DockerUnitTests {
    @Test func endpointForms() throws {
        #expect(try DockerEndpoint.parse("unix:///var/run/docker.sock") == .unix(path: "/var/run/docker.sock"))
        #expect(try DockerEndpoint.parse("/run/docker.sock") == .unix(path: "/run/docker.sock"))
        #expect(try DockerEndpoint.parse("tcp://127.0.0.1:2375") == .tcp(host: "127.0.0.1", port: 2375))
        #expect(try DockerEndpoint.parse("tcp://docker-host") == .tcp(host: "docker-host", port: 2375))
        #expect(try DockerEndpoint.parse("tcp://[::1]:2376") == .tcp(host: "::1", port: 2376))
        #expect(try DockerEndpoint.parse("http://localhost:8080/") == .tcp(host: "localhost", port: 8080))
        #expect(throws: DockerError.self) { try DockerEndpoint.parse("unix://relative.sock") }
        #expect(throws: DockerError.self) { try DockerEndpoint.parse("tcp://host:notaport") }
        #expect(throws: DockerError.self) { try DockerEndpoint.parse("ssh://me@host") }
        #expect(throws: DockerError.self) { try DockerEndpoint.parse("docker.sock") }
        #expect(try DockerEndpoint.resolve(option: nil, environment: [:]) == .unix(path: "/var/run/docker.sock"))
        #expect(try DockerEndpoint.resolve(option: nil, environment: ["DOCKER_HOST": "tcp://h:1"]) == .tcp(host: "h", port: 1))
        #expect(try DockerEndpoint.resolve(option: "unix:///x.sock", environment: ["DOCKER_HOST": "tcp://h:1"]) == .unix(path: "/x.sock"))
        #expect(try DockerEndpoint.resolve(option: "", environment: ["DOCKER_HOST": ""]) == .unix(path: "/var/run/docker.sock"))
        #expect(DockerEndpoint.tcp(host: "::1", port: 2375).description == "tcp://[::1]:2375")
    }

    @Test func clientURLs() async throws {
        let unix = DockerClient(endpoint: .unix(path: "/tmp/a b/docker.sock"))
        #expect(unix.url("/version") == "http+unix://%2Ftmp%2Fa%20b%2Fdocker.sock/version")
        let tcp = DockerClient(endpoint: .tcp(host: "10.0.0.1", port: 2375))
        #expect(tcp.url("/containers/json?all=1") == "http://10.0.0.1:2375/containers/json?all=1")
        #expect(DockerClient.percentEncode(#"{"type":["container"]}"#) == "%7B%22type%22%3A%5B%22container%22%5D%7D")
        try await unix.shutdown()
        try await tcp.shutdown()
    }

    @Test func rfc3339Nano() {
        #expect(DockerTime.unixNanos("1970-01-01T00:00:00Z") == 0)
        #expect(DockerTime.unixNanos("1970-01-01T00:00:01.5Z") == 1_500_000_000)
        #expect(DockerTime.unixNanos("2026-11-22T00:33:02.413439554Z") == 1_795_307_582_413_439_554)
        #expect(DockerTime.unixNanos("2026-11-22T08:33:02.413439554+08:00") == 1_795_307_582_413_439_554)
        #expect(DockerTime.unixNanos("2000-02-29T23:59:59.123Z") == 951_868_799_123_000_000)
        // More than 9 fraction digits: extra ones ignored.
        #expect(DockerTime.unixNanos("1970-01-01T00:00:00.1234567891Z") == 123_456_789)
        #expect(DockerTime.unixNanos("0001-01-01T00:00:00Z") == 0)
        #expect(DockerTime.unixNanos("") == 0)
        #expect(DockerTime.unixNanos(nil) == 0)
        #expect(DockerTime.unixNanos("yesterday") == 0)
        #expect(DockerTime.unixNanos("2024-13-01T00:00:00Z") == 0)
        #expect(DockerTime.unixNanos("2024-01-01T00:00:00") == 0)  // no zone
    }

    @Test func kubernetesIdentityFromInspect() throws {
        func decode(_ name: String, _ labels: [String: String]) throws -> ContainerInfo {
            try DockerJSON.decode(DockerInspect.self, from: Array(dkInspectJSON(id: "c1", name: name, labels: labels).utf8),
                                  what: "test").containerInfo()
        }
        // Name pattern only.
        var c = try decode("k8s_app_mypod_ns1_uid-1_3", ["app": "web"])
        #expect(c.kubernetes == KubernetesInfo(namespace: "ns1", podName: "mypod", podUID: "uid-1", containerName: "app", restartCount: 3))
        #expect(!c.isSandbox)
        // Labels.
        c = try decode("plain", [
            "io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "prod", "io.kubernetes.pod.uid": "u-9",
            "io.kubernetes.container.name": "nginx", "annotation.io.kubernetes.container.restartCount": "2",
        ])
        #expect(c.kubernetes == KubernetesInfo(namespace: "prod", podName: "web-0", podUID: "u-9", containerName: "nginx", restartCount: 2))
        // A dockershim sandbox: flagged, and its own labels are the pod's labels.
        c = try decode("k8s_POD_mypod_ns1_uid-1_0", ["io.kubernetes.docker.type": "podsandbox", "tier": "front",
                                                      "annotation.kubernetes.io/config.seen": "x"])
        #expect(c.isSandbox)
        #expect(c.kubernetes?.containerName == "POD")
        #expect(c.kubernetes?.podLabels == ["tier": "front"])
        // Not a pod container.
        c = try decode("redis", ["io.kubernetes.pod.name": "only-name"])
        #expect(c.kubernetes == nil && !c.isSandbox)
    }

    @Test func sandboxPodLabelsReachThePodsContainers() throws {
        let registry = ContainerRegistry(logger: Logger(label: "test"))
        let writer = DockerRegistryWriter(registry: registry)
        func decode(_ id: String, _ name: String, _ labels: [String: String]) throws -> ContainerInfo {
            try DockerJSON.decode(DockerInspect.self, from: Array(dkInspectJSON(id: id, name: name, labels: labels).utf8),
                                  what: "test").containerInfo()
        }
        let sandbox = try decode("s1", "k8s_POD_mypod_ns1_uid-1_0", ["io.kubernetes.docker.type": "podsandbox", "tier": "front"])
        let app = try decode("a1", "k8s_app_mypod_ns1_uid-1_0", [:])
        // By events: sandbox first.
        writer.upsert(sandbox)
        writer.upsert(app)
        #expect(registry.lookup(id: "a1")?.kubernetes?.podLabels == ["tier": "front"])
        // By a re-sync listing the app before its sandbox.
        let registry2 = ContainerRegistry(logger: Logger(label: "test"))
        let writer2 = DockerRegistryWriter(registry: registry2)
        writer2.beginResync()
        writer2.finishResync([app, sandbox])
        #expect(registry2.lookup(id: "a1")?.kubernetes?.podLabels == ["tier": "front"])
    }

    @Test func resyncNeverUndoesEventsSeenMeanwhile() throws {
        let registry = ContainerRegistry(logger: Logger(label: "test"))
        let writer = DockerRegistryWriter(registry: registry)
        func info(_ id: String, _ name: String, _ state: ContainerState) -> ContainerInfo {
            ContainerInfo(id: id, name: name, image: "img", state: state, runtime: .docker)
        }
        writer.upsert(info("old", "old", .running))
        writer.upsert(info("gone", "gone", .running))
        writer.beginResync()
        // While the list is being collected: a new container starts, one is destroyed, one changes.
        writer.upsert(info("new", "new", .running))
        writer.remove(id: "gone")
        writer.upsert(info("old", "old", .exited))
        // The list was taken before those events.
        writer.finishResync([info("old", "old", .running), info("gone", "gone", .running)])
        #expect(registry.lookup(id: "new").map { !registry.isRemoved(id: "new") && $0.state == .running } == true)
        #expect(registry.isRemoved(id: "gone"))
        #expect(registry.lookup(id: "old")?.state == .exited)
    }

    @Test func lineSplitterAcrossChunks() {
        var s = DockerLineSplitter(maxLineLength: 32)
        #expect(s.append(Array("{\"a\":".utf8)).isEmpty)
        #expect(s.append(Array("1}\n{\"b\"".utf8)) == [Array("{\"a\":1}".utf8)])
        #expect(s.append(Array(":2}\r\n\n{\"c\":3}\n".utf8)) == [Array("{\"b\":2}".utf8), Array("{\"c\":3}".utf8)])
        // An over-long line is dropped up to its newline; the next one is intact.
        #expect(s.append(Array(String(repeating: "x", count: 40).utf8)).isEmpty)
        #expect(s.append(Array("yyy\n{\"d\":4}\n".utf8)) == [Array("{\"d\":4}".utf8)])
        #expect(s.droppedLines == 1)
        #expect(s.append(Array("{\"e\":5}".utf8)).isEmpty)
        #expect(s.finish() == Array("{\"e\":5}".utf8))
        #expect(s.finish() == nil)
    }

    @Test func inspectDecodesIntoContainerInfo() throws {
        let id = dkFakeID(0xabc)
        let json = dkInspectJSON(id: id, name: "k8s_app_mypod_ns1_uid-1_0", labels: ["app": "web"],
                                 env: ["PATH=/bin", "EQ=a=b", "EMPTY=", "NOVALUE"])
        let info = try DockerJSON.decode(DockerInspect.self, from: Array(json.utf8), what: "test").containerInfo()
        #expect(info.id == id)
        #expect(info.name == "k8s_app_mypod_ns1_uid-1_0")
        #expect(info.image == "busybox:1.36")
        #expect(info.state == .running)
        #expect(info.pid == 4242)
        #expect(info.createdAt == DockerTime.unixNanos("2024-05-01T12:34:56.123456789Z"))
        #expect(info.startedAt == DockerTime.unixNanos("2024-05-01T12:34:57.5Z"))
        #expect(info.finishedAt == 0)
        #expect(info.ip == "172.17.0.2")  // first network by name ("alpha")
        #expect(info.labels == ["app": "web"])
        #expect(info.env == ["PATH": "/bin", "EQ": "a=b", "EMPTY": "", "NOVALUE": ""])
        #expect(info.logPath == "/var/lib/docker/containers/\(id)/\(id)-json.log")
        #expect(info.upperDir == "/var/lib/docker/overlay2/abc/diff")
        #expect(info.mergedDir == "/var/lib/docker/overlay2/abc/merged")
        #expect(info.mounts == [ContainerMount(source: "/srv/data", destination: "/data"),
                                ContainerMount(source: "/var/lib/docker/volumes/v1/_data", destination: "/cache")])
        #expect(info.kubernetes == KubernetesInfo(namespace: "ns1", podName: "mypod", podUID: "uid-1", containerName: "app"))
        #expect(!info.isSandbox)
        #expect(info.runtime == .docker)

        let exited = try DockerJSON.decode(DockerInspect.self, from: Array(dkInspectJSON(id: id, name: "x", status: "exited", pid: 0).utf8),
                                           what: "test").containerInfo()
        #expect(exited.state == .exited)
        #expect(exited.mergedDir == "")  // only while running
        #expect(exited.kubernetes == nil)
    }

    @Test func inspectToleratesNullsAndMissingFields() throws {
        let json = #"{"Id":"x1","Name":"/n","State":null,"Config":{"Labels":null,"Env":null},"Mounts":null,"GraphDriver":{"Data":null},"NetworkSettings":{"IPAddress":"10.1.2.3","Networks":null}}"#
        let info = try DockerJSON.decode(DockerInspect.self, from: Array(json.utf8), what: "t").containerInfo()
        #expect(info.id == "x1" && info.name == "n" && info.state == .unknown && info.ip == "10.1.2.3")
        #expect(info.labels.isEmpty && info.env.isEmpty && info.mounts.isEmpty && info.upperDir == "")
        #expect(throws: DockerError.self) { try DockerJSON.decode(DockerInspect.self, from: Array("{oops".utf8), what: "t") }
    }

    @Test func stateMapping() {
        #expect(DockerInspect.state("created", running: false) == .created)
        #expect(DockerInspect.state("running", running: true) == .running)
        #expect(DockerInspect.state("paused", running: true) == .running)
        #expect(DockerInspect.state("restarting", running: false) == .exited)
        #expect(DockerInspect.state("exited", running: false) == .exited)
        #expect(DockerInspect.state("dead", running: false) == .exited)
        #expect(DockerInspect.state(nil, running: nil) == .unknown)
    }

    @Test func eventDecoding() throws {
        let line = #"{"status":"start","id":"abc","from":"img","Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"image":"img","name":"c2"}},"scope":"local","time":1795307582,"timeNano":1795307582413439554}"#
        let e = try DockerJSON.decode(DockerEvent.self, from: Array(line.utf8), what: "t")
        #expect(e.containerID == "abc" && e.verb == "start" && e.type == "container" && e.timeNano == 1_795_307_582_413_439_554)
        let health = try DockerJSON.decode(DockerEvent.self, from: Array(#"{"Type":"container","Action":"health_status: healthy","Actor":{"ID":"z"}}"#.utf8), what: "t")
        #expect(health.verb == "health_status")
        let old = try DockerJSON.decode(DockerEvent.self, from: Array(#"{"status":"die","id":"q"}"#.utf8), what: "t")
        #expect(old.containerID == "q" && old.verb == "die")
    }
}
