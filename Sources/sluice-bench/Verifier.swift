// Checks flusher_file output against the dataset: each input line's id must appear exactly once, with its
// content intact (same length once JSON-unescaped). For runtime log datasets also the stream (`_source_`) and the
// event time (`__time__`, the runtime's). Scans with memchr / memmem over an mmap of each file.

import Glibc

struct VerifyResult {
    var outputLines = 0        // '\n'-terminated lines in the output files (plus a final unterminated one)
    var outputBytes = 0
    var delivered = 0          // output lines whose content carries a valid id (duplicates included)
    var unique = 0             // distinct ids seen
    var lost = 0               // expected ids never seen
    var duplicated = 0         // extra copies (delivered - unique)
    var corrupt = 0            // lines whose content length differs from the input line's
    var malformed = 0          // lines without a parsable "content" string or id
    var wrongStream = 0        // runtime logs: "_source_" missing or not the line's stream
    var wrongTime = 0          // runtime logs: "__time__" missing or not the runtime's time of the line
    var badLines = 0           // output lines with any of the four problems above
    var expected = 0
    var firstProblems: [String] = []   // a few examples for the report: up to 2 of each kind, then the first missing line
    var examplesPerKind = [Int](repeating: 0, count: 5)
    var ok: Bool {
        lost == 0 && duplicated == 0 && corrupt == 0 && malformed == 0 && wrongStream == 0 && wrongTime == 0
            && unique == expected
    }
}

/// Parses the trailing ` id=<file>:<line>` of a line / content. `end` points one past the last byte.
@inline(__always)
func parseTrailingID(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> (file: Int, line: Int)? {
    var p = end
    var line = 0
    var mul = 1
    var digits = 0
    while p > start {
        let c = (p - 1).pointee
        if c < 48 || c > 57 { break }
        if digits == 12 { return nil }
        line += Int(c - 48) * mul
        mul *= 10
        digits += 1
        p -= 1
    }
    guard digits > 0, p > start, (p - 1).pointee == UInt8(ascii: ":") else { return nil }
    p -= 1
    var file = 0
    mul = 1
    digits = 0
    while p > start {
        let c = (p - 1).pointee
        if c < 48 || c > 57 { break }
        if digits == 9 { return nil }
        file += Int(c - 48) * mul
        mul *= 10
        digits += 1
        p -= 1
    }
    guard digits > 0, p - start >= 4, (p - 4).pointee == 0x20, (p - 3).pointee == UInt8(ascii: "i"),
          (p - 2).pointee == UInt8(ascii: "d"), (p - 1).pointee == UInt8(ascii: "=") else { return nil }
    return (file, line)
}

/// Given `p` just after the opening quote of a JSON string, finds the closing quote (before `end`).
/// Returns its position and the unescaped UTF-8 length of the string.
@inline(__always)
func scanJSONString(_ p: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> (close: UnsafePointer<UInt8>, length: Int)? {
    var from = p
    var overhead = 0
    while from < end {
        guard let qRaw = memchr(from, 0x22, end - from) else { return nil }
        let q = UnsafePointer(qRaw.assumingMemoryBound(to: UInt8.self))
        var b = from
        var escapedQuote = false
        while b < q, let bsRaw = memchr(b, 0x5C, q - b) {
            let bs = UnsafePointer(bsRaw.assumingMemoryBound(to: UInt8.self))
            if bs + 1 == q {              // \"  : the quote is part of the string
                overhead += 1
                escapedQuote = true
                break
            }
            if bs + 1 >= end { return nil }
            if (bs + 1).pointee == UInt8(ascii: "u") {
                guard bs + 6 <= end else { return nil }
                var v = 0
                for k in 2..<6 {
                    let c = (bs + k).pointee
                    let d: Int
                    switch c {
                    case 48...57: d = Int(c) - 48
                    case 97...102: d = Int(c) - 87
                    case 65...70: d = Int(c) - 55
                    default: return nil
                    }
                    v = v * 16 + d
                }
                // bytes this escape stands for (a surrogate half counts 2, a pair 4 in total)
                let produced = v < 0x80 ? 1 : (v < 0x800 || (v >= 0xD800 && v < 0xE000)) ? 2 : 3
                overhead += 6 - produced
                b = bs + 6
                if b > q {
                    // a \u escape cannot contain a quote; a quote inside it means bad JSON
                    return nil
                }
            } else {
                overhead += 1
                b = bs + 2
            }
        }
        if escapedQuote {
            from = q + 1
            continue
        }
        return (q, q - p - overhead)
    }
    return nil
}

/// Finds the value of the "content" key in one JSON object line: returns (start after the opening quote,
/// closing quote, unescaped length).
@inline(__always)
func findContent(_ line: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>)
    -> (start: UnsafePointer<UInt8>, close: UnsafePointer<UInt8>, length: Int)? {
    // `"content"`: a quote followed by these 8 bytes
    let tail: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (99, 111, 110, 116, 101, 110, 116, 34)
    var from = line
    while end - from >= 9 {
        guard let hit = memchr(from, 0x22, end - from - 8) else { return nil }
        let h = UnsafePointer(hit.assumingMemoryBound(to: UInt8.self))
        from = h + 1
        let match = withUnsafeBytes(of: tail) { t in memcmp(h + 1, t.baseAddress!, 8) == 0 }
        if !match { continue }
        if h > line && (h - 1).pointee == 0x5C { continue }   // \"content\" inside another string
        var q = h + 9
        while q < end && (q.pointee == 0x20 || q.pointee == 0x09) { q += 1 }
        guard q < end, q.pointee == UInt8(ascii: ":") else { continue }
        q += 1
        while q < end && (q.pointee == 0x20 || q.pointee == 0x09) { q += 1 }
        guard q < end, q.pointee == 0x22 else { return nil }
        guard let s = scanJSONString(q + 1, end) else { return nil }
        return (q + 1, s.close, s.length)
    }
    return nil
}

/// Position right after `key` in `[line, end)` outside the content string `[skipStart, skipEnd]`, or nil.
@inline(__always)
func findKey(_ key: [UInt8], _ line: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>,
             skipStart: UnsafePointer<UInt8>, skipEnd: UnsafePointer<UInt8>) -> UnsafePointer<UInt8>? {
    key.withUnsafeBufferPointer { k -> UnsafePointer<UInt8>? in
        for (from, to) in [(skipEnd, end), (line, skipStart)] where to - from >= k.count {
            // memmem is not visible from Swift's Glibc module: memchr for the first byte, then memcmp
            var q = from
            while to - q >= k.count, let hit = memchr(q, Int32(k[0]), to - q - k.count + 1) {
                let h = UnsafePointer(hit.assumingMemoryBound(to: UInt8.self))
                if memcmp(h, k.baseAddress!, k.count) == 0 { return h + k.count }
                q = h + 1
            }
        }
        return nil
    }
}

let sourceKey = Array("\"_source_\":\"".utf8)
let timeKey = Array("\"__time__\":".utf8)

/// Accumulates ids across several output files.
struct IDTracker {
    let ds: Dataset
    var counts: [UInt8]
    var result = VerifyResult()
    /// `"key":"` of every field a parsed line must have (empty: lines are unparsed, lengths are compared).
    var parsedKeys: [[UInt8]] = []
    /// java datasets: ids are records of several lines (see Formats.swift).
    var javaRecords = false
    /// Check `__time__` against the json / csv line's own time (the timestamp scenario).
    var checkTime = false

    init(_ ds: Dataset) {
        self.ds = ds
        counts = [UInt8](repeating: 0, count: ds.totalLines)
        result.expected = ds.totalLines
    }


    /// Scans one mapped output file.
    mutating func scan(_ base: UnsafePointer<UInt8>, _ size: Int, name: String) {
        var res = result
        var seenArr: [UInt8] = []
        swap(&seenArr, &counts)
        defer {
            swap(&seenArr, &counts)
            result = res
        }
        /// kind: 0 no content, 1 no id, 2 length, 3 stream, 4 time
        func problem(_ kind: Int, _ s: @autoclosure () -> String) {
            if res.examplesPerKind[kind] < 2 { res.examplesPerKind[kind] += 1; res.firstProblems.append(s()) }
        }
        res.outputBytes += size
        let end = base + size
        var p = base
        let fileCount = ds.spec.fileCount
        let runtime = ds.spec.format != nil
        ds.lineStreams.withUnsafeBufferPointer { streams in
        ds.lineCounts.withUnsafeBufferPointer { lineCounts in
        ds.lineBase.withUnsafeBufferPointer { lineBase in
        ds.lineLengths.withUnsafeBufferPointer { lengths in
        seenArr.withUnsafeMutableBufferPointer { seen in
            var lineNo = 0
            while p < end {
                let nl = memchr(p, 0x0A, end - p)
                let lineEnd = nl.map { UnsafePointer($0.assumingMemoryBound(to: UInt8.self)) } ?? end
                lineNo += 1
                defer { p = lineEnd + 1 }
                if lineEnd == p { continue }   // empty line: ignore
                res.outputLines += 1
                // Fluent Bit's multiline records come as "log" (its tail ignores `Key` then)
                guard let c = findContent(p, lineEnd) ?? findLogField(p, lineEnd) else {
                    res.malformed += 1
                    res.badLines += 1
                    problem(0, "\(name):\(lineNo): no JSON string \"content\"")
                    continue
                }
                // java records: the id ends the first line; the record's lines are joined with (escaped) '\n'
                var idEnd = c.close
                var newlines = 0
                var contentLength = c.length
                if javaRecords {
                    var q = c.start
                    while q < c.close, let bsRaw = memchr(q, 0x5C, c.close - q) {
                        let bs = UnsafePointer(bsRaw.assumingMemoryBound(to: UInt8.self))
                        if bs + 1 < c.close && (bs + 1).pointee == UInt8(ascii: "n") {
                            if newlines == 0 { idEnd = bs }
                            newlines += 1
                        }
                        q = bs + 2
                    }
                    // Fluent Bit keeps the record's last '\n'
                    if newlines > 0 && c.close - c.start >= 2 && (c.close - 2).pointee == 0x5C && (c.close - 1).pointee == UInt8(ascii: "n") {
                        newlines -= 1
                        contentLength -= 1
                        if newlines == 0 { idEnd = c.close - 2 }
                    }
                }
                guard let id = parseTrailingID(c.start, idEnd),
                      id.file < fileCount, id.line >= 1, id.line <= lineCounts[id.file] else {
                    res.malformed += 1
                    res.badLines += 1
                    let n = min(c.close - c.start, 60)
                    problem(1, "\(name):\(lineNo): content has no valid id=<file>:<line> at its end (ends with \""
                            + String(decoding: UnsafeBufferPointer(start: c.close - n, count: n), as: UTF8.self) + "\")")
                    continue
                }
                let g = lineBase[id.file] + id.line - 1
                res.delivered += 1
                if seen[g] < 255 { seen[g] += 1 }
                var bad = false
                if !parsedKeys.isEmpty {
                    for k in parsedKeys where findKey(k, p, lineEnd, skipStart: c.start, skipEnd: c.close) == nil {
                        res.corrupt += 1
                        bad = true
                        problem(2, "\(name):\(lineNo): id=\(id.file):\(id.line) has no field " + String(decoding: k, as: UTF8.self))
                        break
                    }
                } else if !lengths.isEmpty && Int(lengths[g]) != contentLength {
                    res.corrupt += 1
                    bad = true
                    problem(2, "\(name):\(lineNo): id=\(id.file):\(id.line) content is \(contentLength) bytes, input line is \(lengths[g])")
                }
                if javaRecords {
                    let declared = declaredLines(c.start, idEnd)
                    if declared != newlines + 1 {
                        res.corrupt += 1
                        bad = true
                        problem(2, "\(name):\(lineNo): id=\(id.file):\(id.line) has \(newlines + 1) lines joined, the record has \(declared.map(String.init) ?? "?")")
                    }
                }
                if checkTime {
                    let wantTime = ds.spec.timeBase + csvSecond(file: id.file, line: id.line)
                    var got: Int? = nil
                    if var q = findKey(timeKey, p, lineEnd, skipStart: c.start, skipEnd: c.close) {
                        while q < lineEnd && q.pointee == 0x20 { q += 1 }
                        var v = 0, digits = 0
                        while q < lineEnd && q.pointee >= 48 && q.pointee <= 57 && digits < 18 {
                            v = v * 10 + Int(q.pointee - 48); digits += 1; q += 1
                        }
                        if digits > 0 { got = v }
                    }
                    if got != wantTime {
                        res.wrongTime += 1
                        bad = true
                        problem(4, "\(name):\(lineNo): id=\(id.file):\(id.line) __time__ is \(got.map(String.init) ?? "missing"), expected \(wantTime)")
                    }
                }
                if runtime && !streams.isEmpty {
                    let want: StaticString = streams[g] == 0 ? "stdout" : "stderr"
                    let v = findKey(sourceKey, p, lineEnd, skipStart: c.start, skipEnd: c.close)
                    if v == nil || lineEnd - v! < 7 || memcmp(v!, want.utf8Start, 6) != 0 || v![6] != 0x22 {
                        res.wrongStream += 1
                        bad = true
                        let got = v.map { String(decoding: UnsafeBufferPointer(start: $0, count: min(lineEnd - $0, 7)), as: UTF8.self) }
                        problem(3, "\(name):\(lineNo): id=\(id.file):\(id.line) _source_ is \(got ?? "missing"), expected \(want)")
                    }
                    let wantTime = expectedRuntimeTime(file: id.file, line: id.line)
                    var got: Int? = nil
                    if var q = findKey(timeKey, p, lineEnd, skipStart: c.start, skipEnd: c.close) {
                        while q < lineEnd && q.pointee == 0x20 { q += 1 }
                        var v = 0
                        var digits = 0
                        while q < lineEnd && q.pointee >= 48 && q.pointee <= 57 && digits < 18 {
                            v = v * 10 + Int(q.pointee - 48)
                            digits += 1
                            q += 1
                        }
                        if digits > 0 { got = v }
                    }
                    if got != wantTime {
                        res.wrongTime += 1
                        bad = true
                        problem(4, "\(name):\(lineNo): id=\(id.file):\(id.line) __time__ is \(got.map(String.init) ?? "missing"), "
                                + "expected \(wantTime) (the runtime's)")
                    }
                }
                if bad { res.badLines += 1 }
            }
        }
        }
        }
        }
        }
    }

    mutating func scanFile(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw BenchError("cannot open \(path): \(errnoText())") }
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        let size = Int(st.st_size)
        if size == 0 { return }
        guard let m = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), m != MAP_FAILED else {
            throw BenchError("cannot mmap \(path): \(errnoText())")
        }
        defer { munmap(m, size) }
        madvise(m, size, MADV_SEQUENTIAL)
        scan(UnsafePointer(m.assumingMemoryBound(to: UInt8.self)), size, name: baseName(path))
    }

    mutating func finish() -> VerifyResult {
        var unique = 0
        var missingExample: Int? = nil
        for (g, c) in counts.enumerated() {
            if c > 0 { unique += 1 } else if missingExample == nil { missingExample = g }
        }
        result.unique = unique
        result.lost = ds.totalLines - unique
        result.duplicated = result.delivered - unique
        if let g = missingExample {
            // translate the global index back to file:line for the example
            var f = 0
            while f + 1 < ds.lineBase.count && ds.lineBase[f + 1] <= g { f += 1 }
            result.firstProblems.append("first missing line: id=\(f):\(g - ds.lineBase[f] + 1)")
        }
        return result
    }
}

/// Verifies every regular file in `outDir` against `ds`.
let logKey = Array("\"log\":\"".utf8)

/// The value of a "log" string field (Fluent Bit's default key).
func findLogField(_ line: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>)
    -> (start: UnsafePointer<UInt8>, close: UnsafePointer<UInt8>, length: Int)? {
    guard let v = findKey(logKey, line, end, skipStart: end, skipEnd: end), let s = scanJSONString(v, end) else { return nil }
    return (v, s.close, s.length)
}

/// The K of ` lines=K ` in `[start, end)`.
func declaredLines(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Int? {
    let key = Array(" lines=".utf8)
    var q = start
    while end - q > key.count, let hit = memchr(q, 0x20, end - q - key.count) {
        let h = UnsafePointer(hit.assumingMemoryBound(to: UInt8.self))
        q = h + 1
        if key.withUnsafeBufferPointer({ memcmp(h, $0.baseAddress!, key.count) }) != 0 { continue }
        var r = h + key.count
        var v = 0, digits = 0
        while r < end && r.pointee >= 48 && r.pointee <= 57 && digits < 6 { v = v * 10 + Int(r.pointee - 48); digits += 1; r += 1 }
        return digits > 0 ? v : nil
    }
    return nil
}

func verifyOutputDir(_ outDir: String, _ ds: Dataset, parsedKeys: [String] = [], checkTime: Bool = false) throws -> VerifyResult {
    var tracker = IDTracker(ds)
    tracker.javaRecords = ds.spec.content == .java
    tracker.checkTime = checkTime
    tracker.parsedKeys = parsedKeys.map { Array("\"\($0)\":\"".utf8) }
    for name in listDir(outDir) {
        let path = outDir + "/" + name
        guard let info = statPath(path), info.isRegular else { continue }
        try tracker.scanFile(path)
    }
    return tracker.finish()
}

/// Counts '\n' in a growing file, reading only bytes not seen before.
struct LineCounter {
    let path: String
    var fd: Int32 = -1
    var offset = 0
    var lines = 0
    var buf: UnsafeMutableRawPointer

    init(path: String) {
        self.path = path
        buf = UnsafeMutableRawPointer.allocate(byteCount: 4 << 20, alignment: 4096)
    }

    mutating func close() {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
    }

    func release() { buf.deallocate() }

    /// Reads whatever was appended since the last call. Returns the file's current size (nil if absent).
    @discardableResult
    mutating func advance(chunk: Int = 4 << 20) -> Int? {
        if fd < 0 {
            fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 { return nil }
        }
        var st = stat()
        fstat(fd, &st)
        let size = Int(st.st_size)
        let step = min(chunk, 4 << 20)
        while offset < size {
            let n = pread(fd, buf, min(step, size - offset), off_t(offset))
            if n <= 0 { break }
            let p = buf.assumingMemoryBound(to: UInt8.self)
            var q = p
            let end = p + n
            while q < end, let nl = memchr(q, 0x0A, end - q) {
                lines += 1
                q = nl.assumingMemoryBound(to: UInt8.self) + 1
            }
            offset += n
        }
        return size
    }
}

/// Reads `"events_out": <n>` from the stats file's JSON object.
func parseEventsOut(_ bytes: [UInt8]) -> Int? { parseStatsField(bytes, "events_out") }

/// Reads `"<name>": <non-negative integer>` among the top-level keys of a JSON object (nested objects, such as
/// per-pipeline counters, are skipped).
func parseStatsField(_ bytes: [UInt8], _ name: String) -> Int? {
    let key = Array(name.utf8)
    var depth = 0
    var i = 0
    let n = bytes.count
    func skipSpace(_ j: inout Int) {
        while j < n && (bytes[j] == 0x20 || bytes[j] == 0x09 || bytes[j] == 0x0A || bytes[j] == 0x0D) { j += 1 }
    }
    while i < n {
        let c = bytes[i]
        if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") { depth += 1; i += 1; continue }
        if c == UInt8(ascii: "}") || c == UInt8(ascii: "]") { depth -= 1; i += 1; continue }
        if c != 0x22 { i += 1; continue }
        // a string: find its end
        var j = i + 1
        while j < n && bytes[j] != 0x22 { j += bytes[j] == 0x5C ? 2 : 1 }
        guard j < n else { return nil }
        let isMatch = depth == 1 && j - i - 1 == key.count && Array(bytes[(i + 1)..<j]) == key
        var k = j + 1
        skipSpace(&k)
        if isMatch && k < n && bytes[k] == UInt8(ascii: ":") {
            k += 1
            skipSpace(&k)
            var v = 0
            var digits = 0
            while k < n && bytes[k] >= 48 && bytes[k] <= 57 {
                v = v * 10 + Int(bytes[k] - 48)
                digits += 1
                k += 1
            }
            return digits > 0 ? v : nil
        }
        i = j + 1
    }
    return nil
}
