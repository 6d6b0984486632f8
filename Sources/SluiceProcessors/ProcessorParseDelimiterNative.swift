import SluiceConfig
import SluiceCore

/// `processor_parse_delimiter_native`: splits a value on `Separator` into the columns `Keys`
/// [LC core/plugin/processor/ProcessorParseDelimiterNative.cpp; LC core/parser/DelimiterModeFsmParser.cpp].
/// With a one-byte separator and a quote that differs from it, fields may be quoted CSV-style
/// (`""` is a literal quote; a stray quote or an unclosed one is a parse failure). Multi-byte
/// separators (up to 4 bytes) are matched literally, without quotes.
public final class ProcessorParseDelimiterNative: ProcessorPlugin {
    public enum Overflow: String, Sendable, Equatable, CaseIterable {
        /// Each extra column `i` (0-based, absolute) becomes `__column<i>__`.
        case extend
        /// Everything after the last key's column, with its leading separator, becomes `__column<N>__`.
        case keep
        /// Extra columns are dropped, and so are columns whose key is `_`.
        case discard
    }

    public struct Options: Sendable, Equatable {
        public var sourceKey: String
        public var separator: [UInt8]
        /// nil: no quoting.
        public var quote: UInt8?
        public var keys: [String]
        public var allowingShortenedFields: Bool
        public var overflow: Overflow
        public var common: CommonParserOptions
    }

    public static let spec = PluginSpec(
        type: "processor_parse_delimiter_native", kind: .processor,
        summary: "Splits a field on a separator (1–4 bytes; CSV-style quotes with a one-byte separator) into the columns named in `Keys`.",
        fields: [
            mandatorySourceKey,
            FieldSpec(name: "Separator", type: .string, doc: "1 to 4 bytes; the two characters `\\t` mean TAB. Required.", defaultValue: nil),
            FieldSpec(name: "Quote", type: .string, doc: "One byte that quotes a field; only with a one-byte separator; equal to the separator means no quoting.", defaultValue: "\""),
            FieldSpec(name: "Keys", type: .stringList, doc: "Column names. Required.", defaultValue: nil),
            FieldSpec(name: "AllowingShortenedFields", type: .bool, doc: "Fewer columns than keys sets only the first ones; false makes it a parse failure.", defaultValue: "true"),
            FieldSpec(name: "OverflowedFieldsTreatment", type: .string,
                      doc: "More columns than keys: `extend` (column i → `__column<i>__`), `keep` (the rest, with its leading separator, → `__column<N>__`) or `discard` (dropped; keys named `_` are skipped too).",
                      defaultValue: Overflow.extend.rawValue),
        ] + CommonParserOptions.fields)

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        let sourceKey = try c.requiredString("SourceKey")
        var sep = try c.requiredString("Separator")
        if sep == "\\t" { sep = "\t" }
        let sepBytes = Array(sep.utf8)
        guard sepBytes.count <= 4 else { throw c.error(at: "Separator", "Separator must be 1 to 4 bytes, not \(sepBytes.count)") }
        var quote: UInt8? = UInt8(ascii: "\"")
        if let q = try c.string("Quote") {
            let qb = Array(q.utf8)
            guard qb.count == 1 else { throw c.error(at: "Quote", "Quote must be one byte, not \(qb.count)") }
            quote = qb[0]
        }
        // Quotes work only with a one-byte separator that differs from the quote.
        if sepBytes.count != 1 || quote == sepBytes[0] { quote = nil }
        let keys = try c.requiredStringList("Keys")
        let overflowText = try c.string("OverflowedFieldsTreatment") ?? Overflow.extend.rawValue
        guard let overflow = Overflow(rawValue: overflowText) else {
            throw c.error(at: "OverflowedFieldsTreatment", "unknown value \"\(overflowText)\" (known: \(Overflow.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return Options(sourceKey: sourceKey, separator: sepBytes, quote: quote, keys: keys,
                       allowingShortenedFields: try c.bool("AllowingShortenedFields") ?? true, overflow: overflow,
                       common: try CommonParserOptions.from(c))
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
        var parser = DelimiterParser(options)
        metrics.record(driver.run(&batch, &parser, fieldsPerEvent: options.keys.count + 1))
    }
}

struct DelimiterParser: FieldParser {
    let o: ProcessorParseDelimiterNative.Options
    var keySpans: [Span] = []
    /// `__column<i>__` keys made in this batch, by column index.
    var columnKeys: [Int: Span] = [:]
    /// Column value spans of the current value (reused).
    var columns: [Span] = []
    /// Where each column starts (its separator's position for columns after the first).
    var columnSeparators: [Int] = []

    /// The keys are all different: a line with exactly as many fields as keys gives them in
    /// order (fewer columns, extra columns and discarded `_` columns all change the count), so
    /// the driver writes them without looking for fields to overwrite.
    let distinctKeys: Bool
    var constantKeys: [Span]? { distinctKeys ? keySpans : nil }

    init(_ o: ProcessorParseDelimiterNative.Options) {
        self.o = o
        distinctKeys = Set(o.keys).count == o.keys.count
    }

    mutating func prepare(_ w: inout FieldWriter) {
        keySpans = o.keys.map { w.intern($0) }
        columns.reserveCapacity(o.keys.count + 4)
        columnSeparators.reserveCapacity(o.keys.count + 4)
    }

    mutating func parse(_ p: UnsafePointer<UInt8>, _ n: Int, value: Span, _ w: inout FieldWriter, out: FieldScratch, arena: UnsafePointer<UInt8>) -> ParseResult {
        // Trim leading spaces and trailing spaces and carriage returns.
        var s = 0
        var e = n
        while e > 0 && (p[e - 1] == 0x20 || p[e - 1] == 0x0D) { e -= 1 }
        while s < e && p[s] == 0x20 { s += 1 }
        if s == e { return .unchanged }
        columns.removeAll(keepingCapacity: true)
        columnSeparators.removeAll(keepingCapacity: true)
        let base = Int(value.offset)
        let ok = o.quote != nil ? splitQuoted(p, s, e, base: base, &w) : splitPlain(p, s, e, base: base)
        guard ok, !columns.isEmpty, !keySpans.isEmpty else { return .failed }
        let k = keySpans.count
        if columns.count < k && !o.allowingShortenedFields { return .failed }
        for c in 0..<min(k, columns.count) {
            if o.overflow == .discard && o.keys[c] == "_" { continue }
            out.append(EventField(key: keySpans[c], value: columns[c]))
        }
        if columns.count > k {
            switch o.overflow {
            case .extend:
                for c in k..<columns.count { out.append(EventField(key: columnKey(c, &w), value: columns[c])) }
            case .keep:
                let from = columnSeparators[k]
                out.append(EventField(key: columnKey(k, &w), value: Span(base + from, e - from)))
            case .discard:
                break
            }
        }
        return .parsed
    }

    private mutating func columnKey(_ i: Int, _ w: inout FieldWriter) -> Span {
        if let s = columnKeys[i] { return s }
        let s = w.intern("__column\(i)__")
        columnKeys[i] = s
        return s
    }

    /// Splits on the separator bytes literally.
    private mutating func splitPlain(_ p: UnsafePointer<UInt8>, _ s: Int, _ e: Int, base: Int) -> Bool {
        let sep = o.separator
        let m = sep.count
        let first = sep[0]
        var fieldStart = s
        var i = s
        columnSeparators.append(s)
        while i <= e - m {
            if p[i] == first {
                var hit = true
                var j = 1
                while j < m { if p[i + j] != sep[j] { hit = false; break }; j += 1 }
                if hit {
                    columns.append(Span(base + fieldStart, i - fieldStart))
                    columnSeparators.append(i)
                    i += m
                    fieldStart = i
                    continue
                }
            }
            i += 1
        }
        columns.append(Span(base + fieldStart, e - fieldStart))
        return true
    }

    /// Splits CSV-style: a quote may open a field at its start; `""` inside a quoted field is a
    /// quote; a quote elsewhere, text after a closing quote or an unclosed quote fails.
    private mutating func splitQuoted(_ p: UnsafePointer<UInt8>, _ s: Int, _ e: Int, base: Int, _ w: inout FieldWriter) -> Bool {
        let sep = o.separator[0]
        let quote = o.quote!
        var i = s
        columnSeparators.append(s)
        while true {
            if i < e && p[i] == quote {
                // Quoted field.
                i += 1
                let start = i
                var doubled = false
                while true {
                    guard i < e else { return false }  // unclosed quote
                    if p[i] == quote {
                        if i + 1 < e && p[i + 1] == quote { doubled = true; i += 2; continue }
                        break
                    }
                    i += 1
                }
                let end = i
                i += 1  // closing quote
                if doubled {
                    let mark = w.extraMark
                    var j = start
                    while j < end {
                        w.extra.append(p[j])
                        j += p[j] == quote ? 2 : 1
                    }
                    columns.append(w.span(since: mark))
                } else {
                    columns.append(Span(base + start, end - start))
                }
                if i == e { return true }
                guard p[i] == sep else { return false }  // text after the closing quote
                columnSeparators.append(i)
                i += 1
                continue
            }
            let start = i
            while i < e && p[i] != sep {
                if p[i] == quote { return false }  // a quote inside an unquoted field
                i += 1
            }
            columns.append(Span(base + start, i - start))
            if i == e { return true }
            columnSeparators.append(i)
            i += 1
        }
    }
}
