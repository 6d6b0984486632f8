import SluiceConfig
import SluiceCore

/// `processor_json` (Go): flattens a JSON object field recursively [LC plugins/processor/json/processor_json.go].
/// A nested key is `<parent><ExpandConnector><key>`; at the top level the parent is empty (or the
/// source key with `UseSourceKeyAsPrefix`), so with the code's defaults top-level keys start with
/// the connector (`{"a":1}` → `_a`) unless `IgnoreFirstConnector`. Strings are unescaped; other
/// values keep their JSON text. Arrays stay JSON text unless `ExpandArray` (`key[0]`, ...).
/// `Prefix` is put before every key made. Fields found before a syntax error are kept.
public final class ProcessorJson: ProcessorPlugin {
    public struct Options: Sendable, Equatable {
        public var sourceKey: String
        public var expandDepth: Int
        public var connector: String
        public var prefix: String
        public var keepSource: Bool
        public var keepSourceIfParseError: Bool
        public var useSourceKeyAsPrefix: Bool
        public var ignoreFirstConnector: Bool
        public var expandArray: Bool
    }

    public static let spec = PluginSpec(
        type: "processor_json", kind: .processor,
        summary: "Expands a JSON object field into fields, recursively, keys joined with a connector (iLogtail's Go processor).",
        fields: [
            FieldSpec(name: "SourceKey", type: .string, doc: "The field holding the JSON object. Required.", defaultValue: nil),
            FieldSpec(name: "NoKeyError", type: .bool, doc: "iLogtail: warn when the field is missing. The event passes either way.", defaultValue: "true"),
            FieldSpec(name: "ExpandDepth", type: .int, doc: "Levels to expand; 0: all. Deeper objects stay JSON text.", defaultValue: "0"),
            FieldSpec(name: "ExpandConnector", type: .string, doc: "Joins a parent key and a child key (may be empty).", defaultValue: "_"),
            FieldSpec(name: "Prefix", type: .string, doc: "Put before every key made.", defaultValue: ""),
            FieldSpec(name: "KeepSource", type: .bool, doc: "Keep the source field.", defaultValue: "true"),
            FieldSpec(name: "KeepSourceIfParseError", type: .bool, doc: "Keep the source field when it is not valid JSON.", defaultValue: "true"),
            FieldSpec(name: "UseSourceKeyAsPrefix", type: .bool, doc: "Top-level keys start with the source key and the connector.", defaultValue: "false"),
            FieldSpec(name: "IgnoreFirstConnector", type: .bool, doc: "No connector before top-level keys.", defaultValue: "false"),
            FieldSpec(name: "ExpandArray", type: .bool, doc: "Expand arrays into `key[i]` fields.", defaultValue: "false"),
        ])

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        Options(sourceKey: try c.requiredString("SourceKey"), expandDepth: try c.int("ExpandDepth") ?? 0,
                connector: try c.string("ExpandConnector") ?? "_", prefix: try c.string("Prefix") ?? "",
                keepSource: try c.bool("KeepSource") ?? true, keepSourceIfParseError: try c.bool("KeepSourceIfParseError") ?? true,
                useSourceKeyAsPrefix: try c.bool("UseSourceKeyAsPrefix") ?? false,
                ignoreFirstConnector: try c.bool("IgnoreFirstConnector") ?? false, expandArray: try c.bool("ExpandArray") ?? false)
    }

    let options: Options
    let metrics: ComponentMetrics

    public init(options: Options, context: PluginContext) {
        self.options = options
        metrics = context.metrics
    }

    public func process(_ batch: inout EventBatch) {
        var failed = 0
        let o = options
        batch.rewriteFields(fieldsPerEvent: 8) { arena, events, w in
            let contentKey = w.intern("content")
            let source = o.sourceKey == "content" ? contentKey : w.intern(o.sourceKey)
            var flattener = JSONFlattener(options: o)
            for i in events.indices {
                var ev = events[i]
                w.begin(ev, contentKey: contentKey)
                guard let si = w.find(source, arena: arena) else { w.end(&ev); events[i] = ev; continue }
                let srcField = w.fields[si]
                let v = srcField.value
                let ok = flattener.flatten(arena + Int(v.offset), Int(v.length), base: Int(v.offset), &w)
                if !ok { failed += 1 }
                if !(o.keepSource || (o.keepSourceIfParseError && !ok)) { w.fields[si].kind = .deleted }
                w.end(&ev)
                events[i] = ev
            }
        }
        metrics.parseFailures.add(failed)
    }
}

/// The recursive walk of `processor_json`, appending fields to the open event.
struct JSONFlattener {
    let options: ProcessorJson.Options
    let connector: [UInt8]
    let prefix: [UInt8]
    let topKey: [UInt8]
    /// The key being built: `prefix`-less parent path.
    var path: [UInt8] = []
    var stack: [Bool] = []
    var depth = 0

    init(options: ProcessorJson.Options) {
        self.options = options
        connector = Array(options.connector.utf8)
        prefix = Array(options.prefix.utf8)
        topKey = options.useSourceKeyAsPrefix ? Array(options.sourceKey.utf8) : []
    }

    /// Walks the object at `p`; false on a syntax error (fields found before it stay).
    mutating func flatten(_ p: UnsafePointer<UInt8>, _ n: Int, base: Int, _ w: inout FieldWriter) -> Bool {
        path = topKey
        depth = 0
        return object(p, 0, n, base: base, &w)
    }

    /// The members of the object at `start..<end` under the current `path`.
    private mutating func object(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, base: Int, _ w: inout FieldWriter) -> Bool {
        guard depth < JSONScanner.maxDepth else { return false }
        var s = JSONScanner(p, end)
        s.i = start
        _ = s.skipWhitespace()
        guard s.peek() == 0x7B else { return false }
        s.i += 1
        _ = s.skipWhitespace()
        if s.peek() == 0x7D { return true }
        while true {
            guard let k = s.string() else { return false }
            _ = s.skipWhitespace()
            guard s.peek() == 0x3A else { return false }
            s.i += 1
            _ = s.skipWhitespace()
            let vStart = s.i
            guard let kind = s.value(stack: &stack) else { return false }
            let vEnd = s.i
            depth += 1
            let saved = path.count
            if !(depth == 1 && options.ignoreFirstConnector) { path.append(contentsOf: connector) }
            if k.escaped {
                JSONScanner.unescape(p, k.start, k.end, into: &path)
            } else {
                path.append(contentsOf: UnsafeBufferPointer(start: p + k.start, count: k.end - k.start))
            }
            var ok = true
            switch kind {
            case .composite where p[vStart] == 0x7B:
                if depth == options.expandDepth {
                    emit(raw: vStart, vEnd, base: base, &w)
                } else {
                    ok = object(p, vStart, vEnd, base: base, &w)
                }
            case .composite:
                if !options.expandArray || depth == options.expandDepth {
                    emit(raw: vStart, vEnd, base: base, &w)
                } else {
                    ok = array(p, vStart, vEnd, base: base, &w)
                }
            case .string(let escaped):
                emitString(p, vStart, vEnd, escaped: escaped, base: base, &w)
            default:
                emit(raw: vStart, vEnd, base: base, &w)
            }
            path.removeSubrange(saved..<path.count)
            depth -= 1
            guard ok else { return false }
            _ = s.skipWhitespace()
            guard let c = s.peek() else { return false }
            s.i += 1
            if c == 0x2C { _ = s.skipWhitespace(); continue }
            return c == 0x7D
        }
    }

    /// The items of the array at `start..<end`: `path[i]`; objects are expanded, other values emitted.
    private mutating func array(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, base: Int, _ w: inout FieldWriter) -> Bool {
        var s = JSONScanner(p, end)
        s.i = start + 1
        _ = s.skipWhitespace()
        if s.peek() == 0x5D { return true }
        var index = 0
        while true {
            _ = s.skipWhitespace()
            let vStart = s.i
            guard let kind = s.value(stack: &stack) else { return false }
            let vEnd = s.i
            let saved = path.count
            path.append(UInt8(ascii: "["))
            path.append(contentsOf: String(index).utf8)
            path.append(UInt8(ascii: "]"))
            var ok = true
            switch kind {
            case .composite where p[vStart] == 0x7B: ok = object(p, vStart, vEnd, base: base, &w)
            case .string(let escaped): emitString(p, vStart, vEnd, escaped: escaped, base: base, &w)
            default: emit(raw: vStart, vEnd, base: base, &w)
            }
            path.removeSubrange(saved..<path.count)
            guard ok else { return false }
            index += 1
            _ = s.skipWhitespace()
            guard let c = s.peek() else { return false }
            s.i += 1
            if c == 0x2C { continue }
            return c == 0x5D
        }
    }

    private func key(_ w: inout FieldWriter) -> Span {
        let mark = w.extraMark
        w.extra.append(contentsOf: prefix)
        w.extra.append(contentsOf: path)
        return w.span(since: mark)
    }

    private func emit(raw start: Int, _ end: Int, base: Int, _ w: inout FieldWriter) {
        let k = key(&w)
        w.append(k, Span(base + start, end - start))
    }

    private func emitString(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, escaped: Bool, base: Int, _ w: inout FieldWriter) {
        let k = key(&w)
        if !escaped {
            w.append(k, Span(base + start + 1, end - start - 2))
            return
        }
        let mark = w.extraMark
        JSONScanner.unescape(p, start + 1, end - 1, into: &w.extra)
        w.append(k, w.span(since: mark))
    }
}
