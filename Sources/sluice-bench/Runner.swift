// Starts the real sluice binary with posix_spawn, feeds it the inputs, detects completion, stops it with
// SIGTERM and collects its rusage with wait4.

import Glibc
import Synchronization

/// The running child, for the SIGINT / SIGTERM handler of the bench itself.
let currentChild = Atomic<Int32>(0)

func installSignalHandlers() {
    currentChild.store(0, ordering: .relaxed)
    let handler: @convention(c) (Int32) -> Void = { sig in
        let pid = currentChild.load(ordering: .relaxed)
        if pid > 0 { kill(pid, SIGKILL) }
        let msg = "sluice-bench: interrupted, child killed\n"
        _ = msg.withCString { write(2, $0, strlen($0)) }
        _exit(128 + sig)
    }
    signal(SIGINT, handler)
    signal(SIGTERM, handler)
    signal(SIGHUP, handler)
    signal(SIGPIPE, SIG_IGN)
}

/// The bench's environment, read from /proc/self/environ (the C global `environ` is not usable from Swift 6).
func currentEnvironment() -> [String] {
    guard let bytes = readSmallFile("/proc/self/environ", limit: 16 << 20) else { return [] }
    return bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
}

struct SpawnError: Error, CustomStringConvertible {
    var description: String
}

/// Starts `path` with `args` (argv[1...]); stdin from /dev/null, stdout and stderr appended to `logPath`.
/// The child gets its own process group and default signal dispositions.
func spawnChild(path: String, args: [String], env: [String], logPath: String,
                extraFd: (from: Int32, to: Int32)? = nil) throws -> pid_t {
    var fa = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&fa)
    defer { posix_spawn_file_actions_destroy(&fa) }
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&fa, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&fa, 1, 2)
    if let x = extraFd { posix_spawn_file_actions_adddup2(&fa, x.from, x.to) }

    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attr, &empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for s in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT] { sigaddset(&defaults, s) }
    posix_spawnattr_setsigdefault(&attr, &defaults)
    posix_spawnattr_setpgroup(&attr, 0)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
    let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
    defer {
        for p in argv { free(p) }
        for p in envp { free(p) }
    }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &fa, &attr, argv, envp)
    if rc != 0 {
        throw SpawnError(description: "cannot start \(path): \(errnoText(rc))")
    }
    currentChild.store(pid, ordering: .relaxed)
    return pid
}

// MARK: - Spawning sluice so that its ru_maxrss is its own
//
// Linux keeps the largest RSS a process ever had across exec: a child started with posix_spawn (vfork + exec)
// starts with the *bench's* peak RSS as its ru_maxrss (the bench maps GBs of output to verify it). So sluice is
// started as a grandchild: /bin/sh (spawned by us) starts it in the background and exits; the grandchild was
// forked from the small shell, so its ru_maxrss starts at the shell's size (~1-2 MiB). With the bench marked as
// child subreaper, the orphaned sluice is re-parented to the bench, which can then wait4 it for its rusage.

/// PR_SET_CHILD_SUBREAPER via prctl (variadic in C, so called through its address with a fixed prototype).
func becomeChildSubreaper() -> Bool {
    guard let sym = dlsym(nil, "prctl") else { return false }
    typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
    let prctlFn = unsafeBitCast(sym, to: Prctl.self)
    let PR_SET_CHILD_SUBREAPER: Int32 = 36
    return prctlFn(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
}

/// Set once by main: whether sluice can be started as a re-parented grandchild.
let subreaperEnabled = Atomic<Bool>(false)

/// Starts `path args` as a grandchild through /bin/sh (see above) when the bench is a subreaper, else directly.
/// Returns the pid of sluice itself, which is (or is about to become) the bench's child.
func spawnSluice(path: String, args: [String], env: [String], logPath: String) throws -> pid_t {
    guard subreaperEnabled.load(ordering: .relaxed) else {
        return try spawnChild(path: path, args: args, env: env, logPath: logPath)
    }
    var fds: [Int32] = [-1, -1]
    if pipe(&fds) != 0 { throw SpawnError(description: "pipe: \(errnoText())") }
    _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
    _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
    defer { close(fds[0]) }
    // $0 is sluice, "$@" its arguments; fd 3 carries the background pid back and is closed for sluice.
    let script = "\"$0\" \"$@\" 3>&- & echo $! >&3"
    let shPid: pid_t
    do {
        shPid = try spawnChild(path: "/bin/sh", args: ["-c", script, path] + args, env: env, logPath: logPath,
                               extraFd: (fds[1], 3))
    } catch {
        close(fds[1])
        throw SpawnError(description: "cannot start \(path) through /bin/sh: \(error)")
    }
    close(fds[1])
    // The shell prints the pid and exits at once.
    var text: [UInt8] = []
    var byte: UInt8 = 0
    let deadline = monoNow() + 10
    while monoNow() < deadline {
        var pfd = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
        let r = poll(&pfd, 1, 100)
        if r < 0 && errno == EINTR { continue }
        if r <= 0 { continue }
        let n = read(fds[0], &byte, 1)
        if n <= 0 || byte == 0x0A { break }
        text.append(byte)
    }
    var status: Int32 = 0
    var ru = rusage()
    while wait4(shPid, &status, 0, &ru) < 0 && errno == EINTR {}
    currentChild.store(0, ordering: .relaxed)
    guard let pid = Int32(String(decoding: text, as: UTF8.self)), pid > 0 else {
        throw SpawnError(description: "cannot start \(path): /bin/sh did not report its pid (status \(status))")
    }
    currentChild.store(pid, ordering: .relaxed)
    return pid
}

/// Peak RSS of a live process from /proc (KiB), a cross-check of ru_maxrss.
func readVmHWM(_ pid: pid_t) -> Int? {
    guard let bytes = readSmallFile("/proc/\(pid)/status", limit: 16384) else { return nil }
    for line in bytes.split(separator: 0x0A) where line.starts(with: Array("VmHWM:".utf8)) {
        let digits = line.filter { $0 >= 48 && $0 <= 57 }
        return Int(String(decoding: digits, as: UTF8.self))
    }
    return nil
}

struct ChildExit {
    var status: Int32
    var rusage: rusage
    var exitedNormally: Bool { (status & 0x7F) == 0 }
    var exitCode: Int32 { (status >> 8) & 0xFF }
    var signal: Int32 { status & 0x7F }
    var describe: String {
        exitedNormally ? "exited with status \(exitCode)" : "was killed by signal \(signal)"
    }
    var cpu: CPUTimes { CPUTimes(user: tvSeconds(rusage.ru_utime), sys: tvSeconds(rusage.ru_stime)) }
    var maxRSSKiB: Int { Int(rusage.ru_maxrss) }
    /// Page faults served without I/O (first touches of fresh memory, mostly): each costs a kernel entry
    /// and, for anonymous memory, a page cleared.
    var minorFaults: Int { Int(rusage.ru_minflt) }
}

/// Non-blocking reap; nil while the child runs.
func reapIfExited(_ pid: pid_t) -> ChildExit? {
    var status: Int32 = 0
    var ru = rusage()
    let r = wait4(pid, &status, WNOHANG, &ru)
    if r == pid {
        currentChild.store(0, ordering: .relaxed)
        return ChildExit(status: status, rusage: ru)
    }
    return nil
}

/// Waits up to `seconds` for the child to exit.
func waitForExit(_ pid: pid_t, seconds: Double) -> ChildExit? {
    let deadline = monoNow() + seconds
    while true {
        if let e = reapIfExited(pid) { return e }
        if monoNow() >= deadline { return nil }
        sleepMs(5)
    }
}

/// SIGKILL and reap (used on failures).
func killAndReap(_ pid: pid_t) -> ChildExit? {
    kill(pid, SIGKILL)
    var status: Int32 = 0
    var ru = rusage()
    while true {
        let r = wait4(pid, &status, 0, &ru)
        if r == pid { currentChild.store(0, ordering: .relaxed); return ChildExit(status: status, rusage: ru) }
        if r < 0 && errno != EINTR { currentChild.store(0, ordering: .relaxed); return nil }
    }
}

// MARK: - Scenarios

enum FlusherKind: String {
    case file
    case blackhole
    case http            // flusher_http (jsonline) into the counting receiver
    case elasticsearch   // flusher_elasticsearch into the counting receiver (answers errors:false)
    case osmem           // flusher_elasticsearch into a real osmem-server
    case loki            // flusher_loki into the counting receiver
    case otlp            // flusher_otlp (HTTP/protobuf) into the counting receiver
    case clickhouse      // flusher_clickhouse (JSONEachRow) into a real clickhouse-server
    /// Delivered into the bench's counting receiver.
    var receiverMode: ReceiverMode? {
        switch self {
        case .http: return .http
        case .elasticsearch: return .elasticsearch
        case .loki: return .loki
        case .otlp: return .otlp
        default: return nil
        }
    }
    var isNetwork: Bool { self != .file && self != .blackhole }
}

/// Which collector a run measures.
enum Collector: Equatable {
    case sluice
    case fluentBit
}

struct ScenarioSpec {
    var name: String
    var dataset: String     // "plain", "many", "docker" or "cri"
    var flusher: FlusherKind
    /// Processors, as YAML items under `processors:`; nil: none.
    var processors: String? = nil
    /// Fields every output line must carry besides `content` (the parsing scenarios); the content is then
    /// what the parser left in `content` (the line's tail with its id), so its length is not compared.
    var parsedKeys: [String] = []
    /// The pattern whose PCRE2 JIT matching alone is this scenario's ceiling.
    var ceilingRegex: String? = nil
    /// Extra YAML lines of the input_file item (e.g. Multiline), indented by 4.
    var inputExtra: String? = nil
    /// Extra YAML lines of the flusher item (e.g. Buffer), indented by 4.
    var flusherExtra: String? = nil
    /// Check each line's `__time__` against its own time (processor_parse_timestamp_native).
    var checkTime = false
    /// Whether --fluent-bit has an equivalent configuration for it (FluentBit.swift).
    var fluentBit = true
}

/// The incumbent's nginx benchmark pattern, plus a 12th group `content` that keeps the line's tail (the
/// ` rt=… id=F:L` the verifier reads).
let nginxRegex = #"^([^ ]*) ([^ ]*) ([^ ]*) \[([^\]]*)\] "(\S+) ([^\"]*) (\S*)" ([^ ]*) ([^ ]*) "([^\"]*)" "([^\"]*)" (.*)"#
let nginxKeys = ["ip", "ident", "auth", "timestamp", "method", "request", "http_version", "response_code", "bytes", "referrer", "user_agent"]

let allScenarios: [ScenarioSpec] = [
    ScenarioSpec(name: "plain-file", dataset: "plain", flusher: .file),
    ScenarioSpec(name: "plain-blackhole", dataset: "plain", flusher: .blackhole),
    ScenarioSpec(name: "many-files", dataset: "many", flusher: .file),
    ScenarioSpec(name: "docker-json", dataset: "docker", flusher: .file),
    ScenarioSpec(name: "cri", dataset: "cri", flusher: .file),
    ScenarioSpec(name: "nginx-regex", dataset: "plain", flusher: .file,
                 processors: """
                   - Type: processor_parse_regex_native
                     SourceKey: content
                     Regex: \(yamlQuoted(nginxRegex))
                     Keys: [\((nginxKeys + ["content"]).joined(separator: ", "))]

                 """,
                 parsedKeys: nginxKeys, ceilingRegex: nginxRegex),
    ScenarioSpec(name: "multiline", dataset: "java", flusher: .file,
                 inputExtra: "    FlushTimeoutSecs: 1\n    Multiline: {StartPattern: '\\d{4}-\\d{2}-\\d{2} .*'}\n"),
    // The same with FlushTimeoutSecs: 0: each file's last record (no start line follows it) is emitted
    // as soon as the end of the file is read, whatever the files' age. In `multiline` it waits the
    // 1 s from the file's last write: inputs written more than 1 s before their end is read (reused
    // inputs, or freshly generated ones read after the settle time) do not wait; a file still being
    // written would (a third or more of the wall time at 512 MiB).
    ScenarioSpec(name: "multiline-eof", dataset: "java", flusher: .file,
                 inputExtra: "    FlushTimeoutSecs: 0\n    Multiline: {StartPattern: '\\d{4}-\\d{2}-\\d{2} .*'}\n",
                 fluentBit: false),
    ScenarioSpec(name: "json", dataset: "json", flusher: .file,
                 processors: """
                   - Type: processor_parse_json_native
                     SourceKey: content

                 """,
                 parsedKeys: jsonKeys),
    ScenarioSpec(name: "delimiter", dataset: "csv", flusher: .file,
                 processors: delimiterProcessor, parsedKeys: csvCheckedKeys),
    ScenarioSpec(name: "timestamp", dataset: "csv", flusher: .file,
                 processors: delimiterProcessor + """
                   - Type: processor_parse_timestamp_native
                     SourceKey: time
                     SourceFormat: '%d/%b/%Y:%H:%M:%S'
                     SourceTimezone: GMT+00:00

                 """,
                 parsedKeys: csvCheckedKeys, checkTime: true),
    ScenarioSpec(name: "http", dataset: "plain", flusher: .http),
    // The disk buffer's cost with the destination up: every batch is fsynced to a segment, then sent from it.
    ScenarioSpec(name: "http-buffer", dataset: "plain", flusher: .http, flusherExtra: "    Buffer: {Type: disk}\n"),
    ScenarioSpec(name: "elasticsearch", dataset: "plain", flusher: .elasticsearch),
    ScenarioSpec(name: "loki", dataset: "plain", flusher: .loki),
    // Fluent Bit's loki output sends JSON: this is the like-for-like row.
    ScenarioSpec(name: "loki-json", dataset: "plain", flusher: .loki, flusherExtra: "    PushFormat: json\n"),
    ScenarioSpec(name: "otlp", dataset: "plain", flusher: .otlp),
    ScenarioSpec(name: "clickhouse", dataset: "plain", flusher: .clickhouse, fluentBit: false),
    ScenarioSpec(name: "osmem", dataset: "plain", flusher: .osmem, fluentBit: false),
]

let jsonKeys = ["time", "level", "logger", "thread", "user"]
let csvKeys = ["ip", "user", "time", "method", "path", "protocol", "status", "bytes", "referer", "agent", "content"]
let csvCheckedKeys = ["ip", "time", "method", "path", "status", "agent"]
let delimiterProcessor = """
  - Type: processor_parse_delimiter_native
    SourceKey: content
    Separator: ','
    Quote: '"'
    Keys: [\(csvKeys.joined(separator: ", "))]

"""

struct RunSettings {
    var sluicePath: String
    var workDir: String
    var timeoutSec: Double
    var settleMs: Double
    var stallSec: Double
    var pollMs: Double
    var stopGraceSec: Double
    var keep: Bool
    /// --fluent-bit
    var fluentBitPath: String? = nil
    /// The receivers and servers of the network scenarios.
    var net: NetContext? = nil
}

struct ScenarioResult {
    var spec: ScenarioSpec
    var dataset: Dataset
    var status = "ok"              // ok | incomplete | failed
    var error: String? = nil
    var wall: Double? = nil
    var endMethod = ""
    var detected: Double? = nil    // seconds from the renames until the bench noticed completion
    var cpu: CPUTimes? = nil
    var maxRSSKiB: Int? = nil
    var minorFaults: Int? = nil
    var hwmSampledKiB: Int? = nil   // max VmHWM seen in /proc while it ran (cross-check)
    var eventsOut: Int? = nil
    /// fdatasync calls of the flusher's disk buffer (its `component_buffer_fsyncs` gauge).
    var fsyncs: Int? = nil
    var verify: VerifyResult? = nil
    var logPath = ""
    var runDir = ""
    var collector = Collector.sluice
    /// Other load while it ran, in cores: busy time in /proc/stat minus the bench's own and the collector's CPU.
    var otherLoad: Double? = nil

    /// Lines delivered / lost / duplicated as reported (blackhole: from events_out only).
    var delivered: Int? {
        if let v = verify { return v.delivered }
        return spec.flusher == .blackhole ? eventsOut : nil
    }
    var collectorName: String { collector == .sluice ? "sluice" : "fluent-bit" }
    var lost: Int? {
        if let v = verify { return v.lost }
        if spec.flusher == .blackhole, let e = eventsOut { return max(0, dataset.totalLines - e) }
        return nil
    }
    var duplicated: Int? {
        if let v = verify { return v.duplicated }
        if spec.flusher == .blackhole, let e = eventsOut { return max(0, e - dataset.totalLines) }
        return nil
    }
}

func yamlQuoted(_ s: String) -> String {
    var r = "\""
    for c in s.unicodeScalars {
        if c == "\"" || c == "\\" { r += "\\" }
        r.unicodeScalars.append(c)
    }
    return r + "\""
}

func pipelineYAML(inputDir: String, flusher: FlusherKind, outFile: String, format: RuntimeFormat? = nil,
                  processors: String? = nil, inputExtra: String? = nil, flusherExtra: String? = nil, port: Int = 0) -> String {
    var y = """
    enable: true
    inputs:
      - Type: input_file
        FilePaths: [\(yamlQuoted(inputDir + "/*.log"))]
        MaxDirSearchDepth: 0

    """
    if let f = format { y += "    ContainerLogFormat: \(f.rawValue)\n" }
    if let e = inputExtra { y += e }
    if let p = processors { y += "processors:\n" + p }
    y += "flushers:\n"
    switch flusher {
    case .file:
        y += """
          - Type: flusher_file
            FilePath: \(yamlQuoted(outFile))
            MaxFileSize: 0

        """
    case .blackhole:
        y += "  - Type: flusher_blackhole\n"
    case .http:
        y += "  - Type: flusher_http\n    RemoteURL: \"http://127.0.0.1:\(port)/\"\n    Convert: {Protocol: jsonline}\n"
    case .elasticsearch, .osmem:
        y += "  - Type: flusher_elasticsearch\n    Addresses: [\"http://127.0.0.1:\(port)\"]\n    Index: bench\n"
    case .loki:
        y += "  - Type: flusher_loki\n    URL: \"http://127.0.0.1:\(port)/loki/api/v1/push\"\n    StaticLabels: {job: bench}\n"
    case .otlp:
        y += "  - Type: flusher_otlp\n    Logs: {Endpoint: \"http://127.0.0.1:\(port)\", Protocol: http/protobuf}\n"
    case .clickhouse:
        y += "  - Type: flusher_clickhouse\n    Addresses: [\"http://127.0.0.1:\(port)\"]\n    Table: bench\n    Format: JSONEachRow\n"
    }
    if let e = flusherExtra { y += e }
    return y
}

struct StatsSample {
    var time: Double    // mtime of the stats file (CLOCK_REALTIME)
    var events: Int
    var bytesIn: Int? = nil
}

/// Reads the stats file; returns nil if absent or unparsable.
func readStats(_ path: String) -> StatsSample? {
    guard let info = statPath(path), let bytes = readSmallFile(path, limit: 65536),
          let e = parseEventsOut(bytes) else { return nil }
    return StatsSample(time: info.mtime, events: e, bytesIn: parseStatsField(bytes, "bytes_in"))
}

/// Time at which `expected` events were reached, interpolated linearly between the last sample below and the
/// first sample at or above it. `start` (with 0 events) stands in for a missing earlier sample.
func interpolateCompletion(_ samples: [StatsSample], expected: Int, start: Double) -> Double? {
    guard let i = samples.firstIndex(where: { $0.events >= expected }) else { return nil }
    let cur = samples[i]
    var prev = StatsSample(time: start, events: 0)
    if i > 0, samples[i - 1].time >= start { prev = samples[i - 1] }
    else if i > 0 { prev = StatsSample(time: start, events: samples[i - 1].events) }
    if cur.time <= prev.time || cur.events <= prev.events { return max(cur.time, start) }
    let frac = Double(expected - prev.events) / Double(cur.events - prev.events)
    return prev.time + frac * (cur.time - prev.time)
}

/// Runs one scenario against the real binary. Input files move from the dataset's staging dir into the watched
/// dir for the run and back afterwards.
func runScenario(_ spec: ScenarioSpec, _ ds: Dataset, _ s: RunSettings, collector: Collector = .sluice) -> ScenarioResult {
    var res = ScenarioResult(spec: spec, dataset: ds)
    res.collector = collector
    let fb = collector == .fluentBit
    let tool = fb ? "fluent-bit" : "sluice"
    let runDir = s.workDir + "/runs/" + spec.name + (fb ? "-fluent-bit" : "")
    let configDir = runDir + "/config", dataDir = runDir + "/data"
    let inDir = runDir + "/in", outDir = runDir + "/out"
    let outFile = outDir + "/out.jsonl"
    let statsPath = runDir + "/stats.json"
    res.logPath = s.workDir + "/logs/" + spec.name + (fb ? "-fluent-bit" : "") + ".log"
    res.runDir = runDir

    func fail(_ msg: String) -> ScenarioResult {
        var r = res
        r.status = "failed"
        r.error = msg
        return r
    }

    removeTree(runDir)
    let receiver = spec.flusher.receiverMode.flatMap { s.net?.receivers[$0] }
    var port = receiver?.port ?? 0
    if spec.flusher == .clickhouse { port = s.net?.clickhouse?.httpPort ?? 0 }
    if spec.flusher == .osmem { port = s.net?.osmemPort ?? 0 }
    if spec.flusher.isNetwork && port == 0 { return fail("no \(spec.flusher.rawValue) server for this scenario") }
    receiver?.reset()
    if spec.flusher == .clickhouse, let ch = s.net?.clickhouse {
        if let e = ch.resetTable() { return fail("clickhouse: \(e)") }
    }
    if spec.flusher == .osmem { _ = httpRequest(port: port, method: "DELETE", path: "/bench", body: "") }
    var fbArgs: [String] = []
    do {
        for d in [configDir, dataDir, inDir, outDir, s.workDir + "/logs"] { try mkdirP(d) }
        if fb {
            guard let conf = fluentBitConfig(spec, ds, inDir: inDir, outDir: outDir, port: port) else {
                return fail("no Fluent Bit equivalent for \(spec.name)")
            }
            try writeFile(configDir + "/fluent-bit.conf", conf.main)
            try writeFile(configDir + "/parsers.conf", conf.parsers)
            fbArgs = ["-c", configDir + "/fluent-bit.conf", "-R", configDir + "/parsers.conf"]
        } else {
            try writeFile(configDir + "/bench.yaml", pipelineYAML(inputDir: inDir, flusher: spec.flusher, outFile: outFile,
                                                                     format: ds.spec.format, processors: spec.processors,
                                                                     inputExtra: spec.inputExtra, flusherExtra: spec.flusherExtra, port: port))
        }
    } catch {
        return fail("\(error)")
    }

    // Warm cache: read every input once, right before the measurement.
    sync()
    var warm = ds
    do { try scanDataset(&warm, dir: ds.dir, recordLengths: false) } catch { return fail("\(error)") }

    var env = currentEnvironment().filter { !$0.hasPrefix("SLUICE_STATS_FILE=") }
    env.append("SLUICE_STATS_FILE=" + statsPath)
    let args = fb ? fbArgs : ["run", "--config-dir", configDir, "--data-dir", dataDir]
    let binary = fb ? (s.fluentBitPath ?? "") : s.sluicePath
    var moved: [String] = []   // file names currently in inDir
    // Fluent Bit finds files moved in after its start only at its next path scan (Refresh_Interval): it gets its
    // inputs in place before it starts, and its clock starts at its spawn (start-up included).
    var fbStart: (real: Double, mono: Double)? = nil
    if fb {
        for name in ds.fileNames {
            if rename(ds.dir + "/" + name, inDir + "/" + name) != 0 {
                for m in moved { _ = rename(inDir + "/" + m, ds.dir + "/" + m) }
                return fail("cannot move \(ds.dir)/\(name) into \(inDir): \(errnoText())")
            }
            moved.append(name)
        }
        fbStart = (realNow(), monoNow())
    }
    let load0 = (busy: procStatBusy(), mine: selfCPU().total, at: monoNow())
    note("[\(spec.name)] starting \(binary) \(args.joined(separator: " ")) (log: \(res.logPath))")
    let pid: pid_t
    do { pid = try spawnSluice(path: binary, args: args, env: env, logPath: res.logPath) } catch {
        for m in moved { _ = rename(inDir + "/" + m, ds.dir + "/" + m) }
        return fail("\(error)")
    }

    func moveBack() {
        for name in moved {
            if rename(inDir + "/" + name, ds.dir + "/" + name) != 0 {
                note("[\(spec.name)] warning: cannot move \(inDir)/\(name) back to \(ds.dir): \(errnoText())")
            }
        }
        moved.removeAll()
    }
    func bail(_ msg: String, exit: ChildExit?) -> ScenarioResult {
        let e = exit ?? killAndReap(pid)
        moveBack()
        if !s.keep { removeTree(outDir) }
        var r = fail(msg)
        if let e { r.cpu = e.cpu; r.maxRSSKiB = e.maxRSSKiB; r.minorFaults = e.minorFaults }
        keepForPostMortem(r)
        return r
    }

    // Let sluice start and set up its watches: settle-ms, then (up to 10 s) until its input logs
    // `Input started.`, which it does after its first scan of the directory. Files moved in before
    // that scan count as files that existed before the start, read from their last TailSizeKB
    // (1 MiB each): the run then delivers 4 MiB and waits out its timeout. The stats file is no
    // sign of the input: it is written before the pipeline is built.
    let spawnedAt = monoNow()
    var inputStarted = fb
    while !fb {
        if let e = reapIfExited(pid) {
            return bail("sluice \(e.describe) during start-up", exit: e)
        }
        let waited = monoNow() - spawnedAt
        if waited * 1000 >= s.settleMs {
            inputStarted = readSmallFile(res.logPath, limit: 1 << 20).map { logSaysInputStarted($0) } ?? false
            if inputStarted || waited >= 10 { break }
        }
        sleepMs(5)
    }
    if !inputStarted {
        note("[\(spec.name)] note: sluice did not log `Input started.` within 10 s; its first scan may see the inputs as existing files")
    }
    if !fb && !fileExists(statsPath) {
        note("[\(spec.name)] note: no stats file at \(statsPath) (SLUICE_STATS_FILE not supported?)")
    }

    // Start the clock and hand over the inputs.
    let realStart = fbStart?.real ?? realNow()
    let monoStart = fbStart?.mono ?? monoNow()
    for name in ds.fileNames where !fb {
        if rename(ds.dir + "/" + name, inDir + "/" + name) != 0 {
            return bail("cannot move \(ds.dir)/\(name) into \(inDir): \(errnoText())", exit: nil)
        }
        moved.append(name)
    }

    let expected = ds.totalLines
    let minOutputSize = ds.contentBytes + 15 * ds.totalLines   // content + {"content":""}\n
    var samples: [StatsSample] = []
    var counter = LineCounter(path: outFile)
    defer { counter.close(); counter.release() }
    var lastProgress = monoStart
    var lastSize = -1
    var lastSizeChange = monoStart
    var lastEvents = -1
    var lastBytesIn = -1
    let settleQuietSec = 3.0
    var endReal: Double? = nil
    var incompleteReason: String? = nil
    var lastPoll = 0.0

    while true {
        sleepMs(s.pollMs)
        let now = monoNow()
        if let e = reapIfExited(pid) {
            return bail("\(tool) \(e.describe) before all lines were delivered", exit: e)
        }
        if let h = readVmHWM(pid) { res.hwmSampledKiB = max(res.hwmSampledKiB ?? 0, h) }
        if let st = readStats(statsPath) {
            if samples.isEmpty || samples[samples.count - 1].events != st.events
                || samples[samples.count - 1].time != st.time {
                samples.append(st)
            }
            if st.events != lastEvents { lastEvents = st.events; lastProgress = now }
            if let b = st.bytesIn, b != lastBytesIn { lastBytesIn = b; lastProgress = now }
        }
        switch spec.flusher {
        case .blackhole:
            if lastEvents >= expected {
                endReal = interpolateCompletion(samples, expected: expected, start: realStart) ?? realNow()
                res.endMethod = "stats-interpolated"
            }
        case .http, .elasticsearch, .loki, .otlp:
            let snap = receiver!.snapshot()
            if snap.delivered != lastEvents { lastEvents = snap.delivered; lastProgress = now }
            if snap.unique >= expected {
                endReal = snap.lastReceive
                res.endMethod = "receiver-last-id"
            }
        case .clickhouse, .osmem:
            // polled every 250 ms: the query costs the server CPU
            if now - lastPoll >= 0.25 {
                lastPoll = now
                let n = spec.flusher == .clickhouse ? s.net?.clickhouse?.count() : osmemCount(port: port)
                if let n, n != lastEvents { lastEvents = n; lastProgress = now }
                if let n, n >= expected {
                    // (Debian's clickhouse-server has no DateTime64 to stamp the inserts: the poll's time)
                    endReal = realNow()
                    res.endMethod = "poll-250ms"
                }
            }
        case .file:
            let size = statPath(outFile)?.size ?? -1
            if size != lastSize { lastSize = size; lastSizeChange = now; lastProgress = now }
            // Count lines only when they can be complete, and only while the output is not growing (or the
            // stats say all are out), so that the counting does not compete with sluice for the CPU.
            // (with all input read: an unjoined split line counts as more than one event)
            let statsDone = lastEvents >= expected && (lastBytesIn < 0 || lastBytesIn >= ds.totalBytes)
            // Fluent Bit may cut a record in two (more lines than records): wait until the output is quiet.
            // (its parsed output may be smaller than Sluice's: no size floor for it)
            let quiet = fb ? size > 0 && now - lastSizeChange >= 1.5 : size >= minOutputSize && now - lastSizeChange >= 0.25
            if statsDone || quiet {
                counter.advance()
                if counter.lines >= expected && (!fb || quiet) {
                    // The last write that completed the output set its mtime.
                    endReal = statPath(outFile)?.mtime
                    res.endMethod = "output-mtime"
                }
            }
        }
        if endReal != nil { break }
        // sluice says it read all the input, and nothing moved for a while: lines are missing, not late.
        if lastBytesIn >= ds.totalBytes && now - lastProgress >= settleQuietSec {
            // the later of: the last delivery, and the stats sample that first showed all input read
            let allRead = samples.first(where: { ($0.bytesIn ?? 0) >= ds.totalBytes })?.time
            switch spec.flusher {
            case .file:
                counter.advance()
                endReal = statPath(outFile)?.mtime
            case .blackhole:
                endReal = samples.first(where: { $0.events == lastEvents })?.time
            default:
                endReal = nil
            }
            if let e = endReal, let a = allRead { endReal = max(e, a) }
            if endReal != nil {
                res.endMethod = "last-progress"
                note("[\(spec.name)] sluice read all input but delivered fewer lines than expected; stopping it")
                break
            }
        }
        if now - monoStart > s.timeoutSec {
            let what = spec.flusher == .file
                ? "\(counter.lines) of \(expected) lines in the output" : "events_out / received \(max(lastEvents, 0)) of \(expected)"
            return bail("timed out after \(fmt(s.timeoutSec, 0)) s (\(what))", exit: nil)
        }
        if now - lastProgress > s.stallSec {
            if spec.flusher == .blackhole && samples.isEmpty {
                return bail("sluice wrote no stats file (\(statsPath)); the blackhole scenario needs SLUICE_STATS_FILE", exit: nil)
            }
            incompleteReason = "no progress for \(fmt(s.stallSec, 0)) s"
            break
        }
    }
    let detectedReal = realNow()
    if endReal != nil { res.detected = detectedReal - realStart }
    if let e = endReal {
        res.wall = max(e, realStart) - realStart
        if e > detectedReal + 1 { res.wall = detectedReal - realStart; res.endMethod = "detection" }
    }

    // The buffer's fsyncs, from the last stats sample while it runs (the file written at exit
    // has no pipelines, so no component gauges).
    if spec.flusherExtra?.contains("Buffer") == true, !fb, let stats = readSmallFile(statsPath, limit: 1 << 20) {
        res.fsyncs = bufferFsyncs(stats)
    }
    // Stop it: SIGTERM, then it must drain and exit 0.
    if let h = readVmHWM(pid) { res.hwmSampledKiB = max(res.hwmSampledKiB ?? 0, h) }
    kill(pid, SIGTERM)
    var exitInfo = waitForExit(pid, seconds: s.stopGraceSec)
    var stopError: String? = nil
    if exitInfo == nil {
        exitInfo = killAndReap(pid)
        stopError = "\(tool) did not exit within \(fmt(s.stopGraceSec, 0)) s after SIGTERM (killed)"
    } else if let e = exitInfo, !(e.exitedNormally && e.exitCode == 0) {
        stopError = "\(tool) \(e.describe) after SIGTERM (expected status 0)"
    }
    if let e = exitInfo { res.cpu = e.cpu; res.maxRSSKiB = e.maxRSSKiB; res.minorFaults = e.minorFaults }
    if let b0 = load0.busy, let b1 = procStatBusy(), let c = res.cpu {
        let dt = monoNow() - load0.at
        if dt > 0 { res.otherLoad = max(0, (b1 - b0) - (selfCPU().total - load0.mine) - c.total) / dt }
    }
    moveBack()

    if let last = readStats(statsPath) { res.eventsOut = max(last.events, lastEvents) }
    else if lastEvents >= 0 && !spec.flusher.isNetwork { res.eventsOut = lastEvents }

    if let rc = receiver {
        let snap = rc.snapshot()
        var v = VerifyResult()
        v.expected = expected
        v.delivered = snap.delivered
        v.unique = snap.unique
        v.lost = expected - snap.unique
        v.duplicated = snap.delivered - snap.unique
        v.malformed = snap.malformed
        v.badLines = snap.malformed
        v.outputBytes = snap.bodyBytes
        v.outputLines = snap.requests
        if v.lost > 0, let m = rc.firstMissing() { v.firstProblems.append("first missing line: \(m)") }
        res.verify = v
    } else if spec.flusher == .clickhouse, let ch = s.net?.clickhouse {
        if let (rows, unique) = ch.countUnique() {
            var v = VerifyResult()
            v.expected = expected
            v.delivered = rows
            v.unique = unique
            v.lost = expected - unique
            v.duplicated = rows - unique
            res.verify = v
        } else {
            res.status = "failed"
            res.error = "clickhouse: cannot count the rows"
        }
    } else if spec.flusher == .osmem {
        if let n = osmemCount(port: port) {
            var v = VerifyResult()
            v.expected = expected
            v.delivered = n
            v.unique = min(n, expected)   // osmem: a count only (documents, not ids)
            v.lost = max(0, expected - n)
            v.duplicated = max(0, n - expected)
            res.verify = v
        }
    }
    if spec.flusher == .file {
        do { res.verify = try verifyOutputDir(outDir, ds, parsedKeys: spec.parsedKeys, checkTime: spec.checkTime && !fb) } catch {
            res.status = "failed"
            res.error = "verification: \(error)"
        }
    }
    if let stopError {
        res.status = "failed"
        res.error = stopError
    } else if res.status == "ok" {
        if let r = incompleteReason {
            res.status = "incomplete"
            res.error = r
            res.wall = nil
        } else if let v = res.verify, !v.ok {
            res.status = "mismatch"
        } else if spec.flusher == .blackhole, res.eventsOut != expected {
            res.status = "mismatch"
        }
    }
    if !s.keep {
        removeTree(outDir)
        if res.status == "ok" { removeTree(runDir) }
    }
    keepForPostMortem(res)
    return res
}

/// A run that is not ok keeps its run directory for a post-mortem (the next run of the scenario
/// starts afresh): its stats file (queues, resource-limit pauses, per-component counters),
/// checkpoints and, copied in, the collector's log.
func keepForPostMortem(_ res: ScenarioResult) {
    guard res.status != "ok", !res.runDir.isEmpty, fileExists(res.runDir) else { return }
    let kept = res.runDir + ".failed-\(Int(realNow()))"
    guard rename(res.runDir, kept) == 0 else { return }
    if let log = readSmallFile(res.logPath, limit: 64 << 20) { try? writeFile(kept + "/sluice.log", String(decoding: log, as: UTF8.self)) }
    note("[\(res.spec.name)] \(res.status): run directory, stats file and log kept in \(kept)")
}

/// Whether a collector log holds the line an input logs after its first scan.
func logSaysInputStarted(_ log: [UInt8]) -> Bool {
    String(decoding: log, as: UTF8.self).contains("Input started.")
}

/// The sum of the `component_buffer_fsyncs{...}` gauges in a stats file.
func bufferFsyncs(_ stats: [UInt8]) -> Int? {
    let key = Array("\"component_buffer_fsyncs{".utf8)
    var total: Int?
    var i = 0
    while i + key.count <= stats.count {
        guard Array(stats[i..<(i + key.count)]) == key else { i += 1; continue }
        // Past the closing quote of the key and the colon: the number.
        var j = i + key.count
        while j < stats.count && stats[j] != UInt8(ascii: ":") { j += 1 }
        j += 1
        while j < stats.count && stats[j] == 0x20 { j += 1 }
        var v = 0
        while j < stats.count, stats[j] >= 0x30, stats[j] <= 0x39 { v = v * 10 + Int(stats[j] - 0x30); j += 1 }
        total = (total ?? 0) + v
        i = j
    }
    return total
}
