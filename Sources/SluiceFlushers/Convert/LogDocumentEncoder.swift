import Glibc
import SluiceCore

/// Writes events as the incumbent's converter does (`Convert`, reference §3.0): one JSON document
/// per event in the `custom_single`, `custom_single_flatten` or `jsonline` shape, tags renamed
/// (`__path__` → `log.file.path`, ...), `time` in seconds, keys sorted where the incumbent's Go
/// encoder sorts them. A string field is a JSON string, a raw-JSON field is written as is.
///
/// Per batch (`begin`) the tags are converted once and the document of an unparsed event is
/// rendered once as a template with two holes (the line, the time): each unparsed event is then
/// three copies, an escape and a few digits. A parsed event takes the general path, reusing one
/// scratch list, so nothing is allocated per event.
public struct LogDocumentEncoder {
    public let options: ConvertOptions

    /// Where a key or a string value's bytes are: the batch's arena, or this encoder's store.
    struct Ref { var inArena: Bool; var span: Span }
    enum Value { case string(Ref), json(Ref), content, time }
    struct Entry { var key: Ref; var value: Value }

    /// Bytes of converted tag keys and values and of fixed names, for the batch.
    var store: [UInt8] = []
    var tags: [Entry] = []
    var contentTags: [Entry] = []
    var scratch: [Entry] = []
    var moved: [Entry] = []
    let contentKey: Ref
    let timeKey: Ref
    /// The store's size with only the fixed names in it.
    let fixedStore: Int
    /// Top-level keys of custom_single in the order Go writes them: 0 contents, 1 tags, 2 time.
    let topOrder: [(name: [UInt8], part: Int)]
    /// The unparsed event's document with holes: the bytes, and the holes' positions in order.
    var template: [UInt8] = []
    var holes: [(at: Int, isContent: Bool)] = []
    /// The digits of the last event time written by the unparsed path.
    var seconds = RepeatedDecimal()
    /// The template escaped as the inside of a JSON string, with its holes there (for
    /// `appendAsString`), made on first use in a batch.
    var escapedTemplate: [UInt8] = []
    var escapedHoles: [(at: Int, isContent: Bool)] = []
    var escapedReady = false
    /// A parsed event's document on its way to being escaped as a string.
    let pending = OutputBuffer(capacity: 4096)
    /// Converted tag name → value, for `%{tag.x}` references.
    public private(set) var tagValues: [String: String] = [:]

    public init(options: ConvertOptions) {
        self.options = options
        let timeName = Array(options.topName("time").utf8)
        store = Array("content".utf8) + timeName
        contentKey = Ref(inArena: false, span: Span(0, 7))
        timeKey = Ref(inArena: false, span: Span(7, timeName.count))
        fixedStore = store.count
        topOrder = [("contents", 0), ("tags", 1), ("time", 2)].map { (Array(options.topName($0.0).utf8), $0.1) }
            .sorted { $0.name.lexicographicallyPrecedes($1.name) }
    }

    private mutating func stored(_ s: String) -> Ref {
        let off = store.count
        store.append(contentsOf: s.utf8)
        return Ref(inArena: false, span: Span(off, store.count - off))
    }

    /// Converts `batch`'s tags; call before `append` for its events.
    public mutating func begin(_ batch: EventBatch) {
        store.removeSubrange(fixedStore...)
        tags.removeAll(keepingCapacity: true)
        contentTags.removeAll(keepingCapacity: true)
        tagValues.removeAll(keepingCapacity: true)
        for t in batch.tags {
            if ConvertOptions.isContentTag(t.key) {
                contentTags.append(Entry(key: stored(t.key), value: .string(stored(t.value))))
                continue
            }
            guard let name = options.convertedTagName(t.key) else { continue }
            tagValues[name] = t.value
            tags.append(Entry(key: stored(name), value: .string(stored(t.value))))
        }
        let sorted = options.protocol != .jsonline
        if sorted {
            let keys = store
            keys.withUnsafeBufferPointer { st in
                tags.sort { LogDocumentEncoder.less($0.key, $1.key, st, st) }
                contentTags.sort { LogDocumentEncoder.less($0.key, $1.key, st, st) }
            }
        }
        // The template of an unparsed event.
        let out = OutputBuffer(capacity: 256)
        holes.removeAll(keepingCapacity: true)
        [UInt8]().withUnsafeBufferPointer { noArena in
            render(unparsed: true, fields: [], range: 0..<0, arena: noArena, time: 0, out: out, recordHoles: true)
        }
        template = out.toArray()
        escapedReady = false
    }

    /// Appends event `i`'s document to `out` (no newline). False when the event has nothing to write
    /// (a parsed event whose fields were all removed): nothing is appended then.
    @discardableResult
    public mutating func append(_ i: Int, of batch: EventBatch, to out: OutputBuffer) -> Bool {
        let ev = batch.events[i]
        let secs = LogDocumentEncoder.seconds(of: ev, batch)
        if !ev.isParsed {
            batch.arena.withUnsafeBufferPointer { arena in
                var from = 0
                out.reserve(template.count + Int(ev.content.length) * 6 + 24)
                template.withUnsafeBufferPointer { t in
                    for h in holes {
                        out.append(t.baseAddress! + from, h.at - from)
                        from = h.at
                        if h.isContent {
                            JSONLineEncoder.appendEscaped((arena.baseAddress ?? UnsafePointer(bitPattern: 1)!) + Int(ev.content.offset), Int(ev.content.length), to: out)
                        } else {
                            seconds.withDigits(of: secs) { out.append($0.baseAddress!, $0.count) }
                        }
                    }
                    if template.count > from { out.append(t.baseAddress! + from, template.count - from) }
                }
            }
            return true
        }
        let range = Int(ev.fieldStart)..<Int(ev.fieldStart + ev.fieldCount)
        guard batch.fields[range].contains(where: { $0.kind != .deleted }) else { return false }
        batch.arena.withUnsafeBufferPointer { arena in
            render(unparsed: false, fields: batch.fields, range: range, arena: arena, time: secs, out: out, recordHoles: false)
        }
        return true
    }

    /// Appends event `i`'s document, as `append` writes it, escaped as the inside of a JSON string:
    /// the same bytes as escaping `append`'s output, for a document carried as a string (Loki's
    /// JSON push line). An unparsed event is the batch's template escaped once per batch, with its
    /// line escaped twice (in one pass) and its time in the holes, instead of its whole document
    /// escaped per event. False (nothing appended) as for `append`.
    @discardableResult
    public mutating func appendAsString(_ i: Int, of batch: EventBatch, to out: OutputBuffer) -> Bool {
        let ev = batch.events[i]
        if ev.isParsed {
            pending.clear()
            guard append(i, of: batch, to: pending) else { return false }
            JSONLineEncoder.appendEscaped(pending.base, pending.count, to: out)
            return true
        }
        if !escapedReady { escapeTemplate() }
        let secs = LogDocumentEncoder.seconds(of: ev, batch)
        var from = 0
        escapedTemplate.withUnsafeBufferPointer { t in
            for h in escapedHoles {
                out.append(t.baseAddress! + from, h.at - from)
                from = h.at
                if h.isContent {
                    // The line escaped twice (it is a string in a document that is a string), in one pass.
                    batch.arena.withUnsafeBufferPointer { arena in
                        JSONLineEncoder.appendEscapedTwice((arena.baseAddress ?? UnsafePointer(bitPattern: 1)!) + Int(ev.content.offset), Int(ev.content.length), to: out)
                    }
                } else {
                    // Digits need no escaping.
                    seconds.withDigits(of: secs) { out.append($0.baseAddress!, $0.count) }
                }
            }
            if t.count > from { out.append(t.baseAddress! + from, t.count - from) }
        }
        return true
    }

    /// Escapes the template piece by piece between its holes (which lie between ASCII bytes, so
    /// no UTF-8 sequence is cut): the pieces come out as escaping the whole document gives them.
    private mutating func escapeTemplate() {
        let o = OutputBuffer(capacity: template.count * 2 + 16)
        escapedHoles.removeAll(keepingCapacity: true)
        var from = 0
        template.withUnsafeBufferPointer { t in
            let base = t.baseAddress ?? UnsafePointer(bitPattern: 1)!
            for h in holes {
                JSONLineEncoder.appendEscaped(base + from, h.at - from, to: o)
                escapedHoles.append((o.count, h.isContent))
                from = h.at
            }
            JSONLineEncoder.appendEscaped(base + from, t.count - from, to: o)
        }
        escapedTemplate = o.toArray()
        escapedReady = true
    }

    /// The event's time in whole seconds (floored), the batch's when it has none.
    static func seconds(of ev: LogEvent, _ batch: EventBatch) -> Int64 {
        ev.timeNanos == 0 ? batch.timeSeconds : LogEvent.seconds(ofNanos: ev.timeNanos)
    }

    /// The general path: gathers the event's entries into `scratch`, orders them for the protocol
    /// and writes them.
    private mutating func render(unparsed: Bool, fields: [EventField], range: Range<Int>, arena: UnsafeBufferPointer<UInt8>,
                                 time: Int64, out: OutputBuffer, recordHoles: Bool) {
        scratch.removeAll(keepingCapacity: true)
        moved.removeAll(keepingCapacity: true)
        if unparsed {
            scratch.append(Entry(key: contentKey, value: .content))
        } else {
            for fi in range {
                let f = fields[fi]
                if f.kind == .deleted { continue }
                let key = Ref(inArena: true, span: f.key)
                let value: Value = f.kind == .json ? .json(Ref(inArena: true, span: f.value)) : .string(Ref(inArena: true, span: f.value))
                if f.key.length >= 8, let name = LogDocumentEncoder.wellKnownTag(arena, f.key) {
                    // The incumbent moves these content fields to the tags (`__tag__:__user_defined_id__` is dropped).
                    if let conv = options.convertedTagName(name) { moved.append(Entry(key: stored(conv), value: value)) }
                    continue
                }
                scratch.append(Entry(key: key, value: value))
            }
        }
        scratch.append(contentsOf: contentTags)
        let keys = store
        keys.withUnsafeBufferPointer { st in
            let less = { (a: Entry, b: Entry) in LogDocumentEncoder.less(a.key, b.key, arena, st) }
            var eventTags = tags
            if !moved.isEmpty {
                eventTags.append(contentsOf: moved)
                if options.protocol != .jsonline { eventTags.sort(by: less) }
            }
            switch options.protocol {
            case .customSingle:
                scratch.sort(by: less)
                out.append(byte: UInt8(ascii: "{"))
                for (n, top) in topOrder.enumerated() {
                    if n > 0 { out.append(byte: UInt8(ascii: ",")) }
                    writeKey(top.name, out)
                    switch top.part {
                    case 0: writeObject(scratch, arena, st, out, time: time, recordHoles: recordHoles)
                    case 1: writeObject(eventTags, arena, st, out, time: time, recordHoles: recordHoles)
                    default: writeValue(.time, arena, st, out, time: time, recordHoles: recordHoles)
                    }
                }
                out.append(byte: UInt8(ascii: "}"))
            case .customSingleFlatten, .jsonline:
                if !options.onlyContents { scratch.append(contentsOf: eventTags) }
                scratch.append(Entry(key: timeKey, value: .time))
                if options.protocol == .customSingleFlatten {
                    // Sorted; for equal keys the last one wins (tags over contents, time over all).
                    let indexed = scratch.enumerated().sorted { a, b in
                        less(a.element, b.element) || (!less(b.element, a.element) && a.offset < b.offset)
                    }
                    scratch.removeAll(keepingCapacity: true)
                    for (_, e) in indexed {
                        if let last = scratch.last, !less(last, e) && !less(e, last) { scratch[scratch.count - 1] = e } else { scratch.append(e) }
                    }
                } else {
                    // The same flat map, in the order written: a later entry of a key replaces an
                    // earlier one (a tag a content field, `time` either), as the map does.
                    var i = scratch.count - 1
                    while i > 0 {
                        let e = scratch[i]
                        var j = i - 1
                        while j >= 0 {
                            if !less(scratch[j], e) && !less(e, scratch[j]) {
                                scratch.remove(at: j)
                                i -= 1
                            }
                            j -= 1
                        }
                        i -= 1
                    }
                }
                writeObject(scratch, arena, st, out, time: time, recordHoles: recordHoles)
            }
        }
    }

    private func writeKey(_ name: [UInt8], _ out: OutputBuffer) {
        out.append(byte: UInt8(ascii: "\""))
        name.withUnsafeBufferPointer { JSONLineEncoder.appendEscaped($0.baseAddress!, $0.count, to: out) }
        out.append(byte: UInt8(ascii: "\""))
        out.append(byte: UInt8(ascii: ":"))
    }

    private mutating func writeObject(_ entries: [Entry], _ arena: UnsafeBufferPointer<UInt8>, _ st: UnsafeBufferPointer<UInt8>, _ out: OutputBuffer,
                                      time: Int64, recordHoles: Bool) {
        out.append(byte: UInt8(ascii: "{"))
        for (n, e) in entries.enumerated() {
            if n > 0 { out.append(byte: UInt8(ascii: ",")) }
            out.append(byte: UInt8(ascii: "\""))
            let k = LogDocumentEncoder.bytes(e.key, arena, st)
            JSONLineEncoder.appendEscaped(k.baseAddress ?? UnsafePointer(bitPattern: 1)!, k.count, to: out)
            out.append(byte: UInt8(ascii: "\""))
            out.append(byte: UInt8(ascii: ":"))
            writeValue(e.value, arena, st, out, time: time, recordHoles: recordHoles)
        }
        out.append(byte: UInt8(ascii: "}"))
    }

    private mutating func writeValue(_ v: Value, _ arena: UnsafeBufferPointer<UInt8>, _ st: UnsafeBufferPointer<UInt8>, _ out: OutputBuffer,
                                     time: Int64, recordHoles: Bool) {
        switch v {
        case .string(let r):
            let b = LogDocumentEncoder.bytes(r, arena, st)
            out.append(byte: UInt8(ascii: "\""))
            JSONLineEncoder.appendEscaped(b.baseAddress ?? UnsafePointer(bitPattern: 1)!, b.count, to: out)
            out.append(byte: UInt8(ascii: "\""))
        case .json(let r):
            let b = LogDocumentEncoder.bytes(r, arena, st)
            if let p = b.baseAddress { out.append(p, b.count) }
        case .content:
            out.append(byte: UInt8(ascii: "\""))
            if recordHoles { holes.append((out.count, true)) }
            out.append(byte: UInt8(ascii: "\""))
        case .time:
            if recordHoles { holes.append((out.count, false)) } else { out.append(decimal: time) }
        }
    }

    static func bytes(_ r: Ref, _ arena: UnsafeBufferPointer<UInt8>, _ st: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        let base = r.inArena ? arena : st
        return UnsafeBufferPointer(rebasing: base[Int(r.span.offset)..<Int(r.span.offset + r.span.length)])
    }

    static func less(_ a: Ref, _ b: Ref, _ arena: UnsafeBufferPointer<UInt8>, _ st: UnsafeBufferPointer<UInt8>) -> Bool {
        let x = bytes(a, arena, st), y = bytes(b, arena, st)
        let n = min(x.count, y.count)
        if n > 0, let xp = x.baseAddress, let yp = y.baseAddress {
            let c = memcmp(xp, yp, n)
            if c != 0 { return c < 0 }
        }
        return x.count < y.count
    }

    /// The well-known tag name a field key spells, if any. Decided on the bytes: a String is made
    /// only for a key that is one (a container event's `_source_` is not, and costs nothing).
    static func wellKnownTag(_ arena: UnsafeBufferPointer<UInt8>, _ key: Span) -> String? {
        let b = UnsafeBufferPointer(rebasing: arena[Int(key.offset)..<Int(key.offset + key.length)])
        guard b.first == UInt8(ascii: "_") else { return nil }
        func equals(_ name: [UInt8]) -> Bool {
            name.count == b.count && name.withUnsafeBufferPointer { memcmp($0.baseAddress!, b.baseAddress!, b.count) == 0 }
        }
        let tagPrefix = b.count > 8 && memcmp(b.baseAddress!, LogDocumentEncoder.tagPrefix, 8) == 0
        guard tagPrefix || equals(LogDocumentEncoder.logTopic) || LogDocumentEncoder.wellKnownTagBytes.contains(where: equals) else { return nil }
        return String(decoding: b, as: UTF8.self)
    }

    static let tagPrefix = Array("__tag__:".utf8)
    static let logTopic = Array("__log_topic__".utf8)
    static let wellKnownTagBytes = ConvertOptions.wellKnownTagNames.map { Array($0.utf8) }
}
