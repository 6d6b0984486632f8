import SluiceConfig
import SluiceCore
import SluiceRegex

/// `processor_parse_regex_native`: the whole value must match `Regex` (Boost `regex_match`:
/// full match, `.` matches newlines, `^`/`$` at line boundaries); groups 1…N become `Keys`.
/// [LC core/plugin/processor/ProcessorParseRegexNative.cpp]
public final class ProcessorParseRegexNative: ProcessorPlugin {
    public struct Options: Sendable {
        public var sourceKey: String
        public var regex: RegexPattern
        public var keys: [String]
        public var common: CommonParserOptions
    }

    public static let spec = PluginSpec(
        type: "processor_parse_regex_native", kind: .processor,
        summary: "Parses a field with a regular expression (PCRE2, JIT): the whole value must match; capture groups become the fields named in `Keys`. A value that does not match is a parse failure (by default the event is dropped).",
        fields: [
            mandatorySourceKey,
            FieldSpec(name: "Regex", type: .string, doc: "The pattern (Perl syntax; `.` also matches a newline, as in iLogtail's Boost). Required. `(.*)` copies the value without running a regex.", defaultValue: nil),
            FieldSpec(name: "Keys", type: .stringList, doc: "Names of groups 1…N. Required. A single item with commas is split on them (`[\"a,b\"]` → `a`, `b`). Fewer groups than keys is a parse failure; extra groups are ignored; a group that took no part gives an empty value.", defaultValue: nil),
        ] + CommonParserOptions.fields)

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        let sourceKey = try c.requiredString("SourceKey")
        let pattern = try c.requiredString("Regex")
        var keys = try c.requiredStringList("Keys")
        if keys.count == 1, keys[0].contains(",") { keys = keys[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        let regex: RegexPattern
        do { regex = try RegexPattern(pattern, anchoring: .full, syntax: .boost) } catch { throw c.error(at: "Regex", error.description) }
        return Options(sourceKey: sourceKey, regex: regex, keys: keys, common: try CommonParserOptions.from(c))
    }

    let options: Options
    let driver: ParserDriver
    let metrics: ComponentMetrics
    let matchers: RegexMatcherPool
    /// `Regex: (.*)`: the value is the one field, no regex run [ProcessorParseRegexNative.cpp `WholeLineModeParser`].
    let wholeLine: Bool

    public init(options: Options, context: PluginContext) {
        self.options = options
        driver = ParserDriver(sourceKey: options.sourceKey, common: options.common)
        metrics = context.metrics
        matchers = RegexMatcherPool(for: [options.regex])
        wholeLine = options.regex.pattern == "(.*)"
    }

    public func process(_ batch: inout EventBatch) {
        let (counts, regexErrors) = matchers.withMatcher { m in
            var parser = RegexParser(regex: options.regex, keys: options.keys, wholeLine: wholeLine, matcher: m)
            let counts = driver.run(&batch, &parser, fieldsPerEvent: options.keys.count + 1)
            return (counts, parser.regexErrors)
        }
        metrics.record(counts)
        metrics.errors.add(regexErrors)
    }
}

struct RegexParser: FieldParser {
    let regex: RegexPattern
    let keys: [String]
    let wholeLine: Bool
    let matcher: RegexMatcher
    var keySpans: [Span] = []
    /// Matches PCRE2 gave up on (match limit): parse failures, also counted as errors.
    var regexErrors = 0

    let distinctKeys: Bool
    var constantKeys: [Span]? { distinctKeys && !wholeLine ? keySpans : nil }

    init(regex: RegexPattern, keys: [String], wholeLine: Bool, matcher: RegexMatcher) {
        self.regex = regex
        self.keys = keys
        distinctKeys = Set(keys).count == keys.count
        self.wholeLine = wholeLine
        self.matcher = matcher
    }

    mutating func prepare(_ w: inout FieldWriter) {
        keySpans = keys.map { w.intern($0) }
        if keySpans.isEmpty { keySpans = [w.intern("content")] }
    }

    mutating func parse(_ p: UnsafePointer<UInt8>, _ n: Int, value: Span, _ w: inout FieldWriter, out: FieldScratch, arena: UnsafePointer<UInt8>) -> ParseResult {
        if wholeLine {
            out.append(EventField(key: keySpans[0], value: value))
            return .parsed
        }
        switch matcher.match(regex, p, n) {
        case .matched: break
        case .noMatch: return .failed
        case .failed:
            regexErrors += 1
            return .failed
        }
        // The incumbent fails when the pattern has fewer groups than keys ("parse key count not match").
        guard regex.captureCount >= keySpans.count else { return .failed }
        for (g, key) in keySpans.enumerated() {
            let b = matcher.bounds(g + 1)
            let v = b.start < 0 ? Span(offset: value.offset, length: 0) : Span(Int(value.offset) + b.start, b.end - b.start)
            out.append(EventField(key: key, value: v))
        }
        return .parsed
    }
}
