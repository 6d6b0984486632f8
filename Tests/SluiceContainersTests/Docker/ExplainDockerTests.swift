// `sluice explain` (the real binary) against a REAL dockerd: every container with its metadata,
// rootfs upper dir and mounts, and which pipeline matches it and why not.
import Glibc
import Foundation
import Testing
import SluiceTesting
@testable import SluiceContainers

@Suite("sluice explain: real dockerd", .serialized, .enabled(if: dkIsRoot, "needs root to start a private dockerd"))
struct ExplainDockerTests {
    @Test func explainShowsContainersAndMatches() async throws {
        let h = DockerHarness(tag: "explain", tcpPort: nil)
        try await h.start()
        defer { Task { await h.cleanup() } }
        let bind = h.dir + "/bind"
        try FileManager.default.createDirectory(atPath: bind, withIntermediateDirectories: true)
        let web = try await h.dockerOK(["run", "-d", "--name", "k8s_web_web-0_prod_uid-7_0", "--network", "none",
                                        "-e", "APP=web", "-v", "\(bind):/data", DockerHarness.imageName, "sleep", "30"])
        let other = try await h.dockerOK(["run", "-d", "--name", "k8s_db_db-0_kube-system_uid-8_0", "--network", "none",
                                          DockerHarness.imageName, "sleep", "30"])
        let conf = h.dir + "/conf"
        try FileManager.default.createDirectory(atPath: conf, withIntermediateDirectories: true)
        try """
        inputs:
          - Type: input_container_stdio
            ContainerFilters:
              K8sNamespaceRegex: ^prod$
        flushers:
          - Type: flusher_stdout
        """.write(toFile: conf + "/stdout.yaml", atomically: true, encoding: .utf8)

        let p = try SluiceProcess(arguments: ["explain", "--config-dir", conf, "--docker-host", h.dockerHost,
                                              "--cri-socket", h.dir + "/no-cri.sock", "--pod-log-dir", h.dir + "/no-pods",
                                              "--host-root", "/", "--json", "--wait", "1.5"], workDir: h.dir)
        #expect(p.wait(timeout: 30) == 0, "explain exits 0: \(p.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(p.stdout)) as? [String: Any], "explain --json prints JSON")
        let containers = try #require(json["containers"] as? [[String: Any]])
        let byID = Dictionary(containers.compactMap { c in (c["id"] as? String).map { ($0, c) } }, uniquingKeysWith: { a, _ in a })
        let w = try #require(byID[web], "the web container is listed")
        #expect(w["name"] as? String == "k8s_web_web-0_prod_uid-7_0")
        #expect(w["image"] as? String == DockerHarness.imageName)
        #expect(w["state"] as? String == "running")
        #expect((w["pid"] as? Int ?? 0) > 0)
        let k8s = try #require(w["kubernetes"] as? [String: Any])
        #expect(k8s["namespace"] as? String == "prod" && k8s["podName"] as? String == "web-0" && k8s["podUID"] as? String == "uid-7" && k8s["containerName"] as? String == "web")
        let upper = try #require(w["upperDir"] as? String)
        #expect(!upper.isEmpty && access(upper, F_OK) == 0, "rootfs upper dir \(upper) exists")
        #expect((w["logPath"] as? String).map { access($0, F_OK) == 0 } == true)
        let mounts = (w["mounts"] as? [[String: Any]]) ?? []
        #expect(mounts.contains { $0["destination"] as? String == "/data" && $0["source"] as? String == bind })
        #expect((w["env"] as? [String: String])?["APP"] == "web")
        #expect(byID[other] != nil)
        let pipelines = try #require(json["pipelines"] as? [[String: Any]])
        let m = try #require(pipelines.first)
        #expect((m["matched"] as? [String])?.contains { $0.hasPrefix("prod/web-0/web") } == true)
        #expect((m["skipped"] as? [String: String])?.contains { $0.key.hasPrefix("kube-system/db-0/db") && $0.value.contains("K8sNamespaceRegex") } == true)
        print("sluice explain (real dockerd): \(containers.count) containers; web upper dir \(upper); pipeline matched \(m["matched"] ?? [])")
        await h.cleanup()
    }
}
