import Glibc
import SluiceConfig
import SluiceCore
import SluiceRegex

/// `processor_filter_regex`: keeps an event only if its fields pass the `Include` and `Exclude`
/// rules [LC plugins/processor/filter/regex/processor_filter_regex.go]. A regex is *searched* in
/// the value (Go `MatchString`: unanchored; `.` does not match a newline). The incumbent's rule,
/// field by field in the event's order:
/// - each field named in `Include` must match its regex (one that does not drops the event), and
///   the number of matching fields must reach the number of `Include` keys, so a missing key drops
///   the event (a name the event holds twice counts twice, as in the incumbent);
/// - no field named in `Exclude` may match its regex.
///
/// No rules: every event passes. The filter only reads fields; dropped events are counted as
/// `discarded{reason="filtered"}`, regexes that gave up (match limit) as errors (no match).
public final class ProcessorFilterRegex: ProcessorPlugin {
    public struct Rule: Sendable {
        public var key: String
        public var pattern: RegexPattern
    }

    public struct Options: Sendable {
        public var include: [Rule]
        public var exclude: [Rule]
    }

    public static let spec = PluginSpec(
        type: "processor_filter_regex", kind: .processor,
        summary: "Keeps the events whose fields match every `Include` regex (searched, not full-match) and no `Exclude` regex.",
        fields: [
            FieldSpec(name: "Include", type: .stringMap,
                      doc: "Field → regex (RE2-style, searched anywhere in the value). Every key must be present and match; otherwise the event is dropped.",
                      defaultValue: nil),
            FieldSpec(name: "Exclude", type: .stringMap,
                      doc: "Field → regex. An event with any of these fields matching is dropped; a missing field does not match.",
                      defaultValue: nil),
        ])

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        func rules(_ key: String) throws(ConfigError) -> [Rule] {
            var out: [Rule] = []
            for (k, r) in try c.stringPairs(key) ?? [] {
                do {
                    out.append(Rule(key: k, pattern: try RegexPattern(r, anchoring: .search, syntax: goSyntax)))
                } catch {
                    let at = c.node(key)?.entries?.first { $0.key == k }?.value.location ?? c.location(of: key)
                    throw ConfigError(file: c.file, location: at, keyPath: KeyPath.appending(k, to: c.keyPath(of: key)),
                                      message: error.description)
                }
            }
            return out
        }
        return Options(include: try rules("Include"), exclude: try rules("Exclude"))
    }

    /// Go's default regexp flags in PCRE2 terms: `.` does not match `\n` (PCRE2's default too) and,
    /// without `(?m)`, `$` matches only at the very end, not before a final newline
    /// (`PCRE2_DOLLAR_ENDONLY`, which `RegexPattern.Syntax` does not name).
    static let goSyntax: RegexPattern.Syntax = .dollarEndOnly

    let options: Options
    let metrics: ComponentMetrics
    let matchers: RegexMatcherPool
    /// The rules' field names as bytes, in rule order.
    let includeKeys: [[UInt8]]
    let excludeKeys: [[UInt8]]
    /// The rule for `content`, the one field of a raw line.
    let includeContent: Int?
    let excludeContent: Int?

    public init(options: Options, context: PluginContext) {
        self.options = options
        metrics = context.metrics
        matchers = RegexMatcherPool(for: options.include.map(\.pattern) + options.exclude.map(\.pattern))
        includeKeys = options.include.map { Array($0.key.utf8) }
        excludeKeys = options.exclude.map { Array($0.key.utf8) }
        includeContent = options.include.firstIndex { $0.key == "content" }
        excludeContent = options.exclude.firstIndex { $0.key == "content" }
    }

    public func process(_ batch: inout EventBatch) {
        guard !options.include.isEmpty || !options.exclude.isEmpty else { return }
        var events: [LogEvent] = []
        swap(&events, &batch.events)
        var dropped = 0
        var errors = 0
        matchers.withMatcher { m in
            batch.arena.withUnsafeBufferPointer { a in
                batch.fields.withUnsafeBufferPointer { fields in
                    let arena = a.baseAddress ?? UnsafePointer(bitPattern: 1)!
                    var kept = 0
                    for i in events.indices {
                        let ev = events[i]
                        if keeps(ev, arena, fields, m, &errors) {
                            events[kept] = ev
                            kept += 1
                        } else {
                            dropped += 1
                        }
                    }
                    events.removeSubrange(kept..<events.count)
                }
            }
        }
        swap(&events, &batch.events)
        metrics.discarded(dropped, reason: "filtered")
        metrics.errors.add(errors)
    }

    /// The incumbent's `IsLogMatch`.
    private func keeps(_ ev: LogEvent, _ arena: UnsafePointer<UInt8>, _ fields: UnsafeBufferPointer<EventField>,
                       _ m: RegexMatcher, _ errors: inout Int) -> Bool {
        let raw = !ev.isParsed
        let lo = raw ? 0 : Int(ev.fieldStart)
        let hi = raw ? 1 : Int(ev.fieldStart + ev.fieldCount)
        if !options.include.isEmpty {
            var hits = 0
            for i in lo..<hi {
                guard let hit = ruleAndValue(ev, raw, i, arena, fields, includeKeys, includeContent) else { continue }
                let r = m.match(options.include[hit.rule].pattern, arena + Int(hit.value.offset), Int(hit.value.length))
                if case .failed = r { errors += 1 }
                guard r.isMatch else { return false }
                hits += 1
            }
            if hits < options.include.count { return false }
        }
        if !options.exclude.isEmpty {
            for i in lo..<hi {
                guard let hit = ruleAndValue(ev, raw, i, arena, fields, excludeKeys, excludeContent) else { continue }
                let r = m.match(options.exclude[hit.rule].pattern, arena + Int(hit.value.offset), Int(hit.value.length))
                if case .failed = r { errors += 1 }
                if r.isMatch { return false }
            }
        }
        return true
    }

    /// The rule for field `i` of `ev` (by name) and the field's value; nil when no rule names it
    /// or the field is deleted. A raw line's one field is `content`.
    @inline(__always)
    private func ruleAndValue(_ ev: LogEvent, _ raw: Bool, _ i: Int, _ arena: UnsafePointer<UInt8>,
                              _ fields: UnsafeBufferPointer<EventField>, _ keys: [[UInt8]], _ contentRule: Int?) -> (rule: Int, value: Span)? {
        if raw {
            guard let contentRule else { return nil }
            return (contentRule, ev.content)
        }
        let f = fields[i]
        guard f.kind != .deleted else { return nil }
        let n = Int(f.key.length)
        let p = arena + Int(f.key.offset)
        for j in keys.indices where keys[j].count == n {
            if n == 0 || keys[j].withUnsafeBufferPointer({ memcmp($0.baseAddress!, p, n) == 0 }) { return (j, f.value) }
        }
        return nil
    }
}
