import Foundation
import Glibc
import SluiceTesting
import Testing

/// The incumbent's resource limits on the real binary, each under a load above it:
/// `mem_usage_limit` (RSS held under it while ten pipelines face a backend that never answers),
/// `cpu_usage_limit` (reading throttled so the process stays near it), `max_bytes_per_sec`.
extension E2E {
    @Suite("resource limits") struct ResourceLimits {}
}

/// CPU seconds (user + system) a process has used.
func processCPUSeconds(_ pid: pid_t) -> Double {
    let text = String(decoding: readFileBytes("/proc/\(pid)/stat"), as: UTF8.self)
    guard let close = text.lastIndex(of: ")") else { return 0 }
    let fields = text[text.index(after: close)...].split(separator: " ")
    // After the command: state is field 3, utime 14 and stime 15 (1-based in proc(5)).
    guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return 0 }
    return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

extension E2E.ResourceLimits {
    @Test("mem_usage_limit: ten pipelines, a backend that never answers, 200 MB of input: RSS stays under the limit; everything arrives once the backend answers")
    func memoryLimitHolds() async throws {
        let s = E2EScenario("mem-limit")
        defer { s.cleanup() }
        let limitMB = 150
        let pipelines = 10
        let perPipeline = 200_000  // lines of 100 bytes: 20 MB each
        let receiver = try await HTTPTestReceiver(script: { _, _ in .hang })
        for i in 0..<pipelines {
            _ = s.dir("logs/\(i)")
            s.writePipeline("p\(i)", """
                inputs:
                  - Type: input_file
                    FilePaths: [\(quoted(s.root + "/logs/\(i)/*.log"))]
                flushers:
                  - Type: flusher_http
                    RemoteURL: \(receiver.url)/ingest
                    Convert: {Protocol: jsonline}
                    Timeout: 2s
                    Retry: {InitialDelay: 100ms, MaxDelay: 1s}
                """)
        }
        let p = try s.startAndWait(pipelines: pipelines, environment: ["mem_usage_limit": "\(limitMB)"])
        let lines = NumberedLines(prefix: "m-", digits: 8, lineLength: 100)
        var peak = 0
        for i in 0..<pipelines {
            lines.write(to: s.root + "/logs/\(i)/a.log", (i * perPipeline)..<((i + 1) * perPipeline), append: false)
            peak = max(peak, residentSetKiB(pid: p.pid))
        }
        // The backend stays silent for 5 s while everything waits.
        let t0 = monotonicSeconds()
        while monotonicSeconds() - t0 < 5 {
            peak = max(peak, residentSetKiB(pid: p.pid))
            usleep(50_000)
        }
        note("mem_usage_limit=\(limitMB) MB, \(pipelines) pipelines, backend silent: peak RSS \(peak / 1024) MiB")
        #expect(peak < limitMB * 1024, "peak RSS \(peak) KiB with mem_usage_limit \(limitMB) MB")
        // The backend answers: every line arrives.
        receiver.setScript { _, _ in .ok }
        let total = pipelines * perPipeline
        var tally = NetworkDeliveryTests.Tally(prefix: "m-", total: total)
        var seen = 0
        let done = waitUntil(timeout: 120, pollMs: 200) {
            seen = tally.update(from: receiver)
            peak = max(peak, residentSetKiB(pid: p.pid))
            return seen == total
        }
        note("mem_usage_limit: \(seen) of \(total) lines delivered after the backend answered; peak RSS \(peak / 1024) MiB")
        #expect(done, "every line arrived: \(seen) of \(total)")
        #expect(p.stop() == 0)
        await receiver.stop()
    }

    /// Runs a regex-parsing pipeline on 300 MB (a million lines, four times: more than it can
    /// read in the 5 s window without a limit) and returns the CPU cores it used over 4 s.
    func coresUsed(limit: String?) throws -> Double {
        let s = E2EScenario("cpu-limit")
        defer { s.cleanup() }
        _ = s.dir("logs")
        s.writePipeline("p", """
            inputs:
              - Type: input_file
                FilePaths: [\(quoted(s.root + "/logs/*.log"))]
            processors:
              - Type: processor_parse_regex_native
                SourceKey: content
                Regex: '(\\S+) \\S+ \\S+ \\[([^\\]]+)\\] "(\\S+) (\\S+) \\S+" (\\d+) (\\d+)'
                Keys: [ip, time, method, url, status, size]
            flushers:
              - Type: flusher_blackhole
            """)
        let p = try s.startAndWait(environment: limit.map { ["cpu_usage_limit": $0] } ?? [:])
        var text = ""
        for i in 0..<1_000_000 { text += "10.0.0.\(i % 250) - - [06/Dec/2026:05:00:00 +0000] \"GET /index/\(i) HTTP/1.1\" 200 \(i % 5000)\n" }
        for _ in 0..<4 { appendFile(s.root + "/logs/a.log", text) }
        sleepMs(1000)
        let c0 = processCPUSeconds(p.pid), t0 = monotonicSeconds()
        sleepMs(4000)
        let cores = (processCPUSeconds(p.pid) - c0) / (monotonicSeconds() - t0)
        let read = statValue(readStats(s.statsFile), "events_in") ?? 0
        #expect(read < 4_000_000, "the input is still being read at the end of the window (read \(read))")
        #expect(p.stop() == 0)
        return cores
    }

    @Test("cpu_usage_limit: reading is throttled so the process stays near the limit")
    func cpuLimitHolds() throws {
        let free = try coresUsed(limit: nil)
        let limited = try coresUsed(limit: "0.4")
        note(String(format: "cpu_usage_limit: %.2f cores without a limit, %.2f with cpu_usage_limit=0.4", free, limited))
        #expect(free > 0.6, "the load is above the limit: \(free) cores without one")
        #expect(limited < 0.4 * 1.2, "\(limited) cores with cpu_usage_limit=0.4")
        #expect(limited > 0.4 * 0.5, "reading goes on under the limit: \(limited) cores")
    }

    @Test("max_bytes_per_sec: 10 MB at 2 MB/s takes about 5 s")
    func bytesPerSecondHolds() throws {
        let s = E2EScenario("rate-limit")
        defer { s.cleanup() }
        _ = s.dir("logs")
        s.writePipeline("p", Pipelines.fileToFile(paths: [s.root + "/logs/*.log"], output: s.root + "/out.jsonl"))
        let p = try s.startAndWait(environment: ["max_bytes_per_sec": "2000000"])
        let lines = NumberedLines(prefix: "r-", digits: 8, lineLength: 100)
        lines.write(to: s.root + "/logs/a.log", 0..<100_000, append: false)
        let t0 = monotonicSeconds()
        #expect(waitForLines(s.root + "/out.jsonl", 100_000, timeout: 30))
        let took = monotonicSeconds() - t0
        note(String(format: "max_bytes_per_sec=2000000: 10 MB read in %.1f s (%.2f MB/s)", took, 10 / took))
        // The bucket starts with one second of budget: 10 MB takes about 4 s at 2 MB/s.
        #expect(took > 3.5 && took < 6.5, "10 MB took \(took) s at 2 MB/s")
        #expect(p.stop() == 0)
    }
}
