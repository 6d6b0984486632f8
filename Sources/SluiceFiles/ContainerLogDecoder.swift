import SluiceCore
import SluiceRegex
import SluiceSystem

/// Formats of container runtime log files (`ContainerLogFormat` of `input_file`, and what
/// `input_container_stdio` reads).
public enum ContainerLogFormat: String, Sendable, CaseIterable {
    /// Detect per file from the first line: `{` → Docker json-file, otherwise CRI.
    case auto
    /// Docker json-file: `{"log":"…\n","stream":"stdout","time":"RFC3339Nano"}` per line.
    case dockerJSON = "docker_json"
    /// CRI (kubelet): `<RFC3339Nano> <stdout|stderr> <P|F> <content>` per line.
    case cri
}

public enum LogStream: UInt8, Sendable {
    case stdout = 0, stderr = 1
    public var name: String { self == .stdout ? "stdout" : "stderr" }
}

/// One decoded runtime log record.
public struct DecodedRecord: Equatable {
    public var stream: LogStream
    public var timeNanos: Int64
    /// The record completes its line (CRI `F`, Docker `log` ending in a newline).
    public var isFull: Bool
    /// Range of the content in the source line (CRI), or nil when the content had to be
    /// unescaped into a separate buffer (Docker).
    public var contentStart: Int
    public var contentEnd: Int
}

/// Parses runtime log lines. Pure functions over bytes; no allocation except the Docker unescape
/// output, which is appended to a caller-owned buffer.
public enum RuntimeLogParser {
    /// Parses a CRI line `base[start..<end]`. Returns nil when it is not one.
    public static func parseCRI(_ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> DecodedRecord? {
        // time
        var i = start
        while i < end && base[i] != 0x20 { i += 1 }
        guard i < end, let t = RFC3339.parse(base, start, i) else { return nil }
        i += 1
        // stream
        let sStart = i
        while i < end && base[i] != 0x20 { i += 1 }
        let streamLen = i - sStart
        let stream: LogStream
        if streamLen == 6 && base[sStart] == UInt8(ascii: "s") && base[sStart + 3] == UInt8(ascii: "o") { stream = .stdout }
        else if streamLen == 6 && base[sStart] == UInt8(ascii: "s") && base[sStart + 3] == UInt8(ascii: "e") { stream = .stderr }
        else { return nil }
        guard i < end else { return nil }
        i += 1
        // tag: P or F, possibly followed by ":"-separated extensions
        guard i < end else { return nil }
        let tag = base[i]
        guard tag == UInt8(ascii: "P") || tag == UInt8(ascii: "F") else { return nil }
        while i < end && base[i] != 0x20 { i += 1 }
        let contentStart = i < end ? i + 1 : end
        return DecodedRecord(stream: stream, timeNanos: t, isFull: tag == UInt8(ascii: "F"), contentStart: contentStart, contentEnd: end)
    }

    /// Parses a Docker json-file line, appending the unescaped `log` value to `out`.
    /// Returns nil (and leaves `out` as it was) when the line is not a Docker record.
    public static func parseDocker(_ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int, into out: inout [UInt8]) -> DecodedRecord? {
        let outStart = out.count
        var i = start
        @inline(__always) func skipWS() { while i < end && (base[i] == 0x20 || base[i] == 0x09 || base[i] == 0x0D) { i += 1 } }
        skipWS()
        guard i < end, base[i] == UInt8(ascii: "{") else { return nil }
        i += 1
        var stream: LogStream? = nil
        var time: Int64 = 0
        var haveLog = false
        var full = false
        while true {
            skipWS()
            guard i < end else { out.removeSubrange(outStart...); return nil }
            if base[i] == UInt8(ascii: "}") { break }
            if base[i] == UInt8(ascii: ",") { i += 1; continue }
            guard base[i] == 0x22 else { out.removeSubrange(outStart...); return nil }
            // key
            let kStart = i + 1
            var k = kStart
            while k < end && base[k] != 0x22 { if base[k] == 0x5C { k += 1 }; k += 1 }
            guard k < end else { out.removeSubrange(outStart...); return nil }
            let keyLen = k - kStart
            i = k + 1
            skipWS()
            guard i < end, base[i] == UInt8(ascii: ":") else { out.removeSubrange(outStart...); return nil }
            i += 1
            skipWS()
            guard i < end else { out.removeSubrange(outStart...); return nil }
            let isLog = keyLen == 3 && base[kStart] == UInt8(ascii: "l") && base[kStart + 1] == UInt8(ascii: "o") && base[kStart + 2] == UInt8(ascii: "g")
            let isStream = keyLen == 6 && base[kStart] == UInt8(ascii: "s") && base[kStart + 1] == UInt8(ascii: "t")
            let isTime = keyLen == 4 && base[kStart] == UInt8(ascii: "t") && base[kStart + 1] == UInt8(ascii: "i")
            if base[i] == 0x22 {
                if isLog {
                    guard let after = unescapeString(base, i + 1, end, into: &out) else { out.removeSubrange(outStart...); return nil }
                    i = after
                    haveLog = true
                    if out.count > outStart && out[out.count - 1] == 0x0A {
                        out.removeLast()
                        full = true
                    }
                } else {
                    let vStart = i + 1
                    var v = vStart
                    while v < end && base[v] != 0x22 { if base[v] == 0x5C { v += 1 }; v += 1 }
                    guard v < end else { out.removeSubrange(outStart...); return nil }
                    if isStream {
                        if v - vStart == 6 && base[vStart + 3] == UInt8(ascii: "o") { stream = .stdout }
                        else if v - vStart == 6 && base[vStart + 3] == UInt8(ascii: "e") { stream = .stderr }
                    } else if isTime {
                        time = RFC3339.parse(base, vStart, v) ?? 0
                    }
                    i = v + 1
                }
            } else {
                // A non-string value (attrs object, number): skip it, balancing braces/brackets.
                var depth = 0
                var inStr = false
                while i < end {
                    let c = base[i]
                    if inStr {
                        if c == 0x5C { i += 1 } else if c == 0x22 { inStr = false }
                    } else if c == 0x22 { inStr = true }
                    else if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") { depth += 1 }
                    else if c == UInt8(ascii: "}") || c == UInt8(ascii: "]") {
                        if depth == 0 { break }
                        depth -= 1
                    } else if c == UInt8(ascii: ",") && depth == 0 { break }
                    i += 1
                }
            }
        }
        guard haveLog, let s = stream else { out.removeSubrange(outStart...); return nil }
        return DecodedRecord(stream: s, timeNanos: time, isFull: full, contentStart: outStart, contentEnd: out.count)
    }

    /// Unescapes a JSON string body starting after its opening quote; returns the index after the
    /// closing quote, or nil if unterminated.
    static func unescapeString(_ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int, into out: inout [UInt8]) -> Int? {
        var i = start
        var run = start
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        while i < end {
            // Skip eight bytes at a time while none is a quote or a backslash.
            while i &+ 8 <= end {
                let w = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
                let q = w ^ (ones &* 0x22)
                let b = w ^ (ones &* 0x5C)
                let m = ((q &- ones) & ~q | (b &- ones) & ~b) & highs
                if m != 0 {
                    i &+= m.trailingZeroBitCount >> 3
                    break
                }
                i &+= 8
            }
            guard i < end else { break }
            let c = base[i]
            if c == 0x22 {
                out.append(contentsOf: UnsafeBufferPointer(start: base + run, count: i - run))
                return i + 1
            }
            if c != 0x5C { i += 1; continue }
            out.append(contentsOf: UnsafeBufferPointer(start: base + run, count: i - run))
            guard i + 1 < end else { return nil }
            let e = base[i + 1]
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A); i += 2
            case UInt8(ascii: "t"): out.append(0x09); i += 2
            case UInt8(ascii: "r"): out.append(0x0D); i += 2
            case UInt8(ascii: "b"): out.append(0x08); i += 2
            case UInt8(ascii: "f"): out.append(0x0C); i += 2
            case UInt8(ascii: "/"): out.append(0x2F); i += 2
            case 0x22, 0x5C: out.append(e); i += 2
            case UInt8(ascii: "u"):
                guard i + 6 <= end, var cp = hex4(base, i + 2) else { out.append(0x5C); i += 1; break }
                i += 6
                if cp >= 0xD800 && cp < 0xDC00, i + 6 <= end, base[i] == 0x5C, base[i + 1] == UInt8(ascii: "u"), let lo = hex4(base, i + 2), lo >= 0xDC00 && lo < 0xE000 {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                    i += 6
                } else if cp >= 0xD800 && cp < 0xE000 {
                    cp = 0xFFFD
                }
                appendUTF8(cp, &out)
            default:
                out.append(0x5C); i += 1
            }
            run = i
        }
        return nil
    }

    @inline(__always)
    static func hex4(_ b: UnsafePointer<UInt8>, _ at: Int) -> UInt32? {
        var v: UInt32 = 0
        for k in 0..<4 {
            let c = b[at + k]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: return nil
            }
            v = v << 4 | d
        }
        return v
    }

    static func appendUTF8(_ cp: UInt32, _ out: inout [UInt8]) {
        switch cp {
        case 0..<0x80: out.append(UInt8(cp))
        case 0x80..<0x800:
            out.append(UInt8(0xC0 | (cp >> 6))); out.append(UInt8(0x80 | (cp & 0x3F)))
        case 0x800..<0x10000:
            out.append(UInt8(0xE0 | (cp >> 12))); out.append(UInt8(0x80 | ((cp >> 6) & 0x3F))); out.append(UInt8(0x80 | (cp & 0x3F)))
        default:
            out.append(UInt8(0xF0 | (cp >> 18))); out.append(UInt8(0x80 | ((cp >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((cp >> 6) & 0x3F))); out.append(UInt8(0x80 | (cp & 0x3F)))
        }
    }
}

/// Turns the raw lines of one runtime log file into events: one batch per stream, partial records
/// joined per stream (never across streams) up to `maxLogSize`, event time = the runtime's.
/// Lines that are not runtime records pass through as they are (counted).
public final class StreamDecoder {
    public private(set) var format: ContainerLogFormat
    let maxLogSize: Int
    let ignoreStdout: Bool
    let ignoreStderr: Bool
    /// Joined content of a record still waiting for its end, per stream, and where its first
    /// piece starts in the file (the checkpoint must not pass it).
    private var pending: [[UInt8]] = [[], []]
    private var pendingTime: [Int64] = [0, 0]
    private var pendingOffset: [Int64?] = [nil, nil]
    /// When each stream's held record last grew (monotonic): it is emitted once it has waited
    /// the flush timeout for its next piece (a Job's last `printf` without a newline is a `P`
    /// record, or a Docker line without `\n`, whose end may never come).
    private var pendingSince: [Int64] = [0, 0]
    public private(set) var unparsedLines = 0
    public private(set) var oversizedJoins = 0
    private var reportedUnparsed = 0, reportedOversized = 0
    /// Multiline grouping after the join of partial records, per stream: the joiner, the group
    /// being built (copied: a stream's records are not contiguous in the file), where its first
    /// record starts in the file, its time, and when it last grew (monotonic).
    let multilineOptions: MultilineOptions?
    private var machines: [MultilineMachine] = []
    private var groups: [[UInt8]] = [[], []]
    private var groupOffset: [Int64?] = [nil, nil]
    private var groupTime: [Int64] = [0, 0]
    public private(set) var groupSince: [Int64] = [0, 0]
    private let matcher: RegexMatcher?
    /// Raw file offset of each event of the batch being decoded, per stream (with multiline or
    /// an offset field only).
    private var recordOffsets: [[Int64]] = [[], []]
    /// Where each line of each stream's pending group starts in it, and its file offset.
    private var groupLineOffsets: [[GroupLineOffset]] = [[], []]
    /// `FileOffsetKey`: each event gets the file offset of its first record as this field.
    public var offsetKey: String?
    /// Whether record offsets are kept (`recordOffsets`).
    private var tracksOffsets: Bool { multilineOptions != nil || offsetKey != nil }

    public init(format: ContainerLogFormat, maxLogSize: Int = 512 * 1024, ignoreStdout: Bool = false, ignoreStderr: Bool = false,
                multiline: MultilineOptions? = nil, maxGroupBytes: Int = 512 * 1024, matcher: RegexMatcher? = nil) {
        self.format = format
        self.maxLogSize = maxLogSize
        self.ignoreStdout = ignoreStdout
        self.ignoreStderr = ignoreStderr
        if let m = multiline, m.isActive, m.mode == .custom {
            multilineOptions = m
            machines = [MultilineMachine(options: m, maxGroupBytes: maxGroupBytes), MultilineMachine(options: m, maxGroupBytes: maxGroupBytes)]
            self.matcher = matcher ?? RegexMatcher(for: m.patterns)
        } else {
            multilineOptions = nil
            self.matcher = nil
        }
    }

    /// Whether records are grouped by multiline rules.
    public var multilineActive: Bool { multilineOptions != nil }

    /// Forgets held partial records and groups (the file was truncated).
    public func reset() {
        pending = [[], []]
        pendingOffset = [nil, nil]
        groups = [[], []]
        groupLineOffsets = [[], []]
        recordOffsets = [[], []]
        groupOffset = [nil, nil]
        for i in machines.indices { machines[i].reset() }
    }

    /// File offset before which everything has been emitted or dropped (nil: nothing held):
    /// neither a partial record nor a multiline group still open.
    public var holdOffset: Int64? {
        var h: Int64? = nil
        for o in pendingOffset + groupOffset {
            if let o { h = min(h ?? o, o) }
        }
        return h
    }

    /// Whether a multiline group waits for more records.
    public var hasPendingGroup: Bool { groupOffset[0] != nil || groupOffset[1] != nil }

    /// Whether a partial record waits for its next piece.
    public var hasPendingPartial: Bool { pendingOffset[0] != nil || pendingOffset[1] != nil }

    /// What is held (partial records, pending groups) was last written no later than `t`
    /// (monotonic): each waits its timeout from then, not from when it was read.
    public func heldWritten(atOrBefore t: Int64) {
        for i in 0..<2 where groupOffset[i] != nil { groupSince[i] = min(groupSince[i], t) }
        for i in 0..<2 where pendingOffset[i] != nil { pendingSince[i] = min(pendingSince[i], t) }
    }

    /// Lines that were not runtime records, and joins cut at `maxLogSize`, since the last call.
    public func takeRecordCounts() -> (unparsed: Int, oversized: Int) {
        defer { reportedUnparsed = unparsedLines; reportedOversized = oversizedJoins }
        return (unparsedLines - reportedUnparsed, oversizedJoins - reportedOversized)
    }

    /// Discarded unmatched lines, unmatched lines, truncated groups and skipped blank lines (Mode
    /// JSON) counted since the last call.
    public func takeMultilineCounts() -> (discarded: Int, unmatched: Int, truncated: Int, blank: Int) {
        var d = 0, u = 0, t = 0, b = 0
        for i in machines.indices {
            d += machines[i].discardedLines; u += machines[i].unmatchedLines; t += machines[i].truncatedGroups
            b += machines[i].blankLines
            machines[i].discardedLines = 0; machines[i].unmatchedLines = 0; machines[i].truncatedGroups = 0
            machines[i].blankLines = 0
        }
        return (d, u, t, b)
    }

    /// Decodes `batch` (raw lines; the arena's byte 0 is at file offset `baseOffset`) into up to
    /// two batches, stdout then stderr, each tagged `_source_`.
    public func decode(_ batch: EventBatch, baseOffset: Int64) -> [EventBatch] {
        if format == .auto, let first = batch.events.first {
            let s = Int(first.content.offset)
            format = (first.content.length > 0 && batch.arena[s] == UInt8(ascii: "{")) ? .dockerJSON : .cri
        }
        var out: [UInt8] = []
        out.reserveCapacity(batch.arena.count)
        var events: [[LogEvent]] = [[], []]
        let docker = format == .dockerJSON
        batch.arena.withUnsafeBufferPointer { ab in
            let base = ab.baseAddress!
            for ev in batch.events {
                let s = Int(ev.content.offset)
                let e = s + Int(ev.content.length)
                let rec: DecodedRecord?
                var contentBase: UnsafePointer<UInt8> = base
                if docker {
                    let before = out.count
                    rec = RuntimeLogParser.parseDocker(base, s, e, into: &out)
                    if let r = rec {
                        let si = Int(r.stream.rawValue)
                        let ignored = (r.stream == .stdout && ignoreStdout) || (r.stream == .stderr && ignoreStderr)
                        if r.isFull && pendingOffset[si] == nil {
                            // The common case: a whole line, already unescaped in place.
                            if ignored { out.removeSubrange(before...) } else {
                                events[si].append(LogEvent(content: Span(before, out.count - before), timeNanos: r.timeNanos))
                                if tracksOffsets { recordOffsets[si].append(baseOffset + Int64(s)) }
                            }
                            continue
                        }
                        // A piece to join: move it out of the way of the joined output.
                        let content = Array(out[before...])
                        out.removeSubrange(before...)
                        handle(r, content: content, lineOffset: baseOffset + Int64(s), into: &out, events: &events)
                        continue
                    }
                } else {
                    rec = RuntimeLogParser.parseCRI(base, s, e)
                    if let r = rec {
                        contentBase = base
                        let content = UnsafeBufferPointer(start: contentBase + r.contentStart, count: r.contentEnd - r.contentStart)
                        handle(r, content: content, lineOffset: baseOffset + Int64(s), into: &out, events: &events)
                        continue
                    }
                }
                // Not a runtime record: keep the line as stdout content (counted), unless stdout
                // is ignored.
                unparsedLines += 1
                if ignoreStdout { continue }
                let off = out.count
                out.append(contentsOf: UnsafeBufferPointer(start: base + s, count: e - s))
                events[0].append(LogEvent(content: Span(off, e - s)))
                if tracksOffsets { recordOffsets[0].append(baseOffset + Int64(s)) }
            }
        }
        if multilineOptions != nil { group(&out, &events) }
        return batches(out, events, tags: batch.tags, observedNanos: batch.observedNanos, inputBytes: batch.inputBytes)
    }

    /// One batch per stream with events (stdout first, which counts the input bytes), tagged
    /// `_source_`, with the offset field when one is wanted; the record offsets are then spent.
    private func batches(_ out: [UInt8], _ events: [[LogEvent]], tags: [EventTag], observedNanos: Int64, inputBytes: Int) -> [EventBatch] {
        var result: [EventBatch] = []
        for (i, evs) in events.enumerated() where !evs.isEmpty {
            var b = EventBatch(arena: out, events: evs, tags: tags + [EventTag("_source_", i == 0 ? "stdout" : "stderr")],
                               observedNanos: observedNanos, inputBytes: i == 0 ? inputBytes : 0)
            if let k = offsetKey { FilePositionMeta.add(k, offsets: recordOffsets[i], to: &b) }
            result.append(b)
        }
        recordOffsets[0].removeAll(keepingCapacity: true)
        recordOffsets[1].removeAll(keepingCapacity: true)
        return result
    }

    private func handle<C: Collection>(_ r: DecodedRecord, content: C, lineOffset: Int64, into out: inout [UInt8], events: inout [[LogEvent]]) where C.Element == UInt8 {
        let si = Int(r.stream.rawValue)
        let ignored = (r.stream == .stdout && ignoreStdout) || (r.stream == .stderr && ignoreStderr)
        if !r.isFull {
            if pendingOffset[si] == nil {
                pendingOffset[si] = lineOffset
                pendingTime[si] = r.timeNanos
            }
            pendingSince[si] = Sys.monotonicNanos()
            if !ignored { pending[si].append(contentsOf: content) }
            if pending[si].count >= maxLogSize {
                // Bound reached: emit what is joined so far, counted.
                oversizedJoins += 1
                emit(si, time: pendingTime[si], flags: LogEvent.Flag.splitPiece, into: &out, events: &events, ignored: ignored)
            }
            return
        }
        if pendingOffset[si] != nil {
            if !ignored { pending[si].append(contentsOf: content) }
            emit(si, time: pendingTime[si], flags: 0, into: &out, events: &events, ignored: ignored)
            return
        }
        if ignored { return }
        let off = out.count
        out.append(contentsOf: content)
        events[si].append(LogEvent(content: Span(off, out.count - off), timeNanos: r.timeNanos))
        if tracksOffsets { recordOffsets[si].append(lineOffset) }
    }

    private func emit(_ si: Int, time: Int64, flags: UInt32, into out: inout [UInt8], events: inout [[LogEvent]], ignored: Bool) {
        if !ignored {
            let off = out.count
            out.append(contentsOf: pending[si])
            events[si].append(LogEvent(content: Span(off, pending[si].count), timeNanos: time, flags: flags))
            if tracksOffsets { recordOffsets[si].append(pendingOffset[si] ?? 0) }
        }
        pending[si].removeAll(keepingCapacity: true)
        pendingOffset[si] = nil
    }

    /// Emits every held partial record and multiline group (the file is being let go).
    public func flushPending(tags: [EventTag], observedNanos: Int64) -> [EventBatch] {
        var out: [UInt8] = []
        var events: [[LogEvent]] = [[], []]
        for si in 0..<2 where pendingOffset[si] != nil {
            let ignored = (si == 0 && ignoreStdout) || (si == 1 && ignoreStderr)
            emit(si, time: pendingTime[si], flags: LogEvent.Flag.unterminated, into: &out, events: &events, ignored: ignored)
        }
        if multilineOptions != nil {
            group(&out, &events, finish: [true, true])
        }
        return batches(out, events, tags: tags, observedNanos: observedNanos, inputBytes: 0)
    }
}

/// Where a line starts in a pending group, and its record's file offset.
struct GroupLineOffset {
    var at: Int
    var offset: Int64
}

/// The joiner's sink for a container stream: the group is copied into a buffer of its own (a
/// stream's records are not contiguous in the file, and Docker's are unescaped), emitted into
/// the batch's output arena.
struct CopyGroupSink: MultilineSink {
    let src: UnsafePointer<UInt8>
    var out: [UInt8]
    var events: [LogEvent] = []
    var group: [UInt8]
    var groupOffset: Int64?
    var groupTime: Int64
    var groupFlags: UInt32 = 0
    /// File offset of each event emitted (its first record's).
    var offsets: [Int64] = []
    /// Where each line of the pending group starts in it, and its file offset (an unmatched
    /// group leaves line by line).
    var lineOffsets: [GroupLineOffset] = []

    mutating func groupAdd(_ line: MultilineLine) {
        if groupOffset == nil {
            group.removeAll(keepingCapacity: true)
            lineOffsets.removeAll(keepingCapacity: true)
            groupOffset = line.rawOffset
            groupTime = line.timeNanos
            groupFlags = 0
        } else {
            group.append(0x0A)
        }
        lineOffsets.append(GroupLineOffset(at: group.count, offset: line.rawOffset))
        group.append(contentsOf: UnsafeBufferPointer(start: src + Int(line.span.offset), count: Int(line.span.length)))
        groupFlags |= line.flags & (LogEvent.Flag.unterminated | LogEvent.Flag.splitPiece)
    }

    mutating func groupEmit(flags: UInt32) {
        guard groupOffset != nil else { return }
        let off = out.count
        out.append(contentsOf: group)
        events.append(LogEvent(content: Span(off, group.count), timeNanos: groupTime, flags: flags | groupFlags))
        offsets.append(groupOffset ?? 0)
        group.removeAll(keepingCapacity: true)
        groupOffset = nil
    }

    mutating func groupUnmatched(discard: Bool) {
        guard groupOffset != nil else { return }
        if !discard {
            group.withUnsafeBufferPointer { g in
                guard let b = g.baseAddress else {
                    events.append(LogEvent(content: Span(out.count, 0), timeNanos: groupTime))
                    offsets.append(groupOffset ?? 0)
                    return
                }
                var ls = 0
                var k = 0
                while ls <= g.count {
                    let nl = LineSplitter.firstNewline(b, start: ls, count: g.count) ?? g.count
                    let off = out.count
                    out.append(contentsOf: UnsafeBufferPointer(start: b + ls, count: nl - ls))
                    events.append(LogEvent(content: Span(off, nl - ls), timeNanos: groupTime))
                    // A piece of a record with newlines of its own (Docker's `\n` inside one)
                    // has the offset of the record it comes from.
                    while k + 1 < lineOffsets.count && lineOffsets[k + 1].at <= ls { k += 1 }
                    offsets.append(k < lineOffsets.count ? lineOffsets[k].offset : groupOffset ?? 0)
                    ls = nl + 1
                }
            }
        }
        group.removeAll(keepingCapacity: true)
        groupOffset = nil
    }

    mutating func single(_ line: MultilineLine) {
        let off = out.count
        out.append(contentsOf: UnsafeBufferPointer(start: src + Int(line.span.offset), count: Int(line.span.length)))
        events.append(LogEvent(content: Span(off, Int(line.span.length)), timeNanos: line.timeNanos, flags: line.flags))
        offsets.append(line.rawOffset)
    }
}

extension StreamDecoder {
    /// Runs each stream's joined records through its multiline joiner: `out` and `events` are
    /// replaced by the groups. `finish[s]`: end stream `s`'s pending group too.
    func group(_ out: inout [UInt8], _ events: inout [[LogEvent]], finish: [Bool] = [false, false]) {
        guard let matcher else { return }
        var dst: [UInt8] = []
        dst.reserveCapacity(out.count + groups[0].count + groups[1].count + 2)
        var result: [[LogEvent]] = [[], []]
        let now = Sys.monotonicNanos()
        out.withUnsafeBufferPointer { srcBuf in
            let base = srcBuf.baseAddress ?? UnsafePointer(bitPattern: 1)!
            for si in 0..<2 {
                var sink = CopyGroupSink(src: base, out: [], group: [], groupOffset: groupOffset[si], groupTime: groupTime[si])
                swap(&sink.out, &dst)
                swap(&sink.group, &groups[si])
                swap(&sink.lineOffsets, &groupLineOffsets[si])
                sink.events.reserveCapacity(events[si].count)
                var ml = machines[si]
                let offsets = recordOffsets[si]
                for (k, ev) in events[si].enumerated() {
                    let line = MultilineLine(span: ev.content, timeNanos: ev.timeNanos, flags: ev.flags, rawOffset: k < offsets.count ? offsets[k] : 0)
                    ml.feed(line, base + Int(ev.content.offset), Int(ev.content.length), matcher: matcher, sink: &sink)
                }
                if !events[si].isEmpty { groupSince[si] = now }
                if finish[si] { ml.finish(sink: &sink) }
                machines[si] = ml
                swap(&sink.out, &dst)
                swap(&sink.group, &groups[si])
                swap(&sink.lineOffsets, &groupLineOffsets[si])
                groupOffset[si] = sink.groupOffset
                groupTime[si] = sink.groupTime
                result[si] = sink.events
                recordOffsets[si] = sink.offsets
            }
        }
        out = dst
        events = result
    }

    /// The soonest time after `now` at which a held partial record has waited `timeout` for its
    /// next piece; nil when none comes due after `now`.
    public func nextPartialDeadline(timeout: Int64, after now: Int64) -> Int64? {
        var next: Int64? = nil
        for i in 0..<2 where pendingOffset[i] != nil {
            let d = pendingSince[i] + timeout
            if d > now { next = min(next ?? .max, d) }
        }
        return next
    }

    /// Emits the partial records that waited `timeoutNanos` or longer for their next piece,
    /// flagged unterminated (a piece that comes later starts a record of its own), through the
    /// multiline joiner when there is one; one batch per stream.
    public func flushPartials(olderThan timeoutNanos: Int64, now: Int64, tags: [EventTag], observedNanos: Int64) -> [EventBatch] {
        let due = (0..<2).map { pendingOffset[$0] != nil && pendingSince[$0] + timeoutNanos <= now }
        guard due.contains(true) else { return [] }
        var out: [UInt8] = []
        var events: [[LogEvent]] = [[], []]
        for si in 0..<2 where due[si] {
            let ignored = (si == 0 && ignoreStdout) || (si == 1 && ignoreStderr)
            emit(si, time: pendingTime[si], flags: LogEvent.Flag.unterminated, into: &out, events: &events, ignored: ignored)
        }
        if multilineOptions != nil { group(&out, &events) }
        return batches(out, events, tags: tags, observedNanos: observedNanos, inputBytes: 0)
    }

    /// The soonest time after `now` at which a pending multiline group has waited `timeout`
    /// for its next record; nil when none comes due after `now` (none pending, or only overdue
    /// ones, which the flush has already seen).
    public func nextGroupDeadline(timeout: Int64, after now: Int64) -> Int64? {
        guard multilineOptions != nil else { return nil }
        var next: Int64? = nil
        for i in 0..<2 {
            if let d = groupDeadline(i, timeout: timeout), d > now { next = min(next ?? .max, d) }
        }
        return next
    }

    /// When stream `i`'s pending group has waited `timeout` for its next record; nil with none.
    private func groupDeadline(_ i: Int, timeout: Int64) -> Int64? {
        groupOffset[i] != nil ? groupSince[i] + timeout : nil
    }

    /// Ends the multiline groups that waited `timeoutNanos` or longer for another record (all
    /// of them with 0): emitted by the rules, one batch per stream.
    public func flushGroups(olderThan timeoutNanos: Int64, now: Int64, tags: [EventTag], observedNanos: Int64) -> [EventBatch] {
        guard multilineOptions != nil, hasPendingGroup else { return [] }
        let due = (0..<2).map { groupDeadline($0, timeout: timeoutNanos).map { $0 <= now } ?? false }
        guard due.contains(true) else { return [] }
        var out: [UInt8] = []
        var events: [[LogEvent]] = [[], []]
        group(&out, &events, finish: due)
        return batches(out, events, tags: tags, observedNanos: observedNanos, inputBytes: 0)
    }
}
