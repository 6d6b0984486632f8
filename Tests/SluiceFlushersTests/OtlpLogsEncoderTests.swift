import CJSONText
import NIOCore
import SluiceCore
@testable import SluiceFlushers
import SluiceTesting
import SwiftProtobuf
import Testing

/// `OtlpLogsEncoder` writes the bytes SwiftProtobuf writes for `FlusherOtlp.resourceLogs`' messages.
@Suite struct OtlpLogsEncoderTests {
    /// Gives event `i` of `b` the fields `pairs` (key, value, deleted).
    func parse(_ b: inout EventBatch, _ i: Int, _ pairs: [(String, String, Bool)], time: Int64 = 0) {
        let start = b.fields.count
        for (k, v, deleted) in pairs {
            let ks = b.append(bytes: Array(k.utf8)), vs = b.append(bytes: Array(v.utf8))
            b.fields.append(EventField(key: ks, value: vs, kind: deleted ? .deleted : .string))
        }
        b.events[i].fieldStart = UInt32(start)
        b.events[i].fieldCount = UInt32(pairs.count)
        b.events[i].flags |= LogEvent.Flag.parsed
        b.events[i].timeNanos = time
    }

    @Test func directEncodingIsSwiftProtobufs() async throws {
        let f = try makeFlusher(FlusherOtlp.self, "Logs:\n    Endpoint: 127.0.0.1:9\n")
        let tb = TestBatches()
        let tags = [EventTag("__path__", "/var/log/ü.log"), EventTag("__hostname__", "node-1"), EventTag("__tag__:team", ""), EventTag("", "no name")]
        // Lines around the varint length steps, empty, CJK and emoji.
        let lengths = [0, 1, 127, 128, 300, 16_383, 16_384, 70_000]
        var plain = tb.batch(0, lengths.map { String(repeating: "x", count: $0) } + ["日志 ü 😀"], tags: tags)
        plain.events[1].timeNanos = 1_600_000_000_123_456_789
        plain.events[2].timeNanos = -5  // before 1970: no time written
        let bare = tb.batch(1, ["no tags", ""])
        var parsed = tb.batch(2, ["a", "b", "c", "d", "e", "f"], tags: tags)
        parse(&parsed, 0, [("content", "payment failed", false), ("level", "ERROR", false), ("thread", "main", false), ("gone", "x", true)], time: 7)
        parse(&parsed, 1, [("content", "first", false), ("level", "", false), ("content", "", false), ("", "empty key", false), ("k", "", false)])
        parse(&parsed, 2, [("only", "attributes", false), ("level", "WARN", false), ("level", "INFO", false)])
        parse(&parsed, 3, [("gone", "x", true)])  // every field removed: no record
        parse(&parsed, 4, [("content", String(repeating: "é", count: 100), false), ("ключ", "значение", false)])
        let batches = [plain, bare, parsed]

        let request = try await f.makeRequest(batches)
        await f.stop()
        let mine = Array(request.body.readableBytesView)
        let decoded = try Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest(serializedBytes: mine)
        let observed = try #require(decoded.resourceLogs.first?.scopeLogs.first?.logRecords.first?.observedTimeUnixNano)
        var expected = Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest()
        expected.resourceLogs = batches.map { f.resourceLogs($0, observed: observed) }
        let theirs: [UInt8] = try expected.serializedBytes()
        #expect(mine.count == theirs.count)
        let first = zip(mine, theirs).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1
        #expect(mine == theirs, "first difference at byte \(first)")
        #expect(decoded == expected)
        #expect(decoded.resourceLogs[2].scopeLogs[0].logRecords.count == 5, "the event whose fields were all removed is not written")
    }

    @Test func bytesThatAreNotUTF8GoThroughTheMessagesReplaced() async throws {
        let f = try makeFlusher(FlusherOtlp.self, "Logs:\n    Endpoint: 127.0.0.1:9\n")
        let tb = TestBatches()
        var bad = tb.batch(0, ["ok", "bad"], tags: [EventTag("__path__", "/p")])
        bad.arena[2] = 0xFF  // "bad" → "\u{FFFD}ad"
        let good = tb.batch(1, ["fine"])
        let request = try await f.makeRequest([good, bad])
        await f.stop()
        let decoded = try Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest(serializedBytes: Array(request.body.readableBytesView))
        #expect(decoded.resourceLogs.count == 2)
        #expect(decoded.resourceLogs[0].scopeLogs[0].logRecords.map(\.body.stringValue) == ["fine"])
        #expect(decoded.resourceLogs[1].scopeLogs[0].logRecords.map(\.body.stringValue) == ["ok", "\u{FFFD}ad"])
        #expect(request.eventCount == 3)
    }

    @Test func theUTF8CheckAgreesWithSwifts() {
        var rng = SystemRandomNumberGenerator()
        let pieces: [[UInt8]] = [[0x61], [0x22], [0xC3, 0xA9], [0xE6, 0x97, 0xA5], [0xF0, 0x9F, 0x98, 0x80], [0xED, 0xA0, 0x80],
                                 [0xC0, 0xAF], [0xE4, 0xB8], [0x80], [0xFF], [0xF4, 0x90, 0x80, 0x80], [0xE0, 0x80, 0x80]]
        for round in 0..<20_000 {
            var b: [UInt8] = []
            for _ in 0..<Int.random(in: 0...40, using: &rng) {
                // Mostly ASCII runs, so that the sixteen-byte step is taken too.
                b += round % 2 == 0 && Bool.random(using: &rng) ? Array(repeating: 0x62, count: 17) : pieces.randomElement(using: &rng)!
            }
            let valid = b.withUnsafeBufferPointer { sluice_utf8_valid_length($0.baseAddress ?? UnsafePointer(bitPattern: 1)!, $0.count) }
            #expect((valid == b.count) == (String(validating: b, as: UTF8.self) != nil), "\(b)")
            // The valid prefix ends where Swift's decoding first replaces something.
            #expect(String(validating: b[..<valid], as: UTF8.self) != nil, "\(b)")
            if valid < b.count {
                let next = b[valid...].prefix(4)
                #expect(next.first! >= 0x80 && String(validating: b[..<(valid + next.count)], as: UTF8.self) == nil, "\(b)")
            }
        }
    }
}
