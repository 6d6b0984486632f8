import Foundation
import Glibc
import SluiceTesting
import Testing

/// The network flushers through the real binary: a backend outage under steady input, and
/// `kill -9` while delivering to a real ClickHouse and to a real `_bulk` server. What counts is
/// in the backend afterwards: every line, duplicates only from requests not yet acknowledged.
@Suite("network delivery end to end", .serialized)
struct NetworkDeliveryTests {
    /// Numbers of the `"content":"<prefix><digits>` lines in `text` (jsonline bodies, `_bulk` bodies).
    static func numbers(in body: [UInt8], prefix: String, digits: Int, into counts: inout [UInt8]) {
        let needle = Array("\"content\":\"\(prefix)".utf8)
        body.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress else { return }
            var i = 0
            while i + needle.count + digits <= b.count {
                guard let hit = memchr(base + i, Int32(needle[0]), b.count - i) else { break }
                let start = UnsafePointer<UInt8>(hit.assumingMemoryBound(to: UInt8.self)) - base
                guard start + needle.count + digits <= b.count else { break }
                if needle.withUnsafeBufferPointer({ memcmp(base + start, $0.baseAddress!, needle.count) }) != 0 {
                    i = start + 1
                    continue
                }
                let at = start + needle.count
                guard at + digits <= b.count else { break }
                var v = 0
                for k in 0..<digits { v = v * 10 + Int(base[at + k] &- 0x30) }
                if v < counts.count { counts[v] = counts[v] &+ 1 }
                i = at + digits
            }
        }
    }

    /// How often each of `total` numbered lines arrived at a receiver, read from the requests that
    /// came since the last `update`.
    struct Tally {
        let prefix: String
        var counts: [UInt8]
        var scanned = 0
        init(prefix: String, total: Int) {
            self.prefix = prefix
            counts = [UInt8](repeating: 0, count: total)
        }
        /// Scans the new requests; returns how many distinct lines have arrived.
        @discardableResult
        mutating func update(from receiver: HTTPTestReceiver) -> Int {
            let reqs = receiver.requests
            for r in reqs[scanned...] { NetworkDeliveryTests.numbers(in: r.body, prefix: prefix, digits: 8, into: &counts) }
            scanned = reqs.count
            return counts.reduce(0) { $0 + ($1 > 0 ? 1 : 0) }
        }
        var duplicated: Int { counts.filter { $0 > 1 }.count }
        /// Every arrival, duplicates included.
        var arrivals: Int { counts.reduce(0) { $0 + Int($1) } }
    }

    /// One outage run: the destination, and whether the flusher has a disk buffer.
    struct Outage: Sendable, CustomTestStringConvertible {
        enum Backend: String, Sendable { case http, clickhouse }
        var backend: Backend
        var buffered: Bool
        var testDescription: String { "\(backend.rawValue)\(buffered ? " with the disk buffer" : "")" }
    }

    /// The destination down for `SLUICE_E2E_OUTAGE_S` seconds (default 30; the closing-note figures
    /// are for 600) while 1 MB/s of numbered lines is written; then it comes back. Every line
    /// must arrive, RSS stays bounded, and with the buffer the source files (rotated and deleted
    /// during the outage, as a Job's pods are) are let go while the destination is still down.
    @Test("a backend down for a while under 1 MB/s of input, then back: every line, RSS within mem_usage_limit; with the buffer the deleted sources are released during the outage",
          .timeLimit(.minutes(30)),
          arguments: [Outage(backend: .http, buffered: false), Outage(backend: .http, buffered: true),
                      Outage(backend: .clickhouse, buffered: false), Outage(backend: .clickhouse, buffered: true)])
    func outageUnderSteadyInput(_ o: Outage) async throws {
        let outageS = ProcessInfo.processInfo.environment["SLUICE_E2E_OUTAGE_S"].flatMap { Double($0) } ?? 30
        let s = E2EScenario("outage-\(o.backend.rawValue)\(o.buffered ? "-buffered" : "")")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let buffer = o.buffered ? "\n    Buffer: {Type: disk, MaxBytes: 2147483648}" : ""
        var clickhouse: TestServer?
        defer { clickhouse?.stop() }
        let port = TestServer.freePort()
        let flusher: String
        switch o.backend {
        case .http:
            flusher = """
                  - Type: flusher_http
                    RemoteURL: http://127.0.0.1:\(port)/ingest
                    Convert: {Protocol: jsonline}
                    Timeout: 5s
                    Retry: {InitialDelay: 100ms, MaxDelay: 2s}
                """
        case .clickhouse:
            let ch = try #require(try TestServer.clickhouse(), "clickhouse-server is installed by scripts/install-deps.sh")
            clickhouse = ch
            _ = ch.clickhouseQuery("CREATE TABLE default.outage (content String) ENGINE = MergeTree ORDER BY tuple()")
            flusher = """
                  - Type: flusher_clickhouse
                    Addresses: [127.0.0.1:\(ch.port)]
                    Table: outage
                    Format: JSONEachRow
                """
        }
        s.writePipeline("out", """
            inputs:
              - Type: input_file
                FilePaths: [\(logs)/*.log]
            flushers:
            \(flusher)\(buffer)
            """)
        // The catch-up reads the backlog as fast as the destination takes it: mem_usage_limit is
        // what bounds the requests held meanwhile (the default, 2048 MB, allows much more).
        let memLimitMB = 256
        let p = try s.start(environment: ["mem_usage_limit": String(memLimitMB)])
        #expect(s.waitForLog("Input started.", timeout: 15))
        clickhouse?.kill()
        let lines = NumberedLines(prefix: "out-", digits: 8, lineLength: 100)
        // 1 MB/s: 10,000 lines of 100 bytes a second, written every 100 ms. With the buffer the
        // log is rotated every 5 s and the rotated file deleted 5 s later (a Job's pod going away).
        let perTick = 1000
        let ticks = Int(outageS * 10)
        let total = perTick * ticks
        var peakRSS = 0
        var rotated = 0
        let t0 = monotonicSeconds()
        for t in 0..<ticks {
            lines.write(to: logs + "/app.log", (t * perTick)..<((t + 1) * perTick), append: true)
            if t % 10 == 0 { peakRSS = max(peakRSS, residentSetKiB(pid: p.pid)) }
            if o.buffered && t % 50 == 49 {
                unlink(logs + "/app.log.\(rotated - 1)")
                rename(logs + "/app.log", logs + "/app.log.\(rotated)")
                rotated += 1
            }
            let next = t0 + Double(t + 1) * 0.1
            let now = monotonicSeconds()
            if next > now { usleep(useconds_t((next - now) * 1e6)) }
        }
        let writeS = monotonicSeconds() - t0
        var released = true
        if o.buffered {
            unlink(logs + "/app.log.\(rotated - 1)")
            // Everything read is fsynced in the buffer and acknowledged: the deleted files go.
            released = waitUntil(timeout: 15, pollMs: 200) { deletedDescriptorCount(pid: p.pid) == 0 }
            #expect(released, "the deleted files were released while the destination was down: \(deletedDescriptorCount(pid: p.pid)) still held")
        }
        note(String(format: "outage %@: %d lines (%.0f MB) written in %.0f s with the destination down; peak RSS %d KiB%@", o.testDescription, total,
                    Double(total * 100) / 1e6, writeS, peakRSS, o.buffered ? "; deleted sources released: \(released)" : ""))
        // The destination comes back.
        var receiver: HTTPTestReceiver?
        switch o.backend {
        case .http: receiver = try await HTTPTestReceiver(keepBodies: true, port: port)
        case .clickhouse: try clickhouse?.restart()
        }
        let t1 = monotonicSeconds()
        var tally = Tally(prefix: "out-", total: total)
        func progress() -> (distinct: Int, rows: Int) {
            if let receiver {
                let d = tally.update(from: receiver)
                return (d, tally.arrivals)
            }
            let f = clickhouse!.clickhouseQuery("SELECT uniqExact(content), count() FROM default.outage").split(whereSeparator: { $0 == "\t" || $0 == "\n" })
            return f.count >= 2 ? (Int(f[0]) ?? 0, Int(f[1]) ?? 0) : (0, 0)
        }
        var seen = (distinct: 0, rows: 0)
        let done = waitUntil(timeout: max(120, outageS), pollMs: 500) {
            seen = progress()
            peakRSS = max(peakRSS, residentSetKiB(pid: p.pid))
            return seen.distinct == total
        }
        let catchUpS = monotonicSeconds() - t1
        sleepMs(settleMs)
        seen = progress()
        note(String(format: "outage %@: caught up in %.1f s after the destination returned; %d of %d lines, %d rows; peak RSS %d KiB", o.testDescription,
                    catchUpS, seen.distinct, total, seen.rows, peakRSS))
        #expect(p.stop() == 0)
        if let receiver { await receiver.stop() }
        #expect(done, "every line arrived after the outage: \(seen.distinct) of \(total)")
        // Duplicates come only from requests the destination took but did not answer in time.
        #expect(seen.rows - seen.distinct <= total / 20, "duplicates \(seen.rows - seen.distinct)")
        #expect(peakRSS < memLimitMB * 1024, "RSS within mem_usage_limit=\(memLimitMB) through the outage and the catch-up: peak \(peakRSS) KiB")
    }

    /// Writes `total` numbered lines while sluice delivers them, kills it with SIGKILL once
    /// `progress()` reaches `fraction` of them, restarts it and waits until `complete()`.
    static func killNineWhileDelivering(_ s: E2EScenario, lines: NumberedLines, total: Int, logs: String,
                                 progress: @escaping () -> Int, complete: @escaping () -> Bool) throws -> (killedAt: Int, restartS: Double) {
        let p1 = try s.start()
        #expect(s.waitForLog("Input started.", timeout: 15))
        let killAt = Int(Double(total) * Double.random(in: 0.2...0.4))
        var killed = -1
        var checks = 0
        lines.write(to: logs + "/big.log", 0..<total, append: false, chunkBytes: 1 << 20) {
            checks += 1
            if killed < 0 && checks % 4 == 0 {
                let n = progress()
                if n >= killAt { _ = p1.kill9(); killed = n }
            }
        }
        if killed < 0 {
            _ = waitUntil(timeout: 120, pollMs: 100) { progress() >= killAt }
            _ = p1.kill9()
            killed = progress()
        }
        let t1 = monotonicSeconds()
        let p2 = try s.start()
        let ok = waitUntil(timeout: 300, pollMs: 250, complete)
        let restartS = monotonicSeconds() - t1
        sleepMs(settleMs)
        #expect(p2.stop() == 0)
        #expect(ok, "everything arrived after the restart")
        return (killed, restartS)
    }

    @Test("flusher_clickhouse: kill -9 while delivering 2 M lines; every line in ClickHouse afterwards", .timeLimit(.minutes(10)))
    func killNineIntoClickHouse() throws {
        let ch = try #require(try TestServer.clickhouse(), "clickhouse-server is installed by scripts/install-deps.sh")
        defer { ch.stop() }
        _ = ch.clickhouseQuery("CREATE TABLE default.k9 (content String) ENGINE = MergeTree ORDER BY tuple()")
        let total = ProcessInfo.processInfo.environment["SLUICE_E2E_NET_LINES"].flatMap { Int($0) } ?? 2_000_000
        let s = E2EScenario("k9-clickhouse")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        s.writePipeline("ch", """
            inputs:
              - Type: input_file
                FilePaths: [\(logs)/*.log]
            flushers:
              - Type: flusher_clickhouse
                Addresses: [127.0.0.1:\(ch.port)]
                Table: k9
                Format: JSONEachRow
            """)
        let lines = NumberedLines(prefix: "ch-", digits: 8, lineLength: 100)
        func counts() -> (rows: Int, unique: Int) {
            let f = ch.clickhouseQuery("SELECT count(), uniqExact(content) FROM default.k9").split(whereSeparator: { $0 == "\t" || $0 == "\n" })
            return f.count >= 2 ? (Int(f[0]) ?? 0, Int(f[1]) ?? 0) : (0, 0)
        }
        let t0 = monotonicSeconds()
        let r = try Self.killNineWhileDelivering(s, lines: lines, total: total, logs: logs, progress: { counts().rows }, complete: { counts().unique >= total })
        let c = counts()
        note("clickhouse kill -9: \(total) lines; killed with \(r.killedAt) rows in; afterwards \(c.rows) rows, \(c.unique) distinct, \(c.rows - c.unique) duplicated; \(String(format: "%.1f s in all, %.1f s after the restart", monotonicSeconds() - t0, r.restartS))")
        #expect(c.unique == total, "every line in ClickHouse")
        // Duplicates only from requests in flight at the kill: MaxOpenConns (5) inserts of at most
        // MaxInsertBytes (4 MiB) of input, each up to one read batch (512 KiB) over.
        let bound = 5 * ((4 << 20) + (512 << 10)) / 100
        #expect(c.rows - c.unique <= bound, "duplicates \(c.rows - c.unique) within the unacknowledged requests (\(bound))")
    }

    @Test("flusher_elasticsearch: kill -9 while delivering to a real _bulk server; every line indexed afterwards", .timeLimit(.minutes(10)))
    func killNineIntoBulkServer() throws {
        let es = try #require(try TestServer.openSearch(), "osmem-server is installed by scripts/install-deps.sh")
        defer { es.stop() }
        // osmem-server indexes about 5,000 new documents a second here, so the suite sends 200,000
        // lines (2 M takes ~7 min): SLUICE_E2E_BULK_LINES overrides.
        let total = ProcessInfo.processInfo.environment["SLUICE_E2E_BULK_LINES"].flatMap { Int($0) } ?? 200_000
        let s = E2EScenario("k9-bulk")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        s.writePipeline("es", """
            inputs:
              - Type: input_file
                FilePaths: [\(logs)/*.log]
            flushers:
              - Type: flusher_elasticsearch
                Addresses: [\(es.url)]
                Index: k9
                GenerateId: true
                MaxBulkBytes: 262144
                Concurrency: 4
                Convert: {Protocol: custom_single_flatten}
            """)
        let lines = NumberedLines(prefix: "es-", digits: 8, lineLength: 100)
        func count() -> Int {
            let f = "/tmp/sluice-k9-count.\(getpid())"
            defer { unlink(f) }
            _ = shell("curl -sf -XPOST '\(es.url)/k9/_refresh' >/dev/null 2>&1; curl -sf '\(es.url)/k9/_count' > \(f) 2>/dev/null")
            return (try? JSONSerialization.jsonObject(with: Data(readFileBytes(f))) as? [String: Any])?["count"] as? Int ?? 0
        }
        /// Distinct lines indexed (osmem-server's cardinality is exact).
        func distinct() -> Int {
            let f = "/tmp/sluice-k9-distinct.\(getpid())"
            defer { unlink(f) }
            _ = shell("curl -sf -H 'Content-Type: application/json' '\(es.url)/k9/_search' -d '{\"size\":0,\"aggs\":{\"u\":{\"cardinality\":{\"field\":\"content.keyword\",\"precision_threshold\":40000}}}}' > \(f) 2>/dev/null")
            let doc = try? JSONSerialization.jsonObject(with: Data(readFileBytes(f))) as? [String: Any]
            return ((doc?["aggregations"] as? [String: Any])?["u"] as? [String: Any])?["value"] as? Int ?? 0
        }
        let t0 = monotonicSeconds()
        let r = try Self.killNineWhileDelivering(s, lines: lines, total: total, logs: logs, progress: count, complete: { count() >= total })
        sleepMs(2000)
        let n = count()
        let u = distinct()
        note("bulk kill -9: \(total) lines; killed with \(r.killedAt) indexed; afterwards \(n) documents, \(u) distinct lines (\(n - u) duplicated); \(String(format: "%.1f s in all, %.1f s after the restart", monotonicSeconds() - t0, r.restartS))")
        #expect(u == total, "every line indexed")
        let bound = 4 * ((256 << 10) + (512 << 10)) / 100
        #expect(n - u <= bound, "duplicates only from unacknowledged requests")
        // Every line is named by its file and offset, so what is read again after the kill is a 409.
        #expect(n == u, "no line indexed twice with GenerateId")
    }
}
