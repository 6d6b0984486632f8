import Glibc

/// RFC 3339 times as the runtimes write them (`2024-05-01T12:34:56.123456789Z`, `…+08:00`;
/// `T`, `t` or a space between date and time; 0–9 fraction digits after `.` or `,`), to and from
/// Unix nanoseconds. The one parser of the project: CRI and Docker log lines (hot path: bytes, no
/// allocation), Docker's API and state files, the static container file.
public enum RFC3339 {
    /// Unix nanoseconds of the time in `b[start..<end]`, nil when it is not such a time or lies
    /// outside what Int64 nanoseconds hold (years 1678–2262; Go's zero time `0001-01-01…` too).
    @inlinable
    public static func parse(_ b: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> Int64? {
        guard end - start >= 20 else { return nil }
        @inline(__always) func num(_ at: Int, _ n: Int) -> Int64? {
            guard at + n <= end else { return nil }
            var v: Int64 = 0
            for k in 0..<n {
                let c = b[at + k]
                guard c >= 0x30 && c <= 0x39 else { return nil }
                v = v * 10 + Int64(c - 0x30)
            }
            return v
        }
        let sep = b[start + 10]
        guard let y = num(start, 4), b[start + 4] == UInt8(ascii: "-"), let mo = num(start + 5, 2), b[start + 7] == UInt8(ascii: "-"),
              let d = num(start + 8, 2), sep == UInt8(ascii: "T") || sep == UInt8(ascii: "t") || sep == UInt8(ascii: " "),
              let h = num(start + 11, 2), b[start + 13] == UInt8(ascii: ":"), let mi = num(start + 14, 2),
              b[start + 16] == UInt8(ascii: ":"), let s = num(start + 17, 2),
              (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 61, (1678...2261).contains(y) else { return nil }
        var i = start + 19
        var nanos: Int64 = 0
        if i < end && (b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: ",")) {
            i += 1
            var digits = 0
            while i < end, b[i] >= 0x30 && b[i] <= 0x39 {
                if digits < 9 { nanos = nanos * 10 + Int64(b[i] - 0x30) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            var k = digits
            while k < 9 { nanos *= 10; k += 1 }
        }
        var offset: Int64 = 0
        guard i < end else { return nil }
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            i += 1
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            guard end - i >= 6, let oh = num(i + 1, 2), b[i + 3] == UInt8(ascii: ":"), let om = num(i + 4, 2) else { return nil }
            offset = (oh * 3600 + om * 60) * (b[i] == UInt8(ascii: "-") ? -1 : 1)
            i += 6
        } else { return nil }
        guard i == end else { return nil }
        let secs = daysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset
        return secs * 1_000_000_000 + nanos
    }

    /// `parse` of a string.
    public static func parse(_ text: String) -> Int64? {
        var t = text
        return t.withUTF8 { u in u.baseAddress.flatMap { parse($0, 0, u.count) } }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    @inlinable
    public static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (m + 9) % 12
        let doy = (153 * mp + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// `2024-05-01T12:34:56.123Z`: UTC, milliseconds.
    public static func format(unixNanos t: Int64) -> String {
        var secs = time_t(t / 1_000_000_000)
        var ms = (t % 1_000_000_000) / 1_000_000
        if ms < 0 { ms += 1000; secs -= 1 }
        var tm = tm()
        gmtime_r(&secs, &tm)
        func pad(_ v: Int32, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(ms), 3))Z"
    }
}
