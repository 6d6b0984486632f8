#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SluiceTesting
import Testing

/// Stopping and starting: checkpoints, kill -9, graceful shutdown.
extension E2E {
    // MARK: 10. Restart from checkpoints

    @Test("10. restart from checkpoints: N lines, SIGTERM, M more while stopped, restart → exactly N+M")
    func restartFromCheckpoints() throws {
        let s = E2EScenario("restart")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let out = s.path("out/out.jsonl")
        s.writePipeline("cp", Pipelines.fileToFile(paths: [logs + "/*.log"], output: out))
        let p1 = try s.startAndWait()
        let app = logs + "/app.log"
        let lines = NumberedLines(prefix: "cp-", digits: 7, lineLength: 60)
        let n = 5000, m = 35_000   // M lines are 2 MiB: more than TailSizeKB, so only the checkpoint can be right
        lines.write(to: app, 0..<n, append: false)
        try #require(waitForLines(out, n))
        let t0 = monotonicSeconds()
        let rc1 = p1.stop()
        let stopS = monotonicSeconds() - t0
        #expect(rc1 == 0)

        let cpFile = s.dataDir + "/checkpoints/cp.json"
        let cp = (try? JSONSerialization.jsonObject(with: Data(readFileBytes(cpFile)))) as? [String: Any]
        let entries = (cp?["files"] as? [[String: Any]]) ?? []
        let offset = entries.first { ($0["path"] as? String) == app }.flatMap { ($0["offset"] as? NSNumber)?.intValue } ?? -1
        note("restart: stopped in \(String(format: "%.2f", stopS)) s; checkpoint of app.log at \(offset) (file size \(fileSize(app)))")
        #expect(offset == n * lines.lineLength, "checkpoint offset after a graceful stop")

        lines.write(to: app, n..<(n + m), append: true)
        let small = NumberedLines(prefix: "cp-new-", digits: 4, lineLength: 40)
        small.write(to: logs + "/new.log", 0..<100, append: false)   // appeared while stopped, no checkpoint

        let p2 = try s.startAndWait()
        let expected = lines.contents(0..<(n + m)) + small.contents(0..<100)
        let arrived = waitForLines(out, expected.count)
        sleepMs(settleMs)
        let r = deliveryReport(expected: expected, delivered: outputContents(out))
        note("restart: N=\(n), M=\(m), +100 in a file created while stopped: \(r)")
        #expect(arrived)
        #expect(r.ok, "\(r)")
        #expect(p2.stop() == 0)
    }

    // MARK: 11. kill -9 mid-ingest

    @Test("11. kill -9 in the middle of a large ingest, restart: every line arrives, duplicates only in one re-read region")
    func killNineMidIngest() throws {
        let debug = sluiceBinaryIsDebug
        let sizeMiB = debug ? 64 : 200
        let lineLength = 100
        let total = (sizeMiB << 20) / lineLength
        let lines = NumberedLines(prefix: "k9-", digits: 9, lineLength: lineLength)
        note("kill -9: binary \(SluiceProcess.binaryPath); \(sizeMiB) MiB, \(total) lines\(debug ? " (scaled down from 200 MiB for the debug binary)" : "")")

        let s = E2EScenario("kill9")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let out = s.path("out/out.jsonl")
        s.writePipeline("k9", Pipelines.fileToFile(paths: [logs + "/*.log"], output: out))
        let p1 = try s.startAndWait()

        let t0 = monotonicSeconds()
        let big = logs + "/big.log"
        lines.write(to: big, 0..<total, append: false, chunkBytes: 4 << 20)
        let writeS = monotonicSeconds() - t0
        try #require(waitForLines(out, 1, timeout: 20))
        // Every output line has the same length (fixed-width input, fixed host name and 10-digit time).
        let firstLine = readFileRegion(out, offset: 0, length: 4096)
        let outLine = (firstLine.firstIndex(of: 0x0A) ?? 0) + 1
        let fraction = Double.random(in: 0.3...0.6)
        let killAt = Int(Double(total * outLine) * fraction)
        let reached = waitUntil(timeout: 90, pollMs: 5) { fileSize(out) >= killAt }
        try #require(reached, "output reached \(Int(fraction * 100))% (have \(fileSize(out)) of \(total * outLine) bytes)")
        #expect(p1.kill9() == 128 + SIGKILL)
        let killS = monotonicSeconds() - t0
        let cut = fileSize(out)
        note(String(format: "kill -9: input written in %.2f s; killed at %.2f s with %.1f%% of the output written (target %.0f%%)",
                    writeS, killS, Double(cut) / Double(total * outLine) * 100, fraction * 100))

        let p2 = try s.startAndWait()
        let lastContent = lines.content(total - 1)
        let done = waitUntil(timeout: 120, pollMs: 50) {
            let size = fileSize(out)
            guard size > cut else { return false }
            let tail = readFileRegion(out, offset: max(cut, size - outLine - 1))
            return String(decoding: tail, as: UTF8.self).contains(lastContent)
        }
        let allS = monotonicSeconds() - t0
        sleepMs(settleMs)
        #expect(p2.stop() == 0)

        let run1 = scanNumberedOutput(out, prefix: "k9-", digits: 9, offset: 0, end: cut)
        let run2 = scanNumberedOutput(out, prefix: "k9-", digits: 9, offset: cut)
        var counts = [UInt8](repeating: 0, count: total)
        for v in run1.numbers + run2.numbers where v < total { counts[v] = counts[v] &+ 1 }
        let missing = counts.indices.filter { counts[$0] == 0 }
        let duplicated = counts.indices.filter { counts[$0] > 1 }
        let delivered = run1.numbers.count + run2.numbers.count
        let k = run1.numbers.count
        let restartAt = run2.numbers.first ?? -1
        note("kill -9: lines expected \(total), delivered \(delivered), duplicated \(duplicated.count), missing \(missing.count); "
             + "before the kill \(k) lines (0..<\(k)), after the restart from line \(restartAt); all done after \(String(format: "%.1f", allS)) s")
        note("kill -9: torn line at the crash point: \(run1.unterminatedTail ? "yes" : "no"); unparseable lines \(run1.bad + run2.bad) \(run1.badSamples + run2.badSamples)")
        #expect(done, "the last line arrived after the restart")
        #expect(missing.isEmpty, "missing e.g. \(missing.prefix(5))")
        #expect(run1.numbers == Array(0..<k), "before the kill: a gapless prefix, in order")
        #expect(restartAt >= 0 && restartAt <= k, "the restart resumes at or before where the first run stopped")
        if restartAt >= 0 {
            #expect(run2.numbers == Array(restartAt..<total), "after the restart: one contiguous run to the end")
            // Every duplicate is a line of the re-read region [restartAt, k): once before the kill, once after.
            #expect(duplicated.allSatisfy { $0 >= restartAt && $0 < k && counts[$0] == 2 })
            #expect(duplicated.count == max(0, k - restartAt))
        }
        #expect(run1.bad + run2.bad == 0, "every output line is one JSON object of the expected shape")
    }

    @Test("11b. flusher_file after a crash mid-write: a torn last line does not swallow the next line")
    func tornOutputTail() throws {
        let s = E2EScenario("torn")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let outDir = s.dir("out")
        let out = outDir + "/out.jsonl"
        // What a kill -9 during write(2) leaves: a complete line, then part of one.
        writeFile(out, "{\"content\":\"complete\",\"__time__\":1}\n{\"content\":\"torn-by-the-cra")
        s.writePipeline("torn", Pipelines.fileToFile(paths: [logs + "/*.log"], output: out))
        try s.startAndWait()
        writeFile(logs + "/a.log", "after-crash-1\nafter-crash-2\n")
        let arrived = waitUntil(timeout: 10) { String(decoding: readFileBytes(out), as: UTF8.self).contains("after-crash-2") }
        sleepMs(300)
        let objects = readJSONLines(out)
        let contents = objects.compactMap { $0["content"] as? String }
        note("torn tail: output lines \(objects.count), parsed contents \(contents), unparseable \(objects.filter { $0["__unparseable__"] != nil }.map { $0["__unparseable__"]! })")
        #expect(arrived)
        #expect(contents.contains("after-crash-1") && contents.contains("after-crash-2"),
                "the first line written after the restart is a JSON object of its own")
        #expect(s.process?.stop() == 0)
    }

    // MARK: 13. Graceful shutdown

    @Test("13a. SIGTERM while data is flowing: exit 0 within seconds; a restart completes exactly once")
    func gracefulShutdownWhileFlowing() throws {
        let s = E2EScenario("shutdown")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let out = s.path("out/out.jsonl")
        s.writePipeline("gs", Pipelines.fileToFile(paths: [logs + "/*.log"], output: out))
        let p1 = try s.startAndWait()
        let lines = NumberedLines(prefix: "gs-", digits: 8, lineLength: 100)
        let total = (sluiceBinaryIsDebug ? 24 << 20 : 100 << 20) / lines.lineLength
        lines.write(to: logs + "/big.log", 0..<total, append: false, chunkBytes: 4 << 20)
        try #require(waitUntil(timeout: 30, pollMs: 5) { fileSize(out) > 4 << 20 }, "data is flowing")
        let before = fileSize(out)
        let t0 = monotonicSeconds()
        let rc = p1.stop(timeout: 40)
        let stopS = monotonicSeconds() - t0
        let drained = fileSize(out) - before
        note(String(format: "graceful stop while flowing: exit %@ after %.2f s; %d output bytes written during the stop; %d of %d lines out at exit",
                    rc.map { "\($0)" } ?? "none", stopS, drained, countLines(out), total))
        #expect(rc == 0)
        #expect(stopS < 5, "graceful stop took \(stopS) s")

        let p2 = try s.startAndWait()
        let arrived = waitForLines(out, total, timeout: 90)
        sleepMs(settleMs)
        #expect(p2.stop() == 0)
        let scan = scanNumberedOutput(out, prefix: "gs-", digits: 8)
        let ok = scan.numbers == Array(0..<total)
        note("graceful stop while flowing: after restart \(scan.numbers.count) lines for \(total) expected, in order and exactly once: \(ok)")
        #expect(arrived)
        #expect(ok, "exactly once, in order, across a graceful stop")
    }

    @Test("13b. a flusher that cannot write (directory under a regular file): keeps running, logs, exits within --shutdown-timeout 2")
    func shutdownWithFailingFlusher() throws {
        let s = E2EScenario("stuck")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let blocker = s.path("blocker")
        writeFile(blocker, "a regular file\n")
        let out = blocker + "/sub/out.jsonl"
        s.writePipeline("stuck", Pipelines.fileToFile(paths: [logs + "/*.log"], output: out))
        let p = try s.startAndWait(shutdownTimeout: 2)
        writeFile(logs + "/a.log", (0..<1000).map { "stuck-\($0)\n" }.joined())
        let logged = waitUntil(timeout: 10) { s.stderr.contains("Flush failed") }
        sleepMs(1000)
        let errLines = s.stderr.split(separator: "\n").filter { $0.contains("error") || $0.contains("warning") }
        note("failing flusher: log lines:\n" + errLines.prefix(4).map { "    " + $0 }.joined(separator: "\n"))
        #expect(logged, "the write failure is logged")
        #expect(p.isRunning, "sluice keeps running")
        let t0 = monotonicSeconds()
        let rc = p.stop(timeout: 20)
        let stopS = monotonicSeconds() - t0
        note(String(format: "failing flusher: SIGTERM → exit %@ after %.2f s (--shutdown-timeout 2)", rc.map { "\($0)" } ?? "none", stopS))
        #expect(rc == 0)
        #expect(stopS < 3.5, "exit within the shutdown timeout (+ margin): \(stopS) s")
    }
}
