import Foundation
import NIOCore
import SluiceCore
@testable import SluiceFlushers
import SluiceTesting
import SwiftProtobuf
import Testing

/// flusher_loki against a receiver that decodes the push API's JSON body.
@Suite(.serialized) struct FlusherLokiTests {
    struct Push: Decodable {
        struct Stream: Decodable { var stream: [String: String]; var values: [[String]] }
        var streams: [Stream]
    }

    @Test func streamsByLabelsSortedWithNanosecondTimesKeptAcrossRetries() async throws {
        let r = try await HTTPTestReceiver { _, n in n == 0 ? .init(status: 500) : .init(status: 204) }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherLoki.self, """
            URL: \(r.url)/loki/api/v1/push
            TenantID: team-a
            PushFormat: json
            StaticLabels: {job: sluice}
            DynamicLabels: [tag.log.file.path]
            Convert: {Protocol: custom_single_flatten, OnlyContents: true}
            MinBackoff: 10ms
            Concurrency: 1
            """)
        let tb = TestBatches()
        let a = tb.batch(0, ["a1", "a2", "a2"], tags: [EventTag("__path__", "/a.log")])
        let b = tb.batch(1, ["b1"], tags: [EventTag("__path__", "/b.log")])
        await drive(f, [a, b])
        #expect(tb.statuses(of: 0) == [.delivered] && tb.statuses(of: 1) == [.delivered])
        let reqs = r.requests
        #expect(reqs.count == 2)
        #expect(reqs[0].body == reqs[1].body, "a retry sends the same entries and times")
        #expect(reqs[0].header("X-Scope-OrgID") == "team-a")
        let push = try JSONDecoder().decode(Push.self, from: Data(reqs[1].body))
        let byPath = Dictionary(uniqueKeysWithValues: push.streams.map { ($0.stream["log_file_path"] ?? "?", $0) })
        #expect(byPath["/a.log"]?.stream["job"] == "sluice")
        let aValues = try #require(byPath["/a.log"]?.values)
        #expect(aValues.map { $0[1] } == [#"{"content":"a1","time":1700000000}"#, #"{"content":"a2","time":1700000000}"#, #"{"content":"a2","time":1700000000}"#])
        let times = aValues.map { Int64($0[0])! }
        #expect(times == times.sorted() && Set(times).count == 3, "equal lines keep distinct, ordered timestamps")
        #expect(byPath["/b.log"]?.values.count == 1)
    }

    @Test func protobufPushIsSnappyCompressedWithTheSameEntries() async throws {
        let r = try await HTTPTestReceiver { _, _ in .init(status: 204) }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherLoki.self, """
            URL: \(r.url)/loki/api/v1/push
            StaticLabels: {job: sluice}
            DynamicLabels: [tag.log.file.path]
            """)
        let tb = TestBatches()
        var a = tb.batch(0, ["a1", "a2 \"q\""], tags: [EventTag("__path__", "/a \"x\".log")])
        a.events[0].timeNanos = 1_700_000_000_123_456_789
        a.events[1].timeNanos = 1_700_000_000_000_000_001
        await drive(f, [a])
        #expect(tb.statuses(of: 0) == [.delivered])
        let req = try #require(r.requests.first)
        #expect(req.header("Content-Type") == "application/x-protobuf")
        #expect(req.header("Content-Encoding") == nil)
        // The receiver left the body as sent: a snappy block holding a logproto.PushRequest.
        let raw = try BodyCompression.snappy.decompress(ByteBuffer(bytes: req.body))
        let push = try Logproto_PushRequest(serializedBytes: raw)
        #expect(push.streams.count == 1)
        #expect(push.streams[0].labels == #"{job="sluice", log_file_path="/a \"x\".log"}"#)
        let entries = push.streams[0].entries
        #expect(entries.map(\.timestamp.seconds) == [1_700_000_000, 1_700_000_000])
        #expect(entries.map(\.timestamp.nanos) == [1, 123_456_789], "sorted by time, nanoseconds kept")
        #expect(entries.map(\.line) == [#"{"contents":{"content":"a2 \"q\""},"tags":{"log.file.path":"/a \"x\".log"},"time":1700000000}"#,
                                       #"{"contents":{"content":"a1"},"tags":{"log.file.path":"/a \"x\".log"},"time":1700000000}"#])
    }

    /// The hand-written push encoder gives the very bytes SwiftProtobuf gives for the same
    /// request: times before the epoch, at it and far ahead, empty lines, lines whose lengths
    /// take 1 to 3 varint bytes, empty labels, several streams.
    @Test func handWrittenPushEncodingIsSwiftProtobufs() throws {
        var rng = SystemRandomNumberGenerator()
        let lines = OutputBuffer(capacity: 1024)
        var streams: [(String, [FlusherLoki.Entry])] = []
        var expected = Logproto_PushRequest()
        let times: [Int64] = [0, 1, 999_999_999, 1_000_000_000, -1, -1_000_000_000, -1_500_000_001,
                              1_700_000_000_123_456_789, .max, .min + 1_000_000_000]
        let lengths = [0, 1, 127, 128, 300, 16_383, 16_384, 70_000]
        for s in 0..<4 {
            let labels = s == 3 ? "" : "{job=\"j\(s)\", path=\"/x/ü\(s).log\"}"
            var entries: [FlusherLoki.Entry] = []
            var ps = Logproto_StreamAdapter()
            ps.labels = labels
            for k in 0..<12 {
                let ns = k < times.count ? times[k] : Int64.random(in: -1 << 40...1 << 62, using: &rng)
                let n = lengths[(k + s) % lengths.count]
                let start = lines.count
                for j in 0..<n { lines.append(byte: UInt8(ascii: "a") + UInt8((j + k) % 26)) }
                entries.append(.init(ns: ns, line: start..<lines.count))
                var en = Logproto_EntryAdapter()
                var ts = Google_Protobuf_Timestamp()
                ts.seconds = ns >= 0 ? ns / 1_000_000_000 : (ns - 999_999_999) / 1_000_000_000
                ts.nanos = Int32(ns - ts.seconds * 1_000_000_000)
                en.timestamp = ts
                en.line = String(decoding: lines.bytes[start..<lines.count], as: UTF8.self)
                ps.entries.append(en)
            }
            streams.append((labels, entries))
            expected.streams.append(ps)
        }
        let out = OutputBuffer(capacity: 64)
        LokiPushEncoder.encode(streams, lines: lines, into: out)
        let mine = out.toArray()
        let theirs: [UInt8] = try expected.serializedBytes()
        #expect(mine.count == theirs.count)
        let same = mine == theirs
        #expect(same, "first difference at byte \(zip(mine, theirs).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1)")
        #expect(try Logproto_PushRequest(serializedBytes: mine) == expected)
    }

    @Test func a400WithIgnoredEntriesIsAPartialResult() async throws {
        let r = try await HTTPTestReceiver { _, _ in
            .init(status: 400, body: "entry with timestamp 2023 ignored, reason: 'entry too far behind' for stream: {job=\"s\"},\ntotal ignored: 1 out of 3")
        }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherLoki.self, "URL: \(r.url)\nStaticLabels: {job: s}")
        let tb = TestBatches()
        let ctx = await drive(f, [tb.batch(0, ["x", "y", "z"])])
        #expect(tb.statuses(of: 0) == [.rejected])
        #expect(r.requestCount == 1, "the stored entries are not sent again")
        #expect(ctx.metrics.discardedByReason["rejected"] == 1)
        #expect(ctx.metrics.sentEvents.current == 2)
    }

    /// 260 is what Loki answers while its ingestion is blocked (`block_ingestion_until`): a 2xx
    /// that stored nothing. The push is retried, with the same body, until it is taken.
    @Test func status260IsRetriedNotDelivered() async throws {
        let r = try await HTTPTestReceiver { _, n in n < 2 ? .init(status: 260, body: "ingestion blocked") : .init(status: 204) }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherLoki.self, "URL: \(r.url)\nStaticLabels: {job: s}\nMinBackoff: 10ms\nConcurrency: 1")
        let tb = TestBatches()
        let ctx = await drive(f, [tb.batch(0, ["x", "y"])])
        #expect(tb.statuses(of: 0) == [.delivered])
        #expect(r.requestCount == 3)
        #expect(Set(r.requests.map(\.body)).count == 1, "each retry sends the same entries")
        #expect(ctx.metrics.requestsRetried.current == 2)
        #expect(ctx.metrics.sentEvents.current == 2)
    }

    @Test func needsALabel() {
        #expect(optionsError(FlusherLoki.self, "URL: http://x")?.contains("StaticLabels or DynamicLabels") == true)
        #expect(optionsError(FlusherLoki.self, "URL: http://x\nDynamicLabels: [meta.x]")?.contains("content.<field>") == true)
    }
}
