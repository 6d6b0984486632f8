import CJSONText
import Glibc
import SluiceConfig
import SluiceCore

/// `processor_parse_json_native`: a value that is a JSON object becomes one field per top-level
/// member, with the incumbent's text forms [LC core/plugin/processor/ProcessorParseJsonNative.cpp]:
/// a string is unescaped, `null` is `""`, a bool `true`/`false`, an integer its digits, any other
/// number `%f` (six decimals), an object or array its compact JSON text. Anything else (empty,
/// invalid JSON or UTF-8, not an object, trailing bytes) is a parse failure.
public final class ProcessorParseJsonNative: ProcessorPlugin {
    public struct Options: Sendable, Equatable {
        public var sourceKey: String
        public var common: CommonParserOptions
        /// Sluice: keep numbers, bools, null, objects and arrays as JSON values instead of text.
        public var keepingValueTypes: Bool
    }

    public static let spec = PluginSpec(
        type: "processor_parse_json_native", kind: .processor,
        summary: "Parses a field holding a JSON object into one field per top-level member (strings unescaped; numbers, bools, null, objects and arrays as the incumbent writes them as text).",
        fields: [
            mandatorySourceKey,
            FieldSpec(name: "KeepingValueTypes", type: .bool,
                      doc: "Sluice: keep numbers, bools, `null`, objects and arrays as JSON values (written unquoted; typed for flushers that care) instead of iLogtail's text forms (`1.5` → `\"1.500000\"`, `null` → `\"\"`).",
                      defaultValue: "false"),
        ] + CommonParserOptions.fields)

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        Options(sourceKey: try c.requiredString("SourceKey"), common: try CommonParserOptions.from(c),
                keepingValueTypes: try c.bool("KeepingValueTypes") ?? false)
    }

    let options: Options
    let driver: ParserDriver
    let metrics: ComponentMetrics

    public init(options: Options, context: PluginContext) {
        self.options = options
        driver = ParserDriver(sourceKey: options.sourceKey, common: options.common)
        metrics = context.metrics
    }

    public func process(_ batch: inout EventBatch) {
        var parser = JSONObjectParser(keepingValueTypes: options.keepingValueTypes)
        metrics.record(driver.run(&batch, &parser, fieldsPerEvent: 8))
    }
}

/// The top level of one JSON object to fields.
struct JSONObjectParser: FieldParser {
    let keepingValueTypes: Bool
    var trueSpan = Span.empty
    var falseSpan = Span.empty
    var stack: [Bool] = []

    init(keepingValueTypes: Bool) {
        self.keepingValueTypes = keepingValueTypes
    }

    mutating func prepare(_ w: inout FieldWriter) {
        trueSpan = w.intern("true")
        falseSpan = w.intern("false")
        stack.reserveCapacity(16)
    }

    mutating func parse(_ p: UnsafePointer<UInt8>, _ n: Int, value: Span, _ w: inout FieldWriter, out: FieldScratch, arena: UnsafePointer<UInt8>) -> ParseResult {
        var s = JSONScanner(p, n)
        let base = Int(value.offset)
        _ = s.skipWhitespace()
        guard s.peek() == 0x7B else { return .failed }
        s.i += 1
        _ = s.skipWhitespace()
        if s.peek() == 0x7D {
            s.i += 1
        } else {
            while true {
                guard let k = s.string() else { return .failed }
                let key: Span
                if k.escaped {
                    let mark = w.extraMark
                    JSONScanner.unescape(p, k.start, k.end, into: &w.extra)
                    key = w.span(since: mark)
                } else {
                    key = Span(base + k.start, k.end - k.start)
                }
                _ = s.skipWhitespace()
                guard s.peek() == 0x3A else { return .failed }
                s.i += 1
                _ = s.skipWhitespace()
                let vStart = s.i
                guard let kind = s.value(stack: &stack) else { return .failed }
                let vEnd = s.i
                out.append(field(key, kind, p, vStart, vEnd, base: base, &w))
                _ = s.skipWhitespace()
                guard let c = s.peek() else { return .failed }
                s.i += 1
                if c == 0x2C {
                    _ = s.skipWhitespace()
                    continue
                }
                if c == 0x7D { break }
                return .failed
            }
        }
        _ = s.skipWhitespace()
        return s.i == n ? .parsed : .failed
    }

    private func field(_ key: Span, _ kind: JSONScanner.ValueKind, _ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, base: Int, _ w: inout FieldWriter) -> EventField {
        let raw = Span(base + start, end - start)
        switch kind {
        case .string(let escaped):
            if !escaped { return EventField(key: key, value: Span(base + start + 1, end - start - 2)) }
            let mark = w.extraMark
            JSONScanner.unescape(p, start + 1, end - 1, into: &w.extra)
            return EventField(key: key, value: w.span(since: mark))
        case .integer:
            if keepingValueTypes { return EventField(key: key, value: raw, kind: .json) }
            // "-0" is the integer 0.
            if end - start == 2 && p[start] == 0x2D && p[start + 1] == 0x30 { return EventField(key: key, value: Span(base + start + 1, 1)) }
            if JSONObjectParser.fitsInteger(p + start, end - start) { return EventField(key: key, value: raw) }
            return EventField(key: key, value: JSONObjectParser.sixDecimals(p + start, end - start, &w))
        case .float:
            if keepingValueTypes { return EventField(key: key, value: raw, kind: .json) }
            return EventField(key: key, value: JSONObjectParser.sixDecimals(p + start, end - start, &w))
        case .true:
            return keepingValueTypes ? EventField(key: key, value: raw, kind: .json) : EventField(key: key, value: trueSpan)
        case .false:
            return keepingValueTypes ? EventField(key: key, value: raw, kind: .json) : EventField(key: key, value: falseSpan)
        case .null:
            return keepingValueTypes ? EventField(key: key, value: raw, kind: .json) : EventField(key: key, value: Span(offset: raw.offset, length: 0))
        case .composite(let compact):
            var v = raw
            if !compact {
                let mark = w.extraMark
                JSONScanner.compact(p, start, end, into: &w.extra)
                v = w.span(since: mark)
            }
            return EventField(key: key, value: v, kind: keepingValueTypes ? .json : .string)
        }
    }

    /// Whether integer digits (with an optional `-`) fit in Int64 (or, positive, UInt64).
    static func fitsInteger(_ p: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        let negative = p[0] == 0x2D
        let digits = negative ? n - 1 : n
        if digits < 19 { return true }
        if digits > 20 { return false }
        var v: UInt64 = 0
        for k in (negative ? 1 : 0)..<n {
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(p[k] - 0x30))
            if o1 || o2 { return false }
            v = a
        }
        return negative ? v <= UInt64(Int64.max) + 1 : true
    }

    /// `std::to_string(double)`: `%f`, six decimals. A plain decimal (no exponent, at most 9
    /// integer and 6 fraction digits) is written from its own digits, the fraction padded with
    /// zeros: the double nearest to it is within 2⁻⁵³ of it relatively, far below the half
    /// millionth that could change its sixth decimal, so `%f` would print those very digits
    /// (a test compares the two). Anything else goes through `strtod` and `%f`.
    static func sixDecimals(_ p: UnsafePointer<UInt8>, _ n: Int, _ w: inout FieldWriter) -> Span {
        let mark = w.extraMark
        if let fraction = plainDecimalFraction(p, n) {
            w.extra.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
            if fraction == 0 { w.extra.append(UInt8(ascii: ".")) }
            for _ in fraction..<6 { w.extra.append(UInt8(ascii: "0")) }
            return w.span(since: mark)
        }
        var text = [CChar](repeating: 0, count: n + 1)
        for k in 0..<n { text[k] = CChar(bitPattern: p[k]) }
        let d = strtod(text, nil)
        // At most 309 integer digits, the point, six decimals, a sign.
        var buf = [CChar](repeating: 0, count: 400)
        let len = buf.withUnsafeMutableBufferPointer { sluice_format_fixed6($0.baseAddress!, $0.count, d) }
        for k in 0..<Int(min(len, Int32(buf.count - 1))) { w.extra.append(UInt8(bitPattern: buf[k])) }
        return w.span(since: mark)
    }

    /// For `-?[0-9]{1,9}(\.[0-9]{1,6})?` (a JSON number, so no leading zeros): how many fraction
    /// digits it has; nil for anything else.
    @inline(__always)
    static func plainDecimalFraction(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
        var i = p[0] == 0x2D ? 1 : 0
        let intStart = i
        while i < n && p[i] >= 0x30 && p[i] <= 0x39 { i += 1 }
        let intDigits = i - intStart
        guard intDigits >= 1 && intDigits <= 9 else { return nil }
        if i == n { return 0 }
        guard p[i] == 0x2E else { return nil }
        i += 1
        let fracStart = i
        while i < n && p[i] >= 0x30 && p[i] <= 0x39 { i += 1 }
        let frac = i - fracStart
        guard i == n && frac >= 1 && frac <= 6 else { return nil }
        return frac
    }
}
