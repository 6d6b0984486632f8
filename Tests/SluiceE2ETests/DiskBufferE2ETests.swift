import Foundation
import Glibc
import SluiceTesting
import Synchronization
import Testing

/// The disk buffer through the real binary: with the backend down, what is read is acknowledged
/// to its source once fsynced in the buffer (so a deleted file is let go), survives `kill -9`, and
/// arrives once when the backend is back.
extension E2E {
    @Suite("disk buffer") struct DiskBufferE2E {}
}

extension E2E.DiskBufferE2E {
    /// `input_file` on `logs` → `flusher_http` to `port` with a 64 MiB disk buffer.
    static func bufferedPipeline(logs: String, port: Int) -> String {
        """
        inputs:
          - Type: input_file
            FilePaths: [\(quoted(logs + "/*.log"))]
        flushers:
          - Type: flusher_http
            RemoteURL: http://127.0.0.1:\(port)/ingest
            Convert: {Protocol: jsonline}
            Timeout: 1s
            Retry: {InitialDelay: 50ms, MaxDelay: 500ms}
            Buffer: {Type: disk, MaxBytes: 67108864}
        """
    }

    /// A gauge of the buffered flusher of `pipeline`, from the stats file.
    static func bufferGauge(_ s: E2EScenario, pipeline: String, _ name: String) -> Int {
        let key = "\(name){pipeline=\"\(pipeline)\",component_kind=\"flusher\",component_type=\"flusher_http\",component_id=\"flushers[0]\"}"
        return statValue(readStats(s.statsFile)["gauges"] as? [String: Any] ?? [:], key) ?? 0
    }

    /// Waits until every numbered line arrived at `receiver` (then a little longer, for duplicates).
    static func waitForAll(_ receiver: HTTPTestReceiver, prefix: String, total: Int, timeout: Double) -> (done: Bool, seen: Int, duplicated: Int) {
        var tally = NetworkDeliveryTests.Tally(prefix: prefix, total: total)
        var seen = 0
        let done = waitUntil(timeout: timeout, pollMs: 200) {
            seen = tally.update(from: receiver)
            return seen == total
        }
        sleepMs(settleMs)
        tally.update(from: receiver)
        return (done, seen, tally.duplicated)
    }

    @Test("flusher_http with Buffer {Type: disk}: backend down, the source released, kill -9, backend back: every line once")
    func outageKillAndReplay() async throws {
        let s = E2EScenario("disk-buffer")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let port = TestServer.freePort()
        s.writePipeline("buf", Self.bufferedPipeline(logs: logs, port: port))
        let p = try s.startAndWait()
        let total = 60_000
        let lines = NumberedLines(prefix: "b-", digits: 8, lineLength: 100)
        lines.write(to: logs + "/app.log", 0..<total, append: false)
        // Nothing listens on the port: every batch goes to the buffer and the file is acknowledged.
        var inBuffer = 0
        #expect(waitUntil(timeout: 30) {
            inBuffer = Self.bufferGauge(s, pipeline: "buf", "component_buffer_events")
            return inBuffer == total
        }, "all \(total) lines in the buffer (have \(inBuffer))")
        let explain = try SluiceProcess(arguments: ["explain", "--json", "--config-dir", s.configDir, "--data-dir", s.dataDir, "--wait", "0.1",
                                                    "--docker-host", "unix://" + s.root + "/no.sock", "--cri-socket", s.root + "/no-cri.sock",
                                                    "--pod-log-dir", s.root + "/pods"], workDir: s.root)
        #expect(explain.wait(timeout: 30) == 0)
        let explained = String(decoding: readFileBytes(explain.stdoutPath), as: UTF8.self)
        #expect(explained.contains("read to the end"), "the source is acknowledged while the backend is down: \(explained.suffix(800))")
        // The file is deleted (a Job's pod going away): it is let go although nothing was sent.
        unlink(logs + "/app.log")
        #expect(waitUntil(timeout: 30) {
            statValue(readStats(s.statsFile)["gauges"] as? [String: Any] ?? [:], "files_open{pipeline=\"buf\"}") == 0
        }, "the deleted file was released during the outage")
        #expect(p.kill9() != nil)

        // Restart with the backend up: the buffer is replayed, every line arrives once.
        let receiver = try await HTTPTestReceiver(port: port)
        let p2 = try s.startAndWait()
        let r = Self.waitForAll(receiver, prefix: "b-", total: total, timeout: 60)
        #expect(r.done, "every line arrived after the restart: \(r.seen) of \(total)")
        #expect(r.duplicated == 0, "no line twice: \(r.duplicated)")
        #expect(waitUntil(timeout: 10) { Self.bufferGauge(s, pipeline: "buf", "component_buffer_events") == 0 },
                "the buffer is empty once the backend has everything")
        #expect(p2.stop() == 0)
        await receiver.stop()
    }

    @Test("Buffer on a full file system (a 2 MiB tmpfs): block holds the reader back with a clear error, kill -9 loses nothing, every line arrives once",
          .enabled(if: getuid() == 0, "mounting a tmpfs needs root"))
    func diskFull() async throws {
        let s = E2EScenario("disk-buffer-full")
        defer { s.cleanup() }
        let fs = s.dir("fs")
        #expect(shell("mount -t tmpfs -o size=2m sluice-e2e '\(fs)'") == 0)
        defer { _ = shell("umount -l '\(fs)'") }
        let logs = s.dir("logs")
        let port = TestServer.freePort()
        s.writePipeline("full", Self.bufferedPipeline(logs: logs, port: port))
        let env = ["buffer_file_path": fs]
        let p = try s.start(environment: env)
        #expect(s.waitForLog("Input started.", timeout: 15))
        let total = 100_000
        let lines = NumberedLines(prefix: "f-", digits: 8, lineLength: 100)
        lines.write(to: logs + "/app.log", 0..<total, append: false)
        func gauge(_ name: String) -> Int { Self.bufferGauge(s, pipeline: "full", name) }
        #expect(waitUntil(timeout: 30) { gauge("component_buffer_write_errors") > 0 }, "the full disk is counted")
        #expect(s.waitForLog("Disk buffer cannot write", timeout: 10), "and logged: \(p.stderr.suffix(1500))")
        sleepMs(2000)
        let inBuffer = gauge("component_buffer_events")
        let rss = residentSetKiB(pid: p.pid)
        #expect(inBuffer > 0 && inBuffer < total, "the buffer holds what fits (\(inBuffer) of \(total) lines)")
        #expect(rss < 200 * 1024, "the rest waits in its source, not in memory: RSS \(rss) KiB")
        note("disk full: \(inBuffer) of \(total) lines in a 2 MiB buffer file system; RSS \(rss) KiB; write errors \(gauge("component_buffer_write_errors"))")
        #expect(p.kill9() != nil)

        // Back up with the destination: the buffer drains, the disk frees, the rest is read.
        let receiver = try await HTTPTestReceiver(port: port)
        let p2 = try s.start(environment: env)
        let r = Self.waitForAll(receiver, prefix: "f-", total: total, timeout: 90)
        #expect(r.done, "every line arrived: \(r.seen) of \(total)")
        #expect(r.duplicated == 0, "no line twice: \(r.duplicated)")
        #expect(p2.stop() == 0)
        await receiver.stop()
    }

    /// What a receiver accepted (answered 200), line by line; while `down` it answers 503 and
    /// counts nothing.
    final class Acceptor: Sendable {
        let state: Mutex<(counts: [UInt8], down: Bool, requests: Int)>
        let prefix: String
        init(prefix: String, total: Int) {
            self.prefix = prefix
            state = Mutex(([UInt8](repeating: 0, count: total), false, 0))
        }
        func answer(_ r: HTTPTestReceiver.Request) -> HTTPTestReceiver.Response {
            state.withLock { s in
                if s.down { return HTTPTestReceiver.Response(status: 503) }
                NetworkDeliveryTests.numbers(in: r.body, prefix: prefix, digits: 8, into: &s.counts)
                s.requests += 1
                return .ok
            }
        }
        var down: Bool {
            get { state.withLock { $0.down } }
            set { state.withLock { $0.down = newValue } }
        }
        /// Lines accepted at least once, and lines accepted more than once.
        var tally: (distinct: Int, duplicated: Int) {
            state.withLock { s in (s.counts.reduce(0) { $0 + ($1 > 0 ? 1 : 0) }, s.counts.reduce(0) { $0 + ($1 > 1 ? Int($1) - 1 : 0) }) }
        }
    }

    @Test("kill -9 ×20 under 1 MB/s with the buffer on, the destination up, then down (503), then up: every line, duplicates only from unacknowledged requests")
    func killNineTwentyTimes() async throws {
        let s = E2EScenario("disk-buffer-k9x20")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let total = 400_000
        let acceptor = Acceptor(prefix: "k-", total: total)
        let receiver = try await HTTPTestReceiver(keepBodies: false) { r, _ in acceptor.answer(r) }
        s.writePipeline("k9", """
            inputs:
              - Type: input_file
                FilePaths: [\(quoted(logs + "/*.log"))]
            flushers:
              - Type: flusher_http
                RemoteURL: http://127.0.0.1:\(receiver.port)/ingest
                Convert: {Protocol: jsonline}
                Concurrency: 2
                Timeout: 5s
                Retry: {InitialDelay: 50ms, MaxDelay: 500ms}
                Buffer: {Type: disk, MaxBytes: 268435456}
            """)
        // The writer: 1 MB/s of numbered lines until all are written.
        let lines = NumberedLines(prefix: "k-", digits: 8, lineLength: 100)
        let writer = Thread {
            let t0 = monotonicSeconds()
            for t in 0..<(total / 1000) {
                lines.write(to: logs + "/app.log", (t * 1000)..<((t + 1) * 1000), append: true)
                let next = t0 + Double(t + 1) * 0.1
                let now = monotonicSeconds()
                if next > now { usleep(useconds_t((next - now) * 1e6)) }
            }
        }
        writer.start()
        var kills: [String] = []
        for round in 0..<20 {
            acceptor.down = (7..<14).contains(round)
            let p = try s.start()
            sleepMs(Int.random(in: 500...1500))
            #expect(p.kill9() != nil)
            kills.append("\(acceptor.down ? "down" : "up"):\(acceptor.tally.distinct)")
        }
        acceptor.down = false
        let p = try s.start()
        var got = (distinct: 0, duplicated: 0)
        let done = waitUntil(timeout: 120, pollMs: 200) {
            got = acceptor.tally
            return got.distinct == total
        }
        sleepMs(settleMs)
        got = acceptor.tally
        let emptied = waitUntil(timeout: 10) { Self.bufferGauge(s, pipeline: "k9", "component_buffer_events") == 0 }
        #expect(p.stop() == 0)
        await receiver.stop()
        note("buffer kill -9 ×20: \(got.distinct) of \(total) lines accepted, \(got.duplicated) duplicate arrivals, \(acceptor.state.withLock { $0.requests }) requests; lines accepted at each kill (destination state): \(kills.joined(separator: " "))")
        #expect(done, "every line arrived: \(got.distinct) of \(total)")
        #expect(emptied, "the buffer is empty once the destination has everything")
        // A kill re-sends only frames the destination had not acknowledged: at most the requests
        // in flight (Concurrency 2, up to 4 MiB of input each, one 512 KiB read batch over) and
        // those acknowledged within the last group commit (50 ms at 1 MB/s: 500 lines).
        let perKill = 2 * ((4 << 20) + (512 << 10)) / 100 + 500
        #expect(got.duplicated <= 20 * perKill, "duplicates \(got.duplicated)")
    }
}

