/// An `EventBatch` as bytes, for the disk buffer: everything a flusher needs to send it again
/// after a restart (arena, events, parsed fields, tags, times, source key and offset), and
/// nothing of this process (no acknowledgement). Little-endian; `decode` checks every length and
/// span, so damaged bytes are an error, never a crash.
public enum BatchCodec {
    static let version: UInt32 = 1

    public struct DecodeError: Error, CustomStringConvertible {
        public var reason: String
        public var description: String { "damaged batch: \(reason)" }
    }

    public static func encode(_ b: EventBatch, into out: inout [UInt8]) {
        out.reserveCapacity(out.count + 64 + b.arena.count + b.events.count * 28 + b.fields.count * 17
                            + b.tags.reduce(0) { $0 + 8 + $1.key.utf8.count + $1.value.utf8.count })
        put32(&out, version)
        put64(&out, UInt64(bitPattern: b.observedNanos))
        put64(&out, UInt64(bitPattern: Int64(b.inputBytes)))
        put64(&out, b.sourceKey)
        put64(&out, UInt64(bitPattern: b.sourceOffset))
        put32(&out, UInt32(b.tags.count))
        for t in b.tags {
            putString(&out, t.key)
            putString(&out, t.value)
        }
        put32(&out, UInt32(b.arena.count))
        out.append(contentsOf: b.arena)
        put32(&out, UInt32(b.events.count))
        for e in b.events {
            put32(&out, e.content.offset)
            put32(&out, e.content.length)
            put64(&out, UInt64(bitPattern: e.timeNanos))
            put32(&out, e.fieldStart)
            put32(&out, e.fieldCount)
            put32(&out, e.flags)
        }
        put32(&out, UInt32(b.fields.count))
        for f in b.fields {
            put32(&out, f.key.offset)
            put32(&out, f.key.length)
            put32(&out, f.value.offset)
            put32(&out, f.value.length)
            out.append(f.kind.rawValue)
        }
    }

    public static func encode(_ b: EventBatch) -> [UInt8] {
        var out: [UInt8] = []
        encode(b, into: &out)
        return out
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(DecodeError) -> EventBatch {
        var r = Reader(bytes: bytes)
        guard try r.u32() == version else { throw DecodeError(reason: "unknown version") }
        let observed = Int64(bitPattern: try r.u64())
        let inputBytes = Int(Int64(bitPattern: try r.u64()))
        let sourceKey = try r.u64()
        let sourceOffset = Int64(bitPattern: try r.u64())
        let tagCount = Int(try r.u32())
        guard tagCount <= bytes.count / 8 else { throw DecodeError(reason: "tag count \(tagCount)") }
        var tags: [EventTag] = []
        tags.reserveCapacity(tagCount)
        for _ in 0..<tagCount { tags.append(EventTag(try r.string(), try r.string())) }
        let arenaCount = Int(try r.u32())
        let arena = try r.bytes(arenaCount)
        let eventCount = Int(try r.u32())
        guard eventCount <= (bytes.count - r.at) / 28 else { throw DecodeError(reason: "event count \(eventCount)") }
        var events: [LogEvent] = []
        events.reserveCapacity(eventCount)
        for _ in 0..<eventCount {
            var e = LogEvent(content: Span(offset: try r.u32(), length: try r.u32()), timeNanos: Int64(bitPattern: try r.u64()))
            e.fieldStart = try r.u32()
            e.fieldCount = try r.u32()
            e.flags = try r.u32()
            guard inArena(e.content, arenaCount) else { throw DecodeError(reason: "event outside the arena") }
            events.append(e)
        }
        let fieldCount = Int(try r.u32())
        guard fieldCount <= (bytes.count - r.at) / 17 else { throw DecodeError(reason: "field count \(fieldCount)") }
        var fields: [EventField] = []
        fields.reserveCapacity(fieldCount)
        for _ in 0..<fieldCount {
            let key = Span(offset: try r.u32(), length: try r.u32())
            let value = Span(offset: try r.u32(), length: try r.u32())
            guard let kind = FieldKind(rawValue: try r.u8()) else { throw DecodeError(reason: "field kind") }
            guard inArena(key, arenaCount), inArena(value, arenaCount) else { throw DecodeError(reason: "field outside the arena") }
            fields.append(EventField(key: key, value: value, kind: kind))
        }
        for e in events where UInt64(e.fieldStart) + UInt64(e.fieldCount) > UInt64(fieldCount) {
            throw DecodeError(reason: "event fields outside the field list")
        }
        guard r.at == bytes.count else { throw DecodeError(reason: "\(bytes.count - r.at) bytes left over") }
        var b = EventBatch(arena: arena, events: events, tags: tags, observedNanos: observed, inputBytes: inputBytes)
        b.fields = fields
        b.sourceKey = sourceKey
        b.sourceOffset = sourceOffset
        return b
    }

    static func inArena(_ s: Span, _ count: Int) -> Bool { UInt64(s.offset) + UInt64(s.length) <= UInt64(count) }

    static func put32(_ out: inout [UInt8], _ v: UInt32) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }
    static func put64(_ out: inout [UInt8], _ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }
    static func putString(_ out: inout [UInt8], _ s: String) {
        put32(&out, UInt32(s.utf8.count))
        out.append(contentsOf: s.utf8)
    }

    struct Reader {
        let bytes: UnsafeRawBufferPointer
        var at = 0
        mutating func need(_ n: Int) throws(DecodeError) {
            guard n >= 0, bytes.count - at >= n else { throw DecodeError(reason: "truncated at byte \(at)") }
        }
        mutating func u8() throws(DecodeError) -> UInt8 {
            try need(1)
            defer { at += 1 }
            return bytes[at]
        }
        mutating func u32() throws(DecodeError) -> UInt32 {
            try need(4)
            defer { at += 4 }
            return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))
        }
        mutating func u64() throws(DecodeError) -> UInt64 {
            try need(8)
            defer { at += 8 }
            return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
        }
        mutating func bytes(_ n: Int) throws(DecodeError) -> [UInt8] {
            try need(n)
            defer { at += n }
            return Array(UnsafeRawBufferPointer(rebasing: bytes[at..<(at + n)]))
        }
        mutating func string() throws(DecodeError) -> String {
            let n = Int(try u32())
            return String(decoding: try bytes(n), as: UTF8.self)
        }
    }
}
