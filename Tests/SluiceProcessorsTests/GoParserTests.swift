import Glibc
import SluiceCore
import SluiceTesting
import Testing

/// Golden cases for the Go parsers ported from the incumbent's code (reference §2, §7 items 2–4)
/// and the apsara parser (§1.4).
@Suite struct GoParserTests {
    @Test func processorRegexSearchesByDefaultAndKeepsTheSourceOnFailure() throws {
        let h = try ProcessorHarness("""
          - Type: processor_regex
            SourceKey: content
            Regex: (\\w+)=(\\d+)
            Keys: [k, v]
        """)
        // A search: text around the match is fine; the source goes on success, stays on failure.
        #expect(h.run(["x a=1 y", "nothing"]) == [#"{"k":"a","v":"1"}"#, #"{"content":"nothing"}"#])
        #expect(h.metrics().parseFailures.current == 1)
    }

    @Test func processorRegexFullMatchAndSkippedGroups() throws {
        let full = try ProcessorHarness("""
          - Type: processor_regex
            SourceKey: content
            Regex: (\\w+)=(\\d+)
            Keys: [k, v]
            FullMatch: true
            KeepSourceIfParseError: false
        """)
        #expect(full.run(["x a=1", "a=1"]) == [#"{"k":"a","v":"1"}"#])
        let optional = try ProcessorHarness("""
          - Type: processor_regex
            Regex: '(\\w+)(?:=(\\d+))?'
            Keys: [k, v]
            KeepSource: true
        """)
        // Empty SourceKey: the first field; a group that took no part adds no field.
        #expect(optional.run(["abc"]) == [#"{"content":"abc","k":"abc"}"#])
    }

    @Test func processorJsonFlattensWithTheConnectorAsTheCodeDoes() throws {
        let h = try ProcessorHarness("""
          - Type: processor_json
            SourceKey: content
        """)
        // Code defaults: connector `_` also before top-level keys, source kept, values' JSON text kept.
        #expect(h.run([#"{"a":1,"b":{"c":"x\"y","d":[1,2]},"e":null}"#])
            == [#"{"content":"{\"a\":1,\"b\":{\"c\":\"x\\\"y\",\"d\":[1,2]},\"e\":null}","_a":"1","_b_c":"x\"y","_b_d":"[1,2]","_e":"null"}"#])
    }

    @Test func processorJsonOptions() throws {
        let h = try ProcessorHarness("""
          - Type: processor_json
            SourceKey: content
            KeepSource: false
            IgnoreFirstConnector: true
            ExpandConnector: "."
            ExpandDepth: 1
            Prefix: "p_"
        """)
        #expect(h.run([#"{"a":{"b":1},"c":"d"}"#]) == [#"{"p_a":"{\"b\":1}","p_c":"d"}"#])
        let arrays = try ProcessorHarness("""
          - Type: processor_json
            SourceKey: content
            KeepSource: false
            IgnoreFirstConnector: true
            ExpandArray: true
        """)
        #expect(arrays.run([#"{"a":[1,{"b":2}]}"#]) == [#"{"a[0]":"1","a[1]_b":"2"}"#])
        // Not JSON: the source stays (KeepSourceIfParseError) and the failure is counted.
        #expect(arrays.run(["nope"]) == [#"{"content":"nope"}"#])
    }

    @Test func processorGrokWithTheStandardPatterns() throws {
        let h = try ProcessorHarness("""
          - Type: processor_grok
            Match:
              - '%{IP:client} %{WORD:method} %{URIPATHPARAM:request} %{NUMBER:bytes} %{NUMBER:duration}'
            KeepSource: false
        """)
        #expect(h.run(["55.3.244.1 GET /index.html 15824 0.043"])
            == [#"{"client":"55.3.244.1","method":"GET","request":"/index.html","bytes":"15824","duration":"0.043"}"#])
        // No match: the source is kept (IgnoreParseFailure) and counted.
        #expect(h.run(["???"]) == [#"{"content":"???"}"#])
        #expect(h.metrics().parseFailures.current == 1)
    }

    @Test func processorGrokFirstCapturingExpressionWinsAndCustomPatterns() throws {
        let h = try ProcessorHarness("""
          - Type: processor_grok
            CustomPatterns:
              MYID: 'id-[0-9]+'
            Match:
              - 'user=%{WORD:user}'
              - '%{MYID:id}'
            KeepSource: false
        """)
        #expect(h.run(["see id-42 here", "user=bob id-1"]) == [#"{"id":"id-42"}"#, #"{"user":"bob"}"#])
    }

    @Test func processorGrokConfigErrors() {
        func message(_ yaml: String) -> String {
            do { _ = try ProcessorHarness(yaml); return "" } catch { return "\(error)" }
        }
        #expect(message("  - Type: processor_grok\n    Match: ['%{NOPE:x}']").contains("unknown grok pattern %{NOPE}"))
        #expect(message("  - Type: processor_grok\n    Match: ['%{WORD:x']").contains("unclosed"))
        #expect(message("  - Type: processor_grok").contains("Match is required"))
    }

    @Test func processorStrptimeUsesANumericZoneFromTheText() throws {
        let h = try ProcessorHarness("""
          - Type: processor_strptime
            SourceKey: content
            Format: '%Y-%m-%dT%H:%M:%S%z'
            EnablePreciseTimestamp: true
        """)
        let b = h.batch(["2024-05-01T10:00:00+02:00"])
        #expect(b.events[0].timeNanos == 1_714_550_400 * 1_000_000_000)
        #expect(h.encode(b)[0].contains(#""precise_timestamp":"1714550400000""#))
        let adjusted = try ProcessorHarness("""
          - Type: processor_strptime
            SourceKey: content
            Format: '%Y-%m-%d %H:%M:%S'
            AdjustUTCOffset: true
            UTCOffset: 3600
            KeepSource: false
        """)
        let a = adjusted.batch(["2024-05-01 10:00:00"])
        #expect(a.events[0].timeNanos == 1_714_554_000 * 1_000_000_000)
        // The source was the only field: with KeepSource false the event has nothing left to write.
        #expect(adjusted.encode(a).isEmpty)
    }

    @Test func apsaraLines() throws {
        let h = try ProcessorHarness("""
          - Type: processor_parse_apsara_native
            SourceKey: content
            Timezone: GMT+00:00
        """)
        let now = Int64(time(nil)) - 60
        let b = h.batch(["[\(now).123456]\t[INFO]\t[1234]\t[/build/a.cpp:42]\tkey:value\tother:a:b\tnocolon"])
        #expect(b.events.count == 1)
        #expect(b.events[0].timeNanos == now * 1_000_000_000 + 123_456_000)
        let line = h.encode(b)[0]
        #expect(line.hasPrefix(#"{"__LEVEL__":"INFO","__THREAD__":"1234","__FILE__":"/build/a.cpp","__LINE__":"42","key":"value","other":"a:b","microtime":"\#(now)123456""#))
        // No bracket: a parse failure, dropped by default; a time 13 hours old: dropped.
        #expect(h.run(["plain line", "[\(now - 13 * 3600)]\t[INFO]"]).isEmpty)
        #expect(h.metrics().discardedByReason["old_timestamp"] == 1)
        #expect(h.metrics().discardedByReason["parse_failure"] == 1)
        // Seconds of 19, 20 and 40 digits (the 20-digit one used to overflow Int64 and trap): failures, counted.
        #expect(h.run(["[1234567890123456789]\t[INFO]\tx", "[12345678901234567890]\t[INFO]\tx",
                       "[1\(String(repeating: "9", count: 39)).5]\t[INFO]\tx"]).isEmpty)
        #expect(h.metrics().discardedByReason["parse_failure"] == 4)
    }
}
