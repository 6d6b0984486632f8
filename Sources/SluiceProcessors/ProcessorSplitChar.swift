import Glibc
import SluiceConfig
import SluiceCore

/// `processor_split_char`: splits a field on a one-byte separator into the fields `SplitKeys`
/// [LC plugins/processor/split/char/split_char.go]. The incumbent's rules, kept exactly:
/// - the source is `SourceKey`, or the event's first field when it is empty; the values are
///   appended after the event's fields (no overwrite: a name the event has is then held twice);
/// - a value after a separator goes to the next key; a separator at the very end, or an empty
///   value, sets no key; fewer values than keys sets only the first ones (with `NoMatchError`
///   counted as a parse failure; the incumbent logs a warning);
/// - what follows the separator after the last key's value goes, whole, to `_split_preserve_`
///   when `PreserveOthers` (if anything follows); no keys at all: the whole value does;
/// - with `QuoteFlag`, a value that starts with the quote runs to a quote that ends the value or
///   is followed by the separator, `""` inside being one quote. Any other quote after a quote is
///   a parse failure: the values found so far stay, and the source is kept when
///   `KeepSourceIfParseError`. A quote elsewhere is an ordinary byte. A quoted value that is
///   never closed sets no key, and the rest of the value from its quote goes to the key after it
///   (or to `_split_preserve_` when it was the last key);
/// - the source is removed unless `KeepSource` (or a parse failure with `KeepSourceIfParseError`).
///
/// An event left with no field is dropped and counted as `discarded{reason="empty"}`.
public final class ProcessorSplitChar: ProcessorPlugin {
    public struct Options: Sendable, Equatable {
        /// Empty: the event's first field.
        public var sourceKey: String
        public var separator: UInt8
        public var splitKeys: [String]
        /// nil unless `QuoteFlag`.
        public var quote: UInt8?
        public var preserveOthers: Bool
        public var noKeyError: Bool
        public var noMatchError: Bool
        public var keepSource: Bool
        public var keepSourceIfParseError: Bool
    }

    public static let spec = PluginSpec(
        type: "processor_split_char", kind: .processor,
        summary: "Splits a field on a one-byte separator (optionally with quoted values) into the fields named in `SplitKeys`.",
        fields: [
            FieldSpec(name: "SourceKey", type: .string, doc: "The field to split (`content` for the raw line); empty or absent: the event's first field.", defaultValue: nil),
            FieldSpec(name: "SplitSep", type: .string, doc: "The separator: exactly one byte. Default: a newline.", defaultValue: nil),
            FieldSpec(name: "SplitKeys", type: .stringList, doc: "Names of the values, in order. None: the whole value goes to `_split_preserve_` (with `PreserveOthers`).", defaultValue: nil),
            FieldSpec(name: "QuoteFlag", type: .bool, doc: "Values may be quoted with `Quote` (`\"\"` inside is one quote).", defaultValue: "false"),
            FieldSpec(name: "Quote", type: .string,
                      doc: "The quote (its first byte), used with `QuoteFlag`. `QuoteFlag` without `Quote` makes the NUL byte the quote, as in iLogtail.",
                      defaultValue: nil),
            FieldSpec(name: "PreserveOthers", type: .bool,
                      doc: "Put what follows the last key's value in `_split_preserve_`. (iLogtail's docs say the default is false; its code, followed here, says true.)",
                      defaultValue: "true"),
            FieldSpec(name: "NoKeyError", type: .bool,
                      doc: "iLogtail logs a warning for each event without the source field. Accepted; Sluice leaves such events unchanged and logs nothing per event.",
                      defaultValue: "false"),
            FieldSpec(name: "NoMatchError", type: .bool,
                      doc: "Count a value with fewer parts than `SplitKeys` as a parse failure (iLogtail logs a warning). The parts found are set either way.",
                      defaultValue: "false"),
            FieldSpec(name: "KeepSource", type: .bool, doc: "Keep the source field (in its place) after splitting.", defaultValue: "false"),
            FieldSpec(name: "KeepSourceIfParseError", type: .bool, doc: "Keep the source field when a quoted value is malformed.", defaultValue: "true"),
        ])

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        let sep = Array((try c.string("SplitSep") ?? "\n").utf8)
        guard sep.count == 1 else {
            throw c.error(at: c.has("SplitSep") ? "SplitSep" : nil, "SplitSep must be exactly one byte, not \(sep.count)")
        }
        var quote: UInt8? = nil
        if try c.bool("QuoteFlag") ?? false {
            let q = try c.string("Quote") ?? ""
            quote = q.utf8.first ?? 0
        }
        return Options(sourceKey: try c.string("SourceKey") ?? "", separator: sep[0], splitKeys: try c.stringList("SplitKeys") ?? [],
                       quote: quote, preserveOthers: try c.bool("PreserveOthers") ?? true,
                       noKeyError: try c.bool("NoKeyError") ?? false, noMatchError: try c.bool("NoMatchError") ?? false,
                       keepSource: try c.bool("KeepSource") ?? false,
                       keepSourceIfParseError: try c.bool("KeepSourceIfParseError") ?? true)
    }

    let options: Options
    let metrics: ComponentMetrics

    public init(options: Options, context: PluginContext) {
        self.options = options
        metrics = context.metrics
    }

    public func process(_ batch: inout EventBatch) {
        let o = options
        var failed = 0
        var short = 0
        var emptied = 0
        batch.rewriteFields(fieldsPerEvent: o.splitKeys.count + 1) { arena, events, w in
            let contentKey = w.intern("content")
            let source: Span? = o.sourceKey.isEmpty ? nil : (o.sourceKey == "content" ? contentKey : w.intern(o.sourceKey))
            let splitter = CharSplitter(o, &w)
            var kept = 0
            for i in events.indices {
                var ev = events[i]
                w.begin(ev, contentKey: contentKey)
                if let si = w.source(source, arena: arena) {
                    // A source value is in the arena: it comes from the fields before this pass.
                    let v = w.fields[si].value
                    let outcome = splitter.split(arena + Int(v.offset), Int(v.length), base: Int(v.offset), &w)
                    switch outcome {
                    case .failed: failed += 1
                    case .short: if o.noMatchError { short += 1 }
                    case .complete: break
                    }
                    if !(o.keepSource || (o.keepSourceIfParseError && outcome == .failed)) { w.fields[si].kind = .deleted }
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
        metrics.parseFailures.add(failed + short)
        metrics.discarded(emptied, reason: "empty")
    }
}

/// What splitting one value came to.
enum SplitOutcome: Equatable {
    /// Every key got a value.
    case complete
    /// Fewer values than keys (the ones found are set).
    case short
    /// A malformed quoted value (the values before it are set).
    case failed
}

/// The split of one batch: keys interned once, values appended to the open event.
struct CharSplitter {
    let sep: UInt8
    let quote: UInt8?
    let preserveOthers: Bool
    let keys: [Span]
    let preserveKey: Span

    init(_ o: ProcessorSplitChar.Options, _ w: inout FieldWriter) {
        sep = o.separator
        quote = o.quote
        preserveOthers = o.preserveOthers
        var keys: [Span] = []
        keys.reserveCapacity(o.splitKeys.count)
        for k in o.splitKeys { keys.append(w.intern(k)) }
        self.keys = keys
        preserveKey = w.intern("_split_preserve_")
    }

    /// Splits the `n` bytes at `p` (arena offset `base`), appending the values to the open event.
    func split(_ p: UnsafePointer<UInt8>, _ n: Int, base: Int, _ w: inout FieldWriter) -> SplitOutcome {
        let count = keys.count
        if count == 0 {
            if preserveOthers { w.append(preserveKey, Span(base, n)) }
            return .complete
        }
        var k = 0       // next key
        var last = 0    // where the next value starts; may pass `n` by one after a closing quote
        if let quote {
            var i = 0
            scan: while k < count && i < n {
                let c = p[i]
                if c == sep {
                    w.append(keys[k], Span(base + i, 0))
                    last = i + 1
                    i += 1
                } else if c == quote {
                    i += 1
                    let start = i
                    var doubled = false
                    var closed = false
                    while i < n {
                        if p[i] == quote {
                            if i == n - 1 || p[i + 1] == sep { closed = true; break }
                            guard p[i + 1] == quote else { return .failed }
                            doubled = true
                            i += 2
                            continue
                        }
                        i += 1
                    }
                    if closed {
                        let value = doubled ? unescape(p, start, i, quote, &w) : Span(base + start, i - start)
                        w.append(keys[k], value)
                        last = i + 2
                        i += 2
                    }
                    // Never closed: this key gets nothing; `i` is at the end.
                } else {
                    guard let j = byteIndex(sep, p, from: i, to: n) else { break scan }
                    w.append(keys[k], Span(base + i, j - i))
                    last = j + 1
                    i = j + 1
                }
                k += 1
            }
            if k >= count && last < n && preserveOthers {
                w.append(preserveKey, Span(base + last, n - last))
                last = n
            }
        } else {
            var i = 0
            while let j = byteIndex(sep, p, from: i, to: n) {
                w.append(keys[k], Span(base + last, j - last))
                k += 1
                last = j + 1
                if k >= count {
                    if j != n - 1 && preserveOthers { w.append(preserveKey, Span(base + j + 1, n - j - 1)) }
                    break
                }
                i = j + 1
            }
        }
        if k < count && last < n {
            w.append(keys[k], Span(base + last, n - last))
            k += 1
        }
        return k < count ? .short : .complete
    }

    /// The bytes `p[start..<end]` with each doubled quote made one, in `w.extra`.
    private func unescape(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ quote: UInt8, _ w: inout FieldWriter) -> Span {
        let mark = w.extraMark
        var j = start
        while j < end {
            w.extra.append(p[j])
            // Inside a closed quoted value every quote is the first of a pair.
            j += p[j] == quote ? 2 : 1
        }
        return w.span(since: mark)
    }
}

/// The index of the first `byte` in `p[from..<end]`, or nil.
@inline(__always)
func byteIndex(_ byte: UInt8, _ p: UnsafePointer<UInt8>, from: Int, to end: Int) -> Int? {
    guard from < end, let q = memchr(p + from, Int32(byte), end - from) else { return nil }
    return UnsafeRawPointer(p).distance(to: UnsafeRawPointer(q))
}
