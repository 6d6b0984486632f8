import SluiceConfig
import SluiceCore
import SluiceRegex

/// `processor_regex` (Go): searches a field with `Regex` (`(?s)`: `.` matches newlines; with
/// `FullMatch` the first match must cover the whole value); groups 1…N become `Keys` (a group
/// that took no part gives no field). [LC plugins/processor/regex/regex.go]
/// The code's defaults, not the docs': `FullMatch: false`, `KeepSourceIfParseError: true`.
public final class ProcessorRegex: ProcessorPlugin {
    public struct Options: Sendable {
        public var sourceKey: String
        public var regex: RegexPattern
        public var keys: [String]
        public var fullMatch: Bool
        public var keepSource: Bool
        public var keepSourceIfParseError: Bool
    }

    public static let spec = PluginSpec(
        type: "processor_regex", kind: .processor,
        summary: "Extracts fields with a regular expression search (iLogtail's Go processor): groups 1…N become `Keys`.",
        fields: [
            FieldSpec(name: "SourceKey", type: .string, doc: "The field to parse; empty: the event's first field.", defaultValue: ""),
            FieldSpec(name: "Regex", type: .string, doc: "The pattern; `.` matches newlines. Required.", defaultValue: nil),
            FieldSpec(name: "Keys", type: .stringList, doc: "Names of groups 1…N. Required. Fewer groups than keys is a failure; a group that took no part adds no field.", defaultValue: nil),
            FieldSpec(name: "FullMatch", type: .bool, doc: "The first match must span the whole value (iLogtail's code default is false, its docs say true).", defaultValue: "false"),
            FieldSpec(name: "NoKeyError", type: .bool, doc: "iLogtail: warn when the field is missing. Sluice counts nothing for it; the event passes.", defaultValue: "false"),
            FieldSpec(name: "NoMatchError", type: .bool, doc: "iLogtail: warn on a value that does not match. Sluice counts every such value in `parse_failures`.", defaultValue: "true"),
            FieldSpec(name: "KeepSource", type: .bool, doc: "Keep the source field after a successful parse.", defaultValue: "false"),
            FieldSpec(name: "KeepSourceIfParseError", type: .bool, doc: "Keep the source field when the value does not match.", defaultValue: "true"),
        ])

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        let pattern = try c.requiredString("Regex")
        let regex: RegexPattern
        do { regex = try RegexPattern(pattern, anchoring: .search, syntax: [.dotAll, .dollarEndOnly]) } catch { throw c.error(at: "Regex", error.description) }
        return Options(sourceKey: try c.string("SourceKey") ?? "", regex: regex, keys: try c.requiredStringList("Keys"),
                       fullMatch: try c.bool("FullMatch") ?? false, keepSource: try c.bool("KeepSource") ?? false,
                       keepSourceIfParseError: try c.bool("KeepSourceIfParseError") ?? true)
    }

    let options: Options
    let metrics: ComponentMetrics
    let matchers: RegexMatcherPool

    public init(options: Options, context: PluginContext) {
        self.options = options
        metrics = context.metrics
        matchers = RegexMatcherPool(for: [options.regex])
    }

    public func process(_ batch: inout EventBatch) {
        var failed = 0
        var errors = 0
        let o = options
        matchers.withMatcher { m in
            batch.rewriteFields(fieldsPerEvent: o.keys.count) { arena, events, w in
                let contentKey = w.intern("content")
                let source: Span? = o.sourceKey.isEmpty ? nil : (o.sourceKey == "content" ? contentKey : w.intern(o.sourceKey))
                let keys = o.keys.map { w.intern($0) }
                for i in events.indices {
                    var ev = events[i]
                    w.begin(ev, contentKey: contentKey)
                    guard let si = w.source(source, arena: arena) else { w.end(&ev); events[i] = ev; continue }
                    let srcField = w.fields[si]
                    let v = srcField.value
                    let p = arena + Int(v.offset)
                    let n = Int(v.length)
                    var ok = false
                    switch m.match(o.regex, p, n) {
                    case .matched:
                        let whole = m.bounds(0)
                        ok = (!o.fullMatch || (whole.start == 0 && whole.end == n)) && o.regex.captureCount >= keys.count
                    case .noMatch: break
                    case .failed: errors += 1
                    }
                    if ok {
                        for (g, key) in keys.enumerated() {
                            let b = m.bounds(g + 1)
                            if b.start >= 0 { w.set(key, Span(Int(v.offset) + b.start, b.end - b.start), arena: arena) }
                        }
                    } else {
                        failed += 1
                    }
                    if !(o.keepSource || (o.keepSourceIfParseError && !ok)) {
                        // The source field itself, even when a key of the same name was just set.
                        if w.fields[si].key == srcField.key && w.fields[si].value == v { w.fields[si].kind = .deleted }
                    }
                    w.end(&ev)
                    events[i] = ev
                }
            }
        }
        metrics.parseFailures.add(failed)
        metrics.errors.add(errors)
    }
}
