import CJSONText
import SluiceConfig
import SluiceCore
import SluiceRegex

/// `processor_filter_regex_native`: keeps an event only if every rule matches the whole value
/// of its field (a missing field is no match) [LC core/plugin/processor/ProcessorFilterNative.cpp].
/// Rules come from `ConditionExp` (a tree of and / or / not over regex leaves), else from
/// `FilterKey` + `FilterRegex`, else from the deprecated `Include` map. No rules: all pass.
public final class ProcessorFilterRegexNative: ProcessorPlugin {
    /// A condition on an event's fields.
    public indirect enum Condition: Sendable {
        case and(Condition, Condition)
        case or(Condition, Condition)
        case not(Condition)
        case regex(key: String, pattern: RegexPattern)

        var patterns: [RegexPattern] {
            switch self {
            case .and(let a, let b), .or(let a, let b): return a.patterns + b.patterns
            case .not(let a): return a.patterns
            case .regex(_, let p): return [p]
            }
        }

        var keys: [String] {
            switch self {
            case .and(let a, let b), .or(let a, let b): return a.keys + b.keys
            case .not(let a): return a.keys
            case .regex(let k, _): return [k]
            }
        }
    }

    public struct Options: Sendable {
        /// nil: no rules, every event passes.
        public var condition: Condition?
        public var discardingNonUTF8: Bool
    }

    public static let spec = PluginSpec(
        type: "processor_filter_regex_native", kind: .processor,
        summary: "Keeps only the events whose fields fully match regular expressions (all rules must match; a missing field does not match).",
        fields: [
            FieldSpec(name: "ConditionExp", type: .any,
                      doc: "A condition tree: `{operator: and|or, operands: [a, b]}`, `{operator: not, operands: [a]}`, leaves `{key: K, type: regex, exp: R}`. Takes priority over the other rules.",
                      defaultValue: nil),
            FieldSpec(name: "FilterKey", type: .stringList, doc: "Fields to test, with `FilterRegex` (same length).", defaultValue: nil),
            FieldSpec(name: "FilterRegex", type: .stringList, doc: "The regular expression for each `FilterKey`; the whole value must match.", defaultValue: nil),
            FieldSpec(name: "Include", type: .stringMap, doc: "Deprecated form: field → regular expression. Used when neither of the above is given.", defaultValue: nil),
            FieldSpec(name: "DiscardingNonUTF8", type: .bool, doc: "In kept events, replace each byte that is not valid UTF-8 (in keys and values) with a space.", defaultValue: "false"),
        ])

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        let discarding = try c.bool("DiscardingNonUTF8") ?? false
        func compile(_ pattern: String, at key: String) throws(ConfigError) -> RegexPattern {
            do { return try RegexPattern(pattern, anchoring: .full, syntax: .boost) } catch { throw c.error(at: key, error.description) }
        }
        if let node = c.node("ConditionExp") {
            return Options(condition: try condition(node, path: c.keyPath(of: "ConditionExp"), file: c.file), discardingNonUTF8: discarding)
        }
        if let keys = try c.stringList("FilterKey"), !keys.isEmpty {
            let regexes = try c.stringList("FilterRegex") ?? []
            guard regexes.count == keys.count else {
                throw c.error(at: "FilterRegex", "FilterRegex has \(regexes.count) items, FilterKey \(keys.count): they must pair up")
            }
            var rules: [Condition] = []
            for (k, r) in zip(keys, regexes) { rules.append(.regex(key: k, pattern: try compile(r, at: "FilterRegex"))) }
            return Options(condition: rules.dropFirst().reduce(rules[0]) { .and($0, $1) }, discardingNonUTF8: discarding)
        }
        if let include = try c.stringPairs("Include"), !include.isEmpty {
            var rules: [Condition] = []
            for (k, r) in include { rules.append(.regex(key: k, pattern: try compile(r, at: "Include"))) }
            return Options(condition: rules.dropFirst().reduce(rules[0]) { .and($0, $1) }, discardingNonUTF8: discarding)
        }
        return Options(condition: nil, discardingNonUTF8: discarding)
    }

    /// Reads a `ConditionExp` node.
    static func condition(_ node: ConfigNode, path: String, file: String) throws(ConfigError) -> Condition {
        func fail(_ n: ConfigNode, _ p: String, _ message: String) -> ConfigError {
            ConfigError(file: file, location: n.location, keyPath: p, message: message)
        }
        guard let entries = node.entries else { throw fail(node, path, "expected a mapping, found \(node.foundDescription)") }
        func value(_ key: String) -> ConfigNode? { entries.first { $0.key == key }?.value }
        if let op = value("operator") {
            guard let name = op.scalar?.text.lowercased() else { throw fail(op, path + ".operator", "expected a string") }
            guard let operands = value("operands")?.list else { throw fail(node, path + ".operands", "operands is required (a list)") }
            let want = name == "not" ? 1 : 2
            guard ["and", "or", "not"].contains(name) else { throw fail(op, path + ".operator", "unknown operator \"\(name)\" (known: and, or, not)") }
            guard operands.count == want else { throw fail(node, path + ".operands", "\(name) takes exactly \(want) operand\(want == 1 ? "" : "s"), not \(operands.count)") }
            var parsed: [Condition] = []
            for (i, o) in operands.enumerated() { parsed.append(try condition(o, path: "\(path).operands[\(i)]", file: file)) }
            switch name {
            case "and": return .and(parsed[0], parsed[1])
            case "or": return .or(parsed[0], parsed[1])
            default: return .not(parsed[0])
            }
        }
        guard let key = value("key")?.scalar?.text, !key.isEmpty else { throw fail(node, path + ".key", "a leaf needs key, type: regex and exp") }
        let type = value("type")?.scalar?.text ?? ""
        guard type == "regex" else { throw fail(value("type") ?? node, path + ".type", "type must be regex, not \"\(type)\"") }
        guard let exp = value("exp")?.scalar?.text else { throw fail(node, path + ".exp", "exp is required") }
        do {
            return .regex(key: key, pattern: try RegexPattern(exp, anchoring: .full, syntax: .boost))
        } catch {
            throw fail(value("exp")!, path + ".exp", error.description)
        }
    }

    let options: Options
    let metrics: ComponentMetrics
    let matchers: RegexMatcherPool
    let keys: [String]

    public init(options: Options, context: PluginContext) {
        self.options = options
        metrics = context.metrics
        matchers = RegexMatcherPool(for: options.condition?.patterns ?? [])
        var seen = Set<String>()
        keys = (options.condition?.keys ?? []).filter { seen.insert($0).inserted }
    }

    public func process(_ batch: inout EventBatch) {
        guard options.condition != nil || options.discardingNonUTF8 else { return }
        var dropped = 0
        var regexErrors = 0
        matchers.withMatcher { m in
            batch.rewriteFields(fieldsPerEvent: 0) { arena, events, w in
                let contentKey = w.intern("content")
                var keySpans: [String: Span] = [:]
                for k in keys { keySpans[k] = k == "content" ? contentKey : w.intern(k) }
                var kept = 0
                for i in events.indices {
                    var ev = events[i]
                    w.begin(ev, contentKey: contentKey)
                    if let cond = options.condition {
                        if w.currentIsEmpty || !evaluate(cond, &w, keySpans, arena, m, &regexErrors) {
                            dropped += 1
                            w.discardCurrent()
                            continue
                        }
                    }
                    if options.discardingNonUTF8 { replaceInvalidUTF8(&w, arena) }
                    w.end(&ev)
                    events[kept] = ev
                    kept += 1
                }
                events.removeSubrange(kept..<events.count)
            }
        }
        metrics.discarded(dropped, reason: "filtered")
        metrics.errors.add(regexErrors)
    }

    private func evaluate(_ c: Condition, _ w: inout FieldWriter, _ keys: [String: Span], _ arena: UnsafePointer<UInt8>,
                          _ m: RegexMatcher, _ errors: inout Int) -> Bool {
        switch c {
        case .and(let a, let b): return evaluate(a, &w, keys, arena, m, &errors) && evaluate(b, &w, keys, arena, m, &errors)
        case .or(let a, let b): return evaluate(a, &w, keys, arena, m, &errors) || evaluate(b, &w, keys, arena, m, &errors)
        case .not(let a): return !evaluate(a, &w, keys, arena, m, &errors)
        case .regex(let key, let pattern):
            guard let k = keys[key], let i = w.find(k, arena: arena) else { return false }
            let v = w.fields[i].value
            let r = w.withBytes(v, arena: arena) { m.match(pattern, $0, Int(v.length)) }
            if case .failed = r { errors += 1 }
            return r.isMatch
        }
    }

    /// Rewrites keys and values of the open event that hold invalid UTF-8, each bad byte a space.
    private func replaceInvalidUTF8(_ w: inout FieldWriter, _ arena: UnsafePointer<UInt8>) {
        for i in w.current where w.fields[i].kind != .deleted {
            if let k = fixed(w.fields[i].key, &w, arena) { w.fields[i].key = k }
            if let v = fixed(w.fields[i].value, &w, arena) { w.fields[i].value = v }
        }
    }

    /// A copy of `span` with invalid bytes as spaces, or nil when it is valid UTF-8.
    private func fixed(_ span: Span, _ w: inout FieldWriter, _ arena: UnsafePointer<UInt8>) -> Span? {
        let n = Int(span.length)
        let firstBad = w.withBytes(span, arena: arena) { sluice_utf8_valid_length($0, n) }
        guard firstBad < n else { return nil }
        var copy = [UInt8](repeating: 0, count: n)
        w.withBytes(span, arena: arena) { p in
            var j = 0
            while j < n {
                if p[j] < 0x80 { copy[j] = p[j]; j += 1; continue }
                let len = sluice_utf8_sequence_length(p + j, n - j)
                if len == 0 { copy[j] = 0x20; j += 1; continue }
                for k in 0..<len { copy[j + k] = p[j + k] }
                j += len
            }
        }
        return copy.withUnsafeBufferPointer { w.appendBytes($0.baseAddress!, n) }
    }
}
