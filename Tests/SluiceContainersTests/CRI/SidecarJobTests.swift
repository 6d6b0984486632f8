import Foundation
import Glibc
import SluiceContainers
import SluiceSystem
import SluiceTesting
import Testing

/// Seed 003's sidecar Job on a real containerd, with nothing hand-made: an app container writes its
/// log into a shared emptyDir-like volume and touches the tombstone when done; Sluice runs as the
/// sidecar container of the same pod (the real binary, its libraries mounted from the host), with
/// the downward API's env tags and `--exit-when-file`. Every line must arrive, tagged, and Sluice
/// must exit 0 within 1 s of the app's last line.
@Suite("sidecar Job on a real containerd", .serialized, .enabled(if: CRITestEnv.announced && CRITestEnv.canRunContainerd, CRITestEnv.skipReason))
struct SidecarJobTests {
    static let lines = 20_000

    @Test func sidecarExitsWhenTheJobIsDone() async throws {
        let daemon = try await CRIContainerd.start()
        do {
            try await run(daemon)
        } catch {
            await daemon.cleanup()
            throw error
        }
        await daemon.cleanup()
    }

    func run(_ daemon: CRIContainerd) async throws {
        let root = daemon.dir + "/job"
        for d in ["app-logs", "graveyard", "conf", "out", "data"] {
            try FileManager.default.createDirectory(atPath: root + "/" + d, withIntermediateDirectories: true)
        }
        writeFile(root + "/conf/app.yaml", """
            inputs:
              - Type: input_file
                FilePaths: [/var/log/app/*.log]
            flushers:
              - Type: flusher_file
                FilePath: /out/out.jsonl
                MaxFileSize: 0
            """)
        // The sluice binary and what it links (glibc and the Swift runtime), from the host.
        var libs: [(String, String)] = [(SluiceProcess.binaryPath, "/usr/bin/sluice"), ("/lib64", "/lib64"),
                                        ("/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu")]
        if Sys.isDirectory("/opt/swift/usr/lib/swift/linux") { libs.append(("/opt/swift/usr/lib/swift/linux", "/opt/swift/usr/lib/swift/linux")) }
        let tags = ["_pod_name_": "report-29143-x7k2p", "_pod_ip_": "10.244.1.17", "_namespace_": "batch",
                    "_node_name_": "node-7", "_node_ip_": "192.168.0.7"]
        var env = tags
        env["ALIYUN_LOG_ENV_TAGS"] = "_pod_name_|_pod_ip_|_namespace_|_node_name_|_node_ip_"
        let config = CRIClientConfig(socketPath: daemon.socket, callTimeout: .seconds(5))
        try await CRIClient.with(config) { client in
            let kubelet = TestKubelet(client: client, podLogRoot: daemon.podLogRoot, containersDir: daemon.containersDir)
            _ = try await kubelet.ensureImage()
            let n = Self.lines
            let pod = try await kubelet.runPod(name: "report-29143-x7k2p", namespace: "batch", containers: [
                CRIContainerSpec(
                    name: "sluice",
                    command: ["/usr/bin/sluice", "run", "--config-dir", "/etc/sluice", "--data-dir", "/data",
                              "--exit-when-file", "/graveyard/tombstone", "--drain-timeout", "30", "--http-address", "off"],
                    env: env, mounts: [(root + "/app-logs", "/var/log/app"), (root + "/graveyard", "/graveyard"),
                                       (root + "/out", "/out"), (root + "/data", "/data")],
                    readOnlyMounts: libs + [(root + "/conf", "/etc/sluice")]),
                CRIContainerSpec(
                    name: "app",
                    command: ["/bin/sh", "-c", """
                        sleep 1
                        i=0; while [ $i -lt \(n / 2) ]; do echo "report line $i"; i=$((i+1)); done >> /var/log/app/report.log
                        while [ $i -lt \(n) ]; do echo "report line $i"; i=$((i+1)); done >> /var/log/app/report.log
                        echo "report done" > /var/log/app/summary.log
                        touch /graveyard/tombstone
                        """],
                    mounts: [(root + "/app-logs", "/var/log/app"), (root + "/graveyard", "/graveyard")]),
            ])
            let sidecar = pod.containers[0], app = pod.containers[1]
            var exited: [String: (code: Int32, finishedAt: Int64)] = [:]
            let done = await eventually(120) {
                for c in [sidecar, app] where exited[c.id] == nil {
                    if let st = try? await client.containerStatus(id: c.id, verbose: false).status, st.state == .containerExited {
                        exited[c.id] = (st.exitCode, st.finishedAt)
                    }
                }
                return exited.count == 2
            }
            let sidecarLog = (try? String(contentsOfFile: sidecar.logPath, encoding: .utf8)) ?? ""
            try #require(done, "both containers exited; the sidecar's log:\n\(sidecarLog.suffix(3000))")
            #expect(exited[app.id]?.code == 0)
            #expect(exited[sidecar.id]?.code == 0, "the sidecar's log:\n\(sidecarLog.suffix(3000))")
            // The app's last line is the tombstone, written right after its last log line.
            let tomb = try #require(try? FileManager.default.attributesOfItem(atPath: root + "/graveyard/tombstone")[.modificationDate] as? Date)
            let lastLineNanos = Int64(tomb.timeIntervalSince1970 * 1e9)
            let after = Double((exited[sidecar.id]?.finishedAt ?? 0) - lastLineNanos) / 1e9
            print("    sidecar: exited \(String(format: "%.3f", after)) s after the app's last line, code \(exited[sidecar.id]?.code ?? -1)")
            #expect(after < 1.0, "the sidecar exited \(after) s after the last line")

            var expected = (0..<n).map { "report line \($0)" }
            expected.append("report done")
            let out = String(decoding: readFileBytes(root + "/out/out.jsonl"), as: UTF8.self).split(separator: "\n")
            var contents: [String] = []
            var untagged = 0
            for line in out {
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { untagged += 1; continue }
                contents.append(obj["content"] as? String ?? "")
                if tags.contains(where: { obj[$0.key] as? String != $0.value }) { untagged += 1 }
            }
            let report = deliveryReport(expected: expected, delivered: contents)
            #expect(report.ok, "\(report)")
            #expect(untagged == 0, "\(untagged) of \(out.count) events lack an env tag")
            try await kubelet.deletePod(pod)
        }
    }
}
