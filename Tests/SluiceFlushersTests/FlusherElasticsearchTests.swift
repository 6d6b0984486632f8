import Foundation
import SluiceCore
@testable import SluiceFlushers
import SluiceTesting
import Testing

/// flusher_elasticsearch: item-by-item outcomes against a scripted receiver, and the real bulk
/// protocol against osmem-server (OpenSearch-compatible).
@Suite(.serialized) struct FlusherElasticsearchTests {
    /// The `(action, document)` pairs of a `_bulk` body.
    func items(_ body: String) -> [(action: [String: Any], doc: [String: Any])] {
        let lines = body.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        return stride(from: 0, to: lines.count - 1, by: 2).map { (lines[$0], lines[$0 + 1]) }
    }

    func line(_ doc: [String: Any]) -> String { ((doc["contents"] as? [String: Any])?["content"] as? String) ?? "" }

    @Test func mixedItemResultsRetryOnlyTheTransientOnes() async throws {
        // First answer: item 0 created, 1 a 409 duplicate, 2 a 429, 3 a mapping error (400), 4 a 503.
        let r = try await HTTPTestReceiver { req, n in
            guard n == 0 else {
                let count = req.bodyText.split(separator: "\n").count / 2
                return .init(status: 200, body: #"{"errors":false,"items":["# + Array(repeating: #"{"index":{"status":201}}"#, count: count).joined(separator: ",") + "]}")
            }
            return .init(status: 200, body: #"{"took":3,"errors":true,"items":[{"index":{"status":201}},{"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}},{"index":{"status":429,"error":"too many"}},{"index":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"bad field"}}},{"index":{"status":503}}]}"#)
        }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherElasticsearch.self, "Addresses: [\(r.url)]\nIndex: logs-%{+yyyy}\nConcurrency: 1")
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 5, per: 5)
        let ctx = await drive(f, batches)
        #expect(tb.statuses(of: 0) == [.rejected], "one item was refused for good")
        let reqs = r.requests
        #expect(reqs.count == 2)
        #expect(reqs[0].uri.hasPrefix("/_bulk"))
        #expect(reqs[0].header("Content-Type") == "application/x-ndjson")
        let first = items(reqs[0].bodyText)
        #expect(first.map { line($0.doc) } == lines)
        #expect((first[0].action["index"] as? [String: Any])?["_index"] as? String == "logs-\(Calendar(identifier: .gregorian).component(.year, from: Date()))")
        #expect(items(reqs[1].bodyText).map { line($0.doc) } == [lines[2], lines[4]], "only the 429 and 503 items are sent again")
        #expect(ctx.metrics.discardedByReason["rejected"] == 1)
        #expect(ctx.metrics.sentEvents.current == 4)
    }

    /// Events with nothing to write are counted sent with their request, not lost from the
    /// counts; a retried part does not count them again.
    @Test func eventsWithNothingToWriteAreCountedSentOnce() async throws {
        let r = try await HTTPTestReceiver { req, n in
            let count = req.bodyText.split(separator: "\n").count / 2
            let status = n == 0 ? 503 : 201
            return .init(status: 200, body: #"{"errors":\#(n == 0),"items":["# + Array(repeating: #"{"index":{"status":\#(status)}}"#, count: count).joined(separator: ",") + "]}")
        }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherElasticsearch.self, "Addresses: [\(r.url)]\nIndex: logs\nConcurrency: 1")
        let tb = TestBatches()
        var b = tb.batch(0, ["a", "b", "c", "d"])
        removeAllFields(&b, 0)
        removeAllFields(&b, 2)
        let ctx = await drive(f, [b])
        #expect(tb.statuses(of: 0) == [.delivered])
        #expect(ctx.metrics.receivedEvents.current == 4)
        #expect(ctx.metrics.sentEvents.current == 4)
        #expect(r.requestCount == 2, "all items retried once (503)")
    }

    @Test func aFullRequestsStoreIsKeptForTheNextRequest() async throws {
        // 5 MiB of input (MaxBulkBytes): its store is 16 MiB once NIO rounds it up. It used not to
        // be kept (over the pool's largest), so every request got a store faulted in page by page.
        let f = try makeFlusher(FlusherElasticsearch.self, "Addresses: [http://127.0.0.1:9]\nIndex: x")
        let line = String(repeating: "x", count: 99)
        let batch = lineBatch(Array(repeating: line, count: 52_000), observedNanos: 1_700_000_000_000_000_000)
        #expect(batch.arena.count > 5_000_000)
        var request: BulkRequest? = try? await f.makeRequest([batch])
        let capacity = request?.store.bytes.capacity ?? 0
        let first = request?.store.bytes.withVeryUnsafeBytes { UnsafeRawPointer($0.baseAddress) }
        let kept = f.stores.keptBytes
        request = nil
        let second = try? await f.makeRequest([batch])
        await f.stop()
        #expect(capacity > 15 << 20)
        #expect(kept == capacity)
        #expect(first != nil && second?.store.bytes.withVeryUnsafeBytes { UnsafeRawPointer($0.baseAddress) } == first, "the same store again")
    }

    @Test func a413SplitsTheRequest() async throws {
        let r = try await HTTPTestReceiver { req, _ in
            let count = req.bodyText.split(separator: "\n").count / 2
            if count > 2 { return .init(status: 413, body: "too large") }
            return .init(status: 200, body: #"{"errors":false,"items":[]}"#)
        }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherElasticsearch.self, "Addresses: [\(r.url)]\nIndex: x\nConcurrency: 1")
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 8, per: 8)
        await drive(f, batches)
        #expect(tb.statuses(of: 0) == [.delivered])
        let accepted = r.requests.filter { $0.bodyText.split(separator: "\n").count <= 4 }
        #expect(accepted.flatMap { items($0.bodyText).map { line($0.doc) } }.sorted() == lines.sorted())
    }

    @Test func generatedIdsAreStableAcrossRetries() async throws {
        let r = try await HTTPTestReceiver { _, n in n == 0 ? .init(status: 502) : .init(status: 200, body: #"{"errors":false}"#) }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherElasticsearch.self, "Addresses: [\(r.url)]\nIndex: x\nGenerateId: true\nConcurrency: 1")
        let tb = TestBatches()
        // Equal lines are still distinct documents.
        let batches = [tb.batch(0, ["same", "same", "other"])]
        await drive(f, batches)
        let reqs = r.requests
        #expect(reqs.count == 2)
        let ids = reqs.map { items($0.bodyText).map { ($0.action["create"] as? [String: Any])?["_id"] as? String ?? "" } }
        #expect(ids[0] == ids[1], "a retry sends the same _id")
        #expect(Set(ids[0]).count == 3 && ids[0].allSatisfy { $0.count == 40 })
    }

    /// Lines read from a file are named by the file, their offset and their bytes: read again
    /// (other read sizes, another time) they keep their `_id`; other lines written at the same
    /// offsets after a truncation get their own, so none is taken for a duplicate and lost.
    @Test func fileLinesAreNamedByPlaceAndBytes() async throws {
        let r = try await HTTPTestReceiver { req, _ in
            let count = req.bodyText.split(separator: "\n").count / 2
            return .init(status: 200, body: #"{"errors":false,"items":["# + Array(repeating: #"{"create":{"status":201}}"#, count: count).joined(separator: ",") + "]}")
        }
        defer { Task { await r.stop() } }
        let f = try makeFlusher(FlusherElasticsearch.self, "Addresses: [\(r.url)]\nIndex: x\nGenerateId: true\nConcurrency: 1")
        let tb = TestBatches()
        func fileBatch(_ k: Int, _ lines: [String], at offset: Int64, time: Int64) -> EventBatch {
            var b = tb.batch(k, lines)
            b.sourceKey = 42
            b.sourceOffset = offset
            b.observedNanos = time
            return b
        }
        // Read as one batch of three lines; then again after a crash, in two reads at another
        // time; then what the file held after a truncation: lines as long, at the same offsets.
        let first = fileBatch(0, ["aaaa", "bbbb", "cccc"], at: 0, time: 1)
        let reread = [fileBatch(1, ["aaaa"], at: 0, time: 2), fileBatch(2, ["bbbb", "cccc"], at: 4, time: 3)]
        let truncated = fileBatch(3, ["xxxx", "yyyy", "zzzz"], at: 0, time: 4)
        await drive(f, [first] + reread + [truncated])
        let ids = r.requests.flatMap { items($0.bodyText).map { ($0.action["create"] as? [String: Any])?["_id"] as? String ?? "" } }
        #expect(ids.count == 9)
        #expect(Array(ids[3..<6]) == Array(ids[0..<3]), "a line read again keeps its _id")
        #expect(Set(ids[0..<3]).isDisjoint(with: ids[6..<9]), "other lines at the same offsets get other _ids")
        #expect(Set(ids[6..<9]).count == 3)
    }

    @Test func realBulkServerIndexesEveryLineAndReportsMappingErrors() async throws {
        let server = try #require(try TestServer.openSearch(), "osmem-server is installed by scripts/install-deps.sh")
        defer { server.stop() }
        let f = try makeFlusher(FlusherElasticsearch.self, "Addresses: [\(server.url)]\nIndex: sluice-test\nGenerateId: true\nCompression: gzip\nConvert: {Protocol: custom_single_flatten}")
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 3000, per: 300, tags: [EventTag("__path__", "/var/log/x.log")])
        let ctx = await drive(f, batches)
        for k in batches.indices { #expect(tb.statuses(of: k) == [.delivered]) }
        #expect(ctx.metrics.sentEvents.current == lines.count)
        _ = shell("curl -sf -XPOST '\(server.url)/sluice-test/_refresh' >/dev/null")
        let countFile = "/tmp/sluice-es-count.\(getpid())"
        _ = shell("curl -sf '\(server.url)/sluice-test/_count' > \(countFile)")
        let count = (try? JSONSerialization.jsonObject(with: Data(readFileBytes(countFile))) as? [String: Any])?["count"] as? Int
        unlink(countFile)
        #expect(count == lines.count)

        // Sending the same batches again: every item is a 409 duplicate, counted as delivered, none indexed twice.
        let again = try makeFlusher(FlusherElasticsearch.self, "Addresses: [\(server.url)]\nIndex: sluice-test\nGenerateId: true\nConvert: {Protocol: custom_single_flatten}")
        let tb2 = TestBatches()
        var (batches2, _) = numberedBatches(tb2, 3000, per: 300, tags: [EventTag("__path__", "/var/log/x.log")])
        for k in batches2.indices { batches2[k].observedNanos = batches[k].observedNanos }
        await drive(again, batches2)
        for k in batches2.indices { #expect(tb2.statuses(of: k) == [.delivered]) }
        _ = shell("curl -sf -XPOST '\(server.url)/sluice-test/_refresh' >/dev/null; curl -sf '\(server.url)/sluice-test/_count' > \(countFile)")
        let count2 = (try? JSONSerialization.jsonObject(with: Data(readFileBytes(countFile))) as? [String: Any])?["count"] as? Int
        unlink(countFile)
        #expect(count2 == lines.count, "no document indexed twice")
    }
}
