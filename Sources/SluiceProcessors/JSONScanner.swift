import CJSONText

/// A validating JSON scanner over bytes, for the JSON parsers: it walks one top-level object
/// member by member without building anything, so a value is a range of the input (or, for a
/// string with escapes, bytes unescaped into a caller's buffer). Nested values are checked by
/// an explicit stack (no recursion, bounded depth), strings for UTF-8 and escapes, as simdjson
/// does for the incumbent.
struct JSONScanner {
    /// simdjson's default maximum depth.
    static let maxDepth = 1024

    let p: UnsafePointer<UInt8>
    let n: Int
    var i = 0
    /// Whitespace was skipped inside the last composite value (its text is not compact).
    var sawWhitespace = false

    init(_ p: UnsafePointer<UInt8>, _ n: Int) {
        self.p = p
        self.n = n
    }

    /// A scalar or composite value's kind, as the scanner found it.
    enum ValueKind: Equatable {
        case string(escaped: Bool)
        case integer
        case float
        case `true`, `false`, null
        case composite(compact: Bool)
    }

    @inline(__always) mutating func skipWhitespace() -> Bool {
        let s = i
        while i < n {
            let c = p[i]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i &+= 1 } else { break }
        }
        return i != s
    }

    @inline(__always) func peek() -> UInt8? { i < n ? p[i] : nil }

    /// At an opening quote: moves past the closing quote; returns the inner range and whether
    /// it holds escapes, or nil when the string is invalid.
    mutating func string() -> (start: Int, end: Int, escaped: Bool)? {
        guard i < n, p[i] == 0x22 else { return nil }
        i &+= 1
        let start = i
        var escaped = false
        while i < n {
            // Plain bytes (no quote, backslash, control or non-ASCII byte) stepped over at once.
            if n &- i >= 16 {
                i &+= sluice_json_plain_length(p + i, n &- i)
                if i >= n { break }
            }
            let c = p[i]
            if c == 0x22 {
                let end = i
                i &+= 1
                return (start, end, escaped)
            }
            if c == 0x5C {
                escaped = true
                guard i + 1 < n else { return nil }
                let e = p[i + 1]
                switch e {
                case 0x22, 0x5C, 0x2F, 0x62, 0x66, 0x6E, 0x72, 0x74: i &+= 2
                case 0x75:
                    guard let (_, len) = JSONScanner.unicodeEscape(p, i, n) else { return nil }
                    i &+= len
                default: return nil
                }
                continue
            }
            if c < 0x20 { return nil }
            if c >= 0x80 {
                // Sequence after sequence (text in a script other than Latin) without going back
                // to the block scan for each character.
                repeat {
                    let len = sluice_utf8_sequence_length(p + i, n - i)
                    if len == 0 { return nil }
                    i &+= len
                } while i < n && p[i] >= 0x80
                continue
            }
            i &+= 1
        }
        return nil
    }

    /// A `\uXXXX` escape (with its low surrogate when it is a high one) at `at`: the scalar and
    /// the escape's length, or nil when invalid (bad hex, a lone surrogate).
    static func unicodeEscape(_ p: UnsafePointer<UInt8>, _ at: Int, _ n: Int) -> (UInt32, Int)? {
        func hex4(_ j: Int) -> UInt32? {
            guard j + 4 <= n else { return nil }
            var v: UInt32 = 0
            for k in 0..<4 {
                let c = p[j + k]
                let d: UInt8
                switch c {
                case 0x30...0x39: d = c - 0x30
                case 0x41...0x46: d = c - 0x41 + 10
                case 0x61...0x66: d = c - 0x61 + 10
                default: return nil
                }
                v = v << 4 | UInt32(d)
            }
            return v
        }
        guard let hi = hex4(at + 2) else { return nil }
        if hi >= 0xDC00 && hi <= 0xDFFF { return nil }
        if hi >= 0xD800 && hi <= 0xDBFF {
            guard at + 12 <= n, p[at + 6] == 0x5C, p[at + 7] == 0x75, let lo = hex4(at + 8), lo >= 0xDC00 && lo <= 0xDFFF else { return nil }
            return (0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00), 12)
        }
        return (hi, 6)
    }

    /// Writes the unescaped bytes of the string body `start..<end` (known valid) to `out`.
    static func unescape(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, into out: inout [UInt8]) {
        var j = start
        while j < end {
            let c = p[j]
            if c != 0x5C {
                out.append(c)
                j += 1
                continue
            }
            let e = p[j + 1]
            switch e {
            case 0x62: out.append(0x08); j += 2
            case 0x66: out.append(0x0C); j += 2
            case 0x6E: out.append(0x0A); j += 2
            case 0x72: out.append(0x0D); j += 2
            case 0x74: out.append(0x09); j += 2
            case 0x75:
                let (scalar, len) = unicodeEscape(p, j, end)!
                UTF8Writer.append(scalar, to: &out)
                j += len
            default: out.append(e); j += 2
            }
        }
    }

    /// At a number: moves past it; whether it is an integer (no fraction, no exponent), or nil.
    mutating func number() -> Bool? {
        let s = i
        if i < n && p[i] == 0x2D { i &+= 1 }
        guard i < n else { return nil }
        if p[i] == 0x30 {
            i &+= 1
        } else if p[i] >= 0x31 && p[i] <= 0x39 {
            while i < n && p[i] >= 0x30 && p[i] <= 0x39 { i &+= 1 }
        } else { return nil }
        var integer = true
        if i < n && p[i] == 0x2E {
            integer = false
            i &+= 1
            let d = i
            while i < n && p[i] >= 0x30 && p[i] <= 0x39 { i &+= 1 }
            if i == d { return nil }
        }
        if i < n && (p[i] == 0x65 || p[i] == 0x45) {
            integer = false
            i &+= 1
            if i < n && (p[i] == 0x2B || p[i] == 0x2D) { i &+= 1 }
            let d = i
            while i < n && p[i] >= 0x30 && p[i] <= 0x39 { i &+= 1 }
            if i == d { return nil }
        }
        // A number must end at a delimiter.
        if i < n {
            let c = p[i]
            if !(c == 0x2C || c == 0x7D || c == 0x5D || c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09) { i = s; return nil }
        }
        return integer
    }

    /// At `t`, `f` or `n`: moves past the literal.
    mutating func literal() -> ValueKind? {
        func word(_ w: StaticString) -> Bool {
            let len = w.utf8CodeUnitCount
            guard i + len <= n else { return false }
            let wp = w.utf8Start
            for k in 0..<len where p[i + k] != wp[k] { return false }
            i &+= len
            return true
        }
        switch p[i] {
        case 0x74: return word("true") ? .true : nil
        case 0x66: return word("false") ? .false : nil
        case 0x6E: return word("null") ? .null : nil
        default: return nil
        }
    }

    /// Scans one value at `i` (after whitespace): its kind, or nil when invalid. A composite is
    /// walked with `stack` (reused by the caller) so depth costs no recursion.
    mutating func value(stack: inout [Bool]) -> ValueKind? {
        guard i < n else { return nil }
        switch p[i] {
        case 0x22:
            guard let s = string() else { return nil }
            return .string(escaped: s.escaped)
        case 0x2D, 0x30...0x39:
            guard let integer = number() else { return nil }
            return integer ? .integer : .float
        case 0x74, 0x66, 0x6E:
            return literal()
        case 0x7B, 0x5B:
            sawWhitespace = false
            return composite(stack: &stack) ? .composite(compact: !sawWhitespace) : nil
        default:
            return nil
        }
    }

    /// At `{` or `[`: walks to the matching close, checking the grammar. `stack` holds true for
    /// an object level, false for an array level.
    private mutating func composite(stack: inout [Bool]) -> Bool {
        stack.removeAll(keepingCapacity: true)
        // Expecting a value (true) or what follows a value (false).
        var expectValue = true
        while true {
            if skipWhitespace() { sawWhitespace = true }
            guard i < n else { return false }
            let c = p[i]
            if expectValue {
                switch c {
                case 0x7B, 0x5B:
                    let isObject = c == 0x7B
                    guard stack.count < JSONScanner.maxDepth else { return false }
                    stack.append(isObject)
                    i &+= 1
                    if skipWhitespace() { sawWhitespace = true }
                    guard i < n else { return false }
                    if p[i] == (isObject ? 0x7D : 0x5D) {
                        i &+= 1
                        stack.removeLast()
                        if stack.isEmpty { return true }
                        expectValue = false
                        continue
                    }
                    if isObject && !memberKey() { return false }
                    continue
                case 0x22:
                    guard string() != nil else { return false }
                case 0x2D, 0x30...0x39:
                    guard number() != nil else { return false }
                case 0x74, 0x66, 0x6E:
                    guard literal() != nil else { return false }
                default:
                    return false
                }
                expectValue = false
                continue
            }
            guard let top = stack.last else { return true }
            switch c {
            case 0x2C:
                i &+= 1
                if top {
                    if skipWhitespace() { sawWhitespace = true }
                    if !memberKey() { return false }
                }
                expectValue = true
            case 0x7D where top, 0x5D where !top:
                i &+= 1
                stack.removeLast()
                if stack.isEmpty { return true }
            default:
                return false
            }
        }
    }

    /// A member's key and colon, inside a composite.
    private mutating func memberKey() -> Bool {
        guard string() != nil else { return false }
        if skipWhitespace() { sawWhitespace = true }
        guard i < n, p[i] == 0x3A else { return false }
        i &+= 1
        return true
    }

    /// Copies the composite text `start..<end` without the whitespace outside strings.
    static func compact(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, into out: inout [UInt8]) {
        var inString = false
        var j = start
        while j < end {
            let c = p[j]
            if inString {
                out.append(c)
                if c == 0x5C { out.append(p[j + 1]); j += 2; continue }
                if c == 0x22 { inString = false }
            } else if c == 0x22 {
                inString = true
                out.append(c)
            } else if !(c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09) {
                out.append(c)
            }
            j += 1
        }
    }
}

/// UTF-8 encoding on bytes (the check of a sequence is `sluice_utf8_sequence_length`, CJSONText).
enum UTF8Writer {
    /// Appends the UTF-8 encoding of `scalar`.
    static func append(_ scalar: UInt32, to out: inout [UInt8]) {
        switch scalar {
        case 0..<0x80: out.append(UInt8(scalar))
        case 0x80..<0x800:
            out.append(UInt8(0xC0 | scalar >> 6)); out.append(UInt8(0x80 | scalar & 0x3F))
        case 0x800..<0x10000:
            out.append(UInt8(0xE0 | scalar >> 12)); out.append(UInt8(0x80 | scalar >> 6 & 0x3F)); out.append(UInt8(0x80 | scalar & 0x3F))
        default:
            out.append(UInt8(0xF0 | scalar >> 18)); out.append(UInt8(0x80 | scalar >> 12 & 0x3F))
            out.append(UInt8(0x80 | scalar >> 6 & 0x3F)); out.append(UInt8(0x80 | scalar & 0x3F))
        }
    }
}

/// Decimal digits of an integer appended to bytes, without a String.
enum DecimalText {
    static func append(_ v: Int64, to out: inout [UInt8]) {
        if v < 0 { out.append(UInt8(ascii: "-")) }
        var m = v.magnitude
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[n] = UInt8(48 + m % 10)
                m /= 10
                n += 1
            } while m > 0
            while n > 0 { n -= 1; out.append(d[n]) }
        }
    }
}
