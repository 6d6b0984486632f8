// The printed table and the BENCH_JSON lines.

import Glibc

struct RawRow {
    var dataset: Dataset
    var toFile: Bool          // (a) file on the same fs, else (b) /dev/null
    var result: RawResult
    /// Set for a scenario's own ceiling (e.g. `regex-jit[nginx-regex]`).
    var label: String? = nil
    var name: String { label ?? ((toFile ? "raw-file" : "raw-null") + "[" + dataset.spec.name + "]") }
    /// (a), (b) or (c): which raw loop this is.
    var letter: String { toFile ? "(a)" : label?.hasPrefix("raw-http") == true ? "(c)" : "(b)" }
    var target: String { toFile ? "file" : label?.hasPrefix("raw-http") == true ? "http" : "/dev/null" }
    var mbPerSec: Double { result.mbPerSec }
    var cpuPerGiB: Double { result.cpuPerGiB }
}

func mbPerSec(_ r: ScenarioResult) -> Double? {
    guard let w = r.wall, w > 0 else { return nil }
    return Double(r.dataset.totalBytes) / w / 1e6
}

/// CPU seconds (`seconds` of the run's times) per GiB of input.
private func perGiB(_ r: ScenarioResult, _ seconds: (CPUTimes) -> Double) -> Double? {
    guard let c = r.cpu else { return nil }
    return seconds(c) / (Double(r.dataset.totalBytes) / 1073741824)
}

func cpuPerGiB(_ r: ScenarioResult) -> Double? { perGiB(r) { $0.total } }

/// User CPU alone per GiB: the collector's own work, without the kernel's (page cache, sockets),
/// which on a VM moves with what ran before.
func userPerGiB(_ r: ScenarioResult) -> Double? { perGiB(r) { $0.user } }

/// The raw ceiling a scenario is compared with: (a) for the file flusher, (c) for the HTTP family (the receiver's
/// scenarios), (b) for the others.
func rawReference(_ r: ScenarioResult, _ raws: [RawRow]) -> RawRow? {
    if r.spec.flusher.receiverMode != nil, let c = raws.first(where: { $0.label == "raw-http[\(r.dataset.spec.name)]" }) {
        return c
    }
    return raws.first { $0.label == nil && $0.dataset.spec.name == r.dataset.spec.name && $0.toFile == (r.spec.flusher == .file) }
}

func printTable(_ headers: [String], _ rows: [[String]], leftColumns: Set<Int>) {
    var widths = headers.map { $0.count }
    for row in rows { for (i, c) in row.enumerated() { widths[i] = max(widths[i], c.count) } }
    func line(_ cells: [String]) -> String {
        var s = ""
        for (i, c) in cells.enumerated() {
            if i > 0 { s += "  " }
            s += leftColumns.contains(i) ? padRight(c, widths[i]) : padLeft(c, widths[i])
        }
        while s.hasSuffix(" ") { s.removeLast() }
        return s
    }
    out(line(headers))
    out(String(repeating: "-", count: widths.reduce(0, +) + 2 * (widths.count - 1)))
    for row in rows { out(line(row)) }
}

func opt(_ x: Double?, _ d: Int) -> String { x.map { fmt($0, d) } ?? "-" }
func opt(_ x: Int?) -> String { x.map { String($0) } ?? "-" }

func printReport(settings: RunSettings?, raws: [RawRow], results: [ScenarioResult]) {
    out("")
    out("sluice-bench results")
    if let s = settings { out("  sluice:   \(s.sluicePath)") }
    out("  cores:    \(sysconf(Int32(_SC_NPROCESSORS_ONLN))); work dir on the same file system as the outputs")
    out("  cache:    warm page cache, not dropped: every input is read once right before each measurement (sluice and raw alike)")
    out("  MB/s:     input bytes / wall seconds, MB = 10^6 bytes; wall = from renaming the inputs into the watched dir until")
    out("            the last line was delivered (file flusher: output's mtime when its line count reached the input's;")
    out("            blackhole: interpolated between samples of events_out in SLUICE_STATS_FILE, written every 200 ms)")
    out("  CPU-s/GiB: sluice = user+sys from wait4 rusage over its whole life (start-up, idle wait, drain; nothing subtracted);")
    out("            raw = getrusage(self) around the loop.")
    out("  peak RSS: ru_maxrss of sluice from wait4 (sluice is started through /bin/sh as a re-parented grandchild, so its")
    out("            ru_maxrss does not inherit the bench's own peak, which Linux carries across vfork+exec)")
    out("  raw (a):  read(2) 1 MiB buffer + memchr line count + write(2) to a file in the work dir; raw (b): same to /dev/null;")
    out("            each the median of \(rawRepetitions) runs. (a) writes \(Int(rawFreedPagesWaitMs)) ms after the previous output was")
    out("            deleted, as the collectors do (seconds after): on a VM that returns freed memory to its host, pages")
    out("            freed a moment before are far cheaper to write into; the log line of each (a) row gives both.")
    out("  raw (c):  read(2) 1 MiB buffer + memchr, each read's whole lines POSTed as they are over one keep-alive loopback")
    out("            connection to the counting receiver, waiting for each answer (no encoding, no client library);")
    out("            CPU of that thread alone (RUSAGE_THREAD; the receiver is in the bench's process).")
    out("  % of raw: sluice MB/s / raw MB/s on the same input; file flusher vs (a), HTTP family vs (c), blackhole vs (b).")
    out("  lost / dup / bad: from parsing the output (each input line's id must appear exactly once; bad = content")
    out("            length differs from the input line, or no parsable content/id; docker_json / cri also: _source_ not the")
    out("            line's stream, or __time__ not the runtime's); blackhole: from events_out only.")
    out("  other load: cores busy in /proc/stat while the collector ran, minus the collector's and the bench's own CPU")
    out("            (the bench's receiver threads are the bench's own; a clickhouse-server or osmem-server is other load).")
    out("  network:  delivered / lost / dup from the ids the counting receiver found in the bodies (clickhouse: rows and")
    out("            distinct ids in the table; osmem: the index's document count only). End: the last id received")
    out("            (clickhouse, osmem: the count polled every 250 ms, so up to 250 ms late).")
    out("  fluent-bit rows: the same inputs, warm, already in place when it starts (its clock starts at its spawn).")
    out("  docker_json / cri inputs: runtime log files of the same source lines, ~5% split over 2-3 records (Docker:")
    out("            `log` without its trailing \\n; CRI: P ... F), a few % on stderr, sometimes a line of the other stream")
    out("            between the parts; MB/s and CPU-s/GiB are per byte of those files; lines = source lines (joined),")
    out("            raw rows count records.")
    out("")
    let headers = ["scenario", "flusher", "input", "MB/s", "CPU-s/GiB", "peak RSS MiB",
                   "delivered/expected", "lost", "dup", "bad", "% of raw", "other load", "status"]
    var rows: [[String]] = []
    for r in raws {
        rows.append([r.name, r.letter + " " + r.target, r.dataset.describe,
                     fmt(r.mbPerSec, 1), fmt(r.cpuPerGiB, 3), "-", "\(r.result.lines)/\(r.dataset.totalRecords)",
                     "-", "-", "-", "-", "-", "ok"])
    }
    for r in results {
        let ref = rawReference(r, raws)
        var pct = "-"
        if let m = mbPerSec(r), let ref { pct = fmt(100 * m / ref.mbPerSec, 1) + "% " + ref.letter }
        let corrupt = r.verify.map { String($0.badLines) } ?? "-"
        rows.append([r.spec.name, r.spec.flusher.rawValue, r.dataset.describe,
                     opt(mbPerSec(r), 1), opt(cpuPerGiB(r), 3),
                     opt(r.maxRSSKiB.map { Double($0) / 1024 }, 1),
                     "\(opt(r.delivered))/\(r.dataset.totalLines)", opt(r.lost), opt(r.duplicated), corrupt,
                     pct, opt(r.otherLoad, 2), r.status.uppercased() == "OK" ? "ok" : r.status.uppercased()])
    }
    printTable(headers, rows, leftColumns: [0, 1, 2, 12])
    for r in results where r.status != "ok" || !(r.verify?.firstProblems.isEmpty ?? true) {
        out("")
        out("\(r.spec.name): \(r.status)" + (r.error.map { ": " + $0 } ?? ""))
        if let v = r.verify {
            out("  output: \(v.outputLines) lines, \(v.outputBytes) bytes; unique ids \(v.unique) of \(v.expected); "
                + "lost \(v.lost), duplicated \(v.duplicated), corrupt \(v.corrupt), malformed \(v.malformed)"
                + (r.dataset.spec.format != nil ? ", wrong _source_ \(v.wrongStream), wrong __time__ \(v.wrongTime)" : ""))
            for p in v.firstProblems { out("  e.g. " + p) }
        }
        if let e = r.eventsOut, r.spec.flusher == .blackhole { out("  events_out \(e), expected \(r.dataset.totalLines)") }
        out("  sluice log: \(r.logPath)")
    }
    for r in results {
        guard let n = r.fsyncs, let w = r.wall, w > 0 else { continue }
        out("")
        out("\(r.spec.name): the disk buffer fsynced \(n) times in \(fmt(w, 2)) s: \(fmt(Double(n) / w, 1)) fsyncs/s")
    }
    out("")
    for r in raws { out("BENCH_JSON " + rawJSON(r)) }
    for r in results { out("BENCH_JSON " + scenarioJSON(r, rawReference(r, raws))) }
}

func rawJSON(_ r: RawRow) -> String {
    var f: [(String, String)] = []
    f.append(("scenario", jsonString(r.name)))
    f.append(("kind", jsonString("raw")))
    f.append(("target", jsonString(r.target)))
    f.append(("dataset", jsonString(r.dataset.spec.name)))
    f.append(("format", r.dataset.spec.format.map { jsonString($0.rawValue) } ?? jsonString("plain")))
    f.append(("files", String(r.dataset.spec.fileCount)))
    f.append(("input_bytes", String(r.result.bytes)))
    f.append(("lines", String(r.result.lines)))
    f.append(("wall_sec", fmt(r.result.wall, 6)))
    f.append(("mb_per_sec", fmt(r.mbPerSec, 1)))
    f.append(("cpu_user_sec", fmt(r.result.cpu.user, 3)))
    f.append(("cpu_sys_sec", fmt(r.result.cpu.sys, 3)))
    f.append(("cpu_sec_per_gib", fmt(r.cpuPerGiB, 3)))
    f.append(("warm_cache", "true"))
    f.append(("status", jsonString("ok")))
    return "{" + f.map { jsonString($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
}

func scenarioJSON(_ r: ScenarioResult, _ ref: RawRow?) -> String {
    var f: [(String, String)] = []
    func i(_ x: Int?) -> String { x.map { String($0) } ?? "null" }
    f.append(("scenario", jsonString(r.spec.name)))
    f.append(("kind", jsonString(r.collectorName)))
    f.append(("other_load_cores", jsonNumber(r.otherLoad, 2)))
    f.append(("flusher", jsonString(r.spec.flusher.rawValue)))
    f.append(("dataset", jsonString(r.dataset.spec.name)))
    f.append(("format", r.dataset.spec.format.map { jsonString($0.rawValue) } ?? jsonString("plain")))
    f.append(("files", String(r.dataset.spec.fileCount)))
    f.append(("input_bytes", String(r.dataset.totalBytes)))
    f.append(("input_records", String(r.dataset.totalRecords)))
    f.append(("lines_expected", String(r.dataset.totalLines)))
    f.append(("wall_sec", jsonNumber(r.wall, 6)))
    f.append(("end_method", r.endMethod.isEmpty ? "null" : jsonString(r.endMethod)))
    f.append(("detected_sec", jsonNumber(r.detected, 3)))
    f.append(("mb_per_sec", jsonNumber(mbPerSec(r), 1)))
    f.append(("cpu_user_sec", jsonNumber(r.cpu?.user, 3)))
    f.append(("cpu_sys_sec", jsonNumber(r.cpu?.sys, 3)))
    f.append(("cpu_sec_per_gib", jsonNumber(cpuPerGiB(r), 3)))
    f.append(("peak_rss_mib", jsonNumber(r.maxRSSKiB.map { Double($0) / 1024 }, 1)))
    f.append(("vmhwm_sampled_mib", jsonNumber(r.hwmSampledKiB.map { Double($0) / 1024 }, 1)))
    f.append(("minor_faults", i(r.minorFaults)))
    f.append(("lines_delivered", i(r.delivered)))
    f.append(("lines_unique", i(r.verify?.unique)))
    f.append(("lost", i(r.lost)))
    f.append(("duplicated", i(r.duplicated)))
    f.append(("corrupt", i(r.verify?.corrupt)))
    f.append(("malformed", i(r.verify?.malformed)))
    f.append(("wrong_stream", i(r.verify?.wrongStream)))
    f.append(("wrong_time", i(r.verify?.wrongTime)))
    f.append(("bad", i(r.verify?.badLines)))
    f.append(("events_out", i(r.eventsOut)))
    f.append(("raw_ref", ref.map { jsonString($0.name) } ?? "null"))
    f.append(("raw_mb_per_sec", jsonNumber(ref?.mbPerSec, 1)))
    var pct: Double? = nil
    if let m = mbPerSec(r), let ref { pct = 100 * m / ref.mbPerSec }
    f.append(("pct_of_raw", jsonNumber(pct, 1)))
    f.append(("warm_cache", "true"))
    f.append(("status", jsonString(r.status)))
    f.append(("error", r.error.map { jsonString($0) } ?? "null"))
    f.append(("log", jsonString(r.logPath)))
    return "{" + f.map { jsonString($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
}

/// Sluice and Fluent Bit per scenario: medians over the repeats, and Fluent Bit's CPU-s/GiB over Sluice's.
func printSideBySide(_ results: [ScenarioResult]) {
    /// (an even count: the mean of the middle two)
    func median(_ v: [Double]) -> Double? {
        if v.isEmpty { return nil }
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
    var names: [String] = []
    for r in results where !names.contains(r.dataset.spec.name + "\u{0}" + baseScenarioName(r)) {
        names.append(r.dataset.spec.name + "\u{0}" + baseScenarioName(r))
    }
    out("")
    out("Sluice vs Fluent Bit (medians of the runs that delivered every line: ok, or mismatch = delivered but some lines")
    out("cut / joined wrong; MB/s, CPU-s/GiB of the collector's process, peak RSS MiB; verified runs = ok / all;")
    out("user CPU ratio: the same ratio of user CPU alone, without the kernel's page cache and socket work)")
    let headers = ["scenario", "sluice MB/s", "CPU-s/GiB", "RSS", "verified", "fluent-bit MB/s", "CPU-s/GiB", "RSS", "verified",
                   "FB CPU / sluice CPU", "user CPU ratio", "other load max"]
    var rows: [[String]] = []
    for key in names {
        let name = String(key.split(separator: "\u{0}").last!)
        let mine = results.filter { baseScenarioName($0) == name }
        let s = mine.filter { $0.collector == .sluice }, f = mine.filter { $0.collector == .fluentBit }
        func col(_ rs: [ScenarioResult]) -> [String] {
            let done = rs.filter { $0.status == "ok" || ($0.status == "mismatch" && $0.lost == 0) }
            let ok = rs.filter { $0.status == "ok" }
            return [opt(median(done.compactMap(mbPerSec)), 1), opt(median(done.compactMap(cpuPerGiB)), 2),
                    opt(median(done.compactMap { $0.maxRSSKiB.map { Double($0) / 1024 } }), 0), "\(ok.count)/\(rs.count)"]
        }
        func done(_ rs: [ScenarioResult]) -> [ScenarioResult] { rs.filter { $0.status == "ok" || ($0.status == "mismatch" && $0.lost == 0) } }
        /// Fluent Bit's median over Sluice's, of `per` (CPU-s/GiB, total or user).
        func ratio(_ per: (ScenarioResult) -> Double?) -> String {
            guard let a = median(done(s).compactMap(per)), let b = median(done(f).compactMap(per)), a > 0 else { return "-" }
            return fmt(b / a, 1) + "x"
        }
        rows.append([name] + col(s) + col(f) + [ratio(cpuPerGiB), ratio(userPerGiB), opt(mine.compactMap(\.otherLoad).max(), 2)])
    }
    printTable(headers, rows, leftColumns: [0])
    for r in results where r.collector == .fluentBit && r.status != "ok" {
        out("  \(r.spec.name): \(r.status)" + (r.error.map { ": " + $0 } ?? "")
            + (r.verify.map { " (lost \($0.lost), dup \($0.duplicated), bad \($0.badLines))" } ?? ""))
    }
}

func baseScenarioName(_ r: ScenarioResult) -> String {
    var n = r.spec.name
    for suffix in [" (fluent-bit)", " (baseline)"] where n.hasSuffix(suffix) { n.removeLast(suffix.count) }
    return n
}
