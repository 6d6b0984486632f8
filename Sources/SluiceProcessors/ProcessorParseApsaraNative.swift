import SluiceConfig
import SluiceCore
import SluiceSystem

/// `processor_parse_apsara_native`: Alibaba's Apsara log format,
/// `[time]\t[LEVEL]\t[thread]\t[file:line]\tk1:v1\tk2:v2...` [LC core/plugin/processor/ProcessorParseApsaraNative.cpp].
/// The first bracket is the time (epoch seconds with a fraction when it starts with `1`, else
/// `%Y-%m-%d %H:%M:%S[.%f]` in `Timezone`), which becomes the event time; later brackets give
/// `__LEVEL__` (A–Z), `__THREAD__` (digits), `__FILE__` / `__LINE__` (with `/` or `.`); each
/// following TAB-separated `key:value` becomes a field (appended, no duplicate check), and
/// `microtime` is the time in microseconds. A time more than 12 hours old drops the event.
public final class ProcessorParseApsaraNative: ProcessorPlugin {
    public struct Options: Sendable, Equatable {
        public var sourceKey: String
        /// Seconds east of UTC; nil: the host's zone.
        public var timezoneOffset: Int?
        public var common: CommonParserOptions
    }

    public static let spec = PluginSpec(
        type: "processor_parse_apsara_native", kind: .processor,
        summary: "Parses Apsara-format lines (`[time]\\t[LEVEL]\\t[thread]\\t[file:line]\\tkey:value...`) and sets the event time.",
        fields: [
            mandatorySourceKey,
            FieldSpec(name: "Timezone", type: .string, doc: "`GMT+HH:MM` / `GMT-HH:MM` for times that are not epoch seconds; empty: the host's zone.", defaultValue: nil),
        ] + CommonParserOptions.fields)

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        var offset: Int? = nil
        if let tz = try c.string("Timezone"), !tz.isEmpty {
            guard let o = ProcessorParseTimestampNative.parseZone(tz) else { throw c.error(at: "Timezone", "expected GMT+HH:MM or GMT-HH:MM, found \"\(tz)\"") }
            offset = o
        }
        return Options(sourceKey: try c.requiredString("SourceKey"), timezoneOffset: offset, common: try CommonParserOptions.from(c))
    }

    let options: Options
    let driver: ParserDriver
    let metrics: ComponentMetrics
    let offset: Int

    public init(options: Options, context: PluginContext) {
        self.options = options
        driver = ParserDriver(sourceKey: options.sourceKey, common: options.common)
        metrics = context.metrics
        offset = options.timezoneOffset ?? ProcessorParseTimestampNative.localOffset()
    }

    public func process(_ batch: inout EventBatch) {
        var parser = ApsaraParser(offset: offset, now: Sys.wallSeconds())
        metrics.record(driver.run(&batch, &parser, fieldsPerEvent: 10))
    }
}

struct ApsaraParser: FieldParser {
    static let format = try! StrptimeFormat("%Y-%m-%d %H:%M:%S")
    let offset: Int
    let now: Int64
    var time: Int64? = nil
    var level = Span.empty, thread = Span.empty, file = Span.empty, line = Span.empty, microtime = Span.empty

    init(offset: Int, now: Int64) {
        self.offset = offset
        self.now = now
    }

    var overwrites: Bool { false }

    mutating func takeEventTime() -> Int64? {
        defer { time = nil }
        return time
    }

    mutating func prepare(_ w: inout FieldWriter) {
        level = w.intern("__LEVEL__")
        thread = w.intern("__THREAD__")
        file = w.intern("__FILE__")
        line = w.intern("__LINE__")
        microtime = w.intern("microtime")
    }

    mutating func parse(_ p: UnsafePointer<UInt8>, _ n: Int, value: Span, _ w: inout FieldWriter, out: FieldScratch, arena: UnsafePointer<UInt8>) -> ParseResult {
        let base = Int(value.offset)
        guard n > 0, p[0] == UInt8(ascii: "[") else { return .failed }
        guard let close = Self.index(of: UInt8(ascii: "]"), p, 1, n) else { return .failed }
        guard let (secs, micros) = time(p + 1, close - 1) else { return .failed }
        if secs <= 0 || secs < now - ProcessorParseTimestampNative.discardIntervalSeconds { return .discard }
        var i = close + 1
        // Bracketed base fields.
        while true {
            while i < n && p[i] == 0x09 { i += 1 }
            guard i < n, p[i] == UInt8(ascii: "[") else { break }
            guard let e = Self.index(of: UInt8(ascii: "]"), p, i + 1, n) else { break }
            let s = i + 1
            var upper = e > s, digits = e > s, path = false
            var colon: Int? = nil
            for k in s..<e {
                let c = p[k]
                if !(c >= 0x41 && c <= 0x5A) { upper = false }
                if !(c >= 0x30 && c <= 0x39) { digits = false }
                if c == UInt8(ascii: "/") || c == UInt8(ascii: ".") { path = true }
                if c == UInt8(ascii: ":") && colon == nil { colon = k }
            }
            if upper {
                out.append(EventField(key: level, value: Span(base + s, e - s)))
            } else if digits {
                out.append(EventField(key: thread, value: Span(base + s, e - s)))
            } else if path {
                if let c = colon {
                    out.append(EventField(key: file, value: Span(base + s, c - s)))
                    out.append(EventField(key: line, value: Span(base + c + 1, e - c - 1)))
                } else {
                    out.append(EventField(key: file, value: Span(base + s, e - s)))
                }
            }
            i = e + 1
        }
        // TAB-separated key:value chunks.
        while i < n {
            let end = Self.index(of: 0x09, p, i, n) ?? n
            if let c = Self.index(of: UInt8(ascii: ":"), p, i, end) {
                out.append(EventField(key: Span(base + i, c - i), value: Span(base + c + 1, end - c - 1)))
            }
            i = end + 1
        }
        // A time past 2262 has no Int64 nanoseconds: a parse failure, not a trap.
        let (us, o1) = secs.multipliedReportingOverflow(by: 1_000_000)
        let (ns, o2) = secs.multipliedReportingOverflow(by: 1_000_000_000)
        if o1 || o2 || ns > Int64.max - 1_000_000_000 { return .failed }
        let mark = w.extraMark
        DecimalText.append(us + Int64(micros), to: &w.extra)
        out.append(EventField(key: microtime, value: w.span(since: mark)))
        time = ns + Int64(micros) * 1000
        return .parsed
    }

    static func index(of byte: UInt8, _ p: UnsafePointer<UInt8>, _ from: Int, _ to: Int) -> Int? {
        var k = from
        while k < to { if p[k] == byte { return k }; k += 1 }
        return nil
    }

    /// Seconds and microseconds of the bracket's text.
    func time(_ p: UnsafePointer<UInt8>, _ n: Int) -> (Int64, Int)? {
        guard n > 0 else { return nil }
        var frac = 0, fd = 0
        if p[0] == UInt8(ascii: "1") {
            var secs: Int64 = 0
            var i = 0
            while i < n && p[i] >= 0x30 && p[i] <= 0x39 {
                // Twenty digits pass Int64: a failure (the caller's range check), never a trap.
                let (t, o1) = secs.multipliedReportingOverflow(by: 10)
                let (v, o2) = t.addingReportingOverflow(Int64(p[i] - 0x30))
                if o1 || o2 { return nil }
                secs = v
                i += 1
            }
            if i < n && p[i] == UInt8(ascii: ".") {
                i += 1
                while i < n && p[i] >= 0x30 && p[i] <= 0x39 { if fd < 6 { frac = frac * 10 + Int(p[i] - 0x30); fd += 1 }; i += 1 }
            }
            guard i == n else { return nil }
            while fd < 6 && fd > 0 { frac *= 10; fd += 1 }
            return (secs, frac)
        }
        guard let r = ApsaraParser.format.parse(p, n) else { return nil }
        // An optional `.fraction` right after the seconds (19 bytes of `%Y-%m-%d %H:%M:%S`).
        if n > 20 && p[19] == UInt8(ascii: ".") {
            var i = 20
            while i < n && p[i] >= 0x30 && p[i] <= 0x39 { if fd < 6 { frac = frac * 10 + Int(p[i] - 0x30); fd += 1 }; i += 1 }
            while fd < 6 && fd > 0 { frac *= 10; fd += 1 }
        }
        let days = Int64(CivilTime.days(year: r.year ?? 1900, month: r.month, day: r.day))
        return (days * 86400 + Int64(r.hour * 3600 + r.minute * 60 + r.second) - Int64(offset), frac)
    }
}
