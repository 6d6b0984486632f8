import Glibc
import Foundation
import SluiceTesting
import Testing

/// Many files: bursts of new files in new directories, and 10,000 files in one directory.
extension E2E {
    // MARK: 5. Bursts of new files

    @Test("5. 200 files created within ~100 ms in a new subdirectory: all lines; new-file latency well under 1 s")
    func burstOfFiles() throws {
        let s = E2EScenario("burst")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let out = s.path("out/out.jsonl")
        s.writePipeline("burst", Pipelines.fileToFile(paths: [logs + "/**/*.log"], output: out, maxDirSearchDepth: 3))
        try s.startAndWait()

        let t0 = monotonicSeconds()
        let burst = logs + "/burst"
        mkdir(burst, 0o755)
        var expected: [String] = []
        for f in 0..<200 {
            let text = (0..<5).map { "burst-\(f)-\($0)\n" }.joined()
            writeFile(burst + "/f\(f).log", text)
            expected += (0..<5).map { "burst-\(f)-\($0)" }
        }
        let createMs = (monotonicSeconds() - t0) * 1000
        let arrived = waitForLines(out, expected.count)
        let allMs = (monotonicSeconds() - t0) * 1000
        note(String(format: "burst: 200 files (1000 lines) created in %.0f ms; all lines out %.0f ms after the first file", createMs, allMs))
        #expect(arrived)

        // Latency of single files created later: in the burst directory, and in a new nested one.
        var latencies: [Double] = []
        for k in 0..<6 {
            let dir: String
            if k < 3 { dir = burst } else { dir = burst + "/deep\(k)/er"; makeDirectories(dir) }
            let before = countLines(out)
            let t = monotonicSeconds()
            writeFile(dir + "/late\(k).log", "late-\(k)\n")
            expected.append("late-\(k)")
            let ok = waitUntil(timeout: 5, pollMs: 2) { countLines(out) > before }
            latencies.append(ok ? monotonicSeconds() - t : .infinity)
            sleepMs(100)
        }
        // Deeper than MaxDirSearchDepth (4 directories below logs/): not collected.
        makeDirectories(burst + "/deep9/er/too")
        writeFile(burst + "/deep9/er/too/deep.log", "too-deep\n")
        // The burst directory removed and made again: its new files are found.
        #expect(shell("rm -rf '\(burst)'") == 0)
        sleepMs(100)
        let tAgain = monotonicSeconds()
        mkdir(burst, 0o755)
        for f in 0..<20 {
            writeFile(burst + "/again\(f).log", "again-\(f)\n")
            expected.append("again-\(f)")
        }
        let again = waitForLines(out, expected.count, timeout: 10, "files of the re-created directory")
        let againMs = (monotonicSeconds() - tAgain) * 1000
        note(String(format: "burst: directory removed and made again: its 20 new files out after %.0f ms", againMs))
        sleepMs(settleMs)
        #expect(again)
        #expect(againMs < 1000, "files of a re-created directory are found by inotify, not by the 5 s rescan")
        let r = deliveryReport(expected: expected, delivered: outputContents(out))
        note("burst: latency from file creation to line in output, ms: "
             + latencies.map { String(format: "%.1f", $0 * 1000) }.joined(separator: ", ")
             + " (first 3 in the burst dir, last 3 each in a new nested dir)")
        note("burst: \(r)")
        #expect(r.ok, "\(r)")
        #expect(latencies.allSatisfy { $0 < 0.5 }, "latencies \(latencies)")
        #expect(s.process?.stop() == 0)
    }

    // MARK: 6. 10,000 files

    @Test("6. 10,000 small files in one directory: all lines arrive; descriptors stay bounded")
    func tenThousandFiles() throws {
        let s = E2EScenario("many")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let out = s.path("out/out.jsonl")
        s.writePipeline("many", Pipelines.fileToFile(paths: [logs + "/*.log"], output: out))
        let p = try s.startAndWait()
        let fdsIdle = openDescriptorCount(pid: p.pid)

        let files = 10_000
        let perFile = 3
        let t0 = monotonicSeconds()
        var expected: [String] = []
        expected.reserveCapacity(files * perFile)
        for f in 0..<files {
            var text = ""
            for l in 0..<perFile {
                text += "many-\(f)-\(l)\n"
                expected.append("many-\(f)-\(l)")
            }
            writeFile(logs + "/f\(f).log", text)
        }
        let createS = monotonicSeconds() - t0
        var peakFDs = 0
        let arrived = waitUntil(timeout: 150) {
            peakFDs = max(peakFDs, openDescriptorCount(pid: p.pid))
            return countLines(out) >= expected.count
        }
        let ingestS = monotonicSeconds() - t0
        sleepMs(settleMs)
        let fds = openDescriptorCount(pid: p.pid)
        let rss = residentSetKiB(pid: p.pid)
        let r = deliveryReport(expected: expected, delivered: outputContents(out))
        let st = readStats(s.statsFile)
        note(String(format: "10k files: created in %.1f s, all %d lines out after %.1f s", createS, expected.count, ingestS))
        note("10k files: open fds idle before \(fdsIdle), peak seen \(peakFDs), after ingestion \(fds); VmRSS \(rss) KiB; files_opened \(statValue(st, "files_opened") ?? -1), files_closed \(statValue(st, "files_closed") ?? -1)")
        note("10k files: \(r)")
        #expect(arrived)
        #expect(r.ok, "\(r)")
        #expect(fds > 0 && fds < 1100, "open descriptors after ingestion: \(fds)")
        #expect(statValue(st, "events_in") == expected.count && statValue(st, "events_out") == expected.count,
                "stats events_in \(statValue(st, "events_in") ?? -1), events_out \(statValue(st, "events_out") ?? -1)")
        #expect(p.isRunning)
        #expect(s.process?.stop() == 0)
    }
}
