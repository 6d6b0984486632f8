import Glibc
import SluiceConfig
import SluiceCore
import SluiceSystem

/// `processor_parse_timestamp_native`: sets the event time from a field parsed with
/// `SourceFormat` [LC core/plugin/processor/ProcessorParseTimestampNative.cpp]. The field stays.
/// A value that does not parse leaves the event as it was (counted); a result at or before the
/// epoch, or more than 12 hours old (the incumbent's `ilogtail_discard_interval`), drops the event.
public final class ProcessorParseTimestampNative: ProcessorPlugin {
    public struct Options: Sendable {
        public var sourceKey: String
        public var format: StrptimeFormat
        /// Seconds east of UTC; nil: the host's local zone.
        public var timezoneOffset: Int?
        public var sourceYear: Int
    }

    /// The incumbent's `ilogtail_discard_interval`: older events are dropped.
    public static let discardIntervalSeconds: Int64 = 43_200

    public static let spec = PluginSpec(
        type: "processor_parse_timestamp_native", kind: .processor,
        summary: "Sets the event time from a field, parsed with a strptime format (`%f` for fractions of a second). The field is kept.",
        fields: [
            FieldSpec(name: "SourceKey", type: .string, doc: "The field holding the time. Required.", defaultValue: nil),
            FieldSpec(name: "SourceFormat", type: .string, doc: "strptime directives (`%Y-%m-%d %H:%M:%S.%f`, `%d/%b/%Y:%H:%M:%S`, `%s` alone for epoch seconds, ...). Required. `%z`/`%Z` are read but, as in iLogtail, do not set the zone: use `SourceTimezone`.", defaultValue: nil),
            FieldSpec(name: "SourceTimezone", type: .string, doc: "`GMT+HH:MM` or `GMT-HH:MM`; empty: the host's zone.", defaultValue: nil),
            FieldSpec(name: "SourceYear", type: .int, doc: "For formats without a year: `0` guesses the current year (across New Year), a positive value is used as the year, `-1` sets none (such events end up before the epoch and are dropped, as in iLogtail).", defaultValue: "-1"),
        ])

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        let sourceKey = try c.requiredString("SourceKey")
        let formatText = try c.requiredString("SourceFormat")
        let format: StrptimeFormat
        do { format = try StrptimeFormat(formatText) } catch { throw c.error(at: "SourceFormat", error.message) }
        var offset: Int? = nil
        if let tz = try c.string("SourceTimezone"), !tz.isEmpty {
            guard let o = parseZone(tz) else { throw c.error(at: "SourceTimezone", "expected GMT+HH:MM or GMT-HH:MM, found \"\(tz)\"") }
            offset = o
        }
        return Options(sourceKey: sourceKey, format: format, timezoneOffset: offset, sourceYear: try c.int("SourceYear") ?? -1)
    }

    /// `GMT+08:00` → 28800.
    static func parseZone(_ s: String) -> Int? {
        let b = Array(s.utf8)
        guard b.count == 9, s.hasPrefix("GMT"), b[3] == UInt8(ascii: "+") || b[3] == UInt8(ascii: "-"), b[6] == UInt8(ascii: ":") else { return nil }
        func two(_ i: Int) -> Int? {
            guard b[i] >= 0x30 && b[i] <= 0x39 && b[i + 1] >= 0x30 && b[i + 1] <= 0x39 else { return nil }
            return Int(b[i] - 0x30) * 10 + Int(b[i + 1] - 0x30)
        }
        guard let h = two(4), let m = two(7), h <= 14, m < 60 else { return nil }
        return (b[3] == UInt8(ascii: "-") ? -1 : 1) * (h * 3600 + m * 60)
    }

    /// The host zone's offset now, seconds east of UTC.
    static func localOffset() -> Int {
        var t = time(nil)
        var tm = Glibc.tm()
        localtime_r(&t, &tm)
        return tm.tm_gmtoff
    }

    let options: Options
    let metrics: ComponentMetrics
    let key: [UInt8]
    let offset: Int

    public init(options: Options, context: PluginContext) {
        self.options = options
        metrics = context.metrics
        key = Array(options.sourceKey.utf8)
        offset = options.timezoneOffset ?? ProcessorParseTimestampNative.localOffset()
    }

    public func process(_ batch: inout EventBatch) {
        let now = Sys.wallSeconds()
        var failed = 0
        var old = 0
        // Taken out of the batch while it is rewritten: a second reference would make the first
        // write copy the whole array.
        var events: [LogEvent] = []
        swap(&events, &batch.events)
        var kept = 0
        // The previous value and its result: lines of one second share their time text, and the
        // result depends only on the text (`now` is fixed for the batch), so it is parsed once.
        var lastValue = Span.empty
        var lastResult: (seconds: Int64, nanos: Int)? = nil
        batch.arena.withUnsafeBufferPointer { a in
            let arena = a.baseAddress ?? UnsafePointer(bitPattern: 1)!
            for i in events.indices {
                var ev = events[i]
                if let f = batch.value(of: ev, key: key, arena: arena) {
                    let p = arena + Int(f.value.offset), n = Int(f.value.length)
                    let same = lastValue.length > 0 && n == Int(lastValue.length) && memcmp(p, arena + Int(lastValue.offset), n) == 0
                    if !same {
                        lastResult = seconds(p, n, now: now)
                        lastValue = f.value
                    }
                    if let t = lastResult {
                        if t.seconds <= 0 || t.seconds < now - ProcessorParseTimestampNative.discardIntervalSeconds {
                            old += 1
                            continue
                        }
                        // A time past 2262 has no Int64 nanoseconds: a parse failure, not a trap.
                        let (scaled, o1) = t.seconds.multipliedReportingOverflow(by: 1_000_000_000)
                        let (ns, o2) = scaled.addingReportingOverflow(Int64(t.nanos))
                        if o1 || o2 { failed += 1 } else { ev.timeNanos = ns }
                    } else {
                        failed += 1
                    }
                }
                events[kept] = ev
                kept += 1
            }
        }
        events.removeSubrange(kept..<events.count)
        batch.events = events
        metrics.parseFailures.add(failed)
        metrics.discarded(old, reason: "old_timestamp")
    }

    /// Unix seconds and nanoseconds of a value, or nil when it does not follow the format.
    func seconds(_ p: UnsafePointer<UInt8>, _ n: Int, now: Int64) -> (seconds: Int64, nanos: Int)? {
        guard let r = options.format.parse(p, n) else { return nil }
        if let e = r.epochSeconds { return (e, r.nanos) }
        var year: Int
        var month = r.month
        var day = r.day
        if let y = r.year {
            year = y
        } else if options.sourceYear > 0 {
            year = options.sourceYear
        } else if options.sourceYear == 0 {
            let today = CivilTime.date(now + Int64(offset))
            year = today.year
            if month == 12 && today.month == 1 { year -= 1 }
            if month == 1 && today.month == 12 { year += 1 }
        } else {
            year = 1900
        }
        if let yd = r.yearDay, !r.monthSet && !r.daySet { (month, day) = CivilTime.monthDay(year: year, yearDay: yd) }
        let days = Int64(CivilTime.days(year: year, month: month, day: day))
        let secs = days * 86400 + Int64(r.hour * 3600 + r.minute * 60 + r.second) - Int64(offset)
        return (secs, r.nanos)
    }
}
