import SluiceSystem
import Testing
@testable import SluiceContainers

let modelGoodStaticFile = """
[
  {
    "ID": "c0ffee01",
    "Name": "/k8s_app_web-1_shop_uid-1_2",
    "Created": "2024-05-01T10:00:00.5Z",
    "HostName": "web-1",
    "IP": "10.0.0.7",
    "Image": "registry/web:1.0",
    "LogPath": "/var/log/pods/shop_web-1_uid-1/app/2.log",
    "Labels": {"io.kubernetes.pod.name": "web-1", "io.kubernetes.pod.namespace": "shop",
               "io.kubernetes.pod.uid": "uid-1", "io.kubernetes.container.name": "app", "app": "web"},
    "LogType": "json-file",
    "UpperDir": "/var/lib/containerd/snap/7/fs",
    "Env": {"APP": "web", "ESCAPED": "a\\"b\\u00e9\\ud83d\\ude00"},
    "Mounts": [{"Source": "/host/data", "Destination": "/data", "Driver": "local"}],
    "State": {"Status": "running", "Pid": 4242}
  },
  {"id": "plain2", "name": "redis", "env": ["A=1", "B=x=y"], "state": {"status": "exited", "pid": 0},
   "Labels": null, "Created": "not a time"}
]
"""

@Suite struct StaticContainerFileTests {
    @Test func parsesTheIncumbentFormat() throws {
        let containers = try StaticContainerFile.parse(Array(modelGoodStaticFile.utf8))
        #expect(containers.count == 2)
        let a = containers[0]
        #expect(a.id == "c0ffee01")
        #expect(a.name == "k8s_app_web-1_shop_uid-1_2")
        #expect(a.runtime == .static)
        #expect(a.ip == "10.0.0.7")
        #expect(a.image == "registry/web:1.0")
        #expect(a.logPath == "/var/log/pods/shop_web-1_uid-1/app/2.log")
        #expect(a.upperDir == "/var/lib/containerd/snap/7/fs")
        #expect(a.env["ESCAPED"] == "a\"b\u{e9}\u{1F600}")
        #expect(a.mounts == [ContainerMount(source: "/host/data", destination: "/data")])
        #expect(a.state == .running)
        #expect(a.pid == 4242)
        #expect(a.createdAt == 1_714_557_600_500_000_000)
        #expect(a.kubernetes == KubernetesInfo(namespace: "shop", podName: "web-1", podUID: "uid-1", containerName: "app",
                                               restartCount: 2, podLabels: ["app": "web"]))
        #expect(!a.isSandbox)
        let b = containers[1]
        #expect(b.id == "plain2")
        #expect(b.env == ["A": "1", "B": "x=y"])
        #expect(b.state == .exited)
        #expect(b.kubernetes == nil)
        #expect(b.createdAt == 0)
        #expect(try StaticContainerFile.parse(Array("null".utf8)).isEmpty)
        #expect(try StaticContainerFile.parse(Array("\u{FEFF}[]".utf8)).isEmpty)
    }

    func error(_ text: String) -> StaticContainerFileError? {
        do {
            _ = try StaticContainerFile.parse(Array(text.utf8))
            return nil
        } catch {
            return error
        }
    }

    @Test func syntaxErrorsSayWhere() throws {
        let e = try #require(error("[\n  {\"ID\": \"a\",}\n]"))
        #expect(e.line == 2)
        #expect(e.column == 14)
        #expect(e.offset == 15)
        #expect(e.description == "line 2, column 14 (byte 15): unexpected '}', expected a key in double quotes")
        #expect(error("")?.message == "the file is empty")
        #expect(error("[{\"ID\": \"a\"}")?.message == "unexpected end of file, expected ',' or ']' in an array")
        #expect(error("[{\"ID\": \"a\"}] x")?.message == "unexpected 'x' after the end of the document")
        #expect(error("[\"abc]")?.message == "unterminated string")
        #expect(error("[01]") != nil)
    }

    @Test func fieldErrorsNameTheEntryAndField() throws {
        let pid = try #require(error("[{\"ID\": \"a\"}, {\"ID\": \"b\", \"State\": {\"Status\": \"running\", \"Pid\": \"12\"}}]"))
        #expect(pid.entry == 1)
        #expect(pid.entryID == "b")
        #expect(pid.field == "State.Pid")
        #expect(pid.description == "line 1, column 65 (byte 64): entry 1 (ID \"b\"), field State.Pid: expected an integer, found a string")
        let mount = try #require(error("[{\"ID\": \"a\", \"Mounts\": [{\"Source\": 1}]}]"))
        #expect(mount.field == "Mounts[0].Source")
        #expect(mount.message == "expected a string, found a number")
        let label = try #require(error("[{\"ID\": \"a\", \"Labels\": {\"x\": true}}]"))
        #expect(label.field == "Labels.x")
        let missing = try #require(error("[{\"Name\": \"x\"}]"))
        #expect(missing.field == "ID")
        #expect(missing.entry == 0)
        #expect(error("{\"ID\": \"a\"}")?.message == "expected an array of containers, found an object")
        #expect(error("[1]")?.description == "line 1, column 2 (byte 1): entry 0: expected an object, found a number")
    }

    @Test func timestamps() {
        #expect(RFC3339.parse("1970-01-01T00:00:00Z") == 0)
        #expect(RFC3339.parse("2024-05-01T18:00:00.123456789+08:00") == 1_714_557_600_123_456_789)
        #expect(RFC3339.parse("2000-02-29T00:00:00Z") == 951_782_400_000_000_000)
        #expect(RFC3339.parse("0001-01-01T00:00:00Z") == nil)
        #expect(RFC3339.parse("2024-05-01") == nil)
    }
}
