import Glibc
import SluiceCore

/// A string with the incumbent's dynamic references (`Index`, `Headers`, `Query`, Loki's
/// `DynamicLabels`): `%{content.<field>}` (the event's field), `%{tag.<converted tag name>}`
/// (e.g. `%{tag.log.file.path}`), and `%{+<date>}` with the incumbent's letters (`yyyy`, `yy`,
/// `MM`/`M`, `MMM`, `MMMM`, `dd`/`d`, `EEE`, `EEEE`, `HH`, `KK`/`K`, `mm`/`m`, `ss`/`s`, `aa`, and
/// `ww`, the ISO week without padding) in the flush time, local time, as the incumbent's
/// `fmtstr.FormatTimestamp`. A reference without a value renders as its own text (`content.app`),
/// as the incumbent does.
public struct DynamicTemplate: Sendable, Equatable {
    enum Part: Sendable, Equatable {
        case literal(String)
        case content(String)
        case tag(String)
        case date(String)
    }
    let parts: [Part]
    public let text: String

    public init(parsing s: String) throws(TemplateError) {
        text = s
        var parts: [Part] = []
        var rest = Substring(s)
        while let open = rest.range(of: "%{") {
            if open.lowerBound > rest.startIndex { parts.append(.literal(String(rest[..<open.lowerBound]))) }
            guard let close = rest[open.upperBound...].firstIndex(of: "}") else { throw TemplateError(message: "unclosed %{ in \"\(s)\"") }
            let ref = String(rest[open.upperBound..<close])
            if ref.hasPrefix("content.") && ref.count > 8 {
                parts.append(.content(String(ref.dropFirst(8))))
            } else if ref.hasPrefix("tag.") && ref.count > 4 {
                parts.append(.tag(String(ref.dropFirst(4))))
            } else if ref.hasPrefix("+") && ref.count > 1 {
                parts.append(.date(String(ref.dropFirst())))
            } else {
                throw TemplateError(message: "unsupported field %{\(ref)} (use %{content.<field>}, %{tag.<name>} or %{+yyyy.MM.dd})")
            }
            rest = rest[rest.index(after: close)...]
        }
        if !rest.isEmpty { parts.append(.literal(String(rest))) }
        self.parts = parts
    }

    /// No reference at all: the same for every event.
    public var isStatic: Bool { parts.allSatisfy { if case .literal = $0 { return true } else { return false } } }
    /// Refers to an event's fields (its value can change from event to event in a batch).
    public var usesContent: Bool { parts.contains { if case .content = $0 { return true } else { return false } } }

    /// The text for event `i` of `batch`, with its converted tags (`LogDocumentEncoder.tagValues`)
    /// and the time now (Unix seconds) for dates.
    public func render(event i: Int, of batch: EventBatch, tags: [String: String], now: Int64) -> String {
        render(event: i, of: batch, tags: tags, now: now, missing: { $0 })!
    }

    /// `render`, or nil when a referenced field or tag has no value (Loki's `DynamicLabels`: the
    /// incumbent adds no label then).
    public func renderIfFound(event i: Int, of batch: EventBatch, tags: [String: String], now: Int64) -> String? {
        render(event: i, of: batch, tags: tags, now: now, missing: { _ in nil })
    }

    private func render(event i: Int, of batch: EventBatch, tags: [String: String], now: Int64, missing: (String) -> String?) -> String? {
        var out = ""
        for p in parts {
            switch p {
            case .literal(let s): out += s
            case .content(let k):
                guard let v = DynamicTemplate.field(k, event: i, of: batch) ?? missing("content.\(k)") else { return nil }
                out += v
            case .tag(let k):
                guard let v = tags[k] ?? missing("tag.\(k)") else { return nil }
                out += v
            case .date(let f): out += DynamicTemplate.format(f, unixSeconds: now)
            }
        }
        return out
    }

    /// The value of field `key` of event `i` (an unparsed event has only `content`).
    static func field(_ key: String, event i: Int, of batch: EventBatch) -> String? {
        let ev = batch.events[i]
        if !ev.isParsed {
            return key == "content" ? String(decoding: batch.bytes(ev.content), as: UTF8.self) : nil
        }
        var key = key
        return key.withUTF8 { k -> String? in
            batch.arena.withUnsafeBufferPointer { arena -> String? in
                var found: String?
                for fi in Int(ev.fieldStart)..<Int(ev.fieldStart + ev.fieldCount) {
                    let f = batch.fields[fi]
                    guard f.kind != .deleted, Int(f.key.length) == k.count else { continue }
                    if k.count == 0 || memcmp(arena.baseAddress! + Int(f.key.offset), k.baseAddress!, k.count) == 0 {
                        found = String(decoding: UnsafeBufferPointer(rebasing: arena[Int(f.value.offset)..<Int(f.value.offset + f.value.length)]), as: UTF8.self)
                    }
                }
                return found
            }
        }
    }

    /// The incumbent's date letters, in local time (UTC with `utc`).
    static func format(_ f: String, unixSeconds: Int64, utc: Bool = false) -> String {
        var t = time_t(unixSeconds)
        var tmv = tm()
        if utc { gmtime_r(&t, &tmv) } else { localtime_r(&t, &tmv) }
        func named(_ spec: String) -> String {
            var buf = [CChar](repeating: 0, count: 64)
            var copy = tmv
            let n = strftime(&buf, buf.count, spec, &copy)
            return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let hour12 = tmv.tm_hour % 12 == 0 ? 12 : tmv.tm_hour % 12
        func pad(_ v: Int32, _ n: Int) -> String {
            let s = String(v)
            return s.count >= n ? s : String(repeating: "0", count: n - s.count) + s
        }
        var out = ""
        let c = Array(f)
        var i = 0
        while i < c.count {
            var j = i
            while j < c.count && c[j] == c[i] { j += 1 }
            let run = j - i
            switch (c[i], run) {
            case ("y", 4): out += pad(tmv.tm_year + 1900, 4)
            case ("y", 2): out += pad((tmv.tm_year + 1900) % 100, 2)
            case ("M", 1): out += String(tmv.tm_mon + 1)
            case ("M", 2): out += pad(tmv.tm_mon + 1, 2)
            case ("M", 3): out += named("%b")
            case ("M", 4): out += named("%B")
            case ("d", 1): out += String(tmv.tm_mday)
            case ("d", 2): out += pad(tmv.tm_mday, 2)
            case ("E", 3): out += named("%a")
            case ("E", 4): out += named("%A")
            case ("H", 2): out += pad(tmv.tm_hour, 2)
            case ("K", 1): out += String(hour12)
            case ("K", 2): out += pad(hour12, 2)
            case ("m", 1): out += String(tmv.tm_min)
            case ("m", 2): out += pad(tmv.tm_min, 2)
            case ("s", 1): out += String(tmv.tm_sec)
            case ("s", 2): out += pad(tmv.tm_sec, 2)
            case ("a", 2): out += tmv.tm_hour < 12 ? "AM" : "PM"
            case ("w", 2): out += String(Int(named("%V")) ?? 0)
            default: out += String(c[i..<j])
            }
            i = j
        }
        return out
    }
}

public struct TemplateError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
