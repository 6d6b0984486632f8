/// A view into a batch's arena: `length` bytes starting at `offset`.
public struct Span: Sendable, Equatable {
    public var offset: UInt32
    public var length: UInt32
    @inlinable public init(offset: UInt32, length: UInt32) {
        self.offset = offset
        self.length = length
    }
    @inlinable public init(_ offset: Int, _ length: Int) {
        self.offset = UInt32(truncatingIfNeeded: offset)
        self.length = UInt32(truncatingIfNeeded: length)
    }
    public static let empty = Span(offset: 0, length: 0)
}

/// What a field's value bytes are.
public enum FieldKind: UInt8, Sendable, Equatable {
    /// Text (any bytes); written as a JSON string.
    case string = 0
    /// A raw JSON literal (number, `true`, `false`, `null`, object or array), compact; written as is.
    case json = 1
    /// Deleted in place (a tombstone): skipped by every reader and dropped by the next field writer.
    case deleted = 2
}

/// A field of an event: key and value, both views into the batch arena.
public struct EventField: Sendable, Equatable {
    public var key: Span
    public var value: Span
    public var kind: FieldKind
    @inlinable public init(key: Span, value: Span, kind: FieldKind = .string) {
        self.key = key
        self.value = value
        self.kind = kind
    }
}

/// One log event. It owns no memory: its content and fields are views into the arena of
/// the batch that holds it, so creating an event allocates nothing.
public struct LogEvent: Sendable, Equatable {
    /// The raw content (the line, without its newline). While the event is not parsed
    /// (`Flag.parsed` unset) it is the event's one field, `content`.
    public var content: Span
    /// Event time in Unix nanoseconds; 0 means "the batch's time".
    public var timeNanos: Int64
    /// Range of this event's fields in `EventBatch.fields` (meaningful when `Flag.parsed` is set).
    public var fieldStart: UInt32
    public var fieldCount: UInt32
    /// Bit set of `LogEvent.Flag`.
    public var flags: UInt32

    public enum Flag {
        /// The event is a piece of a line longer than the read buffer.
        public static let splitPiece: UInt32 = 1 << 0
        /// The content was emitted without its terminating newline (flush timeout or shutdown).
        public static let unterminated: UInt32 = 1 << 1
        /// The event's fields are the event (a processor wrote them); `content` is no longer
        /// written. A parsed event with no live fields is not written at all.
        public static let parsed: UInt32 = 1 << 2
        /// A multiline group cut at `max_read_buffer_size` before its end was seen.
        public static let truncatedGroup: UInt32 = 1 << 3
    }

    /// Whether a processor has written this event's fields.
    @inlinable public var isParsed: Bool { flags & Flag.parsed != 0 }

    @inlinable public init(content: Span, timeNanos: Int64 = 0, flags: UInt32 = 0) {
        self.content = content
        self.timeNanos = timeNanos
        self.fieldStart = 0
        self.fieldCount = 0
        self.flags = flags
    }

    /// Whole Unix seconds of `ns`, rounded down: a time before 1970 that is not a whole second
    /// belongs to the second before it (-0.5 s is second -1), as `__time__` and every backend's
    /// seconds field count it.
    @inlinable public static func seconds(ofNanos ns: Int64) -> Int64 {
        let s = ns / 1_000_000_000
        return ns < 0 && s * 1_000_000_000 != ns ? s - 1 : s
    }
}

/// A tag of a batch: applies to every event in it (`__path__`, `__hostname__`, `_pod_name_`, ...).
public struct EventTag: Sendable, Equatable {
    public var key: String
    public var value: String
    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}

/// A group of events that share one arena and one set of tags — the unit that moves through
/// queues, processors and flushers. Tags live here, once, not on each event.
public struct EventBatch: Sendable {
    /// Bytes the events view into.
    public var arena: [UInt8]
    public var events: [LogEvent]
    public var fields: [EventField]
    public var tags: [EventTag]
    /// When the batch was read, Unix nanoseconds; the time of events whose `timeNanos` is 0.
    public var observedNanos: Int64
    /// `observedNanos` in whole seconds (what `__time__` shows).
    @inlinable public var timeSeconds: Int64 {
        get { observedNanos / 1_000_000_000 }
        set { observedNanos = newValue * 1_000_000_000 }
    }
    /// Source position this batch acknowledges once every flusher has delivered it.
    public var ack: AckToken?
    /// Bytes of input the batch stands for (used by queue watermarks and metrics).
    public var inputBytes: Int
    /// Where the events come from, for ids that must be the same when the data is read again
    /// (Elasticsearch's `GenerateId`): a hash of the source file's identity (device, inode and
    /// the inode's generation, the same for every batch of the file), and the file offset of
    /// arena byte 0 when the arena holds the file's bytes as read (plain lines, no transcoding),
    /// so `sourceOffset + content.offset` is an event's own offset; -1 otherwise.
    public var sourceKey: UInt64 = 0
    public var sourceOffset: Int64 = -1
    /// The stream this batch continues (a file's device and inode), fixed for as long as the
    /// source is read: `process_thread_count` sends the batches of one stream to one thread, so
    /// they stay in order. (`sourceKey` is not set on every batch of a file: not on flushed
    /// partial lines, multiline groups or a runtime log's decoded streams.)
    public var sourceStream: UInt64 = 0

    public init(arena: [UInt8], events: [LogEvent], tags: [EventTag], timeSeconds: Int64, inputBytes: Int, ack: AckToken? = nil) {
        self.arena = arena
        self.events = events
        self.fields = []
        self.tags = tags
        self.observedNanos = timeSeconds * 1_000_000_000
        self.ack = ack
        self.inputBytes = inputBytes
    }

    public init(arena: [UInt8], events: [LogEvent], tags: [EventTag], observedNanos: Int64, inputBytes: Int, ack: AckToken? = nil) {
        self.init(arena: arena, events: events, tags: tags, timeSeconds: 0, inputBytes: inputBytes, ack: ack)
        self.observedNanos = observedNanos
    }

    /// Memory the batch holds, for queue accounting: the arena, the events and their fields.
    @inlinable public var memoryBytes: Int {
        arena.count + events.count * MemoryLayout<LogEvent>.stride + fields.count * MemoryLayout<EventField>.stride + 64
    }

    /// The content bytes of event `i` (copied; for tests and slow paths, not the hot path).
    public func contentBytes(_ i: Int) -> [UInt8] {
        let s = events[i].content
        return Array(arena[Int(s.offset)..<Int(s.offset + s.length)])
    }

    /// Appends bytes to the arena and returns their span (for processors that create fields).
    public mutating func append<C: Collection>(bytes: C) -> Span where C.Element == UInt8 {
        let off = arena.count
        arena.append(contentsOf: bytes)
        return Span(off, arena.count - off)
    }

    /// The bytes of `span` (copied; for tests and slow paths).
    public func bytes(_ span: Span) -> [UInt8] {
        Array(arena[Int(span.offset)..<Int(span.offset + span.length)])
    }

    /// The live fields of event `i` as (key, value, kind) strings, in order; an unparsed event
    /// gives its one `content` field. For tests and slow paths.
    public func fieldStrings(_ i: Int) -> [(key: String, value: String, kind: FieldKind)] {
        let ev = events[i]
        guard ev.isParsed else { return [("content", String(decoding: bytes(ev.content), as: UTF8.self), .string)] }
        return fields[Int(ev.fieldStart)..<Int(ev.fieldStart + ev.fieldCount)].filter { $0.kind != .deleted }.map {
            (String(decoding: bytes($0.key), as: UTF8.self), String(decoding: bytes($0.value), as: UTF8.self), $0.kind)
        }
    }

    /// EventTag value by key, if present.
    public func tag(_ key: String) -> String? {
        tags.first(where: { $0.key == key })?.value
    }
}
