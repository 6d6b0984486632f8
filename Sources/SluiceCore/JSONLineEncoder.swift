import CJSONText

/// The one shape every line-oriented flusher writes: one flat JSON object per event, per line.
///
///     {"content":"<line>","__path__":"/var/log/a.log","__hostname__":"node-1","__time__":1700000000}
///
/// - An unparsed event writes its raw line as `content`; a parsed event writes its fields instead
///   (in order; deleted ones skipped), and no `content` unless a field is named so. A string field
///   is a JSON string; a raw-JSON field (number, bool, null, object, array) is written unquoted.
///   A parsed event whose fields were all removed is not written.
/// - Then the batch's tags, with the names iLogtail gives them (`__path__`, `__hostname__`,
///   `_pod_name_`, `_namespace_`, `_container_name_`, ...).
/// - Then `__time__`: the event time in Unix seconds, as a JSON number.
/// - Bytes are kept as they are, except what JSON requires: `"` `\` and control characters are
///   escaped, and a byte sequence that is not valid UTF-8 becomes U+FFFD (`\ufffd`), one per
///   invalid byte, so every output line is valid JSON and valid UTF-8.
public struct JSONLineEncoder: Sendable {
    public init() {}

    /// Appends every event of `batch` to `out`, one line each.
    public func encode(_ batch: EventBatch, into out: OutputBuffer) {
        // Everything after the event's own fields, built once per batch:
        // `,"tag":"value",...,"__time__":<batch time>}\n`.
        let tail = OutputBuffer(capacity: 256)
        for t in batch.tags {
            tail.append(byte: UInt8(ascii: ","))
            JSONLineEncoder.appendString(t.key, to: tail)
            tail.append(byte: UInt8(ascii: ":"))
            JSONLineEncoder.appendString(t.value, to: tail)
        }
        tail.append(",\"__time__\":")
        let timeStart = tail.count
        tail.append(decimal: batch.timeSeconds)
        tail.append("}\n")
        let tailCount = tail.count
        let tailBase = tail.base

        // Worst case: every byte escaped to 6, plus fixed parts per event; reserved once so the
        // loop below writes through a raw cursor with no capacity checks.
        var fieldBytes = 0
        for f in batch.fields { fieldBytes += 6 * Int(f.key.length + f.value.length) + 8 }
        out.reserve(batch.arena.count * 6 + fieldBytes + batch.events.count * (tailCount + 40) + 64)
        let base = out.base
        var d = out.count
        var seconds = RepeatedDecimal()

        batch.arena.withUnsafeBufferPointer { arenaBuf in
          batch.fields.withUnsafeBufferPointer { fields in
            let arena = arenaBuf.baseAddress ?? UnsafePointer(bitPattern: 1)!
            for ev in batch.events {
                if !ev.isParsed {
                    (base + d).update(from: JSONLineEncoder.contentOpen, count: 12)
                    d += 12
                    d = JSONLineEncoder.escape(arena + Int(ev.content.offset), Int(ev.content.length), base, d)
                    base[d] = UInt8(ascii: "\"")
                    d += 1
                } else {
                    let eventStart = d
                    base[d] = UInt8(ascii: "{")
                    d += 1
                    let end = Int(ev.fieldStart + ev.fieldCount)
                    for fi in Int(ev.fieldStart)..<end {
                        let f = fields[fi]
                        if f.kind == .deleted { continue }
                        if d != eventStart + 1 { base[d] = UInt8(ascii: ","); d += 1 }
                        base[d] = UInt8(ascii: "\"")
                        d += 1
                        d = JSONLineEncoder.escape(arena + Int(f.key.offset), Int(f.key.length), base, d)
                        base[d] = UInt8(ascii: "\""); base[d + 1] = UInt8(ascii: ":")
                        d += 2
                        if f.kind == .json {
                            (base + d).update(from: arena + Int(f.value.offset), count: Int(f.value.length))
                            d += Int(f.value.length)
                        } else {
                            base[d] = UInt8(ascii: "\"")
                            d += 1
                            d = JSONLineEncoder.escape(arena + Int(f.value.offset), Int(f.value.length), base, d)
                            base[d] = UInt8(ascii: "\"")
                            d += 1
                        }
                    }
                    // Every field removed: the event is not written.
                    if d == eventStart + 1 { d = eventStart; continue }
                }
                if ev.timeNanos == 0 {
                    (base + d).update(from: tailBase, count: tailCount)
                    d += tailCount
                } else {
                    (base + d).update(from: tailBase, count: timeStart)
                    d += timeStart
                    d += seconds.withDigits(of: LogEvent.seconds(ofNanos: ev.timeNanos)) { digits in
                        (base + d).update(from: digits.baseAddress!, count: digits.count)
                        return digits.count
                    }
                    base[d] = UInt8(ascii: "}"); base[d + 1] = 0x0A
                    d += 2
                }
            }
          }
        }
        out.count = d
    }

    private static let contentOpenBytes: [UInt8] = Array("{\"content\":\"".utf8)
    nonisolated(unsafe) private static let contentOpen: UnsafePointer<UInt8> = {
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 12)
        p.initialize(from: contentOpenBytes, count: 12)
        return UnsafePointer(p)
    }()

    /// Appends `s` as a quoted JSON string.
    public static func appendString(_ s: String, to out: OutputBuffer) {
        var s = s
        out.append(byte: UInt8(ascii: "\""))
        s.withUTF8 { b in appendEscaped(b.baseAddress ?? UnsafePointer(bitPattern: 1)!, b.count, to: out) }
        out.append(byte: UInt8(ascii: "\""))
    }

    /// Appends `n` bytes at `p` JSON-escaped (without quotes).
    public static func appendEscaped(_ p: UnsafePointer<UInt8>, _ n: Int, to out: OutputBuffer) {
        out.reserve(n * 6 + 16)
        out.count = escape(p, n, out.base, out.count)
    }

    /// Appends `n` bytes at `p` JSON-escaped twice (the escape of their escape) in one pass: a line
    /// inside a document that is itself carried as a JSON string.
    public static func appendEscapedTwice(_ p: UnsafePointer<UInt8>, _ n: Int, to out: OutputBuffer) {
        out.reserve(n * 7 + 16)
        out.count += sluice_json_escape_twice(p, n, out.base + out.count)
    }

    /// Flags (high bit) every byte of the word that is < 0x20, `"`, `\\` or ≥ 0x80. The lowest flag
    /// is exact; bytes above a flagged one may be flagged falsely.
    @inline(__always)
    static func escapeMask(_ w: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let lt20 = (w &- ones &* 0x20) & ~w & highs
        let q = w ^ (ones &* 0x22)
        let hasQuote = (q &- ones) & ~q & highs
        let b = w ^ (ones &* 0x5C)
        let hasBackslash = (b &- ones) & ~b & highs
        return (w & highs) | lt20 | hasQuote | hasBackslash
    }

    /// Writes `n` bytes at `p`, JSON-escaped, to `dst + d`; returns the new end. `dst` must have
    /// room for `n * 6 + 16` more bytes. The escaping is `sluice_json_escape`'s (C: 32 bytes
    /// at a time with AVX2, else 16 with SSE2, the escapes and the UTF-8 check written there). Under sixteen bytes
    /// (most keys and many values) the plain bytes are copied here first, with no loop: two
    /// overlapping words (8–15 bytes) or two overlapping half-words (4–7), each stored and kept
    /// if it holds nothing to escape; the call takes over at the first byte that needs work.
    @inline(__always)
    static func escape(_ p: UnsafePointer<UInt8>, _ n: Int, _ dst: UnsafeMutablePointer<UInt8>, _ start: Int) -> Int {
        if n >= 16 { return start &+ sluice_json_escape(p, n, dst + start) }
        var d = start
        var i = 0
        let src = UnsafeRawPointer(p)
        let raw = UnsafeMutableRawPointer(dst)
        if n >= 8 {
            // Two words, the second ending at the last byte (overlapping the first when n < 16):
            // no byte-at-a-time tail. The lowest flagged byte of a mask is exact; only bytes
            // above it can be flagged falsely.
            let w = src.loadUnaligned(as: UInt64.self)
            raw.storeBytes(of: w, toByteOffset: d, as: UInt64.self)
            let m = escapeMask(w)
            if m == 0 {
                let last = src.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
                raw.storeBytes(of: last, toByteOffset: d &+ n &- 8, as: UInt64.self)
                // Its bytes below 8 were found plain in `w`, so its lowest flag is exact too.
                let ml = escapeMask(last)
                if ml == 0 { return d &+ n }
                let k = n &- 8 &+ ml.trailingZeroBitCount >> 3
                i = k
                d &+= k
            } else {
                let k = m.trailingZeroBitCount >> 3
                i = k
                d &+= k
            }
        } else if n >= 4 {
            // Both halves in one word (they overlap when n < 8): a plain string is two stores.
            let a = src.loadUnaligned(as: UInt32.self)
            let b = src.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self)
            if escapeMask(UInt64(a) | UInt64(b) << 32) == 0 {
                raw.storeBytes(of: a, toByteOffset: d, as: UInt32.self)
                raw.storeBytes(of: b, toByteOffset: d &+ n &- 4, as: UInt32.self)
                return d &+ n
            }
        } else {
            while i < n {
                let c = p[i]
                guard c >= 0x20 && c != 0x22 && c != 0x5C && c < 0x80 else { break }
                dst[d] = c
                d &+= 1
                i &+= 1
            }
        }
        // Copied one for one so far, so the room left is what the call needs for the rest.
        if i < n { d &+= sluice_json_escape(p + i, n &- i, dst + d) }
        return d
    }
}
