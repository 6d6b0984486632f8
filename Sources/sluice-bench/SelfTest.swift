// `--self-test` (not in --help): checks the generator (plain lines, and Docker json-file / CRI runtime logs, the
// latter against an independent decoder), the raw ceilings, the verifier (on a synthetic correct output it writes
// itself, and on outputs with injected loss, duplication, corruption, garbage, and for runtime logs split lines
// left unjoined, wrong streams and wrong times), the helpers, and the process plumbing, without needing sluice.

import Glibc

struct Injection {
    var drop: Set<Int> = []            // global line indices left out
    var extraCopies: [Int: Int] = [:]  // global line index -> extra copies
    var corrupt: Set<Int> = []         // one content byte removed
    var garbageLines: [String] = []    // appended lines that are not valid records
    // runtime logs only
    var unjoined: Set<Int> = []        // each record of a split line written as its own event
    var wrongStream: Set<Int> = []     // _source_ of the other stream
    var noStream: Set<Int> = []        // no _source_
    var wrongTime: Set<Int> = []       // __time__ not the runtime's (the read time, say)
}

/// A source line as the synthetic output writes it.
struct SyntheticLine {
    var g: Int                 // global index
    var pieces: [[UInt8]]      // the records' contents (plain: the line)
    var stream: UInt8
    var time: Int
}

/// The source lines of file `f`: plain datasets from the file; runtime logs decoded (in the order they complete).
func syntheticLines(_ ds: Dataset, file f: Int) throws -> [SyntheticLine] {
    let path = ds.dir + "/" + ds.spec.fileName(f)
    guard let bytes = readSmallFile(path, limit: Int.max) else { throw BenchError("cannot read \(path)") }
    guard let format = ds.spec.format else {
        var lines: [SyntheticLine] = []
        var g = ds.lineBase[f]
        for l in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast() {
            lines.append(SyntheticLine(g: g, pieces: [Array(l)], stream: 0, time: 1_700_000_000))
            g += 1
        }
        return lines
    }
    let d = try decodeRuntimeFile(bytes, format: format)
    return try d.lines.map { l in
        let c = l.content
        guard let id = c.withUnsafeBufferPointer({ parseTrailingID($0.baseAddress!, $0.baseAddress! + $0.count) }),
              id.file == f, id.line >= 1, id.line <= ds.lineCounts[f] else { throw BenchError("\(path): a decoded line has no valid id") }
        return SyntheticLine(g: ds.lineBase[f] + id.line - 1, pieces: l.pieces, stream: l.stream, time: l.timeSec)
    }
}

/// Writes a flusher_file-like output for every line of `ds` (read from ds.dir) into outDir/out.jsonl.1 (first half of
/// the files) and outDir/out.jsonl, in four JSON layouts. Returns the number of lines written per output file.
func writeSyntheticOutput(_ ds: Dataset, outDir: String, inj: Injection) throws -> [String: Int] {
    try mkdirP(outDir)
    let bufSize = 8 << 20
    let buf = UnsafeMutablePointer<UInt8>.allocate(capacity: bufSize + (1 << 16))
    defer { buf.deallocate() }
    var written: [String: Int] = [:]
    let half = (ds.spec.fileCount + 1) / 2
    let runtime = ds.spec.format != nil
    var fd: Int32 = -1
    var used = 0
    var currentName = ""
    func flush() throws {
        if used > 0 && !writeAllBytes(fd: fd, buf, used) { throw BenchError("write failed: \(errnoText())") }
        used = 0
    }
    func put(_ s: String) {
        var s = s
        let n = s.withUTF8 { (b: UnsafeBufferPointer<UInt8>) -> Int in
            (buf + used).update(from: b.baseAddress!, count: b.count)
            return b.count
        }
        used += n
    }
    func openOut(_ name: String) throws {
        if fd >= 0 { try flush(); close(fd) }
        currentName = name
        fd = open(outDir + "/" + name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw BenchError("cannot create \(outDir)/\(name): \(errnoText())") }
        written[name] = 0
    }
    try openOut("out.jsonl.1")
    for f in 0..<ds.spec.fileCount {
        if f == half { try openOut("out.jsonl") }
        let pathJSON = jsonString("/var/tmp/in/" + ds.spec.fileName(f))
        for sl in try syntheticLines(ds, file: f) {
            let g = sl.g
            if inj.drop.contains(g) { continue }
            let copies = 1 + (inj.extraCopies[g] ?? 0)
            // the events to write: the joined line, or each record on its own
            let events: [[UInt8]] = inj.unjoined.contains(g) ? sl.pieces : [sl.pieces.flatMap { $0 }]
            var stream = sl.stream
            if inj.wrongStream.contains(g) { stream = 1 - stream }
            let source = inj.noStream.contains(g) ? "" : (stream == 0 ? "\"_source_\":\"stdout\"" : "\"_source_\":\"stderr\"")
            let time = String(inj.wrongTime.contains(g) ? 1_700_000_000 : sl.time)
            for _ in 0..<copies {
                for line in events {
                    let variant = g % 4
                    switch variant {
                    case 0: put("{\"__time__\":\(time),\"__path__\":\(pathJSON),\"__hostname__\":\"h\",\(runtime && !source.isEmpty ? source + "," : "")\"content\":\"")
                    case 1: put("{\"content\": \"")
                    case 2: put("{\"__time__\":\(time),\"content\":\"")
                    default: put("{\"__path__\":\"/weird/\\\"content\\\":\\\"x.log\",\"content\":\"")
                    }
                    let skip = inj.corrupt.contains(g) ? 10 : -1
                    for (k, c) in line.enumerated() {
                        if k == skip { continue }
                        switch c {
                        case 0x22:
                            if variant == 3 { put("\\u0022") } else { buf[used] = 0x5C; buf[used + 1] = 0x22; used += 2 }
                        case 0x5C: buf[used] = 0x5C; buf[used + 1] = 0x5C; used += 2
                        case 0x2F where variant == 2: buf[used] = 0x5C; buf[used + 1] = 0x2F; used += 2
                        default: buf[used] = c; used += 1
                        }
                    }
                    let src = runtime && !source.isEmpty ? "," + source : ""
                    switch variant {
                    case 0: put("\"}\n")
                    case 1: put("\", \"__time__\": \(time)\(src), \"__path__\": \(pathJSON)}\n")
                    case 2: put("\",\"__path__\":\(pathJSON),\"__hostname__\":\"h\"\(src)}\n")
                    default: put("\"\(src),\"__time__\":\(time)}\n")
                    }
                    written[currentName, default: 0] += 1
                    if used >= bufSize { try flush() }
                }
            }
        }
    }
    for g in inj.garbageLines {
        put(g + "\n")
        written[currentName, default: 0] += 1
    }
    try flush()
    close(fd)
    return written
}

struct SelfTestRun {
    var failures = 0
    var checks = 0
    mutating func check(_ cond: Bool, _ what: String, _ detail: @autoclosure () -> String = "") {
        checks += 1
        if cond {
            note("ok    \(what)")
        } else {
            failures += 1
            let d = detail()
            note("FAIL  \(what)" + (d.isEmpty ? "" : ": " + d))
        }
    }
}

func describe(_ v: VerifyResult) -> String {
    "lines \(v.outputLines) delivered \(v.delivered) unique \(v.unique)/\(v.expected) lost \(v.lost) dup \(v.duplicated) "
        + "corrupt \(v.corrupt) malformed \(v.malformed) wrong-stream \(v.wrongStream) wrong-time \(v.wrongTime) "
        + "bad \(v.badLines) " + v.firstProblems.joined(separator: " | ")
}

func runSelfTest(_ opts: Options, workDir: String) -> Int32 {
    var t = SelfTestRun()
    let dir = workDir + "/selftest"
    var o = opts
    if !opts.sizeGiven { o.sizeMiB = 32 }
    if !opts.manyGiven { o.manyFiles = 40 }
    note("self-test in \(dir): plain, docker, cri 4 x \(o.sizeMiB / 4) MiB each, many \(o.manyFiles) x 1 MiB")
    do {
        try mkdirP(dir)
        // --- helpers
        t.check(fmt(3.14159, 2) == "3.14" && fmt(-2.5, 1) == "-2.5" && fmt(1234, 1) == "1234.0"
                && fmt(0.004, 2) == "0.00" && fmt(9.996, 2) == "10.00", "fmt", "\(fmt(3.14159, 2)) \(fmt(9.996, 2))")
        t.check(logSaysInputStarted(Array("x\n2026 info sluice: files=0 [SluiceFiles] Input started.\n".utf8))
                && !logSaysInputStarted(Array("2026 info sluice: Pipeline started.\n".utf8)) && !logSaysInputStarted([]),
                "logSaysInputStarted")
        t.check(parseEventsOut(Array("{\"events_out\":12345,\"bytes_in\":678}".utf8)) == 12345
                && parseEventsOut(Array("{ \"bytes_in\": 1, \"events_out\" : 7 }\n".utf8)) == 7
                && parseEventsOut(Array("{}".utf8)) == nil
                && parseEventsOut(Array("{\"events_out\":".utf8)) == nil
                && parseEventsOut(Array("{\"pipelines\":{\"a\":{\"events_out\":5}},\"x\":\"events_out\",\"events_out\":9}".utf8)) == 9
                && parseStatsField(Array("{\"events_in\":1,\"bytes_in\":77,\"events_out\":2,\"pipelines\":{\"bench\":{\"bytes_in\":77}}}\n".utf8), "bytes_in") == 77,
                "parseEventsOut / parseStatsField (top-level keys only)")
        let interp = interpolateCompletion([StatsSample(time: 10.2, events: 0), StatsSample(time: 10.4, events: 500),
                                            StatsSample(time: 10.6, events: 1000)], expected: 750, start: 10.0)
        t.check(interp != nil && abs(interp! - 10.5) < 1e-9, "interpolateCompletion", "\(String(describing: interp))")
        let interp2 = interpolateCompletion([StatsSample(time: 9.9, events: 0), StatsSample(time: 10.1, events: 2000)],
                                            expected: 1000, start: 10.0)
        t.check(interp2 != nil && abs(interp2! - 10.05) < 1e-9, "interpolateCompletion from the start time",
                "\(String(describing: interp2))")
        func idOf(_ s: String) -> (Int, Int)? {
            let b = Array(s.utf8)
            return b.withUnsafeBufferPointer { p in parseTrailingID(p.baseAddress!, p.baseAddress! + p.count).map { ($0.file, $0.line) } }
        }
        t.check(idOf("abc id=3:17")! == (3, 17) && idOf("id=3:17") == nil && idOf("x id=:17") == nil
                && idOf("x id=3:") == nil && idOf("x xd=3:17") == nil, "parseTrailingID")
        func str(_ s: String) -> (Int, Int)? {
            let b = Array(s.utf8)
            return b.withUnsafeBufferPointer { p in
                scanJSONString(p.baseAddress!, p.baseAddress! + p.count).map { ($0.close - p.baseAddress!, $0.length) }
            }
        }
        func strIs(_ s: String, _ close: Int, _ len: Int) -> Bool { str(s).map { $0 == (close, len) } ?? false }
        t.check(strIs(#"abc\"d\\"rest"#, 8, 6) && strIs(#"\u00e9x""#, 7, 3) && strIs(#"\/a\n""#, 5, 3)
                && str(#"abc\""#) == nil && str("no end") == nil, "scanJSONString",
                "\(String(describing: str(#"abc\"d\\"rest"#)))")

        do {
            let line = Array("{\"__time__\":17,\"content\":\"x \\\"_source_\\\":\\\"y\",\"_source_\":\"stderr\"}".utf8)
            let r = line.withUnsafeBufferPointer { b -> (Int, Int, Int)? in
                let base = b.baseAddress!, end = base + b.count
                guard let c = findContent(base, end),
                      let s = findKey(sourceKey, base, end, skipStart: c.start, skipEnd: c.close),
                      let t = findKey(timeKey, base, end, skipStart: c.start, skipEnd: c.close) else { return nil }
                return (s - base, t - base, findKey(Array("\"nope\":".utf8), base, end, skipStart: c.start, skipEnd: c.close) == nil ? 1 : 0)
            }
            t.check(r != nil && line[r!.0] == UInt8(ascii: "s") && line[r!.0 + 5] == UInt8(ascii: "r") && line[r!.1] == UInt8(ascii: "1")
                    && r!.2 == 1, "findKey: keys outside the content only", "\(String(describing: r))")
            t.check(parseRuntimeTime(Array("2026-11-22T00:00:00.000000000Z".utf8)[...]) == runtimeEpochDay
                    && parseRuntimeTime(Array("2026-11-22T01:02:03Z".utf8)[...]) == runtimeEpochDay + 3723
                    && expectedRuntimeTime(file: 1, line: 101) == runtimeEpochDay + 3602,
                    "runtime timestamps: 2026-11-22 epoch and per-line seconds")
        }

        // --- generator
        let specs = datasetSpecs(o)
        removeTree(dir + "/inputs")
        var datasets: [Dataset] = []
        for name in ["plain", "many"] {
            let spec = specs[name]!
            var ds = try ensureDataset(spec, dir: dir + "/inputs/" + name)
            t.check(!ds.reused, "\(name): generated fresh")
            try scanDataset(&ds, dir: ds.dir, recordLengths: true)
            let sizesOK = ds.fileNames.allSatisfy { statPath(ds.dir + "/" + $0)?.size == spec.bytesPerFile }
            t.check(sizesOK, "\(name): every file is exactly \(spec.bytesPerFile) bytes")
            let avg = Double(ds.totalBytes) / Double(ds.totalLines)
            var maxLen = 0
            var lastIdx = Set(ds.lineBase.indices.map { ds.lineBase[$0] + ds.lineCounts[$0] - 1 })
            for (g, l) in ds.lineLengths.enumerated() where !lastIdx.contains(g) { maxLen = max(maxLen, Int(l)) }
            lastIdx.removeAll()
            note("      \(name): \(ds.totalLines) lines, average \(fmt(avg, 1)) bytes/line (with \\n), longest unpadded \(maxLen)")
            t.check(avg > 170 && avg < 240, "\(name): average line length about 200 bytes", fmt(avg, 1))
            t.check(maxLen < maxNormalLine, "\(name): lines shorter than \(maxNormalLine)")
            // ids in order, lines look like access-log lines
            var idsOK = true
            var firstBad = ""
            for f in 0..<spec.fileCount {
                guard let bytes = readSmallFile(ds.dir + "/" + spec.fileName(f), limit: Int.max) else { idsOK = false; break }
                bytes.withUnsafeBufferPointer { (b: UnsafeBufferPointer<UInt8>) -> Void in
                    let base = b.baseAddress!
                    var off = 0
                    var n = 0
                    while off < b.count, idsOK {
                        let nl = UnsafePointer(memchr(base + off, 0x0A, b.count - off)!.assumingMemoryBound(to: UInt8.self))
                        n += 1
                        let id = parseTrailingID(base + off, nl)
                        let first = base[off]
                        if id == nil || id!.file != f || id!.line != n || first < 49 || first > 57 {
                            idsOK = false
                            firstBad = String(decoding: UnsafeBufferPointer(start: base + off, count: nl - base - off), as: UTF8.self)
                        }
                        off = nl - base + 1
                    }
                }
            }
            t.check(idsOK, "\(name): every line ends with id=<file>:<line> in order", firstBad)
            if name == "plain" {
                // show two sample lines
                if let b = readSmallFile(ds.dir + "/" + spec.fileName(0), limit: 4096) {
                    for l in b.split(separator: 0x0A).prefix(2) { note("      sample: " + String(decoding: l, as: UTF8.self)) }
                }
                // determinism: regenerate file 0 and compare
                let tmp = dir + "/regen.tmp"
                _ = try generateFile(path: tmp, spec: spec, fileIndex: 0, tables: LineTables())
                let a = readSmallFile(tmp, limit: Int.max), b = readSmallFile(ds.dir + "/" + spec.fileName(0), limit: Int.max)
                t.check(a != nil && a == b, "plain: generation is deterministic")
                unlink(tmp)
                // distinct lines across files (different seeds per file)
                let l0 = readSmallFile(ds.dir + "/" + spec.fileName(0), limit: 300)
                let l1 = readSmallFile(ds.dir + "/" + spec.fileName(1), limit: 300)
                t.check(l0 != nil && l1 != nil && l0!.prefix(100) != l1!.prefix(100), "plain: files differ")
            }
            let again = try ensureDataset(spec, dir: dir + "/inputs/" + name, log: false)
            t.check(again.reused && again.lineCounts == ds.lineCounts, "\(name): reused when present with the right size")
            datasets.append(ds)
        }
        // a wrong size forces regeneration
        do {
            let many = datasets[1]
            let victim = many.dir + "/" + many.spec.fileName(0)
            t.check(truncate(victim, off_t(many.spec.bytesPerFile - 1)) == 0, "truncate a many-file")
            var regen = try ensureDataset(many.spec, dir: many.dir, log: false)
            try scanDataset(&regen, dir: regen.dir, recordLengths: true)
            t.check(!regen.reused && regen.lineCounts == many.lineCounts && regen.lineLengths == many.lineLengths,
                    "many: regenerated identically after a size mismatch")
        }

        // --- runtime log generators, checked against an independent decoder
        for name in ["docker", "cri"] {
            let spec = specs[name]!
            var ds = try ensureDataset(spec, dir: dir + "/inputs/" + name)
            t.check(!ds.reused, "\(name): generated fresh")
            try scanDataset(&ds, dir: ds.dir, recordLengths: true)
            let sizesOK = ds.fileNames.allSatisfy { statPath(ds.dir + "/" + $0)?.size == spec.bytesPerFile }
            t.check(sizesOK, "\(name): every file is exactly \(spec.bytesPerFile) bytes")
            var allOK = true
            var firstBad = ""
            var records = 0, split = 0, three = 0, emptyLast = 0, stderrLines = 0, splitStderr = 0, interleaved = 0
            var maxLen = 0
            for f in 0..<spec.fileCount {
                let path = ds.dir + "/" + spec.fileName(f)
                guard let bytes = readSmallFile(path, limit: Int.max) else { allOK = false; firstBad = "cannot read \(path)"; break }
                let d: DecodedFile
                do { d = try decodeRuntimeFile(bytes, format: spec.format!) } catch {
                    allOK = false; firstBad = "\(path): \(error)"; break
                }
                records += d.records
                interleaved += d.interleaved
                if d.records != ds.recordCounts[f] || d.lines.count != ds.lineCounts[f] {
                    allOK = false
                    firstBad = "\(path): \(d.records) records / \(d.lines.count) lines, manifest \(ds.recordCounts[f]) / \(ds.lineCounts[f])"
                }
                var seen = [Bool](repeating: false, count: ds.lineCounts[f])
                for l in d.lines where allOK {
                    let c = l.content
                    let id = c.withUnsafeBufferPointer { parseTrailingID($0.baseAddress!, $0.baseAddress! + $0.count) }
                    guard let id, id.file == f, id.line >= 1, id.line <= ds.lineCounts[f], !seen[id.line - 1] else {
                        allOK = false
                        firstBad = "\(path): bad or repeated id in " + String(decoding: c, as: UTF8.self)
                        break
                    }
                    seen[id.line - 1] = true
                    let g = ds.lineBase[f] + id.line - 1
                    if c.count != Int(ds.lineLengths[g]) || l.stream != ds.lineStreams[g]
                        || l.timeSec != expectedRuntimeTime(file: f, line: id.line) || c.first! < 49 || c.first! > 57 {
                        allOK = false
                        firstBad = "\(path): id=\(f):\(id.line): length \(c.count) stream \(l.stream) time \(l.timeSec); sidecar "
                            + "\(ds.lineLengths[g]) \(ds.lineStreams[g]), expected time \(expectedRuntimeTime(file: f, line: id.line))"
                        break
                    }
                    if id.line < ds.lineCounts[f] { maxLen = max(maxLen, c.count) }
                    if l.stream == 1 { stderrLines += 1 }
                    if l.pieces.count > 1 {
                        split += 1
                        if l.stream == 1 { splitStderr += 1 }
                        if l.pieces.count == 3 { three += 1 }
                        if l.pieces.last!.isEmpty { emptyLast += 1 }
                    }
                }
                if f == 0, spec.fileCount > 0 {
                    // show a few records: the first two, and the records of the first split line
                    let recs = bytes.prefix(1 << 20).split(separator: 0x0A)
                    for r in recs.prefix(2) { note("      sample: " + String(decoding: r, as: UTF8.self)) }
                    let partial: (ArraySlice<UInt8>) -> Bool = { r in
                        spec.format == .cri ? r.dropFirst(31).starts(with: Array("stdout P".utf8)) || r.dropFirst(31).starts(with: Array("stderr P".utf8))
                                            : r.firstRange(of: Array("\\n\",\"stream\"".utf8)) == nil }
                    if let i = recs.firstIndex(where: partial) {
                        for r in recs[i..<min(i + 3, recs.endIndex)] { note("      split: " + String(decoding: r, as: UTF8.self)) }
                    }
                }
            }
            t.check(allOK, "\(name): every record decodes (independent decoder, joined per stream); each line once, "
                    + "with the sidecar's length and stream and the expected time", firstBad)
            t.check(records == ds.totalRecords, "\(name): records counted like the manifest", "\(records) vs \(ds.totalRecords)")
            let pct = { (n: Int) -> Double in 100 * Double(n) / Double(max(1, ds.totalLines)) }
            note("      \(name): \(ds.totalLines) lines in \(ds.totalRecords) records, average \(fmt(Double(ds.totalBytes) / Double(ds.totalRecords), 1)) "
                 + "bytes/record; split \(split) (\(fmt(pct(split), 2))%; 3 parts \(three), empty last part \(emptyLast), on stderr \(splitStderr)); "
                 + "stderr \(stderrLines) (\(fmt(pct(stderrLines), 2))%); records between the parts of another stream's line \(interleaved)")
            t.check(pct(split) > 3.5 && pct(split) < 7, "\(name): about 5% of the lines split", fmt(pct(split), 2))
            t.check(pct(stderrLines) > 1.5 && pct(stderrLines) < 8, "\(name): a few % of the lines on stderr", fmt(pct(stderrLines), 2))
            t.check(interleaved > 0 && emptyLast > 0 && splitStderr > 0 && (spec.format == .dockerJSON || three > 0),
                    "\(name): interleaved streams, empty last parts, split stderr lines\(spec.format == .cri ? ", 3-part lines" : "") all present")
            t.check(maxLen < maxNormalLine, "\(name): source lines shorter than \(maxNormalLine) (but the last)", String(maxLen))
            // determinism
            let tmp = dir + "/regen.tmp"
            _ = try generateRuntimeFile(path: tmp, sidecarPath: tmp + ".lines", spec: spec, fileIndex: 0, tables: LineTables())
            let a = readSmallFile(tmp, limit: Int.max), b = readSmallFile(ds.dir + "/" + spec.fileName(0), limit: Int.max)
            let sa = readSmallFile(tmp + ".lines", limit: Int.max), sb = readSmallFile(ds.dir + "/" + spec.sidecarName(0), limit: Int.max)
            t.check(a != nil && a == b && sa != nil && sa == sb, "\(name): generation is deterministic")
            unlink(tmp)
            unlink(tmp + ".lines")
            let again = try ensureDataset(spec, dir: ds.dir, log: false)
            t.check(again.reused && again.lineCounts == ds.lineCounts && again.recordCounts == ds.recordCounts,
                    "\(name): reused when present with the right size")
            // a sidecar of the wrong size forces regeneration
            let victim = ds.dir + "/" + spec.sidecarName(spec.fileCount - 1)
            t.check(truncate(victim, 2) == 0, "\(name): truncate a sidecar")
            var regen = try ensureDataset(spec, dir: ds.dir, log: false)
            try scanDataset(&regen, dir: regen.dir, recordLengths: true)
            t.check(!regen.reused && regen.lineLengths == ds.lineLengths && regen.lineStreams == ds.lineStreams,
                    "\(name): regenerated identically after a sidecar size mismatch")
            datasets.append(ds)
        }
        // a plain manifest does not describe a runtime dataset of the same name and size, and the reverse
        do {
            var mixed = specs["docker"]!
            mixed.format = .cri
            t.check(reusableDataset(mixed, dir: dir + "/inputs/docker") == nil, "a dataset of another format is not reused")
        }

        // --- raw ceilings
        var raws: [RawRow] = []
        for ds in datasets { raws += try measureRaw(ds, workDir: dir) }
        t.check(raws.count == 6 && raws.allSatisfy { $0.result.lines == $0.dataset.totalRecords && $0.result.bytes == $0.dataset.totalBytes },
                "raw ceilings read every byte and counted every line (record)")
        // the network ceiling: every line POSTed once, found once by the counting receiver (it throws otherwise)
        if let plain = datasets.first(where: { $0.spec.format == nil }) {
            let receiver = try CountingReceiver(mode: .http, ds: plain)
            defer { receiver.stop() }
            let r = try rawHTTPCeiling(plain, dir: plain.dir, receiver: receiver)
            t.check(r.bytes == plain.totalBytes && r.lines == plain.totalRecords && receiver.snapshot().delivered == 0,
                    "raw http ceiling: every byte sent, every line found once, the receiver reset after")
        }

        // --- verifier on synthetic output
        for ds in datasets {
            let name = ds.spec.name
            let outDir = dir + "/out-" + name
            removeTree(outDir)
            let written = try writeSyntheticOutput(ds, outDir: outDir, inj: Injection())
            let outBytes = listDir(outDir).reduce(0) { $0 + (statPath(outDir + "/" + $1)?.size ?? 0) }
            let t0 = monoNow()
            let v = try verifyOutputDir(outDir, ds)
            let dt = monoNow() - t0
            note("      \(name): verified \(humanBytes(outBytes)) of output in \(fmt(dt, 3)) s (\(fmt(Double(outBytes) / dt / 1e6, 0)) MB/s)")
            t.check(v.ok && v.delivered == ds.totalLines && v.outputLines == ds.totalLines && v.badLines == 0,
                    "\(name): correct output verifies clean", describe(v))
            // line counter, in small and large chunks, on the larger output file
            var c1 = LineCounter(path: outDir + "/out.jsonl")
            c1.advance(chunk: 4093)
            var c2 = LineCounter(path: outDir + "/out.jsonl")
            c2.advance()
            t.check(c1.lines == written["out.jsonl"] && c2.lines == written["out.jsonl"],
                    "\(name): LineCounter counts the output's lines", "\(c1.lines) \(c2.lines) \(String(describing: written["out.jsonl"]))")
            c1.close(); c1.release(); c2.close(); c2.release()

            // injected faults
            var inj = Injection()
            let n = ds.totalLines
            for g in stride(from: 5, to: n, by: 997) { inj.drop.insert(g) }
            inj.drop.insert(0)
            inj.drop.insert(n - 1)
            inj.drop.insert(ds.lineBase[ds.spec.fileCount - 1])       // first line of the last file
            for g in stride(from: 7, to: n, by: 1009) where !inj.drop.contains(g) { inj.extraCopies[g] = 1 }
            inj.extraCopies[n / 2 + 1] = 2
            for g in [3, n / 3, n - 3] where !inj.drop.contains(g) && inj.extraCopies[g] == nil { inj.corrupt.insert(g) }
            inj.garbageLines = ["not json at all", "{\"content\":\"hello world\"}", "{\"content\":123}",
                                "{\"content\":\"x id=\(ds.spec.fileCount):1\"}", "{\"content\":\"x id=0:999999999\"}",
                                "{\"content\":\"unterminated id=0:1"]
            let extras = inj.extraCopies.values.reduce(0, +)
            // runtime logs: split lines left unjoined, wrong or missing streams, wrong times
            var unjoinedPieces = 0
            if ds.spec.format != nil {
                var taken = inj.drop.union(inj.corrupt).union(inj.extraCopies.keys)
                var candidates: [SyntheticLine] = []
                for f in 0..<ds.spec.fileCount {
                    // (only lines whose last part holds the whole id and whose other parts do not end like an id: a
                    // part cut inside the id would count as another line's, which the exact counts below ignore)
                    func hasID(_ p: [UInt8]) -> Bool {
                        p.withUnsafeBufferPointer { parseTrailingID($0.baseAddress!, $0.baseAddress! + $0.count) } != nil
                    }
                    for l in try syntheticLines(ds, file: f) where l.pieces.count > 1 && hasID(l.pieces.last!)
                        && !l.pieces.dropLast().contains(where: hasID) {
                        candidates.append(l)
                    }
                }
                for l in stride(from: 0, to: candidates.count, by: max(1, candidates.count / 40)).map({ candidates[$0] })
                    where !taken.contains(l.g) {
                    inj.unjoined.insert(l.g)
                    unjoinedPieces += l.pieces.count
                    taken.insert(l.g)
                }
                for g in stride(from: 11, to: n, by: 2003) where !taken.contains(g) { inj.wrongStream.insert(g); taken.insert(g) }
                for g in stride(from: 13, to: n, by: 3001) where !taken.contains(g) { inj.noStream.insert(g); taken.insert(g) }
                for g in stride(from: 17, to: n, by: 1999) where !taken.contains(g) { inj.wrongTime.insert(g); taken.insert(g) }
                t.check(inj.unjoined.count >= 10, "\(name): unjoined split lines to inject (\(inj.unjoined.count), \(unjoinedPieces) records)")
            }
            _ = try writeSyntheticOutput(ds, outDir: outDir, inj: inj)
            let w = try verifyOutputDir(outDir, ds)
            let unjoinedMalformed = unjoinedPieces - inj.unjoined.count   // the parts without the id
            t.check(w.lost == inj.drop.count, "\(name): injected loss detected (\(inj.drop.count) lines)", describe(w))
            t.check(w.duplicated == extras, "\(name): injected duplication detected (\(extras) copies)", describe(w))
            t.check(w.corrupt == inj.corrupt.count + inj.unjoined.count,
                    "\(name): injected corruption detected (\(inj.corrupt.count) lines"
                    + (inj.unjoined.isEmpty ? ")" : ", + \(inj.unjoined.count) last parts of unjoined lines)"), describe(w))
            t.check(w.malformed == inj.garbageLines.count + unjoinedMalformed,
                    "\(name): garbage lines counted as malformed (\(inj.garbageLines.count)"
                    + (inj.unjoined.isEmpty ? ")" : ", + \(unjoinedMalformed) first parts of unjoined lines)"), describe(w))
            t.check(w.wrongStream == inj.wrongStream.count + inj.noStream.count && w.wrongTime == inj.wrongTime.count,
                    "\(name): wrong / missing _source_ (\(inj.wrongStream.count + inj.noStream.count)) and wrong __time__ (\(inj.wrongTime.count)) detected",
                    describe(w))
            let expectBad = inj.corrupt.count + inj.garbageLines.count + unjoinedPieces + inj.wrongStream.count
                + inj.noStream.count + inj.wrongTime.count
            t.check(w.badLines == expectBad, "\(name): bad lines counted once each (\(expectBad))", describe(w))
            t.check(w.delivered == n - inj.drop.count + extras && !w.ok, "\(name): delivered count with faults", describe(w))
            note("      \(name) with faults: " + describe(w))
            if ds.spec.format != nil {
                // a collector that joins nothing at all: every split line is bad, nothing else
                var none = Injection()
                var splitLines = 0, parts = 0
                for f in 0..<ds.spec.fileCount {
                    for l in try syntheticLines(ds, file: f) where l.pieces.count > 1 {
                        none.unjoined.insert(l.g)
                        splitLines += 1
                        parts += l.pieces.count
                    }
                }
                _ = try writeSyntheticOutput(ds, outDir: outDir, inj: none)
                let u = try verifyOutputDir(outDir, ds)
                note("      \(name) with no line joined: " + describe(u))
                t.check(!u.ok && u.badLines >= splitLines && u.badLines <= parts,
                        "\(name): a collector that does not join split lines fails verification (\(splitLines) split lines, \(parts) records)",
                        describe(u))
            }
            removeTree(outDir)
        }

        // --- process plumbing
        let log = dir + "/proc.log"
        do {
            let pid = try spawnChild(path: "/bin/sh", args: ["-c", "echo \"stats=$SLUICE_STATS_FILE\"; echo err >&2; exit 3"],
                                     env: ["PATH=/usr/bin:/bin", "SLUICE_STATS_FILE=/x/y"], logPath: log)
            let e = waitForExit(pid, seconds: 10)
            let text = readSmallFile(log).map { String(decoding: $0, as: UTF8.self) } ?? ""
            t.check(e != nil && e!.exitedNormally && e!.exitCode == 3, "spawn: exit status via wait4", e?.describe ?? "no exit")
            t.check(text.contains("stats=/x/y") && text.contains("err"), "spawn: env passed, stdout+stderr in the log", text)
        }
        do {
            let pid = try spawnChild(path: "/bin/sleep", args: ["30"], env: [], logPath: log)
            sleepMs(50)
            t.check(reapIfExited(pid) == nil, "spawn: child running")
            kill(pid, SIGTERM)
            let e = waitForExit(pid, seconds: 10)
            t.check(e != nil && !e!.exitedNormally && e!.signal == SIGTERM, "spawn: SIGTERM + wait4", e?.describe ?? "no exit")
        }
        do {
            let pid = try spawnChild(path: "/bin/sh", args: ["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"],
                                     env: [], logPath: log)
            let e = waitForExit(pid, seconds: 60)
            t.check(e != nil && e!.cpu.total > 0.01 && e!.maxRSSKiB > 100, "spawn: rusage of the child",
                    e.map { "cpu \($0.cpu.total) rss \($0.maxRSSKiB)" } ?? "no exit")
        }
        do {
            _ = try spawnChild(path: dir + "/no-such-sluice", args: [], env: [], logPath: log)
            t.check(false, "spawn: missing binary is an error")
        } catch {
            t.check("\(error)".contains("no-such-sluice"), "spawn: missing binary is an error", "\(error)")
        }
        do {
            // Make the bench's own peak RSS large, then check that sluice's ru_maxrss does not inherit it.
            let big = UnsafeMutableRawPointer.allocate(byteCount: 256 << 20, alignment: 4096)
            memset(big, 1, 256 << 20)
            big.deallocate()
            let selfPeak = { () -> Int in var ru = rusage(); getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &ru); return Int(ru.ru_maxrss) }()
            let direct = try spawnChild(path: "/bin/sleep", args: ["0.05"], env: [], logPath: log)
            let d = waitForExit(direct, seconds: 10)
            t.check(subreaperEnabled.load(ordering: .relaxed), "bench is a child subreaper")
            let pid = try spawnSluice(path: "/bin/sleep", args: ["30"], env: [], logPath: log)
            sleepMs(50)
            let stat = readSmallFile("/proc/\(pid)/stat").map { String(decoding: $0, as: UTF8.self) } ?? ""
            let ppid = stat.split(separator: ")").last?.split(separator: " ").dropFirst(1).first.flatMap { Int32($0) }
            t.check(ppid == getpid(), "spawnSluice: grandchild re-parented to the bench", "ppid \(String(describing: ppid))")
            let hwm = readVmHWM(pid)
            kill(pid, SIGTERM)
            let e = waitForExit(pid, seconds: 10)
            note("      ru_maxrss: bench \(selfPeak / 1024) MiB; sleep spawned directly \((d?.maxRSSKiB ?? 0) / 1024) MiB, "
                 + "through the shell \(fmt(Double(e?.maxRSSKiB ?? 0) / 1024, 1)) MiB (VmHWM \(hwm ?? -1) KiB)")
            t.check(e != nil && !e!.exitedNormally && e!.signal == SIGTERM, "spawnSluice: SIGTERM + wait4", e?.describe ?? "no exit")
            t.check(e != nil && e!.maxRSSKiB < 16 * 1024 && selfPeak > 200 * 1024,
                    "spawnSluice: ru_maxrss is the child's own, not the bench's")
            let missing = try spawnSluice(path: dir + "/no-such-sluice", args: [], env: [], logPath: log)
            let m = waitForExit(missing, seconds: 10)
            t.check(m != nil && m!.exitedNormally && m!.exitCode == 127, "spawnSluice: missing binary exits 127",
                    m?.describe ?? "no exit")
        }
        t.check(currentEnvironment().contains { $0.hasPrefix("PATH=") }, "environment read from /proc/self/environ")
        unlink(log)

        printReport(settings: nil, raws: raws, results: [])
        if !opts.keep { removeTree(dir) }
    } catch {
        t.check(false, "self-test", "\(error)")
    }
    note(t.failures == 0 ? "SELF-TEST PASSED (\(t.checks) checks)" : "SELF-TEST FAILED (\(t.failures) of \(t.checks) checks)")
    return t.failures == 0 ? 0 : 1
}
