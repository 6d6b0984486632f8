/// The one shape every line-oriented flusher writes: one flat JSON object per event, per line.
///
///     {"content":"<line>","__path__":"/var/log/a.log","__hostname__":"node-1","__time__":1700000000}
///
/// - An unparsed event writes its raw line as `content`; a parsed event writes its fields instead
///   (in order), and no `content` unless a field is named so.
/// - Then the batch's tags, with the names iLogtail gives them (`__path__`, `__hostname__`,
///   `_pod_name_`, `_namespace_`, `_container_name_`, ...).
/// - Then `__time__`: the event time in Unix seconds, as a JSON number.
/// - Bytes are kept as they are, except what JSON requires: `"` `\` and control characters are
///   escaped, and a byte sequence that is not valid UTF-8 becomes U+FFFD (`\ufffd`), one per
///   invalid byte, so every output line is valid JSON and valid UTF-8.
public struct JSONLineEncoder {
    public init() {}

    /// Appends every event of `batch` to `out`, one line each.
    public func encode(_ batch: EventBatch, into out: ByteBuffer) {
        // Everything after the event's own fields up to the time value, built once per batch.
        let tail = ByteBuffer(capacity: 256)
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
        let timeLen = tail.count - timeStart - 2

        batch.arena.withUnsafeBufferPointer { arenaBuf in
            let arena = arenaBuf.baseAddress ?? UnsafePointer(bitPattern: 1)!
            for ev in batch.events {
                if ev.fieldCount == 0 {
                    out.append(JSONLineEncoder.contentOpen, 12)
                    JSONLineEncoder.appendEscaped(arena + Int(ev.content.offset), Int(ev.content.length), to: out)
                    out.append(byte: UInt8(ascii: "\""))
                } else {
                    out.append(byte: UInt8(ascii: "{"))
                    let end = Int(ev.fieldStart + ev.fieldCount)
                    for fi in Int(ev.fieldStart)..<end {
                        let f = batch.fields[fi]
                        if fi != Int(ev.fieldStart) { out.append(byte: UInt8(ascii: ",")) }
                        out.append(byte: UInt8(ascii: "\""))
                        JSONLineEncoder.appendEscaped(arena + Int(f.key.offset), Int(f.key.length), to: out)
                        out.append(JSONLineEncoder.quoteColonQuote, 3)
                        JSONLineEncoder.appendEscaped(arena + Int(f.value.offset), Int(f.value.length), to: out)
                        out.append(byte: UInt8(ascii: "\""))
                    }
                }
                if ev.timeNanos == 0 {
                    out.append(tail.base, tailCount)
                } else {
                    out.append(tail.base, timeStart)
                    var secs = ev.timeNanos / 1_000_000_000
                    if ev.timeNanos < 0 && ev.timeNanos % 1_000_000_000 != 0 { secs -= 1 }
                    out.append(decimal: secs)
                    out.append(tail.base + timeStart + timeLen, 2)
                }
            }
        }
    }

    private static let contentOpenBytes: [UInt8] = Array("{\"content\":\"".utf8)
    nonisolated(unsafe) private static let contentOpen: UnsafePointer<UInt8> = {
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 12)
        p.initialize(from: contentOpenBytes, count: 12)
        return UnsafePointer(p)
    }()
    nonisolated(unsafe) private static let quoteColonQuote: UnsafePointer<UInt8> = {
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 3)
        p.initialize(from: Array("\":\"".utf8), count: 3)
        return UnsafePointer(p)
    }()

    /// Appends `s` as a quoted JSON string.
    public static func appendString(_ s: String, to out: ByteBuffer) {
        var s = s
        out.append(byte: UInt8(ascii: "\""))
        s.withUTF8 { b in appendEscaped(b.baseAddress ?? UnsafePointer(bitPattern: 1)!, b.count, to: out) }
        out.append(byte: UInt8(ascii: "\""))
    }

    @inline(__always)
    static func wordNeedsWork(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let lt20 = (w &- ones &* 0x20) & ~w & highs
        let q = w ^ (ones &* 0x22)
        let hasQuote = (q &- ones) & ~q & highs
        let b = w ^ (ones &* 0x5C)
        let hasBackslash = (b &- ones) & ~b & highs
        return ((w & highs) | lt20 | hasQuote | hasBackslash) != 0
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends `n` bytes at `p` JSON-escaped (without quotes). Runs of plain ASCII are copied
    /// with one memcpy; they are found eight bytes at a time.
    public static func appendEscaped(_ p: UnsafePointer<UInt8>, _ n: Int, to out: ByteBuffer) {
        out.reserve(n)
        var i = 0
        var run = 0
        while i < n {
            // Fast scan: skip words of plain ASCII.
            while i + 8 <= n {
                let w = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
                if wordNeedsWork(w) { break }
                i += 8
            }
            if i >= n { break }
            let c = p[i]
            if c >= 0x20 && c != 0x22 && c != 0x5C && c < 0x80 {
                i += 1
                continue
            }
            if c >= 0x80 {
                let len = validUTF8Length(p + i, n - i)
                if len > 0 {
                    i += len
                    continue
                }
                // Invalid byte: flush the run, write U+FFFD.
                if i > run { out.append(p + run, i - run) }
                out.append("\\ufffd")
                i += 1
                run = i
                continue
            }
            if i > run { out.append(p + run, i - run) }
            out.reserve(6)
            let b = out.base + out.count
            b[0] = UInt8(ascii: "\\")
            switch c {
            case 0x22: b[1] = 0x22; out.count += 2
            case 0x5C: b[1] = 0x5C; out.count += 2
            case 0x0A: b[1] = UInt8(ascii: "n"); out.count += 2
            case 0x0D: b[1] = UInt8(ascii: "r"); out.count += 2
            case 0x09: b[1] = UInt8(ascii: "t"); out.count += 2
            case 0x08: b[1] = UInt8(ascii: "b"); out.count += 2
            case 0x0C: b[1] = UInt8(ascii: "f"); out.count += 2
            default:
                b[1] = UInt8(ascii: "u"); b[2] = 0x30; b[3] = 0x30
                b[4] = hex[Int(c >> 4)]; b[5] = hex[Int(c & 0xF)]
                out.count += 6
            }
            i += 1
            run = i
        }
        if n > run { out.append(p + run, n - run) }
    }

    /// Length of the valid UTF-8 sequence starting at `p` (first byte ≥ 0x80), or 0 if invalid.
    @inline(__always)
    static func validUTF8Length(_ p: UnsafePointer<UInt8>, _ avail: Int) -> Int {
        let c0 = p[0]
        @inline(__always) func cont(_ x: UInt8) -> Bool { x & 0xC0 == 0x80 }
        if c0 >= 0xC2 && c0 <= 0xDF {
            return avail >= 2 && cont(p[1]) ? 2 : 0
        }
        if c0 >= 0xE0 && c0 <= 0xEF {
            guard avail >= 3 else { return 0 }
            let c1 = p[1]
            let ok1: Bool
            switch c0 {
            case 0xE0: ok1 = c1 >= 0xA0 && c1 <= 0xBF
            case 0xED: ok1 = c1 >= 0x80 && c1 <= 0x9F
            default: ok1 = cont(c1)
            }
            return ok1 && cont(p[2]) ? 3 : 0
        }
        if c0 >= 0xF0 && c0 <= 0xF4 {
            guard avail >= 4 else { return 0 }
            let c1 = p[1]
            let ok1: Bool
            switch c0 {
            case 0xF0: ok1 = c1 >= 0x90 && c1 <= 0xBF
            case 0xF4: ok1 = c1 >= 0x80 && c1 <= 0x8F
            default: ok1 = cont(c1)
            }
            return ok1 && cont(p[2]) && cont(p[3]) ? 4 : 0
        }
        return 0
    }
}
