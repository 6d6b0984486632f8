import Glibc
import SluiceConfig
import SluiceCore

/// `processor_split_string`: splits a field on a separator of any length into the fields
/// `SplitKeys` [LC plugins/processor/split/string/split_string.go]. The incumbent's rules:
/// - the source is `SourceKey`, or the event's first field when it is empty; it is removed unless
///   `KeepSource`; the values are appended after the event's fields (no overwrite);
/// - the value is cut like Go's `strings.SplitN(value, SplitSep, len(SplitKeys) + 1)`: separators
///   are found left to right without overlap, an empty value is one empty part, and a trailing
///   separator makes a last empty part (unlike `processor_split_char`);
/// - the first parts go to the keys (fewer parts than keys sets only the first ones; with
///   `NoMatchError` counted as a parse failure, where the incumbent logs a warning);
/// - with `PreserveOthers`, the rest after the last key's part goes, whole, to `_split_preserve_`,
///   or with `ExpandOthers` is split on every separator into `<ExpandKeyPrefix>1`, `2`, …
///   No keys at all: the whole value is that rest.
///
/// An event left with no field is dropped and counted as `discarded{reason="empty"}`.
public final class ProcessorSplitString: ProcessorPlugin {
    public struct Options: Sendable, Equatable {
        /// Empty: the event's first field.
        public var sourceKey: String
        public var separator: [UInt8]
        public var splitKeys: [String]
        public var preserveOthers: Bool
        public var expandOthers: Bool
        public var expandKeyPrefix: String
        public var noKeyError: Bool
        public var noMatchError: Bool
        public var keepSource: Bool
    }

    public static let spec = PluginSpec(
        type: "processor_split_string", kind: .processor,
        summary: "Splits a field on a separator string into the fields named in `SplitKeys`.",
        fields: [
            FieldSpec(name: "SourceKey", type: .string, doc: "The field to split (`content` for the raw line); empty or absent: the event's first field.", defaultValue: nil),
            FieldSpec(name: "SplitSep", type: .string, doc: "The separator, one or more bytes (matched literally). Default: a newline.", defaultValue: nil),
            FieldSpec(name: "SplitKeys", type: .stringList, doc: "Names of the parts, in order. None: the whole value is the rest (see `PreserveOthers`).", defaultValue: nil),
            FieldSpec(name: "PreserveOthers", type: .bool,
                      doc: "Keep the rest after the last key's part: in `_split_preserve_`, or expanded with `ExpandOthers`. (iLogtail's docs say the default is false; its code, followed here, says true.)",
                      defaultValue: "true"),
            FieldSpec(name: "ExpandOthers", type: .bool, doc: "With `PreserveOthers`, split the rest on every separator into `<ExpandKeyPrefix>1`, `<ExpandKeyPrefix>2`, …", defaultValue: "false"),
            FieldSpec(name: "ExpandKeyPrefix", type: .string, doc: "The prefix of the names `ExpandOthers` makes.", defaultValue: ""),
            FieldSpec(name: "NoKeyError", type: .bool,
                      doc: "iLogtail logs a warning for each event without the source field. Accepted; Sluice leaves such events unchanged and logs nothing per event.",
                      defaultValue: "false"),
            FieldSpec(name: "NoMatchError", type: .bool,
                      doc: "Count a value with fewer parts than `SplitKeys` as a parse failure (iLogtail logs a warning). The parts found are set either way.",
                      defaultValue: "false"),
            FieldSpec(name: "KeepSource", type: .bool, doc: "Keep the source field (in its place) after splitting.", defaultValue: "false"),
        ])

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        let sep = Array((try c.string("SplitSep") ?? "\n").utf8)
        guard !sep.isEmpty else { throw c.error(at: "SplitSep", "SplitSep must not be empty") }
        return Options(sourceKey: try c.string("SourceKey") ?? "", separator: sep, splitKeys: try c.stringList("SplitKeys") ?? [],
                       preserveOthers: try c.bool("PreserveOthers") ?? true, expandOthers: try c.bool("ExpandOthers") ?? false,
                       expandKeyPrefix: try c.string("ExpandKeyPrefix") ?? "",
                       noKeyError: try c.bool("NoKeyError") ?? false, noMatchError: try c.bool("NoMatchError") ?? false,
                       keepSource: try c.bool("KeepSource") ?? false)
    }

    let options: Options
    let metrics: ComponentMetrics

    public init(options: Options, context: PluginContext) {
        self.options = options
        metrics = context.metrics
    }

    public func process(_ batch: inout EventBatch) {
        let o = options
        var short = 0
        var emptied = 0
        batch.rewriteFields(fieldsPerEvent: o.splitKeys.count + 1) { arena, events, w in
            let contentKey = w.intern("content")
            let source: Span? = o.sourceKey.isEmpty ? nil : (o.sourceKey == "content" ? contentKey : w.intern(o.sourceKey))
            var splitter = StringSplitter(o, &w)
            var kept = 0
            for i in events.indices {
                var ev = events[i]
                w.begin(ev, contentKey: contentKey)
                if let si = w.source(source, arena: arena) {
                    // A source value is in the arena: it comes from the fields before this pass.
                    let v = w.fields[si].value
                    if !o.keepSource { w.fields[si].kind = .deleted }
                    let parts = splitter.split(arena + Int(v.offset), Int(v.length), base: Int(v.offset), &w)
                    if parts < o.splitKeys.count && o.noMatchError { short += 1 }
                    if w.currentIsEmpty {
                        emptied += 1
                        w.discardCurrent()
                        continue
                    }
                }
                w.end(&ev)
                events[kept] = ev
                kept += 1
            }
            events.removeSubrange(kept..<events.count)
        }
        metrics.parseFailures.add(short)
        metrics.discarded(emptied, reason: "empty")
    }
}

/// The split of one batch: keys interned once (the `ExpandOthers` names when first needed).
struct StringSplitter {
    let sep: [UInt8]
    let preserveOthers: Bool
    let expandOthers: Bool
    let prefix: [UInt8]
    let keys: [Span]
    let preserveKey: Span
    /// `<prefix>1`, `<prefix>2`, … made so far in this batch.
    var expandKeys: [Span] = []

    init(_ o: ProcessorSplitString.Options, _ w: inout FieldWriter) {
        sep = o.separator
        preserveOthers = o.preserveOthers
        expandOthers = o.expandOthers
        prefix = Array(o.expandKeyPrefix.utf8)
        var keys: [Span] = []
        keys.reserveCapacity(o.splitKeys.count)
        for k in o.splitKeys { keys.append(w.intern(k)) }
        self.keys = keys
        preserveKey = w.intern("_split_preserve_")
    }

    /// Splits the `n` bytes at `p` (arena offset `base`), appending the parts to the open event.
    /// Returns the number of parts set: fewer than the keys only when the value has fewer parts.
    mutating func split(_ p: UnsafePointer<UInt8>, _ n: Int, base: Int, _ w: inout FieldWriter) -> Int {
        let count = keys.count
        // Parts past the keys are kept only with PreserveOthers; only ExpandOthers cuts them up.
        let limit = expandOthers ? Int.max : count + 1
        var parts = 0
        var pos = 0
        while true {
            if parts >= count && !preserveOthers { return parts }
            // The last part allowed is the unsplit rest.
            let cut = parts == limit - 1 ? nil : next(p, n, from: pos)
            let end = cut ?? n
            emit(parts, Span(base + pos, end - pos), &w)
            parts += 1
            guard let cut else { return parts }
            pos = cut + sep.count
        }
    }

    /// Puts part `i` where it belongs: a key, `_split_preserve_` or an expanded name.
    private mutating func emit(_ i: Int, _ value: Span, _ w: inout FieldWriter) {
        if i < keys.count {
            w.append(keys[i], value)
        } else if expandOthers {
            let key = expandKey(i - keys.count + 1, &w)
            w.append(key, value)
        } else {
            w.append(preserveKey, value)
        }
    }

    /// `<prefix><number>`, made once per batch.
    private mutating func expandKey(_ number: Int, _ w: inout FieldWriter) -> Span {
        while expandKeys.count < number {
            let mark = w.extraMark
            w.extra.append(contentsOf: prefix)
            let digits = w.extra.count
            var x = expandKeys.count + 1
            repeat {
                w.extra.append(UInt8(48 + x % 10))
                x /= 10
            } while x > 0
            let end = w.extra.count
            w.extra[digits..<end].reverse()
            expandKeys.append(w.span(since: mark))
        }
        return expandKeys[number - 1]
    }

    /// Where the next separator starts at or after `from`, or nil.
    private func next(_ p: UnsafePointer<UInt8>, _ n: Int, from: Int) -> Int? {
        let m = sep.count
        let first = sep[0]
        var i = from
        while let j = byteIndex(first, p, from: i, to: n - m + 1) {
            var k = 1
            while k < m && p[j + k] == sep[k] { k += 1 }
            if k == m { return j }
            i = j + 1
        }
        return nil
    }
}
