import Foundation
import SluiceCore
import SluiceFlushers
import SluiceTesting
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

    @Test func needsALabel() {
        #expect(optionsError(FlusherLoki.self, "URL: http://x")?.contains("StaticLabels or DynamicLabels") == true)
        #expect(optionsError(FlusherLoki.self, "URL: http://x\nDynamicLabels: [meta.x]")?.contains("content.<field>") == true)
    }
}
