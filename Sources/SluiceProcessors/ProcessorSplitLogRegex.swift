import Glibc
import SluiceConfig
import SluiceCore
import SluiceRegex

/// `processor_split_log_regex` (Go): splits one event whose field holds several lines into one
/// event per group of lines, a group starting at every line that `SplitRegex` matches whole
/// [LC plugins/processor/split/logregex/split_log_regex.go, `SplitLog` / `ProcessLogs`]. The
/// incumbent's rules, followed exactly:
/// - the field split is the first one named `SplitKey` (the event's first field when it is empty);
/// - lines are the bytes between `\n`s; a line "matches" when the regex's first match found at the
///   line's start (Go's leftmost-first `FindStringSubmatchIndex`) ends at the line's end — a
///   prefix-anchored match that must reach the end, not PCRE2's full-match backtracking;
/// - the first line always starts the first group, whether it matches or not; a group ends before
///   the `\n` that precedes the next matching line; the last group runs to the end of the value
///   (with a trailing `\n` if the value has one); an empty value gives no event at all;
/// - each new event gets, with `PreserveOthers`, the event's other fields in order, then the split
///   field (same key) with its group; without it, only the split field. It keeps the event's time;
/// - an event without the field passes unchanged with `PreserveOthers`, and is dropped without it
///   (counted as `discarded{reason="no_key"}`; the incumbent drops it silently).
///
/// Go's RE2 flavour on PCRE2: `$` only at the very end, `.` does not match `\n` (a line has none).
/// An unparsed event split on its raw line (`SplitKey` `content` or empty) stays unparsed: its
/// groups are views of the same bytes, no field is made.
public final class ProcessorSplitLogRegex: ProcessorPlugin {
    public struct Options: Sendable {
        /// Empty: the event's first field.
        public var splitKey: String
        public var splitRegex: RegexPattern
        public var preserveOthers: Bool
        /// `EnableLogPositionMeta`: a preserved `__file_offset__` moves to each group's start.
        public var enableLogPositionMeta = false
    }

    public static let spec = PluginSpec(
        type: "processor_split_log_regex", kind: .processor,
        summary: "Splits a multi-line field into one event per group of lines, a group starting at each line `SplitRegex` matches whole (iLogtail's Go processor).",
        fields: [
            FieldSpec(name: "SplitKey", type: .string, doc: "The field to split (`content` for the raw line); empty or absent: the event's first field.", defaultValue: ""),
            FieldSpec(name: "SplitRegex", type: .string,
                      doc: "A line that this pattern matches whole starts a new event (RE2 flavour as in iLogtail: the first match at the line's start must reach its end). The first line always starts the first event. The default `.*` makes every line an event.",
                      defaultValue: ".*"),
            FieldSpec(name: "PreserveOthers", type: .bool,
                      doc: "Copy the event's other fields into each new event (before the split field). Without it the new events hold only the split field, and an event without the field is dropped (counted as `no_key`).",
                      defaultValue: "false"),
            FieldSpec(name: "NoKeyError", type: .bool,
                      doc: "iLogtail logs a warning for each event without the field. Accepted; Sluice logs nothing per event (see PreserveOthers for what happens to it).",
                      defaultValue: "false"),
            FieldSpec(name: "EnableLogPositionMeta", type: .bool, doc: "With PreserveOthers: each new event's `__file_offset__` (or `__tag__:__file_offset__`; the last such field, when it holds an integer, as `input_file`'s `AppendingLogPositionMeta` adds it) becomes the offset of its group: the value plus where the group starts in the split field.", defaultValue: "false"),
        ])

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        let pattern = try c.string("SplitRegex") ?? ".*"
        let regex: RegexPattern
        do { regex = try RegexPattern(pattern, anchoring: .prefix, syntax: [.dollarEndOnly]) } catch { throw c.error(at: "SplitRegex", error.description) }
        _ = try c.bool("NoKeyError")
        var o = Options(splitKey: try c.string("SplitKey") ?? "", splitRegex: regex, preserveOthers: try c.bool("PreserveOthers") ?? false)
        o.enableLogPositionMeta = try c.bool("EnableLogPositionMeta") ?? false
        return o
    }

    let options: Options
    let metrics: ComponentMetrics
    let matchers: RegexMatcherPool

    public init(options: Options, context: PluginContext) {
        self.options = options
        metrics = context.metrics
        matchers = RegexMatcherPool(for: [options.splitRegex])
    }

    public func process(_ batch: inout EventBatch) {
        let o = options
        var noKey = 0
        var empty = 0
        var errors = 0
        matchers.withMatcher { m in
            batch.rewriteFields(fieldsPerEvent: 1) { arena, events, w in
                let contentKey = w.intern("content")
                let onContent = o.splitKey.isEmpty || o.splitKey == "content"
                let key: Span? = o.splitKey.isEmpty ? nil : (o.splitKey == "content" ? contentKey : w.intern(o.splitKey))
                var out: [LogEvent] = []
                out.reserveCapacity(events.count)
                var others: [EventField] = []
                for var ev in events {
                    if !ev.isParsed {
                        if onContent {
                            // The raw line is the event's one field: its groups are views of it.
                            let c = ev.content
                            let made = Self.split(arena + Int(c.offset), Int(c.length), o.splitRegex, m, &errors) { start, length in
                                var e = ev
                                e.content = Span(Int(c.offset) + start, length)
                                out.append(e)
                            }
                            if made == 0 { empty += 1 }
                            continue
                        }
                        if o.preserveOthers { out.append(ev) } else { noKey += 1 }
                        continue
                    }
                    w.begin(ev, contentKey: contentKey)
                    guard let di = w.source(key, arena: arena) else {
                        if o.preserveOthers {
                            w.end(&ev)
                            out.append(ev)
                        } else {
                            noKey += 1
                            w.discardCurrent()
                        }
                        continue
                    }
                    let dest = w.fields[di]
                    others.removeAll(keepingCapacity: true)
                    if o.preserveOthers {
                        for i in w.current where i != di && w.fields[i].kind != .deleted { others.append(w.fields[i]) }
                    }
                    let position = o.enableLogPositionMeta ? Self.fileOffset(in: others, arena: arena) : nil
                    w.discardCurrent()
                    // Values of fields made before this pass are in the arena.
                    let v = dest.value
                    let made = Self.split(arena + Int(v.offset), Int(v.length), o.splitRegex, m, &errors) { start, length in
                        let first = w.fields.count
                        w.fields.append(contentsOf: others)
                        if let (at, offset) = position, start > 0 {
                            let n = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { d in
                                let n = OutputBuffer.writeDecimal(offset + Int64(start), to: d.baseAddress!)
                                return w.appendBytes(d.baseAddress!, n)
                            }
                            w.fields[first + at].value = n
                            w.fields[first + at].kind = .string
                        }
                        let whole = start == 0 && length == Int(v.length)
                        w.fields.append(EventField(key: dest.key, value: Span(Int(v.offset) + start, length), kind: whole ? dest.kind : .string))
                        var e = ev
                        e.fieldStart = UInt32(truncatingIfNeeded: first)
                        e.fieldCount = UInt32(truncatingIfNeeded: w.fields.count - first)
                        e.flags |= LogEvent.Flag.parsed
                        out.append(e)
                    }
                    if made == 0 { empty += 1 }
                }
                events = out
            }
        }
        metrics.discarded(noKey, reason: "no_key")
        metrics.discarded(empty, reason: "empty")
        metrics.errors.add(errors)
    }

    /// The index in `fields` of the last `__file_offset__` / `__tag__:__file_offset__` whose value
    /// is an integer, and that integer (the incumbent's `GetFileOffsetTag` and `ParseInt`).
    static func fileOffset(in fields: [EventField], arena: UnsafePointer<UInt8>) -> (Int, Int64)? {
        for i in fields.indices.reversed() {
            let f = fields[i]
            let key = UnsafeBufferPointer(start: arena + Int(f.key.offset), count: Int(f.key.length))
            guard key.elementsEqual("__file_offset__".utf8) || key.elementsEqual("__tag__:__file_offset__".utf8) else { continue }
            let text = String(decoding: UnsafeBufferPointer(start: arena + Int(f.value.offset), count: Int(f.value.length)), as: UTF8.self)
            return Int64(text).map { (i, $0) }
        }
        return nil
    }

    /// The incumbent's `SplitLog` on the `n` bytes at `p`: calls `emit(start, length)` per group
    /// and returns how many.
    @inline(__always)
    static func split(_ p: UnsafePointer<UInt8>, _ n: Int, _ regex: RegexPattern, _ m: RegexMatcher, _ errors: inout Int,
                      _ emit: (Int, Int) -> Void) -> Int {
        var made = 0
        var lastLine = 0
        var lastCheck = 0
        func lineMatches(_ start: Int, _ end: Int) -> Bool {
            let len = end - start
            switch m.match(regex, p + start, len) {
            case .matched: return m.bounds(0).end == len
            case .noMatch: return false
            case .failed:
                errors += 1
                return false
            }
        }
        var i = 0
        while i < n {
            guard let hit = memchr(p + i, 0x0A, n - i) else { break }
            let nl = UnsafePointer<UInt8>(hit.assumingMemoryBound(to: UInt8.self)) - p
            if (lastLine != 0 || lastCheck != 0) && lineMatches(lastCheck, nl) {
                emit(lastLine, lastCheck - 1 - lastLine)
                made += 1
                lastLine = lastCheck
            }
            lastCheck = nl + 1
            i = nl + 1
        }
        if lastCheck != 0 && lastCheck < n && lineMatches(lastCheck, n) {
            emit(lastLine, lastCheck - 1 - lastLine)
            made += 1
            lastLine = lastCheck
        }
        if lastLine < n {
            emit(lastLine, n - lastLine)
            made += 1
        }
        return made
    }
}
