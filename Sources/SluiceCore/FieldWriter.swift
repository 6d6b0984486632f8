import Glibc

/// Writes a batch's fields anew in one pass, event after event: a processor copies an event's
/// live fields (`begin`), sets, overwrites or deletes some, and closes it (`end`). Deleted fields
/// are tombstones until the next pass drops them. Values stay views into the batch's arena: only
/// bytes a processor makes (an unescaped JSON string, a hash, a new key) are written, to `extra`,
/// and appended to the arena once, at the end of the pass. Nothing is allocated per event.
///
/// An unparsed event's one field is `content` → its raw line: `begin` turns it into a real field
/// pointing at the same bytes, so the first field costs no copy of the read buffer.
public struct FieldWriter {
    /// The new fields of the batch.
    public var fields: [EventField]
    /// The batch's fields before this pass (the spans `begin` copies).
    @usableFromInline var old: [EventField]
    /// Bytes made during the pass; span offsets start at `arenaBase`.
    public var extra: [UInt8]
    /// The arena's size when the pass began.
    public let arenaBase: Int
    /// Where the open event's fields start in `fields`.
    @usableFromInline var start = 0

    @usableFromInline init(old: [EventField], arenaBase: Int, events: Int, fieldsPerEvent: Int) {
        self.old = old
        self.arenaBase = arenaBase
        fields = []
        fields.reserveCapacity(max(old.count, events) + events * fieldsPerEvent)
        extra = []
    }

    /// The open event's fields.
    @inlinable public var current: Range<Int> { start..<fields.count }

    /// Opens an event: its live fields are copied (an unparsed event gets `contentKey` → its line).
    @inlinable public mutating func begin(_ ev: LogEvent, contentKey: Span) {
        start = fields.count
        if !ev.isParsed {
            fields.append(EventField(key: contentKey, value: ev.content))
            return
        }
        let end = Int(ev.fieldStart + ev.fieldCount)
        var i = Int(ev.fieldStart)
        while i < end {
            let f = old[i]
            if f.kind != .deleted { fields.append(f) }
            i &+= 1
        }
    }

    /// Closes the open event: it now views its new fields and counts as parsed.
    @inlinable public mutating func end(_ ev: inout LogEvent) {
        ev.fieldStart = UInt32(truncatingIfNeeded: start)
        ev.fieldCount = UInt32(truncatingIfNeeded: fields.count - start)
        ev.flags |= LogEvent.Flag.parsed
    }

    /// Leaves an event as it was (not opened, or opened and given up): its old fields are copied.
    @inlinable public mutating func keep(_ ev: inout LogEvent) {
        guard ev.isParsed else { return }
        begin(ev, contentKey: .empty)
        end(&ev)
    }

    /// Forgets the open event's fields (the event is dropped).
    @inlinable public mutating func discardCurrent() {
        fields.removeSubrange(start..<fields.count)
    }

    /// Whether the open event has no live field.
    @inlinable public var currentIsEmpty: Bool {
        var i = start
        while i < fields.count {
            if fields[i].kind != .deleted { return false }
            i &+= 1
        }
        return true
    }

    // MARK: Keys and values

    /// Index in `fields` of the open event's live field named `key`.
    @inlinable public func find(_ key: Span, arena: UnsafePointer<UInt8>) -> Int? {
        var i = start
        while i < fields.count {
            let f = fields[i]
            if f.kind != .deleted && equal(f.key, key, arena: arena) { return i }
            i &+= 1
        }
        return nil
    }

    /// The open event's source field: the live field named `key`, or with no key (a Go processor
    /// whose `SourceKey` is empty) its first live field.
    @inlinable public func source(_ key: Span?, arena: UnsafePointer<UInt8>) -> Int? {
        guard let key else { return current.first { fields[$0].kind != .deleted } }
        return find(key, arena: arena)
    }

    /// Sets `key` on the open event. An existing live field of that name is replaced in place
    /// when `overwrite` (else left alone); otherwise the field is appended.
    @inlinable public mutating func set(_ key: Span, _ value: Span, kind: FieldKind = .string, overwrite: Bool = true, arena: UnsafePointer<UInt8>) {
        if let i = find(key, arena: arena) {
            if overwrite { fields[i].value = value; fields[i].kind = kind }
            return
        }
        fields.append(EventField(key: key, value: value, kind: kind))
    }

    /// Appends a field to the open event without looking for one of the same name.
    @inlinable public mutating func append(_ key: Span, _ value: Span, kind: FieldKind = .string) {
        fields.append(EventField(key: key, value: value, kind: kind))
    }

    /// Deletes `key` from the open event (a tombstone). Returns whether it was there.
    @discardableResult
    @inlinable public mutating func delete(_ key: Span, arena: UnsafePointer<UInt8>) -> Bool {
        guard let i = find(key, arena: arena) else { return false }
        fields[i].kind = .deleted
        return true
    }

    /// Whether two spans hold the same bytes (either may be in `extra`).
    @inlinable public func equal(_ a: Span, _ b: Span, arena: UnsafePointer<UInt8>) -> Bool {
        if a.length != b.length { return false }
        if a.offset == b.offset || a.length == 0 { return true }
        let base = UInt32(truncatingIfNeeded: arenaBase)
        if a.offset < base && b.offset < base {
            // Keys of one event of the same length mostly differ in their first byte: no call then.
            if arena[Int(a.offset)] != arena[Int(b.offset)] { return false }
            return memcmp(arena + Int(a.offset), arena + Int(b.offset), Int(a.length)) == 0
        }
        return withBytes(a, arena: arena) { pa in
            withBytes(b, arena: arena) { pb in pa[0] == pb[0] && memcmp(pa, pb, Int(a.length)) == 0 }
        }
    }

    /// Whether `span` holds exactly `bytes`.
    @inlinable public func equal(_ span: Span, _ bytes: UnsafeBufferPointer<UInt8>, arena: UnsafePointer<UInt8>) -> Bool {
        guard Int(span.length) == bytes.count else { return false }
        guard let b = bytes.baseAddress, span.length > 0 else { return true }
        return withBytes(span, arena: arena) { $0[0] == b[0] && memcmp($0, b, bytes.count) == 0 }
    }

    /// Calls `body` with a pointer to the bytes of `span`, in the arena or in `extra`.
    @inlinable public func withBytes<R>(_ span: Span, arena: UnsafePointer<UInt8>, _ body: (UnsafePointer<UInt8>) -> R) -> R {
        let off = Int(span.offset)
        if off < arenaBase { return body(arena + off) }
        return extra.withUnsafeBufferPointer { body($0.baseAddress! + (off - arenaBase)) }
    }

    /// Appends `n` bytes to `extra` and returns their span.
    @inlinable public mutating func appendBytes(_ p: UnsafePointer<UInt8>, _ n: Int) -> Span {
        let off = arenaBase + extra.count
        extra.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
        return Span(off, n)
    }

    /// Appends the UTF-8 of `s` to `extra` (keys and constants, once per batch).
    public mutating func intern(_ s: String) -> Span {
        let off = arenaBase + extra.count
        extra.append(contentsOf: s.utf8)
        return Span(off, extra.count - (off - arenaBase))
    }

    /// The span of what was appended to `extra` since `mark` (a value built byte by byte).
    @inlinable public func span(since mark: Int) -> Span {
        Span(arenaBase + mark, extra.count - mark)
    }

    /// Where `extra` ends now, for `span(since:)` and `truncateExtra(to:)`.
    @inlinable public var extraMark: Int { extra.count }

    /// Drops what was appended to `extra` since `mark` (a parse that failed half-way).
    @inlinable public mutating func truncateExtra(to mark: Int) {
        extra.removeSubrange(mark..<extra.count)
    }
}

extension EventBatch {
    /// Runs one field-writing pass: `body` gets the arena's bytes, the events (to update, or to
    /// compact when it drops some) and the writer; afterwards the batch holds the new fields
    /// and the arena the new bytes. `fieldsPerEvent` sizes the new field array once.
    @inlinable public mutating func rewriteFields(
        fieldsPerEvent: Int, _ body: (UnsafePointer<UInt8>, inout [LogEvent], inout FieldWriter) -> Void
    ) {
        var arena: [UInt8] = []
        swap(&arena, &self.arena)
        var events: [LogEvent] = []
        swap(&events, &self.events)
        var oldFields: [EventField] = []
        swap(&oldFields, &self.fields)
        var writer = FieldWriter(old: oldFields, arenaBase: arena.count, events: events.count, fieldsPerEvent: fieldsPerEvent)
        oldFields = []
        arena.withUnsafeBufferPointer { a in
            body(a.baseAddress ?? UnsafePointer(bitPattern: 1)!, &events, &writer)
        }
        writer.old = []
        arena.append(contentsOf: writer.extra)
        swap(&arena, &self.arena)
        swap(&events, &self.events)
        swap(&writer.fields, &self.fields)
    }
}

extension EventBatch {
    /// The value of `ev`'s live field named `key` (an unparsed event has only `content`), read
    /// in place, for processors that look at fields without rewriting them.
    @inlinable public func value(of ev: LogEvent, key: [UInt8], arena: UnsafePointer<UInt8>) -> EventField? {
        if !ev.isParsed {
            return key.elementsEqual("content".utf8) ? EventField(key: .empty, value: ev.content) : nil
        }
        let end = Int(ev.fieldStart + ev.fieldCount)
        var i = Int(ev.fieldStart)
        while i < end {
            let f = fields[i]
            if f.kind != .deleted && Int(f.key.length) == key.count && (key.isEmpty || arena[Int(f.key.offset)] == key[0])
                && key.withUnsafeBufferPointer({ memcmp(arena + Int(f.key.offset), $0.baseAddress!, key.count) == 0 }) {
                return f
            }
            i &+= 1
        }
        return nil
    }
}
