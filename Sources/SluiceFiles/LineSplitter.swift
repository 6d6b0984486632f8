import Glibc
import SluiceCore

/// Splits bytes into lines. Pure: works on memory only, so the chunk-boundary cases are unit tested.
public enum LineSplitter {
    /// Appends an event for every complete line in `base[start..<count]` (the newline is not
    /// part of the event) and returns the index just past the last newline, i.e. the start of the
    /// unterminated rest (== `start` when there is no newline).
    @inlinable
    public static func split(_ base: UnsafePointer<UInt8>, start: Int, count: Int, into events: inout [LogEvent]) -> Int {
        var pos = start
        var lineStart = start
        while pos < count {
            guard let hit = memchr(base + pos, 0x0A, count - pos) else { break }
            let nl = UnsafePointer<UInt8>(hit.assumingMemoryBound(to: UInt8.self)) - base
            events.append(LogEvent(content: Span(lineStart, nl - lineStart)))
            pos = nl + 1
            lineStart = pos
        }
        return lineStart
    }

    /// Index of the first newline in `base[start..<count]`, or nil.
    @inlinable
    public static func firstNewline(_ base: UnsafePointer<UInt8>, start: Int, count: Int) -> Int? {
        guard start < count, let hit = memchr(base + start, 0x0A, count - start) else { return nil }
        return UnsafePointer<UInt8>(hit.assumingMemoryBound(to: UInt8.self)) - base
    }
}

/// Converts a file's encoding to UTF-8 with iconv(3), line-region by line-region. GBK never
/// uses 0x0A inside a character, so lines are split before converting.
final class Transcoder {
    private let cd: iconv_t
    let name: String

    init?(from encoding: String) {
        let cd = iconv_open("UTF-8", encoding)
        if cd == iconv_t(bitPattern: -1) { return nil }
        self.cd = cd!
        self.name = encoding
    }

    deinit { iconv_close(cd) }

    /// Converts `count` bytes at `src`; bytes that do not convert become U+FFFD.
    func convert(_ src: UnsafePointer<UInt8>, _ count: Int) -> [UInt8] {
        var out: [UInt8] = []
        convert(src, count, into: &out)
        return out
    }

    /// Converts `count` bytes at `src` into `out` (replacing its content, reusing its storage:
    /// no allocation once it is large enough).
    func convert(_ src: UnsafePointer<UInt8>, _ count: Int, into out: inout [UInt8]) {
        let need = count * 2 + 16
        if out.count < need { out.append(contentsOf: repeatElement(0, count: need - out.count)) }
        var produced = 0
        var inPtr = UnsafeMutablePointer<CChar>(mutating: UnsafeRawPointer(src).assumingMemoryBound(to: CChar.self))
        var inLeft = count
        iconv(cd, nil, nil, nil, nil)
        while inLeft > 0 {
            if out.count - produced < 16 { out.append(contentsOf: [UInt8](repeating: 0, count: out.count)) }
            var outLeft = out.count - produced
            let rc = out.withUnsafeMutableBytes { raw -> Int in
                var outPtr: UnsafeMutablePointer<CChar>? = raw.baseAddress!.advanced(by: produced).assumingMemoryBound(to: CChar.self)
                var inP: UnsafeMutablePointer<CChar>? = inPtr
                let r = iconv(cd, &inP, &inLeft, &outPtr, &outLeft)
                inPtr = inP!
                return r
            }
            produced = out.count - outLeft
            if rc == -1 {
                let e = errno
                if e == E2BIG { continue }
                // EILSEQ / EINVAL: skip one byte, write U+FFFD.
                if out.count - produced < 3 { out.append(contentsOf: [UInt8](repeating: 0, count: 16)) }
                out[produced] = 0xEF; out[produced + 1] = 0xBF; out[produced + 2] = 0xBD
                produced += 3
                inPtr += 1
                inLeft -= 1
            }
        }
        out.removeSubrange(produced...)
    }
}
