import Glibc
import SluiceCore
import SluiceRegex

/// The joiner's sink in a file's read buffer: a group of lines is contiguous there, separated by
/// the `\n` the file already has, so a group is one span — no copy. Unmatched groups are split
/// again at their newlines.
struct ArenaGroupSink: MultilineSink {
    var events: [LogEvent]
    let base: UnsafePointer<UInt8>
    /// Pending group's span in the arena (start -1: none).
    var start = -1
    var end = -1
    var groupFlags: UInt32 = 0

    mutating func groupAdd(_ line: MultilineLine) {
        if start < 0 { start = Int(line.span.offset); groupFlags = 0 }
        end = Int(line.span.offset + line.span.length)
        groupFlags |= line.flags & (LogEvent.Flag.unterminated | LogEvent.Flag.splitPiece)
    }

    mutating func groupEmit(flags: UInt32) {
        guard start >= 0 else { return }
        events.append(LogEvent(content: Span(start, end - start), flags: flags | groupFlags))
        start = -1
    }

    mutating func groupUnmatched(discard: Bool) {
        guard start >= 0 else { return }
        if !discard {
            var ls = start
            while ls <= end {
                let nl = LineSplitter.firstNewline(base, start: ls, count: end) ?? end
                events.append(LogEvent(content: Span(ls, nl - ls)))
                ls = nl + 1
            }
        }
        start = -1
    }

    mutating func single(_ line: MultilineLine) {
        events.append(LogEvent(content: line.span, timeNanos: line.timeNanos, flags: line.flags))
    }
}

extension ChunkReader {
    /// Runs the reader's lines through its multiline joiner. `events` (lines of `arena`) become
    /// the groups; the pending group, if any, is at the start of `partial` from one read to the
    /// next. Returns where the held bytes start: the pending group's first byte, else `rest`.
    func joinLines(_ r: FileReader, _ arena: inout [UInt8], _ events: inout [LogEvent], rest: Int) -> Int {
        guard var ml = r.multiline, let scratch else { return rest }
        let lines = events
        let keep = arena.withUnsafeBufferPointer { ab -> Int in
            let base = ab.baseAddress!
            var sink = ArenaGroupSink(events: [], base: base)
            sink.events.reserveCapacity(lines.count)
            if ml.hasPendingGroup {
                sink.start = 0
                sink.end = r.groupHeld
            }
            let matcher = scratch.matcher  // read once: a class property read per line is retained per line
            for ev in lines {
                feed(&ml, MultilineLine(span: ev.content, flags: ev.flags), base, scratch, matcher, &sink)
            }
            events = sink.events
            if sink.start >= 0 {
                r.groupHeld = sink.end - sink.start
                return sink.start
            }
            r.groupHeld = 0
            return rest
        }
        r.multiline = ml
        return keep
    }

    @inline(__always)
    private func feed(_ ml: inout MultilineMachine, _ line: MultilineLine, _ base: UnsafePointer<UInt8>, _ scratch: MultilineScratch, _ matcher: RegexMatcher, _ sink: inout ArenaGroupSink) {
        let p = base + Int(line.span.offset)
        let n = Int(line.span.length)
        if let t = transcoder {
            // Patterns are written in UTF-8: match the line converted (into a reused buffer).
            t.convert(p, n, into: &scratch.converted)
            scratch.converted.withUnsafeBufferPointer { c in
                ml.feed(line, c.baseAddress ?? UnsafePointer(bitPattern: 1)!, c.count, matcher: matcher, sink: &sink)
            }
        } else {
            ml.feed(line, p, n, matcher: matcher, sink: &sink)
        }
    }

    /// Ends the pending group and, if `withTail`, the unterminated last line too (flush timeout,
    /// a file let go): the group is emitted by the rules (`MultilineMachine.finish`). Without the
    /// tail the unterminated bytes stay held. Returns nil when nothing was emitted.
    func flushGroup(_ r: FileReader, withTail: Bool, wallNanos: Int64) -> EventBatch? {
        guard var ml = r.multiline, let scratch else { return nil }
        let tailStart = r.splitFrom
        let end = withTail ? r.partial.count : min(tailStart, r.partial.count)
        guard ml.hasPendingGroup || (withTail && end > tailStart && !r.skipToNewline) else {
            if withTail { r.partial = []; r.splitFrom = 0; r.groupHeld = 0 }
            return nil
        }
        var arena = Array(r.partial[0..<end])
        let base = r.emittedOffset
        var events: [LogEvent] = []
        arena.withUnsafeBufferPointer { ab in
            let base = ab.baseAddress ?? UnsafePointer(bitPattern: 1)!
            var sink = ArenaGroupSink(events: [], base: base)
            if ml.hasPendingGroup { sink.start = 0; sink.end = r.groupHeld }
            if withTail && end > tailStart && !r.skipToNewline {
                var flags = LogEvent.Flag.unterminated
                if r.inSplitLine { flags |= LogEvent.Flag.splitPiece }
                feed(&ml, MultilineLine(span: Span(tailStart, end - tailStart), flags: flags), base, scratch, scratch.matcher, &sink)
            }
            ml.finish(sink: &sink)
            events = sink.events
        }
        r.multiline = ml
        if withTail {
            r.partial = []
            r.inSplitLine = false
            r.splitFrom = 0
        } else {
            r.partial.removeFirst(tailStart)
            r.splitFrom = 0
        }
        r.groupHeld = 0
        guard !events.isEmpty else { return nil }
        let starts = FilePositionMeta.starts(of: events, base: base, key: offsetKey(for: r))
        if let t = transcoder {
            var converted: [UInt8] = []
            converted.reserveCapacity(arena.count * 3 / 2)
            arena.withUnsafeBufferPointer { ab in
                for i in events.indices {
                    let off = converted.count
                    converted += t.convert(ab.baseAddress! + Int(events[i].content.offset), Int(events[i].content.length))
                    events[i].content = Span(off, converted.count - off)
                }
            }
            arena = converted
        }
        var batch = EventBatch(arena: arena, events: events, tags: r.tags, observedNanos: wallNanos, inputBytes: 0)
        if let k = offsetKey(for: r), let starts { FilePositionMeta.add(k, offsets: starts, to: &batch) }
        return batch
    }
}
