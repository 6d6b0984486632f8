import Foundation
import SluiceConfig
import SluiceCore
import SluiceFlushers
@testable import SluiceRuntime
import SluiceTesting
import Testing

/// flusher_otlp against receivers that decode with the official opentelemetry-proto messages: the
/// gRPC `LogsService` of `OTLPTestReceiver`, and `HTTPTestReceiver` for HTTP/protobuf.
@Suite(.serialized) struct FlusherOtlpTests {
    let fast = "    Retry: {DefaultDelay: 10ms}\n"
    let tags = [EventTag("__path__", "/var/log/app.log"), EventTag("__hostname__", "node-1"), EventTag("__tag__:team", "payments")]

    func grpcConfig(_ endpoint: String, _ extra: String = "") -> String {
        "Logs:\n    Endpoint: \(endpoint)\n" + fast + extra
    }

    func httpConfig(_ url: String, _ extra: String = "") -> String {
        "Logs:\n    Endpoint: \(url)\n    Protocol: http/protobuf\n" + fast + extra
    }

    /// A batch of one parsed event (content, level, thread; its own time) after `lines` unparsed ones.
    func mixedBatch(_ tb: TestBatches, _ index: Int, _ lines: [String]) -> EventBatch {
        var b = tb.batch(index, lines + ["parsed raw"], tags: tags)
        let i = lines.count
        let k1 = b.append(bytes: Array("content".utf8)), v1 = b.append(bytes: Array("payment failed".utf8))
        let k2 = b.append(bytes: Array("level".utf8)), v2 = b.append(bytes: Array("ERROR".utf8))
        let k3 = b.append(bytes: Array("thread".utf8)), v3 = b.append(bytes: Array("main".utf8))
        let k4 = b.append(bytes: Array("gone".utf8))
        b.fields = [EventField(key: k1, value: v1), EventField(key: k2, value: v2), EventField(key: k3, value: v3), EventField(key: k4, value: v3, kind: .deleted)]
        b.events[i].fieldStart = 0
        b.events[i].fieldCount = 4
        b.events[i].flags |= LogEvent.Flag.parsed
        b.events[i].timeNanos = 1_600_000_000_123_456_789
        return b
    }

    @Test func grpcDeliversEveryLineOnceWithResourceAttributesBodyAndTime() async throws {
        let r = try await OTLPTestReceiver()
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherOtlp.self, grpcConfig(r.endpoint, "    Headers: {X-Tenant: team-a}\n    Compression: gzip\n"))
        let tb = TestBatches()
        var (batches, lines) = numberedBatches(tb, 1000, per: 100, tags: tags)
        batches.append(mixedBatch(tb, batches.count, ["last-a", "last-b"]))
        lines += ["last-a", "last-b"]
        let before = UInt64(Date().timeIntervalSince1970 * 1e9) - 1_000_000_000
        let ctx = await drive(f, batches)
        for k in batches.indices { #expect(tb.statuses(of: k) == [.delivered]) }
        let logs = r.logs
        #expect(logs.count == lines.count + 1, "every event once")
        let plain = logs.filter { $0.severityText.isEmpty }
        #expect(plain.map(\.body).sorted() == lines.sorted(), "every line, none twice")
        for l in plain {
            #expect(l.resource == ["__path__": "/var/log/app.log", "__hostname__": "node-1", "__tag__:team": "payments"], "tags, raw names")
            #expect(l.attributes == ["log.file.path": "/var/log/app.log", "host.name": "node-1", "team": "payments"], "converted tags")
            #expect(l.timeUnixNano == 1_700_000_000_000_000_000, "the batch's read time")
            #expect(l.observedTimeUnixNano >= before)
        }
        let parsed = try #require(logs.first { !$0.severityText.isEmpty })
        #expect(parsed.body == "payment failed")
        #expect(parsed.severityText == "ERROR")
        #expect(parsed.attributes == ["thread": "main", "log.file.path": "/var/log/app.log", "host.name": "node-1", "team": "payments"])
        #expect(parsed.timeUnixNano == 1_600_000_000_123_456_789, "the event's own time, ns")
        #expect(r.metadata(0).contains { $0 == ("x-tenant", "team-a") })
        #expect(ctx.metrics.sentEvents.current == lines.count + 1)
        #expect(ctx.metrics.discardedByReason.isEmpty)
    }

    @Test func unavailableIsRetriedWithoutDuplicates() async throws {
        let r = try await OTLPTestReceiver { n in n < 2 ? .fail(.unavailable, "restarting") : .ok }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherOtlp.self, grpcConfig(r.endpoint, "Concurrency: 1\n"))
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 50, per: 50, tags: tags)
        let ctx = await drive(f, batches)
        #expect(tb.statuses(of: 0) == [.delivered])
        #expect(r.requestCount == 3)
        #expect(OTLPTestReceiver.logs(r.received[2].request).map(\.body) == lines)
        #expect(r.received[0].request == r.received[2].request, "a retry sends the same request")
        #expect(ctx.metrics.requestsRetried.current == 2)
        #expect(ctx.metrics.sentEvents.current == 50)
    }

    @Test func invalidArgumentIsRejectedAndCountedNeverRetried() async throws {
        let r = try await OTLPTestReceiver { _ in .fail(.invalidArgument, "bad record") }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherOtlp.self, grpcConfig(r.endpoint))
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 30, per: 10)
        let ctx = await drive(f, batches)
        for k in batches.indices { #expect(tb.statuses(of: k) == [.rejected], "a rejected batch moves the checkpoint") }
        #expect(ctx.metrics.discardedByReason["rejected"] == 30)
        #expect(r.logs.map(\.body).sorted() == lines.sorted(), "each line sent once, never again")
        #expect(ctx.metrics.requestsRetried.current == 0)
    }

    @Test func resourceExhaustedIsRetriedOnlyWithRetryInfo() async throws {
        let r = try await OTLPTestReceiver { n in n == 0 ? .fail(.resourceExhausted, "slow down", retryDelay: .milliseconds(300)) : .ok }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherOtlp.self, grpcConfig(r.endpoint, "Concurrency: 1\n"))
        let tb = TestBatches()
        let t0 = ContinuousClock.now
        let ctx = await drive(f, [tb.batch(0, ["a", "b"])])
        #expect(ContinuousClock.now - t0 >= .milliseconds(280), "RetryInfo's delay was honoured")
        #expect(tb.statuses(of: 0) == [.delivered])
        #expect(r.requestCount == 2)
        #expect(ctx.metrics.requestsRetried.current == 1)

        r.setScript { _ in .fail(.resourceExhausted, "quota exceeded") }
        let f2 = try makeFlusher(FlusherOtlp.self, grpcConfig(r.endpoint))
        let ctx2 = await drive(f2, [tb.batch(1, ["c"])])
        #expect(tb.statuses(of: 1) == [.rejected], "without RetryInfo it is not retryable")
        #expect(r.requestCount == 3)
        #expect(ctx2.metrics.discardedByReason["rejected"] == 1)
    }

    @Test func partialSuccessIsCountedAndNeverRetried() async throws {
        let r = try await OTLPTestReceiver { _ in .partial(rejected: 3, message: "3 records too large") }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherOtlp.self, grpcConfig(r.endpoint, "Concurrency: 1\n"))
        let tb = TestBatches()
        let ctx = await drive(f, [tb.batch(0, (0..<10).map { "l\($0)" })])
        #expect(tb.statuses(of: 0) == [.rejected], "some records were refused for good")
        #expect(r.requestCount == 1, "the accepted records are not sent again")
        #expect(ctx.metrics.discardedByReason["rejected"] == 3)
        #expect(ctx.metrics.sentEvents.current == 7)
        #expect(ctx.metrics.requestsRetried.current == 0)
    }

    @Test func aHangingReceiverTimesOutAndIsRetried() async throws {
        let r = try await OTLPTestReceiver { n in n == 0 ? .hang : .ok }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherOtlp.self, grpcConfig(r.endpoint, "    Timeout: 300\nConcurrency: 1\n"))
        let tb = TestBatches()
        let ctx = await drive(f, [tb.batch(0, ["x", "y"])])
        #expect(tb.statuses(of: 0) == [.delivered])
        #expect(r.requestCount == 2)
        #expect(ctx.metrics.requestsRetried.current == 1)
    }

    @Test func aBackendDownAtStartIsWaitedForAndNothingIsLost() async throws {
        let port = TestServer.freePort()
        let f = try makeFlusher(FlusherOtlp.self, grpcConfig("127.0.0.1:\(port)"))
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 200, per: 20, tags: tags)
        let driving = Task { await drive(f, batches) }
        try await Task.sleep(for: .milliseconds(700))
        #expect(tb.finished == 0, "nothing is acknowledged while the backend is down")
        let r = try await OTLPTestReceiver(port: port)
        defer { Task { await r.stop() } }
        let ctx = await driving.value
        for k in batches.indices { #expect(tb.statuses(of: k) == [.delivered]) }
        let got = r.logs.map(\.body)
        #expect(got.count == lines.count && Set(got) == Set(lines))
        #expect(ctx.metrics.sentEvents.current == lines.count)
        #expect(ctx.metrics.requestsRetried.current > 0)
    }

    @Test func aReceiverDownInTheMiddleHoldsDataBackAndLosesNothing() async throws {
        let port = TestServer.freePort()
        let r = try await OTLPTestReceiver(port: port)
        let f = try makeFlusher(FlusherOtlp.self, grpcConfig("127.0.0.1:\(port)", "Concurrency: 1\n"))
        let q = BatchQueue(highWatermark: 256 << 20)
        let ctx = testContext(kind: .flusher, type: "network")
        try await f.start()
        let runner = Task { await FlusherRunner(flusher: f, queue: q, context: ctx).run() }
        let tb = TestBatches()
        q.push(tb.batch(0, ["before-1", "before-2"]))
        #expect(await eventually(5) { tb.statuses(of: 0) == [.delivered] })
        await r.stop()
        q.push(tb.batch(1, ["during-1", "during-2"]))
        try await Task.sleep(for: .milliseconds(600))
        #expect(tb.statuses(of: 1).isEmpty, "held back while the receiver is down")
        let r2 = try await OTLPTestReceiver(port: port)
        defer { Task { await r2.stop() } }
        q.push(tb.batch(2, ["after-1"]))
        q.close()
        await runner.value
        await f.stop()
        #expect(tb.statuses(of: 1) == [.delivered] && tb.statuses(of: 2) == [.delivered])
        #expect(r.logs.map(\.body) == ["before-1", "before-2"])
        #expect(r2.logs.map(\.body).sorted() == ["after-1", "during-1", "during-2"], "nothing lost, nothing twice")
        #expect(ctx.metrics.requestsRetried.current > 0)
    }

    @Test func retryMaxCountWithEnableBoundsTheRetries() async throws {
        let r = try await OTLPTestReceiver { _ in .fail(.unavailable, "down") }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherOtlp.self, "Logs:\n    Endpoint: \(r.endpoint)\n    Retry: {Enable: true, MaxCount: 2, DefaultDelay: 10ms}\n")
        let tb = TestBatches()
        let ctx = await drive(f, [tb.batch(0, ["a", "b", "c"])])
        #expect(tb.statuses(of: 0) == [.rejected])
        #expect(r.requestCount == 3, "1 try + 2 retries")
        #expect(ctx.metrics.discardedByReason["retry_limit"] == 3)
    }

    // MARK: HTTP/protobuf

    @Test func http503WithRetryAfterThen200() async throws {
        let r = try await HTTPTestReceiver { _, n in n == 0 ? .init(status: 503, headers: [("Retry-After", "1")]) : .ok }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherOtlp.self, httpConfig(r.url, "    Headers: {X-Tenant: team-a}\n    Compression: gzip\nConcurrency: 1\n"))
        let tb = TestBatches()
        let batch = mixedBatch(tb, 0, ["one", "two"])
        let t0 = ContinuousClock.now
        let ctx = await drive(f, [batch])
        #expect(ContinuousClock.now - t0 >= .milliseconds(950), "Retry-After: 1 was honoured")
        #expect(tb.statuses(of: 0) == [.delivered])
        let reqs = r.requests
        #expect(reqs.count == 2)
        #expect(reqs[0].body == reqs[1].body, "a retry sends the same bytes")
        #expect(reqs[1].method == "POST" && reqs[1].uri == "/v1/logs")
        #expect(reqs[1].header("Content-Type") == "application/x-protobuf")
        #expect(reqs[1].header("Content-Encoding") == "gzip")
        #expect(reqs[1].header("X-Tenant") == "team-a")
        let logs = try #require(OTLPTestReceiver.decode(reqs[1].body))
        #expect(logs.map(\.body) == ["one", "two", "payment failed"])
        #expect(logs[0].resource["__hostname__"] == "node-1")
        #expect(logs[0].attributes["log.file.path"] == "/var/log/app.log")
        #expect(logs[2].severityText == "ERROR" && logs[2].attributes["thread"] == "main")
        #expect(logs[2].timeUnixNano == 1_600_000_000_123_456_789)
        #expect(ctx.metrics.requestsRetried.current == 1)
        #expect(ctx.metrics.sentEvents.current == 3)
    }

    @Test func http400And500AreRejectedNotRetried() async throws {
        for status in [400, 500] {
            let r = try await HTTPTestReceiver { _, _ in .init(status: status, body: "bad") }
            let f = try makeFlusher(FlusherOtlp.self, httpConfig(r.url))
            let tb = TestBatches()
            let (batches, _) = numberedBatches(tb, 20, per: 10)
            let ctx = await drive(f, batches)
            for k in batches.indices { #expect(tb.statuses(of: k) == [.rejected], "HTTP \(status)") }
            #expect(ctx.metrics.discardedByReason["rejected"] == 20)
            #expect(r.requests.compactMap { OTLPTestReceiver.decode($0.body) }.flatMap { $0 }.count == 20, "each line sent once (HTTP \(status))")
            #expect(ctx.metrics.requestsRetried.current == 0)
            await r.stop()
        }
    }

    @Test func httpPartialSuccessIsCountedAndNotRetried() async throws {
        let r = try await HTTPTestReceiver { _, _ in
            .init(status: 200, headers: [("Content-Type", "application/x-protobuf")], body: OTLPTestReceiver.httpPartialBody(rejected: 2, message: "dropped"))
        }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherOtlp.self, httpConfig(r.url + "/v1/logs", "Concurrency: 1\n"))
        let tb = TestBatches()
        let ctx = await drive(f, [tb.batch(0, ["a", "b", "c", "d", "e"])])
        #expect(r.requests.first?.uri == "/v1/logs", "an endpoint ending in /v1/logs is used as is")
        #expect(tb.statuses(of: 0) == [.rejected])
        #expect(r.requestCount == 1)
        #expect(ctx.metrics.discardedByReason["rejected"] == 2)
        #expect(ctx.metrics.sentEvents.current == 3)
    }

    @Test func httpBackendDownAtStartIsWaitedFor() async throws {
        let port = TestServer.freePort()
        let f = try makeFlusher(FlusherOtlp.self, httpConfig("http://127.0.0.1:\(port)"))
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 100, per: 20)
        let driving = Task { await drive(f, batches) }
        try await Task.sleep(for: .milliseconds(600))
        #expect(tb.finished == 0)
        let r = try await HTTPTestReceiver(port: port)
        defer { Task { await r.stop() } }
        let ctx = await driving.value
        for k in batches.indices { #expect(tb.statuses(of: k) == [.delivered]) }
        let got = r.requests.compactMap { OTLPTestReceiver.decode($0.body) }.flatMap { $0 }.map(\.body)
        #expect(got.count == lines.count && Set(got) == Set(lines))
        #expect(ctx.metrics.sentEvents.current == lines.count)
    }

    // MARK: Configuration

    @Test func configErrorsAreAtTheirKey() {
        func err(_ yaml: String) -> String { optionsError(FlusherOtlp.self, yaml) ?? "<no error>" }
        #expect(err("Version: v1").contains("Logs is required"))
        #expect(err("Version: v2\nLogs: {Endpoint: 'a:1'}").contains("Version"))
        #expect(err("Logs: {Timeout: 10}").contains("Endpoint is required"))
        #expect(err("Logs: {Endpoint: 'a:1', Protocol: http/json}").contains("Logs.Protocol"))
        #expect(err("Logs: {Endpoint: 'a:1', Compression: zstd}").contains("Logs.Compression"))
        #expect(err("Logs: {Endpoint: 'a:1', Protocol: http/protobuf, Compression: lz5}").contains("Logs.Compression"))
        #expect(err("Logs: {Endpoint: 'a:99999'}").contains("Logs.Endpoint"))
        #expect(err("Logs: {Endpoint: 'ftp://a:1'}").contains("Logs.Endpoint"))
        #expect(err("Logs: {Endpoint: 'a:1', Retry: {MaxCount: -1}}").contains("Logs.Retry.MaxCount"))
        #expect(err("Logs: {Endpoint: 'a:1', Timeout: '5s'}").contains("Logs.Timeout"))
        #expect(err("Logs: {Endpoint: 'a:1', Headers: {A: '${SLUICE_SURELY_UNSET}'}}").contains("not set"))
        #expect(err("Logs: {Endpoint: 'a:1'}\nConcurrency: 0").contains("Concurrency"))
    }

    @Test func endpointsAndDefaults() throws {
        func opts(_ yaml: String) throws -> FlusherOtlp.Options {
            try FlusherOtlp.options(from: try ConfigObject.parse(yaml: yaml, file: "t.yaml", fields: FlusherOtlp.spec.fields), globals: GlobalParameters())
        }
        var o = try opts("Logs: {Endpoint: 'collector'}")
        #expect(o.wireProtocol == .grpc && o.grpcTarget == .host("collector", port: 4317) && !o.tls)
        #expect(o.timeout == .seconds(5) && o.maxRetries == nil, "retried until delivered by default")
        o = try opts("Logs: {Endpoint: 'https://otel.example:4443', Timeout: 0, Retry: {MaxCount: 3}}")
        #expect(o.grpcTarget == .host("otel.example", port: 4443) && o.tls)
        #expect(o.timeout == .seconds(5), "≤ 0 is the default, as the incumbent")
        #expect(o.maxRetries == nil, "MaxCount without Enable: true does not bound the retries")
        o = try opts("Logs: {Endpoint: 'http://[::1]:4317', Timeout: 1500, Retry: {Enable: true, MaxCount: 3, DefaultDelay: 2000000000}}")
        #expect(o.grpcTarget == .host("::1", port: 4317) && !o.tls)
        #expect(o.timeout == .milliseconds(1500) && o.maxRetries == 3 && o.backoff.initial == .seconds(2))
        o = try opts("Logs: {Endpoint: 'unix:///run/otel.sock'}")
        #expect(o.grpcTarget == .unix("/run/otel.sock"))
        o = try opts("Logs: {Endpoint: 'collector:4318/', Protocol: http/protobuf}")
        #expect(o.url == "http://collector:4318/v1/logs")
    }
}

/// flusher_otlp over TLS: gRPC with the configured CA, with an unknown CA (held back, nothing
/// sent), with InsecureSkipVerify; bearer credentials as gRPC metadata.
@Suite(.serialized) struct FlusherOtlpTLSTests {
    @Test func grpcTrustedCADeliversUnknownCAIsHeldBackSkipVerifySends() async throws {
        let tmp = TempDir("sluice-otlp-tls")
        defer { tmp.remove() }
        let certs = try #require(makeTestCertificates(in: tmp.path), "openssl made the test certificates")
        let r = try await OTLPTestReceiver(tls: (certs.cert, certs.key))
        defer { Task { await r.stop() } }

        let trusted = try makeFlusher(FlusherOtlp.self, """
            Logs:
                Endpoint: https://127.0.0.1:\(r.port)
                Authentication: {TLS: {CAFile: \(certs.ca)}, Bearer: {Token: s3cret}}
            """)
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 40, per: 20)
        await drive(trusted, batches)
        for k in batches.indices { #expect(tb.statuses(of: k) == [.delivered]) }
        #expect(r.logs.map(\.body).sorted() == lines.sorted())
        #expect(r.metadata(0).contains { $0 == ("authorization", "Bearer s3cret") })

        // The system's roots do not know this CA: the handshake fails, nothing is sent or acknowledged.
        let before = r.requestCount
        let unknown = try makeFlusher(FlusherOtlp.self, "Logs:\n    Endpoint: https://127.0.0.1:\(r.port)\n    Timeout: 500\n    Retry: {DefaultDelay: 50ms}\n")
        let tb2 = TestBatches()
        let ctx = await drive(unknown, [tb2.batch(0, ["x"])], cancelAfter: 1.5)
        #expect(tb2.statuses(of: 0) == [.abandoned], "a certificate that cannot be verified holds the data back")
        #expect(r.requestCount == before)
        #expect(ctx.metrics.errors.current > 0)

        let skip = try makeFlusher(FlusherOtlp.self, "Logs:\n    Endpoint: 127.0.0.1:\(r.port)\n    Authentication: {TLS: {InsecureSkipVerify: true}}\n")
        let tb3 = TestBatches()
        await drive(skip, [tb3.batch(0, ["y"])])
        #expect(tb3.statuses(of: 0) == [.delivered], "a TLS block without https:// still means TLS")
    }
}
