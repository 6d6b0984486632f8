import Crypto
import SluiceConfig
import SluiceCore
import SluiceRegex

/// `processor_desensitize_native`: masks the sensitive part of a field. The pattern is
/// `(ContentPatternBeforeReplacedString)ReplacedContentPattern`, searched (RE2 semantics: `.` does
/// not match a newline); the prefix is kept and the rest of each match is replaced by
/// `ReplacingString` (`const`; `\N` in it refers to group N, as in RE2's rewrite strings) or by
/// the upper-case hex MD5 of the replaced text (`md5`). [LC core/plugin/processor/ProcessorDesensitizeNative.cpp]
public final class ProcessorDesensitizeNative: ProcessorPlugin {
    public enum Method: String, Sendable, CaseIterable {
        case const, md5
    }

    /// A piece of the replacement: literal bytes, or the text of a group.
    enum RewritePiece: Sendable, Equatable {
        case literal([UInt8])
        case group(Int)
    }

    public struct Options: Sendable {
        public var sourceKey: String
        public var method: Method
        public var regex: RegexPattern
        var rewrite: [RewritePiece]
        public var replacingAll: Bool
    }

    public static let spec = PluginSpec(
        type: "processor_desensitize_native", kind: .processor,
        summary: "Masks sensitive text in a field: after each match of a prefix pattern, the sensitive part is replaced by a constant or by its MD5.",
        fields: [
            FieldSpec(name: "SourceKey", type: .string, doc: "The field to mask (`content` for the raw line). Required.", defaultValue: nil),
            FieldSpec(name: "Method", type: .string, doc: "`const` (replace with `ReplacingString`) or `md5` (replace with the upper-case hex MD5 of the sensitive text). Required.", defaultValue: nil),
            FieldSpec(name: "ReplacingString", type: .string, doc: "The replacement for `const` (required then); `\\N` inserts group N of the whole pattern (group 1 is the prefix), `\\\\` a backslash.", defaultValue: nil),
            FieldSpec(name: "ContentPatternBeforeReplacedString", type: .string, doc: "Regular expression of the text before the sensitive part (kept). Required.", defaultValue: nil),
            FieldSpec(name: "ReplacedContentPattern", type: .string, doc: "Regular expression of the sensitive part. Required.", defaultValue: nil),
            FieldSpec(name: "ReplacingAll", type: .bool, doc: "Replace every match; false replaces only the first.", defaultValue: "true"),
        ])

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        let sourceKey = try c.requiredString("SourceKey")
        let methodText = try c.requiredString("Method")
        guard let method = Method(rawValue: methodText) else {
            throw c.error(at: "Method", "unknown method \"\(methodText)\" (known: const, md5)")
        }
        let before = try c.requiredString("ContentPatternBeforeReplacedString")
        let replaced = try c.requiredString("ReplacedContentPattern")
        let regex: RegexPattern
        do {
            regex = try RegexPattern("(" + before + ")" + replaced, anchoring: .search)
        } catch {
            throw c.error(at: "ReplacedContentPattern", "the pattern (ContentPatternBeforeReplacedString)ReplacedContentPattern does not compile: \(error)")
        }
        var rewrite: [RewritePiece] = []
        if method == .const {
            guard let replacing = try c.string("ReplacingString") else {
                throw c.error(at: nil, "ReplacingString is required with Method: const")
            }
            do {
                rewrite = try parseRewrite(replacing, groups: regex.captureCount)
            } catch {
                throw c.error(at: "ReplacingString", error.message)
            }
        }
        return Options(sourceKey: sourceKey, method: method, regex: regex, rewrite: rewrite,
                       replacingAll: try c.bool("ReplacingAll") ?? true)
    }

    struct RewriteError: Error { var message: String }

    /// RE2's rewrite string: `\N` a group, `\\` a backslash, anything else after `\` an error.
    static func parseRewrite(_ s: String, groups: Int) throws(RewriteError) -> [RewritePiece] {
        var pieces: [RewritePiece] = []
        var lit: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] != UInt8(ascii: "\\") { lit.append(b[i]); i += 1; continue }
            guard i + 1 < b.count else { throw RewriteError(message: "a rewrite string cannot end with a backslash") }
            let c = b[i + 1]
            if c == UInt8(ascii: "\\") { lit.append(c); i += 2; continue }
            guard c >= 0x30 && c <= 0x39 else { throw RewriteError(message: "invalid rewrite pattern: \\\(Character(UnicodeScalar(c)))") }
            let n = Int(c - 0x30)
            guard n <= groups else { throw RewriteError(message: "the replacement refers to group \\\(n) but the pattern has \(groups) groups") }
            if !lit.isEmpty { pieces.append(.literal(lit)); lit = [] }
            pieces.append(.group(n))
            i += 2
        }
        if !lit.isEmpty { pieces.append(.literal(lit)) }
        return pieces
    }

    let options: Options
    let metrics: ComponentMetrics
    let matchers: RegexMatcherPool

    public init(options: Options, context: PluginContext) {
        self.options = options
        metrics = context.metrics
        matchers = RegexMatcherPool(for: [options.regex])
    }

    public func process(_ batch: inout EventBatch) {
        var errors = 0
        matchers.withMatcher { m in
            batch.rewriteFields(fieldsPerEvent: 0) { arena, events, w in
                let contentKey = w.intern("content")
                let source = options.sourceKey == "content" ? contentKey : w.intern(options.sourceKey)
                for i in events.indices {
                    var ev = events[i]
                    w.begin(ev, contentKey: contentKey)
                    if let fi = w.find(source, arena: arena), w.fields[fi].value.length > 0 {
                        let v = w.fields[fi].value
                        if let masked = mask(arena + Int(v.offset), Int(v.length), m, &w, &errors) {
                            w.fields[fi].value = masked
                            w.fields[fi].kind = .string
                        }
                    }
                    w.end(&ev)
                    events[i] = ev
                }
            }
        }
        metrics.errors.add(errors)
    }

    /// The masked copy of the value (in `w.extra`), or nil when nothing matched.
    private func mask(_ p: UnsafePointer<UInt8>, _ n: Int, _ m: RegexMatcher, _ w: inout FieldWriter, _ errors: inout Int) -> Span? {
        var pos = 0
        var copied = 0
        var mark: Int? = nil
        while pos <= n {
            let r = m.match(options.regex, p, n, from: pos)
            guard r == .matched else {
                if case .failed = r { errors += 1 }
                break
            }
            let whole = m.bounds(0)
            let prefixEnd = m.bounds(1).end
            if mark == nil { mark = w.extraMark }
            // Text before the match and the kept prefix.
            w.extra.append(contentsOf: UnsafeBufferPointer(start: p + copied, count: prefixEnd - copied))
            switch options.method {
            case .const:
                for piece in options.rewrite {
                    switch piece {
                    case .literal(let bytes): w.extra.append(contentsOf: bytes)
                    case .group(let g):
                        let b = m.bounds(g)
                        if b.start >= 0 { w.extra.append(contentsOf: UnsafeBufferPointer(start: p + b.start, count: b.end - b.start)) }
                    }
                }
            case .md5:
                let digest = Insecure.MD5.hash(data: UnsafeRawBufferPointer(start: p + prefixEnd, count: whole.end - prefixEnd))
                let hex: [UInt8] = Array("0123456789ABCDEF".utf8)
                for byte in digest {
                    w.extra.append(hex[Int(byte >> 4)])
                    w.extra.append(hex[Int(byte & 0xF)])
                }
            }
            copied = whole.end
            if !options.replacingAll { break }
            if whole.end == whole.start {
                // An empty match: copy one byte and go on after it, as RE2's GlobalReplace does.
                if whole.end < n { w.extra.append(p[whole.end]) }
                copied = whole.end + 1
                pos = whole.end + 1
            } else {
                pos = whole.end
            }
        }
        guard let mark else { return nil }
        if copied < n { w.extra.append(contentsOf: UnsafeBufferPointer(start: p + copied, count: n - copied)) }
        return w.span(since: mark)
    }
}
