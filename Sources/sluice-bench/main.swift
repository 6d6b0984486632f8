// sluice-bench: drives the real `sluice` binary over generated access logs (plain, and wrapped in Docker json-file
// and CRI runtime log files) and prints throughput, CPU per GiB, peak RSS and delivery figures, next to this
// machine's raw read/write ceiling on the same input.
//
// Exit status: 0 all scenarios ran and delivered every line exactly once; 1 a scenario failed (sluice missing,
// timed out, exited non-zero, ...); 2 bad usage; 3 all ran but some lost / duplicated / corrupted lines or stalled.

import Glibc

let usage = """
usage: sluice-bench [options]
  --sluice PATH        sluice binary (default: `sluice` next to this executable)
  --baseline PATH      another sluice binary (e.g. the previous release) run on every scenario too, in turn
                       with --sluice, on the same warm inputs; a comparison of CPU-s/GiB is printed at the end
  --fluent-bit PATH    a Fluent Bit binary run on every scenario that has an equivalent (tail -> file / http / es /
                       loki, its regex multiline parser, parser json, regex parsers), in turn with sluice, on the
                       same warm inputs into the same receivers; a side-by-side table is printed at the end
  --repeat N           run every scenario N times, default 1; with --baseline or --fluent-bit the
                       collectors take turns in a counterbalanced order (A B, B A, A B, ...)
  --size-mib N         size of the plain-lines input and of each other input (docker-json, cri, java, json,
                       csv), 4 files of N/4 MiB each (default 512)
  --many-files N       number of 1 MiB files for the many-files scenario (default 500)
  --work-dir DIR       inputs, run dirs and logs (default /var/tmp/sluice-bench)
  --scenario NAME      plain-file | plain-blackhole | many-files | docker-json | cri | nginx-regex | multiline |
                       multiline-eof | json | delimiter | timestamp | http | http-buffer | elasticsearch | loki | loki-json | otlp |
                       clickhouse | osmem | raw | all
                       (repeatable; default all); 1 to 5 are aliases of the first five;
                       `raw` alone measures only the raw ceilings
                         plain-file       plain lines, input_file -> flusher_file
                         plain-blackhole  plain lines, input_file -> flusher_blackhole
                         many-files       many 1 MiB files of plain lines -> flusher_file
                         docker-json      Docker json-file logs (ContainerLogFormat: docker_json) -> flusher_file
                         cri              CRI (kubelet) logs (ContainerLogFormat: cri) -> flusher_file
                       (docker-json / cri: ~5% of the lines split over 2-3 records, a few % on stderr,
                       sometimes interleaved; every line must come out joined, with its stream and time)
                         nginx-regex      plain lines -> processor_parse_regex_native (10 groups) -> flusher_file
                         multiline        Java logs, ~30% of records with 1-8 continuation lines, Multiline
                                          StartPattern on the date -> flusher_file; every record joined whole, once
                         multiline-eof    the same with FlushTimeoutSecs: 0 (each file's last record emitted at its
                                          end, not 1 s after the file's last write): the joining's own rate
                         json             ~200-byte JSON lines -> processor_parse_json_native -> flusher_file
                         delimiter        nginx-like CSV -> processor_parse_delimiter_native -> flusher_file
                         timestamp        the CSV -> delimiter + processor_parse_timestamp_native (its time field)
                         http             plain lines -> flusher_http (jsonline) -> the bench's counting receiver
                         http-buffer      the same with `Buffer: {Type: disk}` (each batch fsynced to the buffer,
                                          then sent from it; fsyncs/s reported); Fluent Bit: filesystem storage
                                          with storage.sync full and storage.checksum on
                         elasticsearch    plain lines -> flusher_elasticsearch -> the counting receiver (errors:false)
                         loki             plain lines -> flusher_loki (protobuf + snappy, its default) -> the counting
                                          receiver (204)
                         loki-json        the same with PushFormat: json (the body Fluent Bit's loki output sends)
                         otlp             plain lines -> flusher_otlp (HTTP/protobuf, /v1/logs) -> the counting receiver
                                          (Fluent Bit: its opentelemetry output)
                         clickhouse       plain lines -> flusher_clickhouse (JSONEachRow) -> a real clickhouse-server
                         osmem            plain lines -> flusher_elasticsearch -> a real osmem-server
                       (`all` is every scenario but clickhouse and osmem, which start real servers: name them)
  --keep               keep generated inputs and each scenario's run dir (config, data, output)
                       (default: outputs are deleted after each scenario, inputs at the end; inputs already
                       present with the right size are reused)
  --timeout-sec N      per scenario, from handing over the inputs to the last line (default 600)
  --settle-ms N        wait at least this long after starting sluice, then until its input logs `Input
                       started.` (its first directory scan is done), before handing over the inputs (default 300)
  --stall-sec N        give up on a scenario after N s without progress, report it incomplete (default 30)
  --seed N             generator seed (default 42)
  -h, --help
Prints a table and one `BENCH_JSON {...}` line per row on stdout; progress on stderr.
Exit status: 0 every line delivered exactly once; 1 a scenario failed (sluice missing, did not start, exited
early or non-zero, timed out); 2 bad usage; 3 lines lost / duplicated / corrupted, or no progress (incomplete).

"""

struct Options {
    var sluice: String? = nil
    var baseline: String? = nil
    var fluentBit: String? = nil
    var repeats = 1
    var sizeMiB = 512
    var manyFiles = 500
    var workDir = "/var/tmp/sluice-bench"
    var scenarios: [String] = []
    var keep = false
    var timeoutSec = 600.0
    var settleMs = 300.0
    var stallSec = 30.0
    var seed: UInt64 = 42
    var selfTest = false
    var sizeGiven = false
    var manyGiven = false
}

func usageError(_ msg: String) -> Never {
    note("sluice-bench: \(msg)")
    writeAll(fd: 2, usage)
    exit(2)
}

func parseOptions(_ argv: [String]) -> Options {
    var o = Options()
    var i = 0
    func value(_ name: String) -> String {
        i += 1
        guard i < argv.count else { usageError("\(name) needs a value") }
        return argv[i]
    }
    func number(_ name: String, min: Double = 0) -> Double {
        let v = value(name)
        guard let d = Double(v), d >= min else { usageError("\(name): not a valid number: \(v)") }
        return d
    }
    while i < argv.count {
        let a = argv[i]
        let name = a
        switch name {
        case "--sluice": o.sluice = value(name)
        case "--baseline": o.baseline = value(name)
        case "--fluent-bit": o.fluentBit = value(name)
        case "--repeat": o.repeats = Int(number(name, min: 1))
        case "--size-mib": o.sizeMiB = Int(number(name, min: 1)); o.sizeGiven = true
        case "--many-files": o.manyFiles = Int(number(name, min: 1)); o.manyGiven = true
        case "--work-dir": o.workDir = value(name)
        case "--scenario": o.scenarios.append(value(name))
        case "--keep": o.keep = true
        case "--timeout-sec": o.timeoutSec = number(name, min: 1)
        case "--settle-ms": o.settleMs = number(name)
        case "--stall-sec": o.stallSec = number(name, min: 1)
        case "--seed": o.seed = UInt64(number(name))
        case "--self-test": o.selfTest = true
        case "-h", "--help": writeAll(fd: 1, usage); exit(0)
        default: usageError("unknown option \(a)")
        }
        i += 1
    }
    return o
}

func resolveScenarios(_ names: [String]) -> (sluice: [ScenarioSpec], rawOnly: Bool) {
    let defaults = allScenarios.filter { $0.flusher != .clickhouse && $0.flusher != .osmem }
    if names.isEmpty { return (defaults, false) }
    var chosen: [String] = []
    var raw = false
    for n in names {
        switch n {
        case "all": chosen += defaults.map(\.name)
        case "1": chosen.append("plain-file")
        case "2": chosen.append("plain-blackhole")
        case "3": chosen.append("many-files")
        case "4": chosen.append("docker-json")
        case "5": chosen.append("cri")
        case "raw": raw = true
        default:
            guard allScenarios.contains(where: { $0.name == n }) else {
                usageError("unknown scenario \(n) (" + allScenarios.map(\.name).joined(separator: ", ") + ", raw, all)")
            }
            chosen.append(n)
        }
    }
    let list = allScenarios.filter { chosen.contains($0.name) }
    return (list, raw && list.isEmpty)
}

func datasetSpecs(_ o: Options) -> [String: DatasetSpec] {
    [
        "plain": DatasetSpec(name: "plain", fileCount: 4, bytesPerFile: o.sizeMiB * 1048576 / 4, seed: o.seed),
        "many": DatasetSpec(name: "many", fileCount: o.manyFiles, bytesPerFile: 1048576, seed: o.seed &+ 1),
        "docker": DatasetSpec(name: "docker", fileCount: 4, bytesPerFile: o.sizeMiB * 1048576 / 4, seed: o.seed &+ 2,
                              format: .dockerJSON),
        "cri": DatasetSpec(name: "cri", fileCount: 4, bytesPerFile: o.sizeMiB * 1048576 / 4, seed: o.seed &+ 3,
                           format: .cri),
        "java": DatasetSpec(name: "java", fileCount: 4, bytesPerFile: o.sizeMiB * 1048576 / 4, seed: o.seed &+ 4, content: .java),
        "json": DatasetSpec(name: "json", fileCount: 4, bytesPerFile: o.sizeMiB * 1048576 / 4, seed: o.seed &+ 5, content: .json),
        "csv": DatasetSpec(name: "csv", fileCount: 4, bytesPerFile: o.sizeMiB * 1048576 / 4, seed: o.seed &+ 6, content: .csv,
                           timeBase: csvTimeBase()),
    ]
}

/// Every dataset, in the order they are prepared and reported.
let datasetOrder = ["plain", "many", "docker", "cri", "java", "json", "csv"]

/// Measures (a) and (b) on a dataset, warm; each is the median of `rawRepetitions` runs. Runtime log datasets
/// only have file-flusher scenarios: (a) only.
let rawRepetitions = 3

/// How long (a) waits after deleting the previous run's output before it writes again. A collector's run writes
/// its output seconds after the bench deleted the one before (start-up, the warm-up read): on a VM that hands
/// freed memory back to its host within about a second (free page reporting, as on the machines this bench is
/// run on), the page cache it writes into is then made of pages the host must fault in again, at several times
/// the system time of pages reused at once. (a) waits as long, so it is measured as the collectors are.
let rawFreedPagesWaitMs = 2000.0

func measureRaw(_ ds: Dataset, workDir: String) throws -> [RawRow] {
    let rawDir = workDir + "/raw"
    try mkdirP(rawDir)
    var rows: [RawRow] = []
    var warm = ds
    for toFile in ds.spec.format == nil && ds.spec.content == .nginx ? [true, false] : [true] {
        var runs: [RawResult] = []
        let target = toFile ? rawDir + "/raw-\(ds.spec.name).out" : "/dev/null"
        for _ in 0..<rawRepetitions {
            sync()
            try scanDataset(&warm, dir: ds.dir, recordLengths: false)
            if toFile { sleepMs(rawFreedPagesWaitMs) }
            runs.append(try rawCeiling(ds, dir: ds.dir, outPath: target))
            if toFile { unlink(target) }
        }
        // Once more at once, into the pages the last run's output has just freed: what the page cache costs
        // when its pages are not new to the VM (printed, not used as the ceiling).
        var reused: RawResult? = nil
        if toFile {
            reused = try rawCeiling(ds, dir: ds.dir, outPath: target)
            unlink(target)
        }
        runs.sort { $0.wall < $1.wall }
        let row = RawRow(dataset: ds, toFile: toFile, result: runs[runs.count / 2])
        var text = "[\(row.name)] \(fmt(row.mbPerSec, 1)) MB/s, \(fmt(row.cpuPerGiB, 3)) CPU-s/GiB (median of \(rawRepetitions); "
            + "runs: " + runs.map { fmt($0.mbPerSec, 0) }.joined(separator: ", ") + " MB/s)"
        if let r = reused {
            text += "; written at once into the pages just freed: \(fmt(r.mbPerSec, 0)) MB/s, \(fmt(r.cpuPerGiB, 3)) CPU-s/GiB "
                + "(system \(fmt(r.sysPerGiB, 3)) vs \(fmt(row.result.sysPerGiB, 3)) s/GiB)"
        }
        note(text)
        rows.append(row)
    }
    removeTree(rawDir)
    sync()
    return rows
}

/// An interrupted run leaves inputs in runs/<scenario>/in: move them back to their staging dir so they can be reused.
func recoverInputs(_ workDir: String) {
    for run in listDir(workDir + "/runs") {
        let inDir = workDir + "/runs/" + run + "/in"
        for name in listDir(inDir) {
            for ds in datasetOrder where name.hasPrefix(ds + "-") && name.hasSuffix(".log") {
                let dest = workDir + "/inputs/" + ds + "/" + name
                if statPath(workDir + "/inputs/" + ds)?.isDir == true && !fileExists(dest) {
                    _ = rename(inDir + "/" + name, dest)
                }
            }
        }
    }
}

func mainEntry() -> Int32 {
    // `--opt=value` is the same as `--opt value`
    var argv: [String] = []
    for a in CommandLine.arguments.dropFirst() {
        if a.hasPrefix("--"), let eq = a.firstIndex(of: "=") {
            argv.append(String(a[..<eq]))
            argv.append(String(a[a.index(after: eq)...]))
        } else {
            argv.append(a)
        }
    }
    let opts = parseOptions(argv)
    installSignalHandlers()
    if becomeChildSubreaper() {
        subreaperEnabled.store(true, ordering: .relaxed)
    } else {
        note("sluice-bench: warning: cannot become child subreaper; sluice's peak RSS will include the bench's own")
    }
    let workDir = absolutePath(opts.workDir)
    if opts.selfTest { return runSelfTest(opts, workDir: workDir) }

    var (scenarios, rawOnly) = resolveScenarios(opts.scenarios)
    let fluentBitPath = opts.fluentBit.map(absolutePath)
    if let f = fluentBitPath {
        guard let info = statPath(f), info.isRegular, access(f, X_OK) == 0 else {
            note("sluice-bench: Fluent Bit binary not found or not executable: \(f)")
            return 1
        }
    }

    // Locate sluice first: fail before spending time on inputs.
    var sluicePath = ""
    if !scenarios.isEmpty {
        if let p = opts.sluice {
            sluicePath = absolutePath(p)
        } else if let me = selfExecutablePath() {
            sluicePath = dirName(me) + "/sluice"
        }
        guard let info = statPath(sluicePath), info.isRegular, access(sluicePath, X_OK) == 0 else {
            note("sluice-bench: sluice binary not found or not executable: \(sluicePath)")
            note("  build it (swift build -c release --product sluice) or pass --sluice PATH")
            return 1
        }
    }
    _ = rawOnly
    let baselinePath = opts.baseline.map(absolutePath)
    if let b = baselinePath {
        guard let info = statPath(b), info.isRegular, access(b, X_OK) == 0 else {
            note("sluice-bench: baseline binary not found or not executable: \(b)")
            return 1
        }
    }

    do {
        try mkdirP(workDir)
        recoverInputs(workDir)
        removeTree(workDir + "/runs")   // leftovers of an interrupted run
        let specs = datasetSpecs(opts)
        var needed: [String] = []
        for s in scenarios where !needed.contains(s.dataset) { needed.append(s.dataset) }
        if scenarios.isEmpty { needed = datasetOrder }

        var datasets: [String: Dataset] = [:]
        for name in needed {
            var ds = try ensureDataset(specs[name]!, dir: workDir + "/inputs/" + name)
            try scanDataset(&ds, dir: ds.dir, recordLengths: true)
            datasets[name] = ds
        }

        var raws: [RawRow] = []
        for name in needed { raws += try measureRaw(datasets[name]!, workDir: workDir) }
        for spec in scenarios {
            guard let pattern = spec.ceilingRegex else { continue }
            let ds = datasets[spec.dataset]!
            var warm = ds
            var runs: [RawResult] = []
            for _ in 0..<rawRepetitions {
                try scanDataset(&warm, dir: ds.dir, recordLengths: false)
                runs.append(try regexCeiling(ds, dir: ds.dir, pattern: pattern))
            }
            runs.sort { $0.wall < $1.wall }
            let row = RawRow(dataset: ds, toFile: false, result: runs[runs.count / 2], label: "regex-jit[\(spec.name)]")
            note("[\(row.name)] PCRE2 JIT alone: \(fmt(row.mbPerSec, 1)) MB/s, \(fmt(row.cpuPerGiB, 3)) CPU-s/GiB (median of \(rawRepetitions))")
            raws.append(row)
        }

        var settings = RunSettings(sluicePath: sluicePath, workDir: workDir, timeoutSec: opts.timeoutSec,
                                   settleMs: opts.settleMs, stallSec: opts.stallSec, pollMs: 10,
                                   stopGraceSec: min(60, opts.timeoutSec), keep: opts.keep)
        settings.fluentBitPath = fluentBitPath
        // The network scenarios' servers.
        let net = NetContext()
        defer { net.stop() }
        for spec in scenarios {
            if let m = spec.flusher.receiverMode, net.receivers[m] == nil {
                net.receivers[m] = try CountingReceiver(mode: m, ds: datasets[spec.dataset]!)
                note("receiver (\(m)) listening on 127.0.0.1:\(net.receivers[m]!.port)")
            }
            if spec.flusher == .clickhouse && net.clickhouse == nil {
                net.clickhouse = try ClickHouseServer.start(workDir: workDir)
                if let c = net.clickhouse { note("clickhouse-server on 127.0.0.1:\(c.httpPort)") }
                else { note("sluice-bench: clickhouse-server is not installed: skipping the clickhouse scenario") }
            }
            if spec.flusher == .osmem && net.osmemPid == nil {
                if let (pid, port) = try startOsmem(workDir: workDir) {
                    net.osmemPid = pid; net.osmemPort = port
                    note("osmem-server on 127.0.0.1:\(port)")
                } else { note("sluice-bench: \(osmemBinary) not found: skipping the osmem scenario") }
            }
        }
        scenarios.removeAll { ($0.flusher == .clickhouse && net.clickhouse == nil) || ($0.flusher == .osmem && net.osmemPid == nil) }
        // The network ceiling: each dataset of an HTTP-family scenario, sent as it is to the counting receiver.
        var httpDatasets: [String] = []
        for spec in scenarios where spec.flusher.receiverMode != nil && !httpDatasets.contains(spec.dataset) {
            httpDatasets.append(spec.dataset)
        }
        for name in httpDatasets {
            let ds = datasets[name]!
            let receiver = try net.receivers[.http] ?? CountingReceiver(mode: .http, ds: ds)
            var warm = ds
            var runs: [RawResult] = []
            for _ in 0..<rawRepetitions {
                try scanDataset(&warm, dir: ds.dir, recordLengths: false)
                runs.append(try rawHTTPCeiling(ds, dir: ds.dir, receiver: receiver))
            }
            if net.receivers[.http] == nil { receiver.stop() }
            runs.sort { $0.wall < $1.wall }
            let row = RawRow(dataset: ds, toFile: false, result: runs[runs.count / 2], label: "raw-http[\(name)]")
            note("[\(row.name)] read + POST as is over loopback: \(fmt(row.mbPerSec, 1)) MB/s, \(fmt(row.cpuPerGiB, 3)) CPU-s/GiB "
                + "(user \(fmt(row.result.cpu.user / row.result.gib, 3)), system \(fmt(row.result.sysPerGiB, 3)); median of \(rawRepetitions))")
            raws.append(row)
        }
        settings.net = net
        var results: [ScenarioResult] = []
        var comparison: [(name: String, baseline: [Double], current: [Double])] = []
        for spec in scenarios {
            var cpuBase: [Double] = [], cpuNew: [Double] = []
            for round in 0..<opts.repeats {
                var runs: [(String?, RunSettings)] = [(nil, settings)]
                if let b = baselinePath {
                    var bs = settings
                    bs.sluicePath = b
                    runs.insert(("baseline", bs), at: 0)
                }
                var collectorRuns: [(String?, RunSettings, Collector)] = runs.map { ($0.0, $0.1, .sluice) }
                if fluentBitPath != nil, fluentBitConfig(spec, datasets[spec.dataset]!, inDir: "", outDir: "", port: 0) != nil {
                    collectorRuns.append(("fluent-bit", settings, .fluentBit))
                }
                // Counterbalanced order (A B, B A, A B, ...), so that each collector follows the
                // other as often as it follows itself: what a run costs depends on the one before
                // (measured on a VM whose balloon reports free pages to the host: a short run right
                // after another writes its output into just-freed, still-backed pages and spends
                // a third of the system time of one that follows a long run or a pause).
                if round % 2 == 1 { collectorRuns.reverse() }
                for (label, st, collector) in collectorRuns {
                    var r = runScenario(spec, datasets[spec.dataset]!, st, collector: collector)
                    if collector == .fluentBit { r.spec.name += " (fluent-bit)" }
                    if let l = label, collector == .sluice { r.spec.name += " (\(l))" }
                    var line = "[\(r.spec.name)] \(r.status)"
                    if let m = mbPerSec(r) { line += ", \(fmt(m, 1)) MB/s" }
                    if let c = cpuPerGiB(r) {
                        line += ", \(fmt(c, 3)) CPU-s/GiB"
                        if collector == .sluice { if label == nil { cpuNew.append(c) } else { cpuBase.append(c) } }
                    }
                    if let o = r.otherLoad { line += ", other load \(fmt(o, 2)) cores" }
                    if let e = r.error { line += ": \(e)" }
                    note(line)
                    if r.status == "failed" { note("[\(r.spec.name)] log: \(r.logPath)") }
                    results.append(r)
                }
            }
            comparison.append((spec.name, cpuBase, cpuNew))
        }

        printReport(settings: scenarios.isEmpty ? nil : settings, raws: raws, results: results)
        if fluentBitPath != nil { printSideBySide(results) }
        if let b = baselinePath {
            func median(_ v: [Double]) -> Double? { v.isEmpty ? nil : v.sorted()[v.count / 2] }
            writeAll(fd: 1, "\nCPU-s/GiB, median of \(opts.repeats) run(s) each: baseline \(b) vs \(sluicePath)\n")
            for c in comparison {
                guard let mb = median(c.baseline), let mn = median(c.current) else { continue }
                let delta = (mn - mb) / mb * 100
                writeAll(fd: 1, "  \(c.name): baseline \(fmt(mb, 3)), now \(fmt(mn, 3)) (\(delta >= 0 ? "+" : "")\(fmt(delta, 1)) %)\n")
                writeAll(fd: 1, "BENCH_COMPARE {\"scenario\":\"\(c.name)\",\"baseline_cpu_s_per_gib\":\(fmt(mb, 4)),\"cpu_s_per_gib\":\(fmt(mn, 4)),\"delta_percent\":\(fmt(delta, 2))}\n")
            }
        }

        if !opts.keep {
            for name in needed { removeTree(workDir + "/inputs/" + name) }
        }
        if results.contains(where: { $0.status == "failed" }) { return 1 }
        if results.contains(where: { $0.status != "ok" }) { return 3 }
        return 0
    } catch {
        note("sluice-bench: \(error)")
        return 1
    }
}

exit(mainEntry())
