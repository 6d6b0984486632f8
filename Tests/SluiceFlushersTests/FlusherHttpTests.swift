import Foundation
import SluiceConfig
import SluiceCore
import SluiceFlushers
@testable import SluiceRuntime
import SluiceTesting
import Testing

/// flusher_http against the test receiver: shapes, compression, auth, and every failure path.
@Suite(.serialized) struct FlusherHttpTests {
    let fast = "Retry: {InitialDelay: 10ms, MaxDelay: 50ms}\n"

    @Test(arguments: ["", "gzip", "zstd", "snappy"])
    func jsonlineDeliversEveryLineOnceOneBodyPerBatch(_ compression: String) async throws {
        let r = try await HTTPTestReceiver()
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherHttp.self, "RemoteURL: \(r.url)/ingest\nConvert: {Protocol: jsonline}\nCompression: '\(compression)'\n" + fast)
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 1000, per: 100, tags: [EventTag("__path__", "/var/log/a.log")])
        let ctx = await drive(f, batches)
        for k in batches.indices { #expect(tb.statuses(of: k) == [.delivered]) }
        let reqs = r.requests
        #expect(reqs.count == 10, "one body per batch")
        #expect(Set(reqs.flatMap { contents(ofLines: $0.bodyText) }) == Set(lines))
        #expect(reqs.flatMap { contents(ofLines: $0.bodyText) }.count == lines.count, "no duplicates")
        #expect(reqs.allSatisfy { $0.header("Content-Encoding") == (compression.isEmpty ? nil : compression) })
        #expect(reqs.allSatisfy { $0.header("Content-Type") == "application/json" && $0.method == "POST" && $0.uri == "/ingest" })
        #expect(!reqs[0].bodyText.hasSuffix("\n"), "jsonline bodies have no trailing newline")
        #expect(reqs[0].bodyText.contains(#""log.file.path":"/var/log/a.log""#))
        #expect(ctx.metrics.sentEvents.current == 1000)
    }

    @Test func customSingleIsOnePostPerEventWithDynamicHeadersAndQuery() async throws {
        let r = try await HTTPTestReceiver()
        defer { Task { await r.stop() } }
        setenv("SLUICE_TEST_TOKEN", "t0k3n", 1)
        let f = try makeFlusher(FlusherHttp.self, """
            RemoteURL: \(r.url)/one
            Headers: {X-Path: '%{tag.log.file.path}', X-Line: '%{content.content}'}
            Query: {db: 'logs db'}
            Authentication: {Bearer: {Token: '${SLUICE_TEST_TOKEN}'}}
            """)
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 20, per: 5, tags: [EventTag("__path__", "/p")])
        await drive(f, batches)
        let reqs = r.requests
        #expect(reqs.count == 20)
        #expect(Set(reqs.map { $0.header("X-Line") ?? "" }) == Set(lines))
        #expect(reqs.allSatisfy { $0.header("X-Path") == "/p" && $0.header("Authorization") == "Bearer t0k3n" && $0.uri == "/one?db=logs%20db" })
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(reqs[0].body)) as? [String: Any])
        #expect(Set(doc.keys) == ["contents", "tags", "time"])
    }

    @Test func retriesAfter503And429HonouringRetryAfterWithoutDuplicates() async throws {
        let r = try await HTTPTestReceiver { _, n in
            n == 0 ? .init(status: 503) : n == 1 ? .init(status: 429, headers: [("Retry-After", "1")]) : .ok
        }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherHttp.self, "RemoteURL: \(r.url)\nConvert: {Protocol: jsonline}\nConcurrency: 1\n" + fast)
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 10, per: 10)
        let t0 = ContinuousClock.now
        let ctx = await drive(f, batches)
        #expect(ContinuousClock.now - t0 >= .milliseconds(950), "Retry-After: 1 was honoured")
        #expect(tb.statuses(of: 0) == [.delivered])
        #expect(r.requestCount == 3)
        #expect(contents(ofLines: r.requests[2].bodyText) == lines)
        #expect(ctx.metrics.requestsRetried.current == 2)
        #expect(ctx.metrics.discardedByReason.isEmpty)
    }

    @Test func a400IsRejectedCountedAndTheBatchFinished() async throws {
        let r = try await HTTPTestReceiver { _, _ in .init(status: 400, body: "bad document") }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherHttp.self, "RemoteURL: \(r.url)\nConvert: {Protocol: jsonline}\n" + fast)
        let tb = TestBatches()
        let (batches, _) = numberedBatches(tb, 30, per: 10)
        let ctx = await drive(f, batches)
        for k in batches.indices { #expect(tb.statuses(of: k) == [.rejected], "a rejected batch moves the checkpoint") }
        #expect(ctx.metrics.discardedByReason["rejected"] == 30)
        #expect(r.requestCount == 3, "never retried")
    }

    /// An event with every field removed is not written; it is still counted (sent with its
    /// request), so received = sent + discarded holds: in a batch with others, in a batch of
    /// nothing else, and one post per event.
    @Test(arguments: ["jsonline", "custom_single"])
    func eventsWithNothingToWriteAreCountedSent(_ convert: String) async throws {
        let r = try await HTTPTestReceiver()
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherHttp.self, "RemoteURL: \(r.url)\nConvert: {Protocol: \(convert)}\n" + fast)
        let tb = TestBatches()
        var mixed = tb.batch(0, ["a", "b", "c"])
        removeAllFields(&mixed, 1)
        var none = tb.batch(1, ["x", "y"])
        removeAllFields(&none, 0)
        removeAllFields(&none, 1)
        let ctx = await drive(f, [mixed, none])
        #expect(tb.statuses(of: 0) == [.delivered] && tb.statuses(of: 1) == [.delivered])
        #expect(ctx.metrics.receivedEvents.current == 5)
        #expect(ctx.metrics.sentEvents.current == 5)
        #expect(ctx.metrics.discardedByReason.isEmpty)
        let written = r.requests.flatMap { $0.bodyText.split(separator: "\n") }
        #expect(written.count == 2, "a and c only: \(written)")
    }

    @Test func maxRetryTimesRejectsAfterThatManyRetries() async throws {
        let r = try await HTTPTestReceiver { _, _ in .init(status: 500) }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherHttp.self, "RemoteURL: \(r.url)\nConvert: {Protocol: jsonline}\nRetry: {MaxRetryTimes: 2, InitialDelay: 10ms}\n")
        let tb = TestBatches()
        let (batches, _) = numberedBatches(tb, 5, per: 5)
        let ctx = await drive(f, batches)
        #expect(tb.statuses(of: 0) == [.rejected])
        #expect(r.requestCount == 3, "1 try + 2 retries")
        #expect(ctx.metrics.discardedByReason["retry_limit"] == 5)
    }

    @Test func aHangingServerTimesOutAndAResetIsRetried() async throws {
        let r = try await HTTPTestReceiver { _, n in n == 0 ? .hang : n == 1 ? .reset : .ok }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherHttp.self, "RemoteURL: \(r.url)\nConvert: {Protocol: jsonline}\nTimeout: 300ms\nConcurrency: 1\n" + fast)
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 8, per: 8)
        let ctx = await drive(f, batches)
        #expect(tb.statuses(of: 0) == [.delivered])
        #expect(r.requestCount == 3)
        #expect(contents(ofLines: r.requests[2].bodyText) == lines)
        #expect(ctx.metrics.requestsRetried.current == 2)
    }

    @Test func aBackendDownAtStartIsWaitedForAndNothingIsLost() async throws {
        let port = TestServer.freePort()
        let f = try makeFlusher(FlusherHttp.self, "RemoteURL: http://127.0.0.1:\(port)\nConvert: {Protocol: jsonline}\n" + fast)
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 200, per: 20)
        let driving = Task { await drive(f, batches) }
        try await Task.sleep(for: .milliseconds(700))
        #expect(tb.finished == 0, "nothing is acknowledged while the backend is down")
        let r = try await HTTPTestReceiver(port: port)
        defer { Task { await r.stop() } }
        let ctx = await driving.value
        for k in batches.indices { #expect(tb.statuses(of: k) == [.delivered]) }
        let got = r.requests.flatMap { contents(ofLines: $0.bodyText) }
        #expect(got.count == lines.count && Set(got) == Set(lines))
        // (AsyncHTTPClient's pool keeps retrying the connection while a request waits, within Timeout.)
        #expect(ctx.metrics.sentEvents.current == lines.count)
    }

    @Test func whatWaitsForTheBackendIsCountedAsBuffered() async throws {
        // The first request gets no answer until its 1 s timeout; meanwhile what the runner holds
        // is counted as buffered (the request in flight, and what it took from the queue since).
        let r = try await HTTPTestReceiver { _, n in n == 0 ? .hang : .ok }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherHttp.self, "RemoteURL: \(r.url)\nConvert: {Protocol: jsonline}\nConcurrency: 1\nTimeout: 1s\nRetry: {InitialDelay: 10ms, MaxDelay: 10ms}\n")
        let tb = TestBatches()
        let (batches, _) = numberedBatches(tb, 40, per: 10)
        let q = BatchQueue(highWatermark: 1 << 20)
        let ctx = testContext(kind: .flusher, type: "flusher_http")
        let task = Task { await FlusherRunner(flusher: f, queue: q, context: ctx).run() }
        for b in batches { q.push(b) }
        q.close()
        #expect(await eventually(5) { ctx.metrics.inFlight.load(ordering: .relaxed) == 1 && ctx.metrics.bufferedEvents.load(ordering: .relaxed) >= 10 })
        #expect(ctx.metrics.bufferedEvents.load(ordering: .relaxed) <= 40)
        #expect(ctx.metrics.bufferedBytes.load(ordering: .relaxed) > 0)
        await task.value
        await f.stop()
        for k in batches.indices { #expect(tb.statuses(of: k) == [.delivered]) }
        #expect(ctx.metrics.bufferedEvents.load(ordering: .relaxed) == 0 && ctx.metrics.bufferedBytes.load(ordering: .relaxed) == 0)
        #expect(ctx.metrics.snapshot().contains { $0.0 == "buffered_events" })
    }

    @Test func theShutdownDeadlineAbandonsWhatIsNotDelivered() async throws {
        let r = try await HTTPTestReceiver { _, _ in .init(status: 503) }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherHttp.self, "RemoteURL: \(r.url)\nConvert: {Protocol: jsonline}\n" + fast)
        let tb = TestBatches()
        let (batches, _) = numberedBatches(tb, 10, per: 5)
        let ctx = await drive(f, batches, cancelAfter: 0.5)
        for k in batches.indices { #expect(tb.statuses(of: k) == [.abandoned], "read again on the next start") }
        #expect(ctx.metrics.abandonedEvents.current == 10)
        #expect(ctx.metrics.bufferedEvents.load(ordering: .relaxed) == 0)
    }

    @Test func badConfigsAreErrorsAtTheirKey() {
        #expect(optionsError(FlusherHttp.self, "Convert: {Protocol: jsonline}")?.contains("RemoteURL is required") == true)
        #expect(optionsError(FlusherHttp.self, "RemoteURL: ftp://x")?.contains("http://") == true)
        #expect(optionsError(FlusherHttp.self, "RemoteURL: http://x\nCompression: lz5")?.contains("unknown compression") == true)
        #expect(optionsError(FlusherHttp.self, "RemoteURL: http://x\nHeaders: {A: '%{metadata.x}'}")?.contains("unsupported field") == true)
        #expect(optionsError(FlusherHttp.self, "RemoteURL: http://x\nHeaders: {A: '${SLUICE_SURELY_UNSET}'}")?.contains("not set") == true)
        #expect(optionsError(FlusherHttp.self, "RemoteURL: http://x\nAuthentication: {TLS: {CAFile: /nonexistent.pem}}")?.contains("no such file") == true)
        // Durations the Go way (numbers are nanoseconds, through float64) or as text; out of
        // range is an error at the key, never an overflow trap (1e10 s used to crash the load).
        for bad in ["1e30", ".inf", "-5", "'10000000000s'", "'1e300ms'", "'-1s'", "'soon'"] {
            #expect(optionsError(FlusherHttp.self, "RemoteURL: http://x\nTimeout: \(bad)")?.contains("Timeout") == true, "Timeout: \(bad)")
        }
    }

    @Test func durationsAreReadAsTheIncumbentDoes() throws {
        func timeout(_ v: String) throws -> Duration? {
            let c = try ConfigObject.parse(yaml: "Timeout: \(v)", file: "t.yaml", fields: FlusherHttp.spec.fields)
            return try GoDuration.read(c, "Timeout")
        }
        #expect(try timeout("60000000000") == .seconds(60))
        #expect(try timeout("1e10") == .seconds(10))
        #expect(try timeout("1.0e8") == .milliseconds(100))
        #expect(try timeout("'500ms'") == .milliseconds(500))
        #expect(try timeout("2m") == .seconds(120))
        #expect(try timeout("'250'") == .nanoseconds(250), "a bare number is nanoseconds, as Go's")
    }
}
