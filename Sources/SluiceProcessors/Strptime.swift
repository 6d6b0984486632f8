/// A time format in the incumbent's `strptime_ns` dialect, compiled once, parsed on bytes
/// [LC core/common/Strptime.cpp]. Composite directives (`%c %D %F %R %r %T %X %x`) are expanded
/// at compile time; whitespace in the format matches any run of whitespace (or none); literals
/// must match exactly; input left after the format is allowed. `%s` works only as the whole
/// format (≤ 10 digits of seconds, more digits a fraction). `%z` and `%Z` are read but, as in the
/// incumbent, do not change the result: `SourceTimezone` gives the zone.
public struct StrptimeFormat: Sendable, Equatable {
    enum Item: Sendable, Equatable {
        case literal(UInt8)
        case whitespace
        case directive(UInt8)
    }

    let items: [Item]
    /// The format is exactly `%s`.
    let epochOnly: Bool
    /// The format sets a year (`%Y %y %C %G %g` or `%s`).
    public let hasYear: Bool
    /// `%f` is the format's last directive (what the incumbent's cache needs).
    let fractionLast: Bool

    public struct FormatError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    static let known: Set<UInt8> = Set("aAbBhCdefHkIljMmpSUWwugGVYyZznt%".utf8)

    public init(_ format: String) throws(FormatError) {
        let b = Array(format.utf8)
        guard !b.isEmpty else { throw FormatError(message: "the format is empty") }
        epochOnly = format == "%s"
        var items: [Item] = []
        var i = 0
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "%") {
                guard i + 1 < b.count else { throw FormatError(message: "the format ends with a lone %") }
                var d = b[i + 1]
                i += 2
                if d == UInt8(ascii: "E") || d == UInt8(ascii: "O") {
                    guard i < b.count else { throw FormatError(message: "the format ends after %\(Character(UnicodeScalar(d)))") }
                    d = b[i]
                    i += 1
                }
                switch d {
                case UInt8(ascii: "c"): StrptimeFormat.append("%a %b %d %H:%M:%S %Y", to: &items)
                case UInt8(ascii: "D"), UInt8(ascii: "x"): StrptimeFormat.append("%m/%d/%y", to: &items)
                case UInt8(ascii: "F"): StrptimeFormat.append("%Y-%m-%d", to: &items)
                case UInt8(ascii: "R"): StrptimeFormat.append("%H:%M", to: &items)
                case UInt8(ascii: "r"): StrptimeFormat.append("%I:%M:%S %p", to: &items)
                case UInt8(ascii: "T"), UInt8(ascii: "X"): StrptimeFormat.append("%H:%M:%S", to: &items)
                case UInt8(ascii: "s"):
                    guard epochOnly else { throw FormatError(message: "%s works only as the whole format") }
                    items.append(.directive(d))
                case let d where StrptimeFormat.known.contains(d):
                    items.append(d == UInt8(ascii: "%") ? .literal(d) : .directive(d))
                default:
                    throw FormatError(message: "unknown directive %\(Character(UnicodeScalar(d)))")
                }
                continue
            }
            if c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { items.append(.whitespace) } else { items.append(.literal(c)) }
            i += 1
        }
        self.items = items
        hasYear = epochOnly || items.contains { if case .directive(let d) = $0 { return "YyCGg".utf8.contains(d) } else { return false } }
        let directives = items.compactMap { if case .directive(let d) = $0 { return d } else { return nil } }
        fractionLast = directives.last == UInt8(ascii: "f")
    }

    private static func append(_ s: String, to items: inout [Item]) {
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "%") { items.append(.directive(b[i + 1])); i += 2; continue }
            items.append(b[i] == 0x20 ? .whitespace : .literal(b[i]))
            i += 1
        }
    }

    /// The fields read from an input.
    public struct Parsed: Sendable, Equatable {
        public var year: Int? = nil
        public var month = 1
        public var day = 1
        public var hour = 0
        public var minute = 0
        public var second = 0
        public var nanos = 0
        public var yearDay: Int? = nil
        var pm: Bool? = nil
        var hour12 = false
        var century: Int? = nil
        var yearInCentury: Int? = nil
        var monthSet = false
        var daySet = false
        /// `%s`: seconds since the epoch, UTC.
        public var epochSeconds: Int64? = nil
        /// `%z` as a numeric offset (`Z`, `±hh[:mm]`, `UT`, `GMT`), seconds east of UTC; the native
        /// processor ignores it (as the incumbent's), `processor_strptime` uses it.
        public var zoneOffset: Int? = nil
    }

    static let monthNames = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"]
    static let dayNames = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
    /// The names as bytes, full then abbreviated, made once (not per parsed value).
    static let monthNameBytes = nameBytes(monthNames)
    static let dayNameBytes = nameBytes(dayNames)
    static func nameBytes(_ names: [String]) -> [(full: [UInt8], short: [UInt8])] {
        names.map { (Array($0.utf8), Array($0.utf8.prefix(3))) }
    }

    /// Parses `n` bytes at `p`; nil when they do not follow the format.
    public func parse(_ p: UnsafePointer<UInt8>, _ n: Int) -> Parsed? {
        var r = Parsed()
        var i = 0
        @inline(__always) func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D || c == 0x0B || c == 0x0C }
        func number(maxDigits: Int, min: Int, max: Int) -> Int? {
            while i < n && isSpace(p[i]) { i += 1 }
            var v = 0
            var digits = 0
            while i < n && digits < maxDigits && p[i] >= 0x30 && p[i] <= 0x39 {
                v = v * 10 + Int(p[i] - 0x30)
                i += 1
                digits += 1
            }
            guard digits > 0, v >= min, v <= max else { return nil }
            return v
        }
        func name(_ names: [(full: [UInt8], short: [UInt8])]) -> Int? {
            func matches(_ c: [UInt8]) -> Bool {
                guard i + c.count <= n else { return false }
                for j in 0..<c.count where p[i + j] | 0x20 != c[j] { return false }
                return true
            }
            for (k, pair) in names.enumerated() {
                if matches(pair.full) { i += pair.full.count; return k }
                if matches(pair.short) { i += pair.short.count; return k }
            }
            return nil
        }
        if epochOnly {
            var secs: Int64 = 0
            var digits = 0
            while i < n && digits < 10 && p[i] >= 0x30 && p[i] <= 0x39 { secs = secs * 10 + Int64(p[i] - 0x30); i += 1; digits += 1 }
            guard digits > 0 else { return nil }
            var frac = 0
            var fd = 0
            while i < n && p[i] >= 0x30 && p[i] <= 0x39 {
                if fd < 9 { frac = frac * 10 + Int(p[i] - 0x30); fd += 1 }
                i += 1
            }
            while fd < 9 && fd > 0 { frac *= 10; fd += 1 }
            r.epochSeconds = secs
            r.nanos = frac
            return r
        }
        for item in items {
            switch item {
            case .literal(let c):
                guard i < n, p[i] == c else { return nil }
                i += 1
            case .whitespace:
                while i < n && isSpace(p[i]) { i += 1 }
            case .directive(let d):
                switch d {
                case UInt8(ascii: "n"), UInt8(ascii: "t"):
                    while i < n && isSpace(p[i]) { i += 1 }
                case UInt8(ascii: "a"), UInt8(ascii: "A"):
                    guard name(StrptimeFormat.dayNameBytes) != nil else { return nil }
                case UInt8(ascii: "b"), UInt8(ascii: "B"), UInt8(ascii: "h"):
                    guard let m = name(StrptimeFormat.monthNameBytes) else { return nil }
                    r.month = m + 1
                    r.monthSet = true
                case UInt8(ascii: "C"):
                    guard let v = number(maxDigits: 2, min: 0, max: 99) else { return nil }
                    r.century = v
                case UInt8(ascii: "d"), UInt8(ascii: "e"):
                    guard let v = number(maxDigits: 2, min: 1, max: 31) else { return nil }
                    r.day = v
                    r.daySet = true
                case UInt8(ascii: "f"):
                    var frac = 0
                    var fd = 0
                    let start = i
                    while i < n && p[i] >= 0x30 && p[i] <= 0x39 {
                        if fd < 9 { frac = frac * 10 + Int(p[i] - 0x30); fd += 1 }
                        i += 1
                    }
                    guard i > start else { return nil }
                    while fd < 9 { frac *= 10; fd += 1 }
                    r.nanos = frac
                case UInt8(ascii: "H"), UInt8(ascii: "k"):
                    guard let v = number(maxDigits: 2, min: 0, max: 23) else { return nil }
                    r.hour = v
                    r.hour12 = false
                case UInt8(ascii: "I"), UInt8(ascii: "l"):
                    guard let v = number(maxDigits: 2, min: 1, max: 12) else { return nil }
                    r.hour = v % 12
                    r.hour12 = true
                case UInt8(ascii: "j"):
                    guard let v = number(maxDigits: 3, min: 1, max: 366) else { return nil }
                    r.yearDay = v
                case UInt8(ascii: "M"):
                    guard let v = number(maxDigits: 2, min: 0, max: 59) else { return nil }
                    r.minute = v
                case UInt8(ascii: "m"):
                    guard let v = number(maxDigits: 2, min: 1, max: 12) else { return nil }
                    r.month = v
                    r.monthSet = true
                case UInt8(ascii: "p"):
                    guard i + 2 <= n else { return nil }
                    let a = p[i] | 0x20, b = p[i + 1] | 0x20
                    guard b == UInt8(ascii: "m"), a == UInt8(ascii: "a") || a == UInt8(ascii: "p") else { return nil }
                    r.pm = a == UInt8(ascii: "p")
                    i += 2
                case UInt8(ascii: "S"):
                    guard let v = number(maxDigits: 2, min: 0, max: 61) else { return nil }
                    r.second = v
                case UInt8(ascii: "U"), UInt8(ascii: "W"):
                    guard number(maxDigits: 2, min: 0, max: 53) != nil else { return nil }
                case UInt8(ascii: "V"):
                    guard number(maxDigits: 2, min: 1, max: 53) != nil else { return nil }
                case UInt8(ascii: "w"):
                    guard number(maxDigits: 1, min: 0, max: 6) != nil else { return nil }
                case UInt8(ascii: "u"):
                    guard number(maxDigits: 1, min: 1, max: 7) != nil else { return nil }
                case UInt8(ascii: "g"):
                    guard number(maxDigits: 2, min: 0, max: 99) != nil else { return nil }
                case UInt8(ascii: "G"):
                    guard number(maxDigits: 4, min: 0, max: 9999) != nil else { return nil }
                case UInt8(ascii: "Y"):
                    guard let v = number(maxDigits: 4, min: 0, max: 9999) else { return nil }
                    r.year = v
                case UInt8(ascii: "y"):
                    guard let v = number(maxDigits: 2, min: 0, max: 99) else { return nil }
                    r.yearInCentury = v
                case UInt8(ascii: "Z"):
                    let start = i
                    while i < n && ((p[i] | 0x20) >= 0x61 && (p[i] | 0x20) <= 0x7A) { i += 1 }
                    guard i > start else { return nil }
                case UInt8(ascii: "z"):
                    guard let z = readZone(p, n, &i) else { return nil }
                    r.zoneOffset = z
                default:
                    return nil
                }
            }
        }
        // %p counts only with a 12-hour %I / %l (as glibc): 12 AM is 0, 12 PM is 12.
        if r.hour12, r.pm == true { r.hour += 12 }
        if let y = r.yearInCentury {
            if let c = r.century { r.year = c * 100 + y } else { r.year = y <= 68 ? 2000 + y : 1900 + y }
        } else if let c = r.century, r.year == nil {
            r.year = c * 100
        }
        return r
    }

    /// `%z`: `Z`, `±hh`, `±hhmm`, `±hh:mm`, or a zone name (UT, GMT, EST, ..., military letters).
    /// Returns the offset when it is numeric or UTC, `Int.min` for other names, nil when invalid.
    private func readZone(_ p: UnsafePointer<UInt8>, _ n: Int, _ i: inout Int) -> Int? {
        while i < n && p[i] == 0x20 { i += 1 }
        guard i < n else { return nil }
        let c = p[i]
        if c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
            i += 1
            var value = 0
            var count = 0
            while i < n && count < 4 {
                if p[i] >= 0x30 && p[i] <= 0x39 { value = value * 10 + Int(p[i] - 0x30); count += 1; i += 1; continue }
                if p[i] == UInt8(ascii: ":") && count == 2 { i += 1; continue }
                break
            }
            guard count == 2 || count == 4 else { return nil }
            let h = count == 4 ? value / 100 : value
            let m = count == 4 ? value % 100 : 0
            return (c == UInt8(ascii: "-") ? -1 : 1) * (h * 3600 + m * 60)
        }
        let start = i
        while i < n && ((p[i] | 0x20) >= 0x61 && (p[i] | 0x20) <= 0x7A) { i += 1 }
        guard i > start else { return nil }
        let name = String(decoding: UnsafeBufferPointer(start: p + start, count: i - start), as: UTF8.self).uppercased()
        return ["Z", "UT", "UTC", "GMT"].contains(name) ? 0 : Int.min
    }
}

/// Calendar arithmetic without the C library's time zone state.
enum CivilTime {
    /// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
    static func days(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    /// Month and day of day-of-year `yday` (1-based).
    static func monthDay(year: Int, yearDay: Int) -> (Int, Int) {
        let lengths = [31, isLeap(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        var d = yearDay
        for (m, len) in lengths.enumerated() {
            if d <= len { return (m + 1, d) }
            d -= len
        }
        return (12, 31)
    }

    /// Year, month and day of Unix seconds `t` (UTC).
    static func date(_ t: Int64) -> (year: Int, month: Int, day: Int) {
        let z = Int((t >= 0 ? t : t - 86399) / 86400) + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
