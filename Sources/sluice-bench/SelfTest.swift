// `--self-test` (not in --help): checks the generator, the raw ceilings, the verifier (on a synthetic correct
// output it writes itself, and on outputs with injected loss, duplication, corruption and garbage), the
// helpers, and the process plumbing, without needing sluice.

import Glibc

struct Injection {
    var drop: Set<Int> = []            // global line indices left out
    var extraCopies: [Int: Int] = [:]  // global line index -> extra copies
    var corrupt: Set<Int> = []         // one content byte removed
    var garbageLines: [String] = []    // appended lines that are not valid records
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
        let path = ds.dir + "/" + ds.spec.fileName(f)
        guard let content = readSmallFile(path, limit: Int.max) else { throw BenchError("cannot read \(path)") }
        let pathJSON = jsonString("/var/tmp/in/" + ds.spec.fileName(f))
        try content.withUnsafeBufferPointer { cb in
            let base = cb.baseAddress!
            var off = 0
            var lineIndex = 0
            while off < cb.count {
                let nl = UnsafePointer(memchr(base + off, 0x0A, cb.count - off)!.assumingMemoryBound(to: UInt8.self))
                let line = UnsafeBufferPointer(start: base + off, count: (nl - base) - off)
                off = (nl - base) + 1
                let g = ds.lineBase[f] + lineIndex
                lineIndex += 1
                if inj.drop.contains(g) { continue }
                let copies = 1 + (inj.extraCopies[g] ?? 0)
                for _ in 0..<copies {
                    let variant = g % 4
                    switch variant {
                    case 0: put("{\"__time__\":1700000000,\"__path__\":\(pathJSON),\"__hostname__\":\"h\",\"content\":\"")
                    case 1: put("{\"content\": \"")
                    case 2: put("{\"__time__\":1700000000,\"content\":\"")
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
                    switch variant {
                    case 1: put("\", \"__time__\": 1700000000, \"__path__\": \(pathJSON)}\n")
                    case 2: put("\",\"__path__\":\(pathJSON),\"__hostname__\":\"h\"}\n")
                    default: put("\"}\n")
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
        + "corrupt \(v.corrupt) malformed \(v.malformed) " + v.firstProblems.joined(separator: " | ")
}

func runSelfTest(_ opts: Options, workDir: String) -> Int32 {
    var t = SelfTestRun()
    let dir = workDir + "/selftest"
    var o = opts
    if !opts.sizeGiven { o.sizeMiB = 32 }
    if !opts.manyGiven { o.manyFiles = 40 }
    note("self-test in \(dir): plain 4 x \(o.sizeMiB / 4) MiB, many \(o.manyFiles) x 1 MiB")
    do {
        try mkdirP(dir)
        // --- helpers
        t.check(fmt(3.14159, 2) == "3.14" && fmt(-2.5, 1) == "-2.5" && fmt(1234, 1) == "1234.0"
                && fmt(0.004, 2) == "0.00" && fmt(9.996, 2) == "10.00", "fmt", "\(fmt(3.14159, 2)) \(fmt(9.996, 2))")
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

        // --- raw ceilings
        var raws: [RawRow] = []
        for ds in datasets { raws += try measureRaw(ds, workDir: dir) }
        t.check(raws.count == 4 && raws.allSatisfy { $0.result.lines == $0.dataset.totalLines && $0.result.bytes == $0.dataset.totalBytes },
                "raw ceilings read every byte and counted every line")

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
            t.check(v.ok && v.delivered == ds.totalLines && v.outputLines == ds.totalLines,
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
            _ = try writeSyntheticOutput(ds, outDir: outDir, inj: inj)
            let w = try verifyOutputDir(outDir, ds)
            t.check(w.lost == inj.drop.count, "\(name): injected loss detected (\(inj.drop.count) lines)", describe(w))
            t.check(w.duplicated == extras, "\(name): injected duplication detected (\(extras) copies)", describe(w))
            t.check(w.corrupt == inj.corrupt.count, "\(name): injected corruption detected (\(inj.corrupt.count) lines)", describe(w))
            t.check(w.malformed == inj.garbageLines.count, "\(name): garbage lines counted as malformed (\(inj.garbageLines.count))", describe(w))
            t.check(w.delivered == n - inj.drop.count + extras && !w.ok, "\(name): delivered count with faults", describe(w))
            note("      \(name) with faults: " + describe(w))
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
