import SluiceConfig
import SluiceCore
import SluiceRegex
import SluiceSystem

/// `processor_grok` (Go): grok expressions (`%{NAME}`, `%{NAME:field}`, `%{NAME:field:type}`)
/// compiled once to PCRE2 [LC plugins/processor/grok/processor_grok.go]. The first `Match`
/// expression that captures anything wins; its matches are searched through the whole value and
/// every named capture that is not empty becomes a field (types are read and ignored: values are
/// text). Named groups inside pattern definitions become fields too; `%{NAME}` alone does not.
/// Patterns: the standard set (``GrokPatterns``), then `CustomPatternDir` files (`NAME definition`
/// per line), then `CustomPatterns`; a later definition replaces an earlier one.
public final class ProcessorGrok: ProcessorPlugin {
    public struct Options: Sendable {
        public var sourceKey: String
        /// Each `Match` expression compiled, with the field name of each group number.
        var expressions: [(regex: RegexPattern, fields: [Int: String])]
        public var keepSource: Bool
        public var ignoreParseFailure: Bool
    }

    public static let spec = PluginSpec(
        type: "processor_grok", kind: .processor,
        summary: "Parses a field with grok expressions (the standard pattern set, compiled to PCRE2); the first expression that captures wins.",
        fields: [
            FieldSpec(name: "SourceKey", type: .string, doc: "The field to parse.", defaultValue: "content"),
            FieldSpec(name: "Match", type: .stringList, doc: "Grok expressions, tried in order. Required.", defaultValue: nil),
            FieldSpec(name: "CustomPatterns", type: .stringMap, doc: "More patterns: name → definition.", defaultValue: nil),
            FieldSpec(name: "CustomPatternDir", type: .stringList, doc: "Directories whose files hold patterns, one `NAME definition` per line (lines starting with `\"` are skipped). Read when the config is loaded.", defaultValue: nil),
            FieldSpec(name: "TimeoutMilliSeconds", type: .int, doc: "iLogtail: a time limit per event (0 means 100 ms in its code). Sluice bounds each match by PCRE2's match limit instead; a match that hits it is a counted failure.", defaultValue: "0"),
            FieldSpec(name: "IgnoreParseFailure", type: .bool, doc: "Keep the source field when no expression matches (false removes it; the event stays).", defaultValue: "true"),
            FieldSpec(name: "KeepSource", type: .bool, doc: "Keep the source field after a successful parse.", defaultValue: "true"),
            FieldSpec(name: "NoKeyError", type: .bool, doc: "iLogtail: warn when the field is missing.", defaultValue: "false"),
            FieldSpec(name: "NoMatchError", type: .bool, doc: "iLogtail: warn when nothing matches. Sluice counts these in `parse_failures`.", defaultValue: "true"),
            FieldSpec(name: "TimeoutError", type: .bool, doc: "iLogtail: warn on a timeout. Sluice counts match-limit failures in `errors`.", defaultValue: "true"),
        ])

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        var patterns: [String: String] = [:]
        for p in GrokPatterns.standard { patterns[p.name] = p.definition }
        for dir in try c.stringList("CustomPatternDir") ?? [] {
            guard case .success(let entries) = Sys.listDirectory(dir) else { throw c.error(at: "CustomPatternDir", "cannot read directory \(dir)") }
            for name in entries.map(\.name).sorted() {
                guard case .success(let bytes) = Sys.readFile(dir + "/" + name, limit: 16 << 20) else { continue }
                for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where !line.isEmpty && !line.hasPrefix("\"") {
                    guard let sp = line.firstIndex(of: " ") else { continue }
                    patterns[String(line[..<sp])] = String(line[line.index(after: sp)...])
                }
            }
        }
        for (k, v) in try c.stringPairs("CustomPatterns") ?? [] { patterns[k] = v }
        let matches = try c.requiredStringList("Match")
        var expressions: [(RegexPattern, [Int: String])] = []
        for m in matches {
            var aliases: [String: String] = [:]
            let expanded: String
            do { expanded = try GrokCompiler.expand(m, patterns: patterns, aliases: &aliases) } catch {
                throw c.error(at: "Match", "\(m): \(error.message)")
            }
            let regex: RegexPattern
            do { regex = try RegexPattern(expanded, anchoring: .search, syntax: .duplicateNames) } catch {
                throw c.error(at: "Match", "\(m): \(error.description)")
            }
            var fields: [Int: String] = [:]
            for g in regex.namedGroups { fields[g.number] = aliases[g.name] ?? g.name }
            expressions.append((regex, fields))
        }
        return Options(sourceKey: try c.string("SourceKey") ?? "content", expressions: expressions,
                       keepSource: try c.bool("KeepSource") ?? true, ignoreParseFailure: try c.bool("IgnoreParseFailure") ?? true)
    }

    let options: Options
    let metrics: ComponentMetrics
    let matchers: RegexMatcherPool

    public init(options: Options, context: PluginContext) {
        self.options = options
        metrics = context.metrics
        matchers = RegexMatcherPool(for: options.expressions.map(\.regex))
    }

    public func process(_ batch: inout EventBatch) {
        var failed = 0
        var errors = 0
        let o = options
        matchers.withMatcher { m in
            batch.rewriteFields(fieldsPerEvent: 8) { arena, events, w in
                let contentKey = w.intern("content")
                let source = o.sourceKey == "content" ? contentKey : w.intern(o.sourceKey)
                // Fields in the order of their groups in the expression.
                let fieldKeys: [[(Int, Span)]] = o.expressions.map { e in e.fields.sorted { $0.key < $1.key }.map { ($0.key, w.intern($0.value)) } }
                for i in events.indices {
                    var ev = events[i]
                    w.begin(ev, contentKey: contentKey)
                    guard let si = w.find(source, arena: arena) else { w.end(&ev); events[i] = ev; continue }
                    let v = w.fields[si].value
                    let p = arena + Int(v.offset)
                    let n = Int(v.length)
                    var matched = false
                    for (e, expr) in o.expressions.enumerated() {
                        var pos = 0
                        while pos <= n {
                            let r = m.match(expr.regex, p, n, from: pos)
                            if case .failed = r { errors += 1 }
                            guard r == .matched else { break }
                            for (g, key) in fieldKeys[e] {
                                let b = m.bounds(g)
                                if b.start >= 0 && b.end > b.start {
                                    w.append(key, Span(Int(v.offset) + b.start, b.end - b.start))
                                    matched = true
                                }
                            }
                            let whole = m.bounds(0)
                            pos = whole.end > whole.start ? whole.end : whole.end + 1
                        }
                        if matched { break }
                    }
                    if !matched { failed += 1 }
                    if (matched && !o.keepSource) || (!matched && !o.ignoreParseFailure) { w.fields[si].kind = .deleted }
                    w.end(&ev)
                    events[i] = ev
                }
            }
        }
        metrics.parseFailures.add(failed)
        metrics.errors.add(errors)
    }
}

/// Expands grok references into a PCRE2 pattern.
enum GrokCompiler {
    struct Failure: Error { var message: String }

    /// `%{NAME}` → `(?:def)`, `%{NAME:field[:type]}` → `(?<gK>def)` with `aliases[gK] = field`.
    static func expand(_ text: String, patterns: [String: String], aliases: inout [String: String], depth: Int = 0) throws(Failure) -> String {
        guard depth < 64 else { throw Failure(message: "pattern references nest too deep (a cycle?)") }
        var out = ""
        var rest = Substring(text)
        while let start = rest.range(of: "%{") {
            out += rest[..<start.lowerBound]
            guard let close = rest[start.upperBound...].firstIndex(of: "}") else { throw Failure(message: "unclosed %{") }
            let ref = rest[start.upperBound..<close].split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            let name = String(ref[0])
            guard let def = patterns[name] else { throw Failure(message: "unknown grok pattern %{\(name)}") }
            let inner = try expand(def, patterns: patterns, aliases: &aliases, depth: depth + 1)
            if ref.count >= 2 && !ref[1].isEmpty {
                let alias = "g\(aliases.count)x"
                aliases[alias] = String(ref[1])
                out += "(?<\(alias)>\(inner))"
            } else {
                out += "(?:\(inner))"
            }
            rest = rest[rest.index(after: close)...]
        }
        return out + rest
    }
}

private extension Substring {
    func range(of s: String) -> Range<Index>? {
        var i = startIndex
        let first = s.first!
        while i < endIndex {
            if self[i] == first && self[i...].hasPrefix(s) { return i..<index(i, offsetBy: s.count) }
            i = index(after: i)
        }
        return nil
    }
}
