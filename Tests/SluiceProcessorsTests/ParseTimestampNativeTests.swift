import Glibc
import SluiceCore
import SluiceTesting
import Testing

/// Golden cases for processor_parse_timestamp_native (reference §1.5). Times are built around
/// now, because the incumbent drops events more than 12 hours old.
@Suite struct ParseTimestampNativeTests {
    /// `t` (Unix seconds) formatted with strftime in UTC.
    static func utc(_ t: Int64, _ format: String) -> String {
        var tt = time_t(t)
        var tm = Glibc.tm()
        gmtime_r(&tt, &tm)
        var buf = [CChar](repeating: 0, count: 128)
        let n = strftime(&buf, buf.count, format, &tm)
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static let now = Int64(time(nil)) - 3600

    static func harness(_ format: String, zone: String = "GMT+00:00", extra: String = "") throws -> ProcessorHarness {
        try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: '([^|]*)\\|(.*)'
            Keys: [time, msg]
          - Type: processor_parse_timestamp_native
            SourceKey: time
            SourceFormat: '\(format)'
            SourceTimezone: '\(zone)'
        \(extra)
        """)
    }

    @Test func setsTheEventTimeAndKeepsTheField() throws {
        let h = try Self.harness("%Y-%m-%d %H:%M:%S")
        let text = Self.utc(Self.now, "%Y-%m-%d %H:%M:%S")
        let b = h.batch([text + "|hello"])
        #expect(b.events.count == 1)
        #expect(b.events[0].timeNanos == Self.now * 1_000_000_000)
        #expect(h.encode(b)[0].contains("\"time\":\"\(text)\""))
        #expect(h.encode(b)[0].hasSuffix("\"__time__\":\(Self.now)}"))
    }

    @Test("Repeated time text is parsed once per run of equal values: every event gets its own text's time, failures are counted per event")
    func repeatedValuesReuseTheResult() throws {
        let h = try Self.harness("%Y-%m-%d %H:%M:%S")
        let a = Self.utc(Self.now, "%Y-%m-%d %H:%M:%S"), b = Self.utc(Self.now + 1, "%Y-%m-%d %H:%M:%S")
        // A longer text that starts like `a` (its extra digit is input left after the format, which
        // is allowed), then back to `a`; a bad value twice in a row.
        let lines = [a, a, b, b, a + "9", a, "bad", "bad", a].map { $0 + "|x" }
        let out = h.batch(lines)
        let t = Self.now * 1_000_000_000
        #expect(out.events.map(\.timeNanos) == [t, t, t + 1_000_000_000, t + 1_000_000_000, t, t, 0, 0, t])
        #expect(h.metrics(1).parseFailures.current == 2, "both bad values")
    }

    @Test func fractionsBecomeNanoseconds() throws {
        let h = try Self.harness("%Y-%m-%dT%H:%M:%S.%f")
        let b = h.batch([Self.utc(Self.now, "%Y-%m-%dT%H:%M:%S") + ".123456|x"])
        #expect(b.events[0].timeNanos == Self.now * 1_000_000_000 + 123_456_000)
    }

    @Test func theTimezoneShiftsTheResult() throws {
        let h = try Self.harness("%d/%b/%Y:%H:%M:%S", zone: "GMT+08:00")
        // The wall-clock text of `now` in UTC+8.
        let b = h.batch([Self.utc(Self.now + 8 * 3600, "%d/%b/%Y:%H:%M:%S") + "|x"])
        #expect(b.events[0].timeNanos == Self.now * 1_000_000_000)
    }

    @Test func epochSecondsAloneWithAFraction() throws {
        let h = try Self.harness("%s")
        let b = h.batch(["\(Self.now)250|x"])
        #expect(b.events[0].timeNanos == Self.now * 1_000_000_000 + 250_000_000)
    }

    @Test func twelveHourClock() throws {
        let h = try Self.harness("%Y-%m-%d %I:%M:%S %p")
        let b = h.batch([Self.utc(Self.now, "%Y-%m-%d %I:%M:%S %p") + "|x"])
        #expect(b.events[0].timeNanos == Self.now * 1_000_000_000)
    }

    @Test func trailingInputIsAllowedAndFormatSpacesMatchAnyRun() throws {
        let h = try Self.harness("%Y-%m-%d %H:%M")
        let b = h.batch([Self.utc(Self.now, "%Y-%m-%d   %H:%M") + ":59|x"])
        #expect(b.events.count == 1)
        #expect(b.events[0].timeNanos / 1_000_000_000 / 60 == Self.now / 60)
    }

    @Test func aValueThatDoesNotParseLeavesTheEvent() throws {
        let h = try Self.harness("%Y-%m-%d %H:%M:%S")
        let b = h.batch(["yesterday-ish|x"])
        #expect(b.events.count == 1)
        #expect(b.events[0].timeNanos == 0)
        #expect(h.metrics(1).parseFailures.current == 1)
    }

    @Test func oldOrPreEpochTimesDropTheEvent() throws {
        let h = try Self.harness("%Y-%m-%d %H:%M:%S")
        let b = h.batch([Self.utc(Self.now - 13 * 3600, "%Y-%m-%d %H:%M:%S") + "|old", "1969-12-31 23:00:00|x"])
        #expect(b.events.isEmpty)
        #expect(h.metrics(1).discardedByReason["old_timestamp"] == 2)
    }

    @Test func sourceYearZeroGuessesTheYearAndMinusOneDrops() throws {
        let guess = try Self.harness("%b %d %H:%M:%S", extra: "    SourceYear: 0")
        let b = guess.batch([Self.utc(Self.now, "%b %d %H:%M:%S") + "|x"])
        #expect(b.events[0].timeNanos == Self.now * 1_000_000_000)
        let none = try Self.harness("%b %d %H:%M:%S")
        #expect(none.batch([Self.utc(Self.now, "%b %d %H:%M:%S") + "|x"]).events.isEmpty)
    }

    @Test func configErrors() {
        func message(_ yaml: String) -> String {
            do { _ = try ProcessorHarness(yaml); return "" } catch { return "\(error)" }
        }
        #expect(message("  - Type: processor_parse_timestamp_native\n    SourceKey: t\n    SourceFormat: '%Y %Q'").contains("unknown directive %Q"))
        #expect(message("  - Type: processor_parse_timestamp_native\n    SourceKey: t\n    SourceFormat: '%Y %s'").contains("%s works only"))
        #expect(message("  - Type: processor_parse_timestamp_native\n    SourceKey: t\n    SourceFormat: '%Y'\n    SourceTimezone: UTC+8").contains("processors[0].SourceTimezone"))
        #expect(message("  - Type: processor_parse_timestamp_native\n    SourceKey: t").contains("SourceFormat is required"))
    }
}
