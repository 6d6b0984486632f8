import SluiceCore
import SluiceSystem

/// What a parser made of one value.
enum ParseResult {
    /// Parsed: the produced fields are in the parser's output.
    case parsed
    /// Not parsed: the incumbent's failure rules apply (source deleted, kept or the event dropped).
    case failed
    /// Not parsed, event left exactly as it was (the delimiter parser's empty value).
    case unchanged
    /// Parsed, but the event is dropped (apsara: a time more than 12 hours old), counted `old_timestamp`.
    case discard
}

/// One way of turning a field value into fields: the part each native parser has of its own.
protocol FieldParser {
    /// Interns the keys and constants the parser writes, once per batch.
    mutating func prepare(_ w: inout FieldWriter)
    /// Parses the `n` bytes at `p` (whose span in the arena is `value`), appending the fields it
    /// produces to `out` (values may be new bytes in `w.extra`).
    mutating func parse(_ p: UnsafePointer<UInt8>, _ n: Int, value: Span, _ w: inout FieldWriter, out: FieldScratch, arena: UnsafePointer<UInt8>) -> ParseResult
    /// Produced fields replace fields of the same name (`SetContent`); false appends them
    /// without a check (`AppendContent`, apsara).
    var overwrites: Bool { get }
    /// The event time the last successful parse found (apsara), taken once.
    mutating func takeEventTime() -> Int64?
    /// Set after `prepare` when every successful parse produces exactly these keys, in this
    /// order, no two alike (a regex's `Keys` without repeats). Into an unparsed event, whose one
    /// field is `content`, the fields then go in as a block: which key is `content` and which is
    /// the source is found once per batch, not searched for per event.
    var constantKeys: [Span]? { get }
}

extension FieldParser {
    var overwrites: Bool { true }
    var constantKeys: [Span]? { nil }
    mutating func takeEventTime() -> Int64? { nil }
}

/// Counts of one pass, added to the processor's metrics once per batch.
struct ParseCounts {
    var failed = 0
    var dropped = 0
    var old = 0
    var keyMissing = 0
}

/// Runs a ``FieldParser`` over a batch with the incumbent's common rules
/// [LC core/plugin/processor/ProcessorParseRegexNative.cpp `ProcessEvent`; CommonParserOptions.cpp]:
/// 1. an event without `SourceKey` passes unchanged;
/// 2. produced fields are written with overwrite, in order;
/// 3. on failure, or when no produced key is `SourceKey`, `SourceKey` is deleted;
/// 4. the raw value goes to `RenamedSourceKey` (no overwrite) when kept on success or failure;
/// 5. on a kept failure with `CopingRawLog`, also to `__raw_log__`;
/// 6. a failed event not kept that is left empty (or holds only `__file_offset__`, or exactly
///    `_time_` and `_source_`) is dropped.
struct ParserDriver {
    let sourceKey: String
    let renamedKey: String
    let common: CommonParserOptions

    init(sourceKey: String, common: CommonParserOptions) {
        self.sourceKey = sourceKey
        self.common = common
        renamedKey = common.renamedSourceKey.isEmpty ? sourceKey : common.renamedSourceKey
    }

    func run<P: FieldParser>(_ batch: inout EventBatch, _ parser: inout P, fieldsPerEvent: Int) -> ParseCounts {
        var counts = ParseCounts()
        batch.rewriteFields(fieldsPerEvent: fieldsPerEvent) { arena, events, w in
            let contentKey = w.intern("content")
            let source = sourceKey == "content" ? contentKey : w.intern(sourceKey)
            let renamed = renamedKey == sourceKey ? source : w.intern(renamedKey)
            let rawLog = w.intern("__raw_log__")
            let fileOffset = w.intern("__file_offset__")
            let timeKey = w.intern("_time_")
            let sourceTag = w.intern("_source_")
            parser.prepare(&w)
            // Constant keys: where `content` and the source are among them, once per batch.
            let constantKeys = parser.overwrites ? parser.constantKeys : nil
            var contentIndex = -1, sourceIndex = -1
            for (j, k) in (constantKeys ?? []).enumerated() {
                if contentIndex < 0 && w.equal(k, contentKey, arena: arena) { contentIndex = j }
                if sourceIndex < 0 && w.equal(k, source, arena: arena) { sourceIndex = j }
            }
            let out = FieldScratch(capacity: fieldsPerEvent + 4)
            var kept = 0
            for i in events.indices {
                var ev = events[i]
                let wasUnparsed = !ev.isParsed
                w.begin(ev, contentKey: contentKey)
                guard let si = w.find(source, arena: arena) else {
                    counts.keyMissing += 1
                    w.end(&ev)
                    events[kept] = ev
                    kept += 1
                    continue
                }
                let raw = w.fields[si].value
                out.removeAll()
                let mark = w.extraMark
                // A source value is always in the arena: it comes from the fields before this pass.
                let result = parser.parse(arena + Int(raw.offset), Int(raw.length), value: raw, &w, out: out, arena: arena)
                if case .discard = result {
                    counts.old += 1
                    w.truncateExtra(to: mark)
                    w.discardCurrent()
                    continue
                }
                if case .unchanged = result {
                    counts.failed += 1
                    w.truncateExtra(to: mark)
                    w.end(&ev)
                    events[kept] = ev
                    kept += 1
                    continue
                }
                let ok = result == .parsed
                var sourceOverwritten = false
                if ok {
                    if let t = parser.takeEventTime() { ev.timeNanos = t }
                    if wasUnparsed, let keys = constantKeys, out.count == keys.count {
                        // The event's one field is `content` (at the start of its fields): the
                        // field named `content` overwrites it, the others follow in order.
                        sourceOverwritten = sourceIndex >= 0
                        do {
                            let o = out.fields
                            if contentIndex >= 0 {
                                let contentAt = w.current.lowerBound
                                w.fields[contentAt].value = o[contentIndex].value
                                w.fields[contentAt].kind = o[contentIndex].kind
                                w.fields.append(contentsOf: UnsafeBufferPointer(rebasing: o[..<contentIndex]))
                                w.fields.append(contentsOf: UnsafeBufferPointer(rebasing: o[(contentIndex + 1)...]))
                            } else {
                                w.fields.append(contentsOf: o)
                            }
                        }
                    } else if parser.overwrites && out.count > ParserDriver.indexedSetThreshold {
                        // Many fields (a delimiter line of thousands of columns): overwrite through a
                        // hash index instead of scanning the event's fields for each one, which is
                        // quadratic (a 256 KiB line of separators took 46 s).
                        sourceOverwritten = ParserDriver.setIndexed(out.fields, source: source, &w, arena: arena)
                    } else {
                        // A key whose (length, first byte) no field of the event has cannot
                        // overwrite one: appended without scanning the event's fields for it.
                        var present = parser.overwrites ? ParserDriver.keyBits(of: w, arena: arena) : 0
                        for f in out.fields {
                            if !sourceOverwritten && w.equal(f.key, source, arena: arena) { sourceOverwritten = true }
                            if parser.overwrites {
                                let bit = ParserDriver.keyBit(f.key, w, arena: arena)
                                if present & bit == 0 {
                                    w.append(f.key, f.value, kind: f.kind)
                                } else {
                                    w.set(f.key, f.value, kind: f.kind, arena: arena)
                                }
                                present |= bit
                            } else {
                                w.append(f.key, f.value, kind: f.kind)
                            }
                        }
                    }
                } else {
                    counts.failed += 1
                    w.truncateExtra(to: mark)
                }
                if !ok || !sourceOverwritten { w.delete(source, arena: arena) }
                if (ok && common.keepingSourceWhenParseSucceed) || (!ok && common.keepingSourceWhenParseFail) {
                    w.set(renamed, raw, overwrite: false, arena: arena)
                }
                if !ok && common.keepingSourceWhenParseFail && common.copingRawLog {
                    w.set(rawLog, raw, overwrite: false, arena: arena)
                }
                if !ok && !common.keepingSourceWhenParseFail
                    && ParserDriver.shouldErase(&w, fileOffset: fileOffset, time: timeKey, source: sourceTag, arena: arena) {
                    counts.dropped += 1
                    w.discardCurrent()
                    continue
                }
                w.end(&ev)
                events[kept] = ev
                kept += 1
            }
            events.removeSubrange(kept..<events.count)
        }
        return counts
    }

    /// The incumbent's `ShouldEraseEvent`: nothing left but bookkeeping.
    static func shouldErase(_ w: inout FieldWriter, fileOffset: Span, time: Span, source: Span, arena: UnsafePointer<UInt8>) -> Bool {
        var first = Span.empty, second = Span.empty, n = 0
        for i in w.current where w.fields[i].kind != .deleted {
            switch n {
            case 0: first = w.fields[i].key
            case 1: second = w.fields[i].key
            default: return false
            }
            n += 1
        }
        switch n {
        case 0: return true
        case 1: return w.equal(first, fileOffset, arena: arena)
        default:
            return (w.equal(first, time, arena: arena) && w.equal(second, source, arena: arena))
                || (w.equal(second, time, arena: arena) && w.equal(first, source, arena: arena))
        }
    }
}

extension ComponentMetrics {
    /// Adds one pass's counts: failures to `parse_failures`, drops to `discarded{parse_failure}`.
    func record(_ c: ParseCounts) {
        parseFailures.add(c.failed)
        discarded(c.dropped, reason: "parse_failure")
        discarded(c.old, reason: "old_timestamp")
    }
}

extension ParserDriver {
    /// One of 64 bits for a key's length and first byte: keys that are equal have the same bit, so
    /// a key whose bit is absent from a set of keys' bits is not among them.
    @inline(__always)
    static func keyBit(_ key: Span, _ w: FieldWriter, arena: UnsafePointer<UInt8>) -> UInt64 {
        let first = key.length == 0 ? 0 : w.withBytes(key, arena: arena) { UInt64($0[0]) }
        return 1 &<< ((UInt64(key.length) &* 31 &+ first) & 63)
    }

    /// The bits of the open event's fields' keys (deleted ones too: an extra bit only costs a scan).
    static func keyBits(of w: FieldWriter, arena: UnsafePointer<UInt8>) -> UInt64 {
        var bits: UInt64 = 0
        for i in w.current { bits |= keyBit(w.fields[i].key, w, arena: arena) }
        return bits
    }

    /// Above this many parsed fields, `setIndexed` replaces the per-field scan.
    static var indexedSetThreshold: Int { 32 }

    /// `w.set` for each of `out` (overwrite in place, else append), through a hash index of the
    /// open event's fields: linear in fields instead of quadratic. A hash that matches a field of
    /// another name falls back to the scan, so the result is exactly `set`'s. Returns whether a
    /// field named `source` was written.
    static func setIndexed(_ out: UnsafeBufferPointer<EventField>, source: Span, _ w: inout FieldWriter, arena: UnsafePointer<UInt8>) -> Bool {
        func hash(_ key: Span, _ w: FieldWriter) -> UInt64 {
            w.withBytes(key, arena: arena) { FNV1a.hash(UnsafeRawBufferPointer(start: $0, count: Int(key.length))) }
        }
        var index: [UInt64: Int] = [:]
        index.reserveCapacity(out.count + w.current.count)
        for i in w.current where w.fields[i].kind != .deleted {
            let h = hash(w.fields[i].key, w)
            if index[h] == nil { index[h] = i }
        }
        var sourceWritten = false
        for f in out {
            if !sourceWritten && w.equal(f.key, source, arena: arena) { sourceWritten = true }
            let h = hash(f.key, w)
            if let i = index[h] {
                if w.equal(w.fields[i].key, f.key, arena: arena) {
                    w.fields[i].value = f.value
                    w.fields[i].kind = f.kind
                } else {
                    w.set(f.key, f.value, kind: f.kind, arena: arena)
                }
            } else {
                w.append(f.key, f.value, kind: f.kind)
                index[h] = w.fields.count - 1
            }
        }
        return sourceWritten
    }
}
