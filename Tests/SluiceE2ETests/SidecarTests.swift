import Foundation
import Glibc
import SluiceTesting
import Testing

/// Sidecar mode on the real binary: env tags on every event, `--exit-when-file` (read every file
/// to its end, deliver, persist, exit 0), `--drain-timeout` (exit 3 and say what was not
/// delivered), and SIGTERM unchanged.
extension E2E {
    @Suite("sidecar mode") struct Sidecar {}
}

extension E2E.Sidecar {
    static let envTags = ["_pod_name_": "job-abc-x7k2p", "_pod_ip_": "10.1.2.3", "_namespace_": "batch",
                          "_node_name_": "node-7", "_node_ip_": "192.168.0.7"]

    @Test("--exit-when-file: every line of every file (late files, an unterminated last line) delivered and tagged, checkpoints at the end, exit 0 within 1 s")
    func exitWhenFile() throws {
        let s = E2EScenario("sidecar-exit")
        defer { s.cleanup() }
        _ = s.dir("app")
        let tomb = s.dir("graveyard") + "/tombstone"
        s.writePipeline("job", Pipelines.fileToFile(paths: [s.root + "/app/*.log"], output: s.root + "/out.jsonl"))
        var env = Self.envTags
        env["ALIYUN_LOG_ENV_TAGS"] = Self.envTags.keys.sorted().joined(separator: "|")
        env["SLUICE_EXIT_WHEN_FILE"] = tomb
        let p = try s.startAndWait(environment: env)
        // The app writes while Sluice runs, then a last file, a last unterminated line and the
        // tombstone with no pause: nothing may be left behind.
        var expected: [String] = []
        for i in 0..<20_000 {
            let line = "app line \(i)"
            expected.append(line)
            appendFile(s.root + "/app/main.log", line + "\n")
            if i == 10_000 { usleep(200_000) }
        }
        var last = ""
        for i in 0..<300 { last += "summary \(i)\n"; expected.append("summary \(i)") }
        appendFile(s.root + "/app/summary.log", last)
        appendFile(s.root + "/app/main.log", "exit status 0")
        expected.append("exit status 0")
        appendFile(tomb, "")
        let t0 = monotonicSeconds()
        let code = p.wait(timeout: 30)
        let took = monotonicSeconds() - t0
        #expect(code == 0, "exit code \(String(describing: code)); stderr:\n\(p.stderr.suffix(3000))")
        #expect(took < 1.0, "exited \(took) s after the tombstone")
        note("sidecar: exited \(String(format: "%.3f", took)) s after the tombstone with code \(String(describing: code))")
        let records = outputRecords(s.root + "/out.jsonl")
        let report = deliveryReport(expected: expected, delivered: records.map(\.content))
        #expect(report.ok, "\(report)")
        // Every event carries every env tag with its value.
        let lines = String(decoding: readFileBytes(s.root + "/out.jsonl"), as: UTF8.self).split(separator: "\n")
        var untagged = 0
        for line in lines {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { untagged += 1; continue }
            for (k, v) in Self.envTags where obj[k] as? String != v { untagged += 1; break }
        }
        #expect(untagged == 0, "\(untagged) of \(lines.count) events lack an env tag")
        // The checkpoints were persisted at the files' ends: a second run delivers nothing again.
        let p2 = try s.start(environment: env)
        #expect(p2.wait(timeout: 30) == 0)
        #expect(outputRecords(s.root + "/out.jsonl").count == expected.count, "a restart after the exit re-delivered lines")
    }

    @Test("--drain-timeout: a backend that never answers: exit 3 within the timeout, naming what was not delivered; the next start delivers it")
    func drainTimeout() async throws {
        let s = E2EScenario("sidecar-drain-timeout")
        defer { s.cleanup() }
        _ = s.dir("app")
        let tomb = s.root + "/tombstone"
        let receiver = try await HTTPTestReceiver(script: { _, _ in .init(status: 503) })
        s.writePipeline("job", """
            inputs:
              - Type: input_file
                FilePaths: [\(quoted(s.root + "/app/*.log"))]
            flushers:
              - Type: flusher_http
                RemoteURL: \(receiver.url)/ingest
            """)
        var text = ""
        for i in 0..<100 { text += "line \(i)\n" }
        appendFile(s.root + "/app/a.log", text)
        let p = try s.startAndWait(extraArguments: ["--exit-when-file", tomb, "--drain-timeout", "2"])
        appendFile(tomb, "")
        let t0 = monotonicSeconds()
        let code = p.wait(timeout: 30)
        let took = monotonicSeconds() - t0
        #expect(code == 3, "exit code \(String(describing: code))")
        #expect(took < 4, "took \(took) s with --drain-timeout 2")
        #expect(p.stderr.contains("did not finish within --drain-timeout"), "\(p.stderr.suffix(2000))")
        #expect(p.stderr.contains(s.root + "/app/a.log: delivered up to byte 0 of \(text.utf8.count)"), "\(p.stderr.suffix(2000))")
        // The backend recovers: the next run delivers every line and exits 0.
        receiver.setScript { _, _ in .ok }
        let p2 = try s.start(extraArguments: ["--exit-when-file", tomb, "--drain-timeout", "20"])
        #expect(p2.wait(timeout: 40) == 0, "\(p2.stderr.suffix(2000))")
        let got = Set(receiver.requests.filter { $0.uri.hasPrefix("/ingest") }.compactMap { r -> String? in
            (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])?["contents"].flatMap { ($0 as? [String: Any])?["content"] as? String }
        })
        #expect(got.count == 100, "delivered \(got.count) distinct lines after recovery")
        await receiver.stop()
    }

    @Test("SIGTERM in sidecar mode still stops, drains and exits 0 before the tombstone")
    func sigtermBeforeTombstone() throws {
        let s = E2EScenario("sidecar-sigterm")
        defer { s.cleanup() }
        _ = s.dir("app")
        s.writePipeline("job", Pipelines.fileToFile(paths: [s.root + "/app/*.log"], output: s.root + "/out.jsonl"))
        appendFile(s.root + "/app/a.log", "one\ntwo\n")
        let p = try s.startAndWait(extraArguments: ["--exit-when-file", s.root + "/never"])
        #expect(waitForLines(s.root + "/out.jsonl", 2))
        #expect(p.stop(timeout: 20) == 0)
    }

    @Test("env tags: an unset variable is warned about and tagged empty; LOONG_ENV_TAGS wins over ALIYUN_LOG_ENV_TAGS")
    func envTagVariables() throws {
        let s = E2EScenario("env-tags")
        defer { s.cleanup() }
        _ = s.dir("app")
        s.writePipeline("job", Pipelines.fileToFile(paths: [s.root + "/app/*.log"], output: s.root + "/out.jsonl"))
        appendFile(s.root + "/app/a.log", "one\n")
        let p = try s.startAndWait(environment: ["LOONG_ENV_TAGS": "_pod_name_|_missing_", "ALIYUN_LOG_ENV_TAGS": "_node_name_",
                                                 "_pod_name_": "p1", "_node_name_": "n1"])
        #expect(waitForLines(s.root + "/out.jsonl", 1))
        #expect(p.stop() == 0)
        let line = String(decoding: readFileBytes(s.root + "/out.jsonl"), as: UTF8.self)
        #expect(line.contains("\"_pod_name_\":\"p1\"") && line.contains("\"_missing_\":\"\""), "\(line)")
        #expect(!line.contains("_node_name_"), "\(line)")
        #expect(p.stderr.contains("LOONG_ENV_TAGS names _missing_, which is not set"))
    }
}
