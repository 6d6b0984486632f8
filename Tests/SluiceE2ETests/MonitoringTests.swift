import Foundation
import Glibc
import SluiceTesting
import Testing

/// The self-monitoring endpoint of the real binary: a real Prometheus scrapes `/metrics`;
/// `/healthz`, `/readyz` and the stats file answer what the daemon's state is.
extension E2E {
    @Suite("monitoring endpoint") struct Monitoring {}
}

/// GET `url`: the status and the body (status 0 when nothing answered).
func httpGet(_ url: String) -> (status: Int, body: String) {
    let tmp = "/tmp/sluice-get.\(UInt32.random(in: 0...UInt32.max))"
    defer { unlink(tmp); unlink(tmp + ".code") }
    _ = shell("curl -s -o '\(tmp)' -w '%{http_code}' '\(url)' > '\(tmp).code'")
    let code = String(decoding: readFileBytes(tmp + ".code"), as: UTF8.self)
    return (Int(code.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0, String(decoding: readFileBytes(tmp), as: UTF8.self))
}

/// The value of the one series of `/metrics` text whose line starts with `series` (name and labels).
func seriesValue(_ text: String, _ series: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.split(separator: " ").last ?? "")
    }
    return nil
}

extension E2E.Monitoring {
    /// A pipeline reading `app/*.log`, dropping lines that contain "debug", writing to out.jsonl.
    static func pipeline(_ s: E2EScenario) -> String {
        """
        inputs:
          - Type: input_file
            FilePaths: [\(quoted(s.root + "/app/*.log"))]
        processors:
          - Type: processor_filter_regex_native
            FilterKey: [content]
            FilterRegex: ['[^d]*']
        flushers:
          - Type: flusher_file
            FilePath: \(quoted(s.root + "/out.jsonl"))
            MaxFileSize: 0
        """
    }

    @Test("a real Prometheus scrapes /metrics: counters by component, discards by reason, gauges")
    func prometheusScrapes() throws {
        let s = E2EScenario("prometheus-scrape")
        defer { s.cleanup() }
        _ = s.dir("app")
        s.writePipeline("web", Self.pipeline(s))
        var text = ""
        for i in 0..<1000 { text += "kept line \(i)\n" }
        for i in 0..<200 { text += "debug line \(i)\n" }
        appendFile(s.root + "/app/a.log", text)
        let port = TestServer.freePort()
        try s.startAndWait(extraArguments: ["--http-address", "127.0.0.1:\(port)"])
        #expect(waitForLines(s.root + "/out.jsonl", 1000))
        guard let prom = try TestServer.prometheus(scraping: ["127.0.0.1:\(port)"]) else {
            try #require(ProcessInfo.processInfo.environment["CI"] != "true", "prometheus is installed by scripts/install-deps.sh")
            note("prometheus is not installed; skipped")
            return
        }
        defer { prom.stop() }
        let flusher = "pipeline=\"web\",component_kind=\"flusher\",component_type=\"flusher_file\",component_id=\"flushers[0]\""
        var sent: [(labels: [String: String], value: Double)] = []
        let scraped = waitUntil(timeout: 30, pollMs: 250) {
            sent = prom.promQuery("component_sent_events_total{\(flusher)}")
            return sent.first?.value == 1000
        }
        #expect(scraped, "Prometheus saw component_sent_events_total of flushers[0] = 1000, got \(sent)")
        #expect(sent.first?.labels["job"] == "sluice")
        #expect(prom.promQuery("up{job=\"sluice\"}").first?.value == 1)
        #expect(prom.promQuery("component_received_events_total{component_kind=\"input\",pipeline=\"web\"}").first?.value == 1200)
        let discarded = prom.promQuery("component_discarded_events_total{component_type=\"processor_filter_regex_native\"}")
        #expect(discarded.first?.value == 200 && discarded.first?.labels["reason"] == "filtered", "\(discarded)")
        #expect(prom.promQuery("pipeline_received_events_total{pipeline=\"web\"}").first?.value == 1200)
        #expect(prom.promQuery("files_open{pipeline=\"web\"}").first?.value == 1)
        #expect(prom.promQuery("component_queue_bytes{\(flusher)}").first?.value == 0)
        let rss = prom.promQuery("process_resident_memory_bytes").first?.value ?? 0
        #expect(rss > 1_048_576 && rss < 1_073_741_824, "RSS \(rss)")
        #expect((prom.promQuery("process_cpu_seconds_total").first?.value ?? 0) > 0)
        #expect((prom.promQuery("checkpoint_age_seconds{pipeline=\"web\"}").first?.value ?? 99) < 5)
        #expect(prom.promQuery("sluice_build_info").count == 1)
        note("prometheus scraped sluice: up=1, sent=1000, discarded{filtered}=200, rss=\(Int(rss) >> 20) MiB")
    }

    @Test("/healthz, /readyz (with reasons), 404, and the stats file's gauges")
    func probes() throws {
        let s = E2EScenario("probes")
        defer { s.cleanup() }
        _ = s.dir("app")
        s.writePipeline("web", Self.pipeline(s))
        appendFile(s.root + "/app/a.log", "one\n")
        let port = TestServer.freePort()
        let base = "http://127.0.0.1:\(port)"
        let p = try s.startAndWait(extraArguments: ["--http-address", "127.0.0.1:\(port)"])
        #expect(httpGet(base + "/healthz") == (200, "ok\n"))
        #expect(waitUntil(timeout: 5) { httpGet(base + "/readyz").status == 200 })
        #expect(httpGet(base + "/nope").status == 404)
        let metrics = httpGet(base + "/metrics")
        #expect(metrics.status == 200)
        #expect(seriesValue(metrics.body, "pipelines_running") == 1)

        // A pipeline whose file is broken: not ready, and /readyz says which and why.
        s.writePipeline("broken", "inputs:\n  - Type: input_nope\nflushers:\n  - Type: flusher_stdout\n")
        var ready = (status: 0, body: "")
        #expect(waitUntil(timeout: 15) { ready = httpGet(base + "/readyz"); return ready.status == 503 })
        #expect(ready.body.contains("pipeline broken is not running"), "\(ready.body)")
        #expect(httpGet(base + "/healthz").status == 200, "alive while not ready")
        s.removePipeline("broken")
        #expect(waitUntil(timeout: 15) { httpGet(base + "/readyz").status == 200 })

        // The stats file carries the same gauges.
        #expect(waitUntil(timeout: 5) {
            let gauges = readStats(s.statsFile)["gauges"] as? [String: Any] ?? [:]
            return statValue(gauges, "files_open{pipeline=\"web\"}") == 1 && (statValue(gauges, "process_resident_memory_bytes") ?? 0) > 0
        })
        #expect(p.stop() == 0)
    }

    @Test("a monitoring port in use is logged and collection goes on")
    func portInUse() throws {
        let s = E2EScenario("port-in-use")
        defer { s.cleanup() }
        _ = s.dir("app")
        s.writePipeline("web", Self.pipeline(s))
        appendFile(s.root + "/app/a.log", "one\ntwo\n")
        let port = TestServer.freePort()
        let first = try s.startAndWait(extraArguments: ["--http-address", "127.0.0.1:\(port)"])
        #expect(waitUntil(timeout: 5) { httpGet("http://127.0.0.1:\(port)/healthz").status == 200 })
        let other = E2EScenario("port-in-use-2")
        defer { other.cleanup() }
        _ = other.dir("app")
        other.writePipeline("web", Self.pipeline(other))
        appendFile(other.root + "/app/a.log", "three\n")
        try other.startAndWait(extraArguments: ["--http-address", "127.0.0.1:\(port)"])
        #expect(waitForLines(other.root + "/out.jsonl", 1))
        #expect(other.waitForLog("The monitoring endpoint cannot listen"))
        #expect(first.stop() == 0)
    }

    @Test("a bad --http-address is a usage error")
    func badAddress() throws {
        let s = E2EScenario("bad-address")
        defer { s.cleanup() }
        s.writePipeline("web", Self.pipeline(s))
        let p = try s.start(extraArguments: ["--http-address", "localhost"])
        let code = p.wait(timeout: 10)
        #expect(code != nil && code != 0)
        #expect(p.stderr.contains("expected HOST:PORT"), "\(p.stderr)")
    }

    @Test("--log-format json writes one JSON object per log line")
    func jsonLogs() throws {
        let s = E2EScenario("json-logs")
        defer { s.cleanup() }
        _ = s.dir("app")
        s.writePipeline("web", Self.pipeline(s))
        let p = try s.startAndWait(extraArguments: ["--log-format", "json"])
        #expect(p.stop() == 0)
        let lines = p.stderr.split(separator: "\n")
        #expect(lines.count >= 4)
        for line in lines {
            let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(obj?["message"] is String && obj?["level"] is String && obj?["time"] is String, "not a JSON log line: \(line)")
        }
        #expect(lines.contains { $0.contains("\"message\":\"Pipeline started.\"") && $0.contains("\"pipeline\":\"web\"") })
    }
}
