import Foundation
import NIOCore
import SluiceCore
import SluiceFlushers
import SluiceTesting
import Testing

/// flusher_clickhouse against a real ClickHouse (Debian's clickhouse-server) started by the test.
@Suite(.serialized) struct FlusherClickhouseTests {
    @Test func ilogtailLayoutTablesCreatedAndEveryLineInserted() async throws {
        let ch = try #require(try TestServer.clickhouse(), "clickhouse-server is installed by scripts/install-deps.sh")
        defer { ch.stop() }
        let f = try makeFlusher(FlusherClickhouse.self, "Addresses: [127.0.0.1:\(ch.port)]\nTable: app\nBufferMinTime: 0\nBufferMaxTime: 1\nMaxOpenConns: 2")
        // What the incumbent's users attach: a materialised view from the Null table into storage.
        try await f.start()
        _ = ch.clickhouseQuery("CREATE TABLE default.app_store (_timestamp Int64, _log String) ENGINE = MergeTree ORDER BY _timestamp")
        _ = ch.clickhouseQuery("CREATE MATERIALIZED VIEW default.app_mv TO default.app_store AS SELECT _timestamp, _log FROM default.ilogtail_app")
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 5000, per: 500, tags: [EventTag("__path__", "/var/log/app.log")])
        let ctx = await drive(f, batches)
        for k in batches.indices { #expect(tb.statuses(of: k) == [.delivered]) }
        #expect(ctx.metrics.sentEvents.current == lines.count)
        #expect(waitUntil(timeout: 20, pollMs: 200) { ch.clickhouseQuery("SELECT count() FROM default.app_store").hasPrefix("\(lines.count)") })
        let sample = ch.clickhouseQuery("SELECT _timestamp, _log FROM default.app_store WHERE _log LIKE '%\"line-42\"%'")
        #expect(sample.hasPrefix("1700000000\t"))
        #expect(sample.contains(#"log.file.path"#))
    }

    @Test func jsonEachRowIntoAUserTableAndDataErrorsRejected() async throws {
        let ch = try #require(try TestServer.clickhouse(), "clickhouse-server is installed by scripts/install-deps.sh")
        defer { ch.stop() }
        _ = ch.clickhouseQuery("CREATE TABLE default.rows (content String, time Int64) ENGINE = MergeTree ORDER BY time")
        let f = try makeFlusher(FlusherClickhouse.self, "Addresses: [http://127.0.0.1:\(ch.port)]\nTable: rows\nFormat: JSONEachRow")
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 1000, per: 250)
        await drive(f, batches)
        for k in batches.indices { #expect(tb.statuses(of: k) == [.delivered]) }
        #expect(ch.clickhouseQuery("SELECT count(), uniqExact(content) FROM default.rows") == "\(lines.count)\t\(lines.count)\n")

        // A column whose type the rows cannot fill: the server refuses the data, for good.
        _ = ch.clickhouseQuery("CREATE TABLE default.strict (content Int32) ENGINE = MergeTree ORDER BY content")
        let g = try makeFlusher(FlusherClickhouse.self, "Addresses: [http://127.0.0.1:\(ch.port)]\nTable: strict\nFormat: JSONEachRow")
        let tb2 = TestBatches()
        let ctx = await drive(g, [tb2.batch(0, ["not a number"])])
        #expect(tb2.statuses(of: 0) == [.rejected])
        #expect(ctx.metrics.discardedByReason["rejected"] == 1)

        // A table or database that does not exist (404, Code 60 / 81): rejected as documented,
        // not retried for ever with the inputs held back behind it.
        for (name, target) in [("table", "Table: missing"), ("database", "Authentication: {PlainText: {Database: nodb}}\nTable: rows")] {
            let h = try makeFlusher(FlusherClickhouse.self, "Addresses: [http://127.0.0.1:\(ch.port)]\n\(target)\nFormat: JSONEachRow")
            let tb3 = TestBatches()
            let c3 = await drive(h, [tb3.batch(0, ["x", "y"])])
            #expect(tb3.statuses(of: 0) == [.rejected], "unknown \(name)")
            #expect(c3.metrics.discardedByReason["rejected"] == 2, "unknown \(name)")
        }
    }

    @Test func timestampsAreWholeSecondsRoundedDown() async throws {
        // No server: the rows of the request as made.
        let f = try makeFlusher(FlusherClickhouse.self, "Addresses: [127.0.0.1:9]\nTable: t")
        var b = TestBatches().batch(0, ["a", "b", "c", "d", "e"])
        for (i, ns) in [Int64(0), 1_500_000_000, -1_000_000_000, -1_500_000_000, -1].enumerated() { b.events[i].timeNanos = ns }
        let request = try await f.makeRequest([b])
        await f.stop()
        let rows = String(buffer: request.posts[0].body).split(separator: "\n")
        let stamps = try rows.map { try #require((try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["_timestamp"] as? Int) }
        // No event time: the batch's; -1.5 s is second -2 (as `__time__` counts it), not -1.
        #expect(stamps == [1_700_000_000, 1, -1, -2, -1])
    }

    @Test func aServerThatIsDownHoldsEverythingBack() async throws {
        let port = TestServer.freePort()
        let f = try makeFlusher(FlusherClickhouse.self, "Addresses: [127.0.0.1:\(port)]\nTable: t\nFormat: JSONEachRow")
        let tb = TestBatches()
        let (batches, _) = numberedBatches(tb, 100, per: 10)
        // Nothing listens: sends are retried until the shutdown deadline, then abandoned (read
        // again on the next start); nothing is acknowledged.
        let ctx = await drive(f, batches, cancelAfter: 0.8)
        #expect(ctx.metrics.errors.current > 0)
        for k in batches.indices { #expect(tb.statuses(of: k) == [.abandoned]) }
    }

    @Test func theNativePortIsRefusedWithAHint() {
        #expect(optionsError(FlusherClickhouse.self, "Addresses: [ch:9000]\nTable: t")?.contains("HTTP interface") == true)
        #expect(optionsError(FlusherClickhouse.self, "Addresses: [ch:8123]")?.contains("Table is required") == true)
    }
}
