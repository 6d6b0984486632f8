import CJSONText
import SluiceConfig
import SluiceCore
import SluiceRegex

/// `Multiline` of `input_file` / `input_container_stdio` (and `BeginLineRegex` of
/// `service_docker_stdout`), read once: compiled patterns and what to do with unmatched lines.
/// The rules are the incumbent's (reference §1.8, LC ProcessorSplitMultilineLogStringNative and
/// JsonLogFileReader); the joining itself happens in the reader, per file and per stream
/// (`MultilineMachine`).
public struct MultilineOptions: Sendable {
    public enum Mode: String, Sendable, CaseIterable {
        case custom
        case json = "JSON"
    }

    public enum Unmatched: String, Sendable, CaseIterable {
        case singleLine = "single_line"
        case discard
    }

    public var mode: Mode = .custom
    /// Compiled with prefix anchoring (Boost `regex_search` + `match_continuous`) and Boost's
    /// Perl syntax; nil when not set (or empty after the trailing `$` / `.*` were stripped).
    public var start: RegexPattern?
    public var `continue`: RegexPattern?
    public var end: RegexPattern?
    public var unmatched: Unmatched = .singleLine
    public var ignoringUnmatchWarning = false
    /// How long a pending group waits for more lines; nil: the input's `FlushTimeoutSecs`.
    /// (`service_docker_stdout`'s `BeginLineTimeoutMs`.)
    public var flushTimeoutSecs: Double?
    /// Only this many first bytes of a line are tested (`BeginLineCheckLength`); nil: all of it.
    public var checkLength: Int?

    public init(mode: Mode = .custom, start: RegexPattern? = nil, continue cont: RegexPattern? = nil, end: RegexPattern? = nil,
                unmatched: Unmatched = .singleLine) {
        self.mode = mode
        self.start = start
        self.continue = cont
        self.end = end
        self.unmatched = unmatched
        normalize()
    }

    /// Whether lines are grouped at all: JSON mode, or a start or end pattern. (Continue alone
    /// is ignored, as by the incumbent.)
    public var isActive: Bool { mode == .json || start != nil || end != nil }

    /// The incumbent's combination rules: all three set → Continue ignored; Continue alone →
    /// nothing (see `isActive`).
    mutating func normalize() {
        if start != nil && self.continue != nil && end != nil { self.continue = nil }
        if start == nil && end == nil { self.continue = nil }
    }

    /// Compiles a multiline pattern as the incumbent does: one trailing `$`, then any trailing
    /// `.*` stripped (a match is a prefix match, so they add nothing); an empty result is "not
    /// set". An escaped `\$` or `\.*` is left alone (the incumbent would strip it and fail).
    public static func compile(_ pattern: String) throws(RegexError) -> RegexPattern? {
        var p = Array(pattern.utf8)
        func escaped(_ at: Int) -> Bool {
            var n = 0
            var i = at - 1
            while i >= 0 && p[i] == UInt8(ascii: "\\") { n += 1; i -= 1 }
            return n % 2 == 1
        }
        if let last = p.last, last == UInt8(ascii: "$"), !escaped(p.count - 1) { p.removeLast() }
        while p.count >= 2 && p[p.count - 1] == UInt8(ascii: "*") && p[p.count - 2] == UInt8(ascii: ".") && !escaped(p.count - 2) {
            p.removeLast(2)
        }
        if p.isEmpty { return nil }
        return try RegexPattern(String(decoding: p, as: UTF8.self), anchoring: .prefix, syntax: .boost)
    }

    /// The keys of a `Multiline` object.
    public static let fields: [FieldSpec] = [
        FieldSpec(name: "Mode", type: .string, doc: "`custom` (the patterns below) or `JSON` (complete `{…}` objects found by brace matching, strings and escapes respected: one object, even across lines, is one event; blank lines between objects are skipped, counted as `discarded_events.multiline_blank_line`; `input_file` only). A pipeline whose first processor is `processor_parse_json_native` or `processor_json` reads this way whatever Mode says, as the incumbent does.", defaultValue: "custom"),
        FieldSpec(name: "StartPattern", type: .string, doc: "A line matching it (at its start: prefix match, Boost syntax; one trailing `$` and trailing `.*` are ignored) opens an event.", defaultValue: nil),
        FieldSpec(name: "ContinuePattern", type: .string, doc: "Lines matching it continue the event. Alone it is ignored; with StartPattern and EndPattern both set it is ignored.", defaultValue: nil),
        FieldSpec(name: "EndPattern", type: .string, doc: "A line matching it closes the event (End alone: every chunk ending with an End line is an event).", defaultValue: nil),
        FieldSpec(name: "UnmatchedContentTreatment", type: .string, doc: "Lines outside any event: `single_line` (one event each) or `discard` (counted as `discarded_events.multiline_unmatched`).", defaultValue: "single_line"),
        FieldSpec(name: "IgnoringUnmatchWarning", type: .bool, doc: "Do not warn about unmatched lines.", defaultValue: "false"),
        FieldSpec(name: "FileWriteMode", type: .string, doc: "`whole_file` mode only.", defaultValue: "append",
                  status: .acceptedNotYetEffective(reason: "Mode whole_file is not supported")),
        FieldSpec(name: "MaxWholeFileBytes", type: .int, doc: "`whole_file` mode only.", defaultValue: "10485760",
                  status: .acceptedNotYetEffective(reason: "Mode whole_file is not supported")),
    ]

    /// Reads a `Multiline` object. Returns nil when it groups nothing (no Start or End pattern,
    /// custom mode). A bad pattern or value is an error at its key.
    public static func from(_ c: ConfigObject, allowJSON: Bool) throws(ConfigError) -> MultilineOptions? {
        var o = MultilineOptions()
        if let m = try c.string("Mode") {
            guard let mode = Mode(rawValue: m) else {
                if m == "whole_file" { throw c.error(at: "Mode", "whole_file is not supported (supported: custom, JSON)") }
                throw c.error(at: "Mode", "unknown mode \"\(m)\" (known: custom, JSON)")
            }
            if mode == .json && !allowJSON { throw c.error(at: "Mode", "JSON mode applies to input_file only (supported here: custom)") }
            o.mode = mode
        }
        func pattern(_ key: String) throws(ConfigError) -> RegexPattern? {
            guard let s = try c.string(key) else { return nil }
            do { return try compile(s) } catch { throw c.error(at: key, error.description) }
        }
        o.start = try pattern("StartPattern")
        o.continue = try pattern("ContinuePattern")
        o.end = try pattern("EndPattern")
        if let u = try c.string("UnmatchedContentTreatment") {
            guard let v = Unmatched(rawValue: u) else {
                throw c.error(at: "UnmatchedContentTreatment", "unknown treatment \"\(u)\" (known: single_line, discard)")
            }
            o.unmatched = v
        }
        o.ignoringUnmatchWarning = try c.bool("IgnoringUnmatchWarning") ?? false
        if o.mode == .json {
            o.start = nil; o.continue = nil; o.end = nil
        }
        o.normalize()
        return o.isActive ? o : nil
    }

    /// The patterns, for a matcher with room for their groups.
    var patterns: [RegexPattern] { [start, self.continue, end].compactMap { $0 } }
}

/// One line handed to the joiner: where it is in the buffer the sink knows, and what it carries.
struct MultilineLine {
    var span: Span
    var timeNanos: Int64 = 0
    var flags: UInt32 = 0
    /// File offset of the first raw byte behind the line (the checkpoint must not pass it while
    /// the line is held in a group). Only the copying sink uses it.
    var rawOffset: Int64 = 0
}

/// Where the joiner's decisions go. The joiner never touches bytes except to match them; a sink
/// either extends a span of contiguous lines (a file's read buffer) or copies (container streams).
protocol MultilineSink {
    /// Adds a line to the pending group (opening it if empty).
    mutating func groupAdd(_ line: MultilineLine)
    /// Emits the pending group as one event, lines joined by `\n`.
    mutating func groupEmit(flags: UInt32)
    /// The pending group is unmatched: each line becomes its own event (`discard` false) or none.
    mutating func groupUnmatched(discard: Bool)
    /// A line on its own as an event.
    mutating func single(_ line: MultilineLine)
}

/// The incumbent's multiline state machine, fed one line at a time, across reads: the state
/// lives as long as the file (or stream). Allocation-free.
struct MultilineMachine {
    let options: MultilineOptions
    let maxGroupBytes: Int
    /// `options`' patterns as handles (`options` keeps them alive): matching a line costs no
    /// reference counting.
    private let start: RegexHandle?, next: RegexHandle?, end: RegexHandle?
    /// A group is being built (the incumbent's `isPartialLog`). End-only mode is always open.
    private(set) var open: Bool
    /// Size of the pending group: its lines and the `\n` between them (0: no line yet).
    private(set) var groupBytes = 0
    private(set) var groupLines = 0
    /// The pending group continues one cut at the size bound.
    private var truncated = false
    // JSON mode: brace depth, in a string, the next byte escaped.
    private var depth = 0
    private var inQuote = false
    private var escapeNext = false

    /// Counted for the caller, which adds them to the metrics and zeroes them.
    var discardedLines = 0
    var unmatchedLines = 0
    var truncatedGroups = 0
    /// Blank lines between JSON objects (Mode JSON), skipped as the incumbent skips them.
    var blankLines = 0

    private var endOnly: Bool { options.start == nil && options.continue == nil && options.end != nil }

    init(options: MultilineOptions, maxGroupBytes: Int) {
        self.options = options
        self.maxGroupBytes = max(1, maxGroupBytes)
        start = options.start?.handle
        next = options.continue?.handle
        end = options.end?.handle
        open = options.mode == .custom && options.start == nil && options.continue == nil && options.end != nil
    }

    /// Back to the first state (the file was truncated; the pending group is dropped by the caller).
    mutating func reset() {
        open = endOnly
        groupBytes = 0
        groupLines = 0
        truncated = false
        depth = 0
        inQuote = false
        escapeNext = false
    }

    var hasPendingGroup: Bool { groupLines > 0 }

    @inline(__always)
    private func test(_ p: RegexHandle?, _ s: UnsafePointer<UInt8>, _ n: Int, _ m: RegexMatcher) -> Bool {
        guard let p else { return false }
        return m.match(p, s, min(n, options.checkLength ?? n)).isMatch
    }

    /// Feeds one complete line. `subject` / `count` are the bytes to match (the line, or its
    /// UTF-8 conversion).
    mutating func feed<S: MultilineSink>(_ line: MultilineLine, _ subject: UnsafePointer<UInt8>, _ count: Int, matcher m: RegexMatcher, sink: inout S) {
        if options.mode == .json { feedJSON(line, subject, count, sink: &sink); return }
        let s = start, c = next, e = end
        if !open {
            if test(s ?? c, subject, count, m) {
                add(line, sink: &sink)
                open = true
            } else if s == nil && c != nil && test(e, subject, count, m) {
                // Continue + End: an End line on its own is an event.
                sink.single(line)
            } else {
                unmatchedLine(line, sink: &sink)
            }
            return
        }
        if c != nil && test(c, subject, count, m) {
            add(line, sink: &sink)
            return
        }
        if e != nil {
            if c != nil {
                // Continue + End: the first line that does not continue decides.
                add(line, sink: &sink)
                if test(e, subject, count, m) { emit(&sink) } else { unmatchGroup(&sink) }
                open = false
            } else {
                // Start + End, or End only: wait for the End line.
                add(line, sink: &sink)
                if test(e, subject, count, m) {
                    emit(&sink)
                    if s != nil { open = false }
                }
            }
        } else if c == nil {
            // Start only: the next Start line closes the group.
            if test(s, subject, count, m) {
                emit(&sink)
            }
            add(line, sink: &sink)
        } else {
            // Start + Continue: the first line that does not continue closes the group.
            emit(&sink)
            if test(s, subject, count, m) {
                add(line, sink: &sink)
            } else {
                unmatchedLine(line, sink: &sink)
                open = false
            }
        }
    }

    /// No more lines for now (flush timeout, shutdown, the file let go): what is pending is
    /// emitted — as one event without an End pattern, else as unmatched lines.
    mutating func finish<S: MultilineSink>(sink: inout S, flags: UInt32 = 0) {
        if groupLines > 0 {
            if options.mode == .json || options.end == nil { emit(&sink, flags: flags) } else { unmatchGroup(&sink) }
        }
        open = endOnly
        depth = 0
        inQuote = false
        escapeNext = false
    }

    // MARK: - Steps

    private mutating func add<S: MultilineSink>(_ line: MultilineLine, sink: inout S) {
        let len = Int(line.span.length)
        if groupLines > 0 && groupBytes + 1 + len > maxGroupBytes {
            // Bound reached: what is joined so far leaves, flagged; the rest continues as a new
            // group, flagged too. Counted once per group.
            if !truncated { truncatedGroups += 1 }
            sink.groupEmit(flags: LogEvent.Flag.truncatedGroup)
            truncated = true
            groupBytes = 0
            groupLines = 0
        }
        sink.groupAdd(line)
        groupBytes += groupLines == 0 ? len : len + 1
        groupLines += 1
    }

    private mutating func emit<S: MultilineSink>(_ sink: inout S, flags: UInt32 = 0) {
        guard groupLines > 0 else { return }
        sink.groupEmit(flags: flags | (truncated ? LogEvent.Flag.truncatedGroup : 0))
        groupBytes = 0
        groupLines = 0
        truncated = false
    }

    private mutating func unmatchGroup<S: MultilineSink>(_ sink: inout S) {
        guard groupLines > 0 else { return }
        let discard = options.unmatched == .discard
        unmatchedLines += groupLines
        if discard { discardedLines += groupLines }
        sink.groupUnmatched(discard: discard)
        groupBytes = 0
        groupLines = 0
        truncated = false
    }

    private mutating func unmatchedLine<S: MultilineSink>(_ line: MultilineLine, sink: inout S) {
        unmatchedLines += 1
        if options.unmatched == .discard { discardedLines += 1 } else { sink.single(line) }
    }

    // MARK: - JSON

    /// JsonLogFileReader's brace matching, line by line: an object starts at a line whose first
    /// non-blank byte is `{` and ends at the end of the line where the depth is back to 0 (quotes
    /// and backslash escapes respected). A line that cannot start an object is an event of its
    /// own; a blank line between objects is skipped (and counted).
    private mutating func feedJSON<S: MultilineSink>(_ line: MultilineLine, _ b: UnsafePointer<UInt8>, _ n: Int, sink: inout S) {
        var i = 0
        let startsGroup = !open
        if !open {
            while i < n && (b[i] == 0x20 || b[i] == 0x09 || b[i] == 0) { i += 1 }
            if i == n { blankLines += 1; return }
            guard b[i] == UInt8(ascii: "{") else { sink.single(line); return }
            depth = 0
            inQuote = false
            escapeNext = false
            open = true
        }
        // The byte scan in C, 64 bytes at a time (see `sluice_json_scan_braces`).
        var st = sluice_json_brace_state(depth: depth, in_quote: inQuote ? 1 : 0, escape_next: escapeNext ? 1 : 0)
        let negative = sluice_json_scan_braces(b + i, n - i, &st) < n - i
        depth = st.depth
        inQuote = st.in_quote != 0
        escapeNext = st.escape_next != 0
        if startsGroup && !negative && depth == 0 && !escapeNext {
            // A whole object on one line (the usual JSON log): the line itself is the event, as a
            // group of that one line would be, without copying it into a group.
            sink.single(line)
            open = false
            escapeNext = false
            return
        }
        add(line, sink: &sink)
        if negative {
            // Braces that do not match: what was gathered leaves as it is (a JSON parser will
            // reject it) and the next line starts afresh.
            emit(&sink)
            open = false
        } else if depth == 0 && !escapeNext {
            emit(&sink)
            open = false
        }
        // An escape at the very end swallows the newline (as in the incumbent's byte scan).
        escapeNext = false
    }
}
