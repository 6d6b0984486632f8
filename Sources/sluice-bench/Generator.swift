// Deterministic nginx-style access-log generator and the on-disk datasets built from it.
//
// Every line ends with ` id=<file>:<line>` (file index from 0, line number from 1) so that the verifier can
// tell which input line each output line came from, and count lost and duplicated lines.

import Glibc

/// SplitMix64: tiny, fast, good enough for varied test data; seeded per file so files are independent.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    @inline(__always) mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    @inline(__always) mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// Byte tables, built once.
struct LineTables: Sendable {
    let methods: [[UInt8]]
    let methodWeights: [Int]  // cumulative, out of 100
    let resources: [[UInt8]]
    let statics: [[UInt8]]
    let protocols: [[UInt8]]
    let statuses: [[UInt8]]
    let statusWeights: [Int]  // cumulative, out of 1000
    let users: [[UInt8]]
    let referers: [[UInt8]]
    let agents: [[UInt8]]
    let months: [UInt8] = Array("Nov".utf8)

    init() {
        func b(_ s: [String]) -> [[UInt8]] { s.map { Array($0.utf8) } }
        methods = b(["GET", "POST", "PUT", "DELETE", "HEAD"])
        methodWeights = [80, 92, 96, 98, 100]
        resources = b(["users", "orders", "items", "carts", "sessions", "search", "reviews", "payments",
                       "inventory", "shipments", "accounts", "metrics"])
        statics = b(["/static/js/app.", "/static/css/main.", "/assets/img/logo.", "/favicon.", "/static/js/vendor."])
        protocols = b(["HTTP/1.1", "HTTP/2.0", "HTTP/1.0"])
        statuses = b(["200", "304", "404", "201", "301", "500", "403", "502"])
        statusWeights = [760, 850, 920, 950, 970, 985, 995, 1000]
        users = b(["-", "-", "-", "-", "-", "-", "alice", "bob"])
        referers = b(["-", "-", "-", "https://www.example.com/", "https://shop.example.org/cart",
                      "https://search.example.net/?q=widgets", "http://localhost:8080/admin"])
        agents = b([
            "curl/8.5.0",
            "Go-http-client/1.1",
            "python-requests/2.31.0",
            "kube-probe/1.29",
            "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
            "Prometheus/2.48.1",
            "Wget/1.21.4",
        ])
    }
}

/// Upper bound of a line produced without padding (the real maximum is about 330 bytes).
let maxNormalLine = 512

/// Appends bytes at a raw cursor.
struct Cursor {
    var p: UnsafeMutablePointer<UInt8>
    @inline(__always) mutating func put(_ c: UInt8) { p.pointee = c; p += 1 }
    @inline(__always) mutating func put(_ s: [UInt8]) {
        s.withUnsafeBufferPointer { b in
            p.update(from: b.baseAddress!, count: b.count)
        }
        p += s.count
    }
    @inline(__always) mutating func put(_ s: StaticString) {
        p.update(from: s.utf8Start, count: s.utf8CodeUnitCount)
        p += s.utf8CodeUnitCount
    }
    @inline(__always) mutating func putInt(_ v: Int) {
        var v = v
        if v == 0 { put(UInt8(ascii: "0")); return }
        var tmp: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch
        var n = 0
        withUnsafeMutableBytes(of: &tmp) { t in
            while v > 0 {
                t[n] = UInt8(48 + v % 10)
                v /= 10
                n += 1
            }
            for i in 0..<n { p[i] = t[n - 1 - i] }
        }
        p += n
    }
    @inline(__always) mutating func put2(_ v: Int) {
        p[0] = UInt8(48 + v / 10)
        p[1] = UInt8(48 + v % 10)
        p += 2
    }
    @inline(__always) mutating func putHex(_ v: UInt64, digits: Int) {
        for i in 0..<digits {
            let nib = Int((v >> UInt64(4 * (digits - 1 - i))) & 15)
            p[i] = nib < 10 ? UInt8(48 + nib) : UInt8(87 + nib)
        }
        p += digits
    }
}

/// Writes one line (with trailing '\n') at `dst`; returns its length. `pad` extra bytes are inserted after the
/// user agent so that the last line of a file can fill it to an exact size.
@inline(__always)
func emitLine(_ t: LineTables, _ rng: inout SplitMix64, fileIndex: Int, lineNo: Int, pad: Int,
              into dst: UnsafeMutablePointer<UInt8>) -> Int {
    var c = Cursor(p: dst)
    let r1 = rng.next()
    let r2 = rng.next()
    let r3 = rng.next()
    // client address
    c.putInt(10 + Int(r1 & 0x7F)); c.put(UInt8(ascii: "."))
    c.putInt(Int((r1 >> 8) & 0xFF)); c.put(UInt8(ascii: "."))
    c.putInt(Int((r1 >> 16) & 0xFF)); c.put(UInt8(ascii: "."))
    c.putInt(1 + Int((r1 >> 24) % 254))
    c.put(" - ")
    c.put(t.users[Int((r1 >> 32) % UInt64(t.users.count))])
    // time: one day, advancing about 20 lines per second
    let secs = (lineNo / 20 + fileIndex * 37) % 86400
    c.put(" [14/Nov/2023:")
    c.put2(secs / 3600); c.put(UInt8(ascii: ":"))
    c.put2(secs / 60 % 60); c.put(UInt8(ascii: ":"))
    c.put2(secs % 60)
    c.put(" +0000] \"")
    // request
    let mw = Int((r1 >> 40) % 100)
    var m = 0
    while mw >= t.methodWeights[m] { m += 1 }
    c.put(t.methods[m]); c.put(UInt8(ascii: " "))
    let kind = Int((r2) % 10)
    if kind < 7 {
        c.put("/api/v")
        c.putInt(1 + Int((r2 >> 4) % 3))
        c.put(UInt8(ascii: "/"))
        c.put(t.resources[Int((r2 >> 8) % UInt64(t.resources.count))])
        c.put(UInt8(ascii: "/"))
        c.putInt(Int((r2 >> 16) % 1_000_000))
        if (r2 >> 36) & 1 == 1 {
            c.put("?page=")
            c.putInt(1 + Int((r2 >> 37) % 50))
            c.put("&limit=")
            c.putInt(10 * (1 + Int((r2 >> 43) % 10)))
        }
    } else {
        c.put(t.statics[Int((r2 >> 8) % UInt64(t.statics.count))])
        c.putHex(r2 >> 16, digits: 8)
        c.put((r2 >> 48) & 1 == 0 ? ".js" : ".png")
    }
    c.put(UInt8(ascii: " "))
    c.put(t.protocols[Int((r2 >> 50) % 3)])
    c.put("\" ")
    // status, size
    let sw = Int(r3 % 1000)
    var s = 0
    while sw >= t.statusWeights[s] { s += 1 }
    c.put(t.statuses[s]); c.put(UInt8(ascii: " "))
    let sizeClass = Int((r3 >> 10) % 4)
    let size: Int
    switch sizeClass {
    case 0: size = Int((r3 >> 12) % 100)
    case 1: size = Int((r3 >> 12) % 5000)
    case 2: size = Int((r3 >> 12) % 60000)
    default: size = Int((r3 >> 12) % 2_000_000)
    }
    c.putInt(size)
    c.put(" \"")
    c.put(t.referers[Int((r3 >> 34) % UInt64(t.referers.count))])
    c.put("\" \"")
    c.put(t.agents[Int((r3 >> 40) % UInt64(t.agents.count))])
    c.put(UInt8(ascii: "\""))
    if pad > 0 {
        c.put(UInt8(ascii: " "))
        for _ in 1..<pad { c.put(UInt8(ascii: "x")) }
    }
    // request time, then the id that the verifier reads
    c.put(" rt=0.")
    let rt = Int((r3 >> 52) % 1000)
    c.put(UInt8(48 + rt / 100)); c.put2(rt % 100)
    c.put(" id=")
    c.putInt(fileIndex)
    c.put(UInt8(ascii: ":"))
    c.putInt(lineNo)
    c.put(UInt8(ascii: "\n"))
    return c.p - dst
}

/// What to generate.
struct DatasetSpec: Equatable {
    var name: String          // "plain", "many", "docker" or "cri"
    var fileCount: Int
    var bytesPerFile: Int
    var seed: UInt64
    /// nil: plain lines; else container runtime log files (see RuntimeLogs.swift).
    var format: RuntimeFormat? = nil
    /// What the lines are (see Formats.swift); nginx: the access-log lines above.
    var content: ContentKind = .nginx
    /// csv: the epoch second its times start at (csvTimeBase()).
    var timeBase = 0
    var totalBytes: Int { fileCount * bytesPerFile }
    /// Datasets whose ids are records of several physical lines (or wrapped lines): lengths come from a sidecar.
    var hasSidecar: Bool { format != nil || content == .java }
    func fileName(_ i: Int) -> String {
        let width = fileCount > 100 ? 4 : 2
        var n = String(i)
        while n.count < width { n = "0" + n }
        return "\(name)-\(n).log"
    }
    /// Runtime log datasets: the source lines' lengths and streams, next to each file (not matched by `*.log`).
    func sidecarName(_ i: Int) -> String { fileName(i) + ".lines" }
    static let formatVersion = 1
}

/// A dataset on disk, plus what the warm-up scan learned about it.
///
/// "Lines" are the source lines, each with its id: what the collector must deliver. For plain datasets they are the
/// files' lines; for runtime log datasets, a line may be split over several records (the files' physical lines).
struct Dataset {
    var spec: DatasetSpec
    var dir: String                   // staging directory holding the files between runs
    var lineCounts: [Int]             // source lines (ids) per file
    var lineBase: [Int]               // global index of each file's first line
    var totalLines: Int
    var recordCounts: [Int]           // physical lines ('\n') per file; == lineCounts for plain datasets
    var totalRecords: Int
    var lineLengths: [UInt16]         // per global line, without '\n' (filled by scanDataset)
    var lineStreams: [UInt8]          // runtime datasets: per global line, 0 stdout / 1 stderr (filled by scanDataset)
    var contentBytes = 0              // sum of lineLengths (filled by scanDataset)
    var reused: Bool
    var totalBytes: Int { spec.totalBytes }
    var fileNames: [String] { (0..<spec.fileCount).map { spec.fileName($0) } }
    var describe: String {
        "\(spec.fileCount) x \(humanBytes(spec.bytesPerFile))" + (spec.format.map { " " + $0.rawValue } ?? "")
            + (spec.content == .nginx ? "" : " " + spec.content.rawValue)
    }
}

/// Generates one file at exactly `bytes` bytes. Returns its line count.
func generateFile(path: String, spec: DatasetSpec, fileIndex: Int, tables: LineTables) throws -> Int {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    if fd < 0 { throw BenchError("cannot create \(path): \(errnoText())") }
    defer { close(fd) }
    let bufSize = 8 << 20
    let buf = UnsafeMutablePointer<UInt8>.allocate(capacity: bufSize + 4 * maxNormalLine)
    defer { buf.deallocate() }
    var rng = SplitMix64(seed: spec.seed ^ (UInt64(fileIndex + 1) &* 0xD6E8_FEB8_6659_FD93)
                         ^ UInt64(spec.name.utf8.count) << 56)
    var remaining = spec.bytesPerFile
    var lineNo = 0
    var used = 0
    func flush() throws {
        if !writeAllBytes(fd: fd, buf, used) { throw BenchError("cannot write \(path): \(errnoText())") }
        used = 0
    }
    while remaining >= 2 * maxNormalLine {
        lineNo += 1
        let n = emitLine(tables, &rng, fileIndex: fileIndex, lineNo: lineNo, pad: 0, into: buf + used)
        used += n
        remaining -= n
        if used >= bufSize { try flush() }
    }
    if remaining > 0 {
        // Last line: measure it unpadded with a copy of the generator, then pad it to fill the file exactly.
        lineNo += 1
        var probe = rng
        let natural = emitLine(tables, &probe, fileIndex: fileIndex, lineNo: lineNo, pad: 0, into: buf + used)
        let pad = remaining - natural
        if pad < 0 { throw BenchError("file size \(spec.bytesPerFile) too small") }
        let n = emitLine(tables, &rng, fileIndex: fileIndex, lineNo: lineNo, pad: pad, into: buf + used)
        used += n
        remaining -= n
    }
    try flush()
    return lineNo
}

func manifestHeader(_ spec: DatasetSpec) -> [String] {
    var h = ["sluice-bench-dataset v\(DatasetSpec.formatVersion)", "name \(spec.name)", "seed \(spec.seed)",
             "files \(spec.fileCount)", "bytes_per_file \(spec.bytesPerFile)"]
    if let f = spec.format { h.append("format \(f.rawValue) generator v\(RuntimeFormat.generatorVersion)") }
    if spec.content != .nginx { h.append("content \(spec.content.rawValue) generator v\(ContentKind.generatorVersion)") }
    if spec.timeBase != 0 { h.append("time_base \(spec.timeBase)") }
    return h
}

/// Plain: `file <name> <lines>`; runtime logs: `file <name> <lines> <records>`.
func manifestText(_ spec: DatasetSpec, lineCounts: [Int], recordCounts: [Int]) -> String {
    var s = manifestHeader(spec).joined(separator: "\n") + "\n"
    for i in 0..<spec.fileCount {
        s += "file \(spec.fileName(i)) \(lineCounts[i])"
        if spec.hasSidecar { s += " \(recordCounts[i])" }
        s += "\n"
    }
    return s
}

/// Returns the line and record counts if the manifest in `dir` describes `spec` and every file (and, for runtime
/// logs, every sidecar) has the right size.
func reusableDataset(_ spec: DatasetSpec, dir: String) -> (lines: [Int], records: [Int])? {
    guard let bytes = readSmallFile(dir + "/MANIFEST") else { return nil }
    let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
    let header = manifestHeader(spec)
    let h = header.count
    guard lines.count == h + spec.fileCount, lines.prefix(h).map(String.init) == header else { return nil }
    let runtime = spec.hasSidecar
    var counts: [Int] = []
    var records: [Int] = []
    for i in 0..<spec.fileCount {
        let parts = lines[h + i].split(separator: " ")
        guard parts.count == (runtime ? 4 : 3), parts[0] == "file", String(parts[1]) == spec.fileName(i),
              let n = Int(parts[2]), n > 0 else { return nil }
        let r = runtime ? Int(parts[3]) ?? 0 : n
        guard r >= n else { return nil }
        guard let info = statPath(dir + "/" + spec.fileName(i)), info.isRegular,
              info.size == spec.bytesPerFile else { return nil }
        if runtime {
            guard let side = statPath(dir + "/" + spec.sidecarName(i)), side.isRegular, side.size == 2 * n else { return nil }
        }
        counts.append(n)
        records.append(r)
    }
    return (counts, records)
}

/// Reuses the dataset in `dir` if it matches `spec`, else (re)generates it.
func ensureDataset(_ spec: DatasetSpec, dir: String, log: Bool = true) throws -> Dataset {
    var counts: [Int]
    var records: [Int]
    var reused = false
    if let c = reusableDataset(spec, dir: dir) {
        counts = c.lines
        records = c.records
        reused = true
        if log { note("inputs: reusing \(spec.name) (\(spec.fileCount) x \(humanBytes(spec.bytesPerFile))) in \(dir)") }
    } else {
        removeTree(dir)
        try mkdirP(dir)
        let tables = LineTables()
        let t0 = monoNow()
        counts = []
        records = []
        for i in 0..<spec.fileCount {
            let final = dir + "/" + spec.fileName(i)
            if spec.content != .nginx {
                let side = dir + "/" + spec.sidecarName(i)
                let r = try generateContentFile(path: final + ".tmp", sidecarPath: spec.hasSidecar ? side + ".tmp" : nil,
                                                spec: spec, fileIndex: i, tables: tables)
                if spec.hasSidecar { try renameOrThrow(side + ".tmp", side) }
                try renameOrThrow(final + ".tmp", final)
                counts.append(r.lines)
                records.append(r.records)
            } else if spec.format != nil {
                let side = dir + "/" + spec.sidecarName(i)
                let r = try generateRuntimeFile(path: final + ".tmp", sidecarPath: side + ".tmp", spec: spec,
                                                fileIndex: i, tables: tables)
                try renameOrThrow(side + ".tmp", side)
                try renameOrThrow(final + ".tmp", final)
                counts.append(r.lines)
                records.append(r.records)
            } else {
                let n = try generateFile(path: final + ".tmp", spec: spec, fileIndex: i, tables: tables)
                try renameOrThrow(final + ".tmp", final)
                counts.append(n)
                records.append(n)
            }
        }
        try writeFile(dir + "/MANIFEST", manifestText(spec, lineCounts: counts, recordCounts: records))
        let dt = monoNow() - t0
        if log {
            let recs = spec.hasSidecar ? " in \(records.reduce(0, +)) records" : ""
            note("inputs: generated \(spec.name) (\(spec.fileCount) x \(humanBytes(spec.bytesPerFile)), "
                 + "\(counts.reduce(0, +)) lines\(recs)) in \(fmt(dt, 2)) s (\(fmt(Double(spec.totalBytes) / dt / 1e6, 0)) MB/s) in \(dir)")
        }
    }
    var base: [Int] = []
    var total = 0
    for c in counts { base.append(total); total += c }
    return Dataset(spec: spec, dir: dir, lineCounts: counts, lineBase: base, totalLines: total,
                   recordCounts: records, totalRecords: records.reduce(0, +),
                   lineLengths: [], lineStreams: [], reused: reused)
}

/// Reads every file of the dataset once from `dir` (warming the page cache). With `recordLengths`, records each
/// line's length (runtime logs: loads the lengths and streams from the sidecars) and checks the line (record)
/// counts against the manifest.
func scanDataset(_ ds: inout Dataset, dir: String, recordLengths: Bool) throws {
    let bufSize = 1 << 20
    let buf = UnsafeMutableRawPointer.allocate(byteCount: bufSize, alignment: 4096)
    defer { buf.deallocate() }
    let runtime = ds.spec.hasSidecar
    if recordLengths {
        ds.lineLengths = [UInt16](repeating: 0, count: ds.totalLines)
        ds.lineStreams = ds.spec.format != nil ? [UInt8](repeating: 0, count: ds.totalLines) : []
    }
    for (i, name) in ds.fileNames.enumerated() {
        let path = dir + "/" + name
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw BenchError("cannot open \(path): \(errnoText())") }
        defer { close(fd) }
        var lineIndex = 0
        var partial = 0
        let base = ds.lineBase[i]
        let expected = ds.recordCounts[i]
        while true {
            let n = read(fd, buf, bufSize)
            if n < 0 { if errno == EINTR { continue }; throw BenchError("cannot read \(path): \(errnoText())") }
            if n == 0 { break }
            if !recordLengths { continue }
            let p = buf.assumingMemoryBound(to: UInt8.self)
            var off = 0
            while off < n {
                guard let nl = memchr(p + off, 0x0A, n - off) else {
                    partial += n - off
                    break
                }
                let at = nl.assumingMemoryBound(to: UInt8.self) - p
                if lineIndex >= expected { throw BenchError("\(path) has more lines than its manifest says") }
                if !runtime {
                    let len = partial + at - off
                    if len > Int(UInt16.max) { throw BenchError("\(path): line \(lineIndex + 1) is too long") }
                    ds.lineLengths[base + lineIndex] = UInt16(len)
                }
                lineIndex += 1
                partial = 0
                off = at + 1
            }
        }
        if recordLengths && (lineIndex != expected || partial != 0) {
            throw BenchError("\(path) has \(lineIndex) complete lines, its manifest says \(expected)")
        }
        if recordLengths && runtime {
            let side = dir + "/" + ds.spec.sidecarName(i)
            guard let meta = readSmallFile(side, limit: Int.max), meta.count == 2 * ds.lineCounts[i] else {
                throw BenchError("\(side) is missing or does not hold \(ds.lineCounts[i]) lines")
            }
            for k in 0..<ds.lineCounts[i] {
                let v = UInt16(meta[2 * k]) | UInt16(meta[2 * k + 1]) << 8
                ds.lineLengths[base + k] = v & 0x7FFF
                if !ds.lineStreams.isEmpty { ds.lineStreams[base + k] = UInt8(v >> 15) }
            }
        }
    }
    if recordLengths { ds.contentBytes = ds.lineLengths.reduce(0) { $0 + Int($1) } }
}
