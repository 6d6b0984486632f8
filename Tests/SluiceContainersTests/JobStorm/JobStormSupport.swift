// The Job storm (issue 4, item 4): runtime-independent parts. A storm runs short-lived Jobs on a
// real runtime (dockerd or containerd through CRI) while the real `sluice` binary runs as a
// DaemonSet would, with two pipelines (container stdout/stderr, and a file inside each container's
// rootfs), then checks every line that should have been collected.
//
// Everything here is prefixed `js` / `JS` so it cannot clash with other files of this test target.
import Glibc
import Foundation
import SluiceTesting
import Synchronization

// MARK: - Settings

/// Knobs, from the environment.
struct JSSettings: Sendable {
    /// Jobs of the collected namespace (`SLUICE_JOBSTORM_JOBS`, default 100).
    var jobs: Int
    /// How many of them run at once (`SLUICE_JOBSTORM_CONCURRENCY`, default 16).
    var concurrency: Int
    /// Jobs of the namespace that must be filtered out (`SLUICE_JOBSTORM_OTHER_JOBS`, default jobs / 4, at least 4).
    var otherJobs: Int
    /// How many of those run at once, alongside (default 4).
    var otherConcurrency: Int
    /// Numbered lines each Job writes to each of stdout, stderr and its file (`SLUICE_JOBSTORM_LINES`, default 100).
    var linesPerStream: Int
    /// sluice's --log-level (`SLUICE_JOBSTORM_LOG_LEVEL`, default info).
    var logLevel: String = "info"
    /// Delay between a container's exit and its deletion.
    var deleteDelayMs: Int = 200
    /// Upper bound for the storm itself (all Jobs run and deleted).
    var stormTimeoutSeconds: Double = 200
    /// After the last deletion: how long to wait for the output to become complete.
    var drainTimeoutSeconds: Double = 30

    static func fromEnvironment() -> JSSettings {
        let env = ProcessInfo.processInfo.environment
        func int(_ k: String, _ d: Int) -> Int { env[k].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }.map { max(1, $0) } ?? d }
        let jobs = int("SLUICE_JOBSTORM_JOBS", 100)
        return JSSettings(
            jobs: jobs,
            concurrency: int("SLUICE_JOBSTORM_CONCURRENCY", 16),
            otherJobs: int("SLUICE_JOBSTORM_OTHER_JOBS", max(4, jobs / 4)),
            otherConcurrency: 4,
            linesPerStream: int("SLUICE_JOBSTORM_LINES", 100),
            logLevel: env["SLUICE_JOBSTORM_LOG_LEVEL"] ?? "info")
    }
}

/// The namespace collected, and the one filtered out.
let jsCollectedNamespace = "jobs"
let jsOtherNamespace = "other"
/// The Kubernetes container name of every Job's container.
let jsContainerName = "job"
/// The file each Job writes inside its own rootfs (not a volume).
let jsFileInContainer = "/var/log/job.log"

// MARK: - Jobs

/// The three places a Job writes numbered lines to.
enum JSKind: String, Sendable, CaseIterable {
    case stdout, stderr, file
    /// Word used in the line's text.
    var word: String {
        switch self {
        case .stdout: return "out"
        case .stderr: return "err"
        case .file: return "file"
        }
    }
    init?(word: Substring) {
        switch word {
        case "out": self = .stdout
        case "err": self = .stderr
        case "file": self = .file
        default: return nil
        }
    }
}

/// One Job: a pod with one container that writes `lines` numbered lines to stdout, stderr and
/// `/var/log/job.log` in its rootfs, then exits at once.
struct JSJob: Sendable, Hashable {
    var pod: String
    var namespace: String
    var uid: String
    var lines: Int
    /// Extra shell run after the lines (the warm-up Job sleeps so that it stays up until collected).
    var tail: String = ""

    /// `JS <pod> <out|err|file> <n> <filler>`: unique per (pod, kind, n), parsed back by ``jsParseContent``.
    static let filler = "abcdefghijklmnopqrstuvwxyz-0123456789-ABCDEFGHIJKLMNOPQRSTUVWXYZ-jobstorm"

    /// The shell script (busybox sh; builtins only, so no fork per line).
    var script: String {
        """
        mkdir -p /var/log
        exec 3>>\(jsFileInContainer)
        i=1
        while [ $i -le \(lines) ]; do
        echo "JS \(pod) out $i \(JSJob.filler)"
        echo "JS \(pod) err $i \(JSJob.filler)" >&2
        echo "JS \(pod) file $i \(JSJob.filler)" >&3
        i=$((i+1))
        done
        exec 3>&-
        \(tail)
        """
    }
}

/// What the driver learned of one Job from the runtime.
struct JSJobResult: Sendable {
    /// When the container started, for the first-line delay: the runtime's started_at, or its
    /// finished_at when that is earlier (dockerd records StartedAt once its start call is done, which
    /// can be after a Job that exits at once has already exited).
    var effectiveStart: Int64 {
        guard startedAt > 0 else { return 0 }
        return finishedAt > 0 ? min(startedAt, finishedAt) : startedAt
    }

    var job: JSJob
    /// Unix nanoseconds: the driver asked the runtime to create the container / start it, and the start returned.
    var createCalled: Int64 = 0
    var startCalled: Int64 = 0
    var startReturned: Int64 = 0
    var containerID: String = ""
    /// Unix nanoseconds, from the runtime (docker inspect State.StartedAt / CRI ContainerStatus started_at).
    var startedAt: Int64 = 0
    var finishedAt: Int64 = 0
    /// Unix nanoseconds when the driver learned of the exit from the runtime (wait / status returned).
    var exitSeen: Int64 = 0
    var exitCode: Int = -1
    /// Unix nanoseconds when the deletion began (the pod's log files disappear right after).
    var deleteBegan: Int64 = 0
    /// Unix nanoseconds when the deletion was done.
    var deleted: Int64 = 0
    /// Why the Job did not run to its end (after the driver's retries), if it did not.
    var error: String?
    /// A deletion that failed (the driver then deleted what was left step by step).
    var deleteError: String?
    var abandonReasons: [String] = []
    /// Earlier attempts given up after a runtime error (each under its own pod name); whatever
    /// they printed is left out of the figures.
    var abandoned: [JSJob] = []
    /// The Job's script ran to its end: its lines are expected.
    var ranToEnd: Bool { exitCode == 0 && startedAt > 0 }
    /// Ground truth: the Job's lines found in the runtime's files (its stdout/stderr log, the file
    /// in its upper dir) just before the deletion, per kind (absent: not known).
    var runtimeWrote: [JSKind: Int] = [:]
}

/// How many of a Job's lines of each kind a runtime file holds: counts `JS <pod> <word> `.
func jsCountJobLines(_ path: String, pod: String, kinds: [JSKind]) -> [JSKind: Int]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return nil }
    close(fd)
    let bytes = readFileRegion(path)
    var out: [JSKind: Int] = [:]
    for k in kinds {
        let needle = Array("JS \(pod) \(k.word) ".utf8)
        var n = 0
        bytes.withUnsafeBytes { hay in
            needle.withUnsafeBytes { nd in
                guard let base = hay.baseAddress, hay.count >= nd.count else { return }
                let first = Int32(needle[0])
                var i = 0
                while i <= hay.count - nd.count, let hit = memchr(base + i, first, hay.count - nd.count + 1 - i) {
                    let at = UnsafeRawPointer(hit) - base
                    if memcmp(base + at, nd.baseAddress!, nd.count) == 0 { n += 1; i = at + nd.count } else { i = at + 1 }
                }
            }
        }
        out[k] = n
    }
    return out
}

/// Unix wall-clock nanoseconds (the runtimes report container times on this clock).
func jsWallNanos() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

func jsMonoNanos() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

func jsSay(_ s: String) {
    print(s)
    fflush(nil)
}

/// Runs a blocking closure on a new OS thread (never on the cooperative pool: 2 threads here).
func jsOnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (k: CheckedContinuation<T, Error>) in
        let t = Thread {
            do { k.resume(returning: try body()) } catch { k.resume(throwing: error) }
        }
        t.stackSize = 1 << 20
        t.start()
    }
}

struct JSError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Percentile (nearest rank) of `values`; NaN when empty.
func jsPercentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    let rank = max(1, Int((p / 100 * Double(sorted.count)).rounded(.up)))
    return sorted[min(rank, sorted.count) - 1]
}

func jsFmt(_ v: Double, _ digits: Int = 1) -> String {
    v.isNaN ? "n/a" : (v.isInfinite ? "∞" : String(format: "%.\(digits)f", v))
}

func jsPercent(_ part: Int, _ whole: Int) -> String {
    whole == 0 ? "n/a" : String(format: "%.2f %%", 100 * Double(part) / Double(whole))
}

// MARK: - The storm

/// A runtime that can run one Job the way the storm needs: create and start it, wait until its
/// container exits, delete it (as the kubelet / `docker rm` would) `deleteDelayMs` after the exit.
protocol JSRuntime: Sendable {
    var name: String { get }
    func run(_ job: JSJob, deleteDelayMs: Int) async -> JSJobResult
}

/// Runs `jobs` with `concurrency` workers and `others` with `otherConcurrency` workers alongside.
/// Returns every result (in no particular order), or what finished before `timeout`.
func jsRunStorm(_ runtime: any JSRuntime, jobs: [JSJob], concurrency: Int, others: [JSJob], otherConcurrency: Int,
                deleteDelayMs: Int, timeout: Double) async -> (results: [JSJobResult], timedOut: Bool) {
    let state = JSStormState(jobs: jobs, others: others)
    let deadline = jsMonoNanos() + Int64(timeout * 1e9)
    let total = jobs.count + others.count
    await withTaskGroup(of: Void.self) { group in
        for i in 0..<(concurrency + otherConcurrency) {
            let other = i >= concurrency
            group.addTask {
                while jsMonoNanos() < deadline {
                    guard let job = state.next(other: other) else { return }
                    let r = await runtime.run(job, deleteDelayMs: deleteDelayMs)
                    let done = state.finish(r)
                    if done % 25 == 0 || done == total { jsSay("    [\(runtime.name)] \(done)/\(total) Jobs done") }
                }
            }
        }
    }
    let results = state.results
    return (results, results.count < total)
}

/// The storm's queues and results, shared by its workers.
final class JSStormState: Sendable {
    private let queue: Mutex<(main: ArraySlice<JSJob>, other: ArraySlice<JSJob>)>
    private let collected = Mutex<[JSJobResult]>([])

    init(jobs: [JSJob], others: [JSJob]) { queue = Mutex((jobs[...], others[...])) }

    func next(other: Bool) -> JSJob? {
        queue.withLock { q in other ? q.other.popFirst() : q.main.popFirst() }
    }

    /// Records a result; how many are done.
    func finish(_ r: JSJobResult) -> Int {
        collected.withLock { $0.append(r); return $0.count }
    }

    var results: [JSJobResult] { collected.withLock { $0 } }
}

// MARK: - Following sluice's output

/// Follows flusher_file outputs from a dedicated thread, polling every `pollMs`, and records when
/// each complete line first appeared (the "arrival" of an event).
final class JSOutputTail: @unchecked Sendable {
    struct Line: Sendable {
        var bytes: [UInt8]
        /// Unix nanoseconds of the poll that first saw the line.
        var arrival: Int64
        /// Which output (index into `paths`).
        var output: Int
    }

    let paths: [String]
    let pollMs: Int
    private let state = Mutex<(lines: [Line], stop: Bool, stopped: Bool)>(([], false, false))
    private var offsets: [Int]
    private var partial: [[UInt8]]

    init(paths: [String], pollMs: Int = 5) {
        self.paths = paths
        self.pollMs = pollMs
        offsets = Array(repeating: 0, count: paths.count)
        partial = Array(repeating: [], count: paths.count)
        let t = Thread { [self] in self.loop() }
        t.start()
    }

    private func loop() {
        while true {
            let stop = state.withLock { $0.stop }
            pollOnce()
            if stop { break }
            usleep(useconds_t(pollMs * 1000))
        }
        state.withLock { $0.stopped = true }
    }

    private func pollOnce() {
        var fresh: [Line] = []
        for (i, p) in paths.enumerated() {
            let size = fileSize(p)
            if size <= offsets[i] { continue }
            let chunk = readFileRegion(p, offset: offsets[i], length: size - offsets[i])
            if chunk.isEmpty { continue }
            offsets[i] += chunk.count
            let now = jsWallNanos()
            var buf = partial[i] + chunk
            var start = 0
            var j = 0
            while j < buf.count {
                if buf[j] == 0x0A {
                    fresh.append(Line(bytes: Array(buf[start..<j]), arrival: now, output: i))
                    start = j + 1
                }
                j += 1
            }
            buf.removeFirst(start)
            partial[i] = buf
        }
        if !fresh.isEmpty { state.withLock { $0.lines.append(contentsOf: fresh) } }
    }

    var count: Int { state.withLock { $0.lines.count } }
    var lines: [Line] { state.withLock { $0.lines } }

    /// Stops polling after one last read.
    func stop() {
        state.withLock { $0.stop = true }
        while !state.withLock({ $0.stopped }) { usleep(2000) }
    }
}

/// One output event, parsed.
struct JSEvent: Sendable {
    var content: String
    var tags: [String: String]
    var time: Int64?
    var arrival: Int64
    var output: Int
}

func jsParse(_ line: JSOutputTail.Line) -> JSEvent? {
    guard let obj = (try? JSONSerialization.jsonObject(with: Data(line.bytes))) as? [String: Any] else { return nil }
    var tags: [String: String] = [:]
    for (k, v) in obj where k != "content" && k != "__time__" {
        if let s = v as? String { tags[k] = s }
    }
    let time = (obj["__time__"] as? NSNumber)?.int64Value
    return JSEvent(content: obj["content"] as? String ?? "", tags: tags, time: time, arrival: line.arrival, output: line.output)
}

/// `JS <pod> <kind> <n> <filler>` → (pod, kind, n).
func jsParseContent(_ s: String) -> (pod: String, kind: JSKind, n: Int)? {
    let parts = s.split(separator: " ", maxSplits: 4)
    guard parts.count == 5, parts[0] == "JS", let kind = JSKind(word: parts[2]), let n = Int(parts[3]),
          parts[4] == Substring(JSJob.filler) else { return nil }
    return (String(parts[1]), kind, n)
}

// MARK: - The check

/// Per kind (stdout / stderr / file) figures.
struct JSKindFigures: Sendable {
    var expected = 0
    var collected = 0
    var distinct = 0
    var lost = 0
    var duplicated = 0
    var metadataOK = 0
    /// Events of that kind whose tag `k` was wrong or missing (first few tag names).
    var wrongTags: [String: Int] = [:]
    var timeChecked = 0
    var timeOK = 0
    /// Delay container start → first line of this kind in the output, per Job (ms).
    var firstLineMs: [Double] = []
    /// Jobs of which nothing of this kind arrived.
    var jobsWithNothing = 0
    /// Lines the Jobs printed that were not in the runtime's file at deletion time (the runtime's
    /// loss, not sluice's), over the Jobs where that is known.
    var runtimeMissing = 0
    /// Lost lines that were in the runtime's file when the pod was deleted (sluice's loss), or
    /// every lost line when the runtime's file could not be read.
    var lostBySluice = 0
    /// Jobs whose runtime file was read before deletion.
    var groundTruthJobs = 0
    /// Jobs with lost lines of this kind, and a few samples.
    var jobsWithLoss = 0
    var lossSamples: [String] = []
}

struct JSReport: Sendable {
    var runtime: String
    var kinds: [JSKind: JSKindFigures] = [:]
    /// Events of the filtered-out namespace that came through.
    var leaked = 0
    /// Lines that are not Job lines at all (or unparsable JSON).
    var foreign = 0
    var foreignSamples: [String] = []
    /// Job lines in the wrong output (a file line from the stdio pipeline or the reverse).
    var misrouted = 0
    /// Container start → first line of the Job in the output (any kind), ms; `.infinity` when none arrived.
    var firstLineMs: [Double] = []
    var jobsRun = 0
    var jobsFailed = 0
    var failures: [String] = []
    /// Attempts the driver gave up after a runtime error and retried under a new pod name.
    var attemptsAbandoned = 0
    var abandonSamples: [String] = []
    /// Lines printed by abandoned attempts or failed Jobs (left out of the figures).
    var linesOfFailedAttempts = 0
    var deleteErrors = 0
    var deleteErrorSamples: [String] = []
    /// Exit (the runtime's finished_at) → deletion began, ms (how close the driver kept to the 0.2 s).
    var exitToDeleteMs: [Double] = []
    /// Exit → the runtime told the driver (wait returned / status said exited), ms.
    var exitToSeenMs: [Double] = []
    /// How long the runtime took to create (pod sandbox + container for CRI) and to start a Job's container, ms.
    var createMs: [Double] = []
    var startMs: [Double] = []
    /// Extra information printed at the end.
    var notes: [String] = []
    /// Descriptors sluice still held on deleted files 20 s after the outputs were complete.
    var deletedHeldAtEnd = 0
    /// With the destination down for the whole storm: descriptors on deleted files still held
    /// 10 s after the last pod's deletion (the destination still down); nil without an outage.
    var heldAfterStormInOutage: Int?
    /// Lines that reached the destination while it was down (must be none: the check is real).
    var arrivedDuringOutage = 0

    var totalLost: Int { kinds.values.reduce(0) { $0 + $1.lost } }
    var totalDuplicated: Int { kinds.values.reduce(0) { $0 + $1.duplicated } }
    var totalCollected: Int { kinds.values.reduce(0) { $0 + $1.collected } }
    var totalMetadataOK: Int { kinds.values.reduce(0) { $0 + $1.metadataOK } }
    /// Per checked tag, the share of events that had it right.
    var tagFractions: String {
        let total = totalCollected
        return ["_pod_name_", "_namespace_", "_pod_uid_", "_container_name_", "_container_id_", "_source_ (stdout/stderr)", "__path__ (file)"].map { tag -> String in
            let key = String(tag.split(separator: " ").first!)
            let wrong = kinds.values.reduce(0) { $0 + ($1.wrongTags[key] ?? 0) }
            let of = key == "_source_" ? (kinds[.stdout]!.collected + kinds[.stderr]!.collected) : key == "__path__" ? kinds[.file]!.collected : total
            return "\(tag) \(jsPercent(of - wrong, of))"
        }.joined(separator: ", ")
    }
    var p50: Double { jsPercentile(firstLineMs, 50) }
    var p99: Double { jsPercentile(firstLineMs, 99) }
}

/// Checks every output event against the Jobs that ran.
/// - `results`: the Jobs of both namespaces (only successful ones of the collected namespace are expected).
/// - `outputs`: index of the stdio output and of the files output in the tail's paths.
func jsCheck(runtime: String, results: [JSJobResult], events: [JSEvent], stdioOutput: Int, filesOutput: Int,
             ignoredPods: Set<String>) -> JSReport {
    var report = JSReport(runtime: runtime)
    var byPod: [String: JSJobResult] = [:]
    for r in results { byPod[r.job.pod] = r }
    let collectedJobs = results.filter { $0.job.namespace == jsCollectedNamespace }
    report.jobsRun = collectedJobs.count
    for r in results where !r.ranToEnd {
        report.jobsFailed += 1
        if report.failures.count < 5 { report.failures.append("\(r.job.pod): exit \(r.exitCode) \(r.error ?? "")") }
    }
    var skipped = Set(ignoredPods)
    for r in results {
        report.attemptsAbandoned += r.abandoned.count
        if report.abandonSamples.count < 3, !r.abandoned.isEmpty { report.abandonSamples.append("\(r.job.pod): \(r.abandonReasons.first ?? "")") }
        for a in r.abandoned { skipped.insert(a.pod) }
        if !r.ranToEnd { skipped.insert(r.job.pod) }
        if let d = r.deleteError { report.deleteErrors += 1; if report.deleteErrorSamples.count < 3 { report.deleteErrorSamples.append("\(r.job.pod): \(d)") } }
    }
    let expectedJobs = collectedJobs.filter { $0.ranToEnd }
    var seen: [String: [JSKind: [Int: Int]]] = [:]
    var first: [String: [JSKind: Int64]] = [:]
    for k in JSKind.allCases { report.kinds[k] = JSKindFigures() }

    for e in events {
        guard let (pod, kind, n) = jsParseContent(e.content) else {
            report.foreign += 1
            if report.foreignSamples.count < 3 { report.foreignSamples.append(String(e.content.prefix(120))) }
            continue
        }
        if skipped.contains(pod) {
            if !ignoredPods.contains(pod) { report.linesOfFailedAttempts += 1 }
            continue
        }
        guard let r = byPod[pod] else {
            report.foreign += 1
            if report.foreignSamples.count < 3 { report.foreignSamples.append(String(e.content.prefix(120))) }
            continue
        }
        if r.job.namespace != jsCollectedNamespace {
            report.leaked += 1
            continue
        }
        let expectedOutput = kind == .file ? filesOutput : stdioOutput
        if e.output != expectedOutput { report.misrouted += 1 }
        var f = report.kinds[kind]!
        f.collected += 1
        seen[pod, default: [:]][kind, default: [:]][n, default: 0] += 1
        if let t = first[pod]?[kind], t <= e.arrival {} else { first[pod, default: [:]][kind] = e.arrival }

        // Metadata.
        var wrong: [String] = []
        func want(_ key: String, _ value: String) {
            if e.tags[key] != value { wrong.append(key) }
        }
        want("_pod_name_", r.job.pod)
        want("_namespace_", r.job.namespace)
        want("_pod_uid_", r.job.uid)
        want("_container_name_", jsContainerName)
        want("_container_id_", r.containerID)
        switch kind {
        case .stdout: want("_source_", "stdout")
        case .stderr: want("_source_", "stderr")
        case .file: want("__path__", jsFileInContainer)
        }
        if wrong.isEmpty { f.metadataOK += 1 } else { for w in wrong { f.wrongTags[w, default: 0] += 1 } }
        // Event time = the runtime's timestamp, for stdout/stderr: within the container's life (±1 s).
        if kind != .file, let t = e.time, r.startedAt > 0, r.finishedAt > 0 {
            f.timeChecked += 1
            if t >= r.startedAt / 1_000_000_000 - 1 && t <= r.finishedAt / 1_000_000_000 + 1 { f.timeOK += 1 }
        }
        report.kinds[kind] = f
    }

    for r in expectedJobs {
        let pod = r.job.pod
        var firstAny: Int64?
        for kind in JSKind.allCases {
            var f = report.kinds[kind]!
            f.expected += r.job.lines
            let got = seen[pod]?[kind] ?? [:]
            var lostHere: [Int] = []
            for n in 1...r.job.lines {
                let c = got[n] ?? 0
                if c == 0 { lostHere.append(n) } else if c > 1 { f.duplicated += c - 1 }
            }
            f.distinct += r.job.lines - lostHere.count
            f.lost += lostHere.count
            if let wrote = r.runtimeWrote[kind] {
                f.groundTruthJobs += 1
                let missing = max(0, r.job.lines - wrote)
                f.runtimeMissing += missing
                f.lostBySluice += max(0, lostHere.count - missing)
            } else {
                f.lostBySluice += lostHere.count
            }
            // Numbers that were never written (out of range) count as foreign.
            for (n, c) in got where n < 1 || n > r.job.lines { report.foreign += c }
            if !lostHere.isEmpty {
                f.jobsWithLoss += 1
                if f.lossSamples.count < 4 {
                    let range = lostHere.count == r.job.lines ? "all" : "\(lostHere.count) (first \(lostHere.first!), last \(lostHere.last!))"
                    f.lossSamples.append("\(pod) id \(r.containerID.prefix(12)): \(range) (ran \(jsFmt(Double(r.finishedAt - r.startedAt) / 1e6)) ms, deleted \(jsFmt(Double(r.deleteBegan - r.finishedAt) / 1e6)) ms after exit)")
                }
            }
            if let t = first[pod]?[kind], r.effectiveStart > 0 {
                f.firstLineMs.append(Double(t - r.effectiveStart) / 1e6)
                firstAny = min(firstAny ?? t, t)
            } else {
                f.jobsWithNothing += 1
            }
            report.kinds[kind] = f
        }
        if let t = firstAny, r.effectiveStart > 0 {
            report.firstLineMs.append(Double(t - r.effectiveStart) / 1e6)
        } else {
            report.firstLineMs.append(.infinity)
        }
        if r.finishedAt > 0 && r.deleteBegan > 0 { report.exitToDeleteMs.append(Double(r.deleteBegan - r.finishedAt) / 1e6) }
        if r.finishedAt > 0 && r.exitSeen > 0 { report.exitToSeenMs.append(Double(r.exitSeen - r.finishedAt) / 1e6) }
        if r.createCalled > 0 && r.startCalled > 0 { report.createMs.append(Double(r.startCalled - r.createCalled) / 1e6) }
        if r.startCalled > 0 && r.startReturned > 0 { report.startMs.append(Double(r.startReturned - r.startCalled) / 1e6) }
    }
    return report
}

/// Prints the figures.
func jsPrint(_ r: JSReport, settings: JSSettings, stormSeconds: Double, binary: String) {
    var s = """

    ===== Job storm on \(r.runtime): \(r.jobsRun) Jobs in \(jsCollectedNamespace) (\(settings.concurrency) at a time) + \(settings.otherJobs) in \(jsOtherNamespace) alongside, \(settings.linesPerStream) lines per stream, deleted \(settings.deleteDelayMs) ms after exit =====
    sluice binary: \(binary)
    storm took \(jsFmt(stormSeconds)) s; Jobs failed to run: \(r.jobsFailed)\(r.failures.isEmpty ? "" : " e.g. " + r.failures.joined(separator: "; "))
    driver: \(r.attemptsAbandoned) attempts abandoned after a runtime error and retried under a new pod name\(r.abandonSamples.isEmpty ? "" : " (e.g. " + r.abandonSamples.joined(separator: "; ") + ")"), \(r.linesOfFailedAttempts) lines of theirs left out; \(r.deleteErrors) deletions finished step by step after an error\(r.deleteErrorSamples.isEmpty ? "" : " (e.g. " + r.deleteErrorSamples.joined(separator: "; ") + ")")
    runtime calls: create p50 \(jsFmt(jsPercentile(r.createMs, 50))) ms, p99 \(jsFmt(jsPercentile(r.createMs, 99))) ms; start p50 \(jsFmt(jsPercentile(r.startMs, 50))) ms, p99 \(jsFmt(jsPercentile(r.startMs, 99))) ms
    container exit (finished_at) → driver told of it: p50 \(jsFmt(jsPercentile(r.exitToSeenMs, 50))) ms, p99 \(jsFmt(jsPercentile(r.exitToSeenMs, 99))) ms; → deletion began (due at +\(settings.deleteDelayMs) ms, at once when already past): p50 \(jsFmt(jsPercentile(r.exitToDeleteMs, 50))) ms, p99 \(jsFmt(jsPercentile(r.exitToDeleteMs, 99))) ms, max \(jsFmt(r.exitToDeleteMs.max() ?? .nan)) ms
    kind     expected  collected    lost  duplicated  metadata-correct       event-time-ok   first-line p50 / p99 (ms)   in runtime file at deletion (Jobs checked): missing / lost by sluice

    """
    for k in JSKind.allCases {
        let f = r.kinds[k]!
        let pad = { (x: String, w: Int) in String(repeating: " ", count: max(0, w - x.count)) + x }
        s += "\(k.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0))"
            + pad("\(f.expected)", 11) + pad("\(f.collected)", 11) + pad("\(f.lost)", 8) + pad("\(f.duplicated)", 12)
            + pad("\(f.metadataOK)/\(f.collected) (\(jsPercent(f.metadataOK, f.collected)))", 26)
            + pad(k == .file ? "-" : jsPercent(f.timeOK, f.timeChecked), 14)
            + pad("\(jsFmt(jsPercentile(f.firstLineMs, 50))) / \(jsFmt(jsPercentile(f.firstLineMs, 99)))", 20)
            + "      (\(f.groundTruthJobs)) \(f.runtimeMissing) / \(f.lostBySluice)"
            + "\n"
        if f.jobsWithLoss > 0 { s += "        Jobs with lost \(k.rawValue) lines: \(f.jobsWithLoss); e.g. \(f.lossSamples.joined(separator: "; "))\n" }
        if f.jobsWithNothing > 0 { s += "        Jobs with no \(k.rawValue) line at all: \(f.jobsWithNothing)\n" }
        if !f.wrongTags.isEmpty { s += "        wrong/missing tags: \(f.wrongTags.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))\n" }
    }
    let all = r.kinds.values
    let expected = all.reduce(0) { $0 + $1.expected }
    s += """
    total  expected \(expected), collected \(r.totalCollected), lost \(r.totalLost), duplicated \(r.totalDuplicated), metadata correct \(jsPercent(r.totalMetadataOK, r.totalCollected))
    correct tags over all \(r.totalCollected) events: \(r.tagFractions)
    filtered namespace \(jsOtherNamespace): \(r.leaked) events leaked; foreign lines: \(r.foreign)\(r.foreignSamples.isEmpty ? "" : " e.g. \(r.foreignSamples)"); misrouted: \(r.misrouted)
    container start → first line of the Job in the output: p50 \(jsFmt(r.p50)) ms, p99 \(jsFmt(r.p99)) ms, max \(jsFmt(r.firstLineMs.max() ?? .nan)) ms (\(r.firstLineMs.filter { $0.isInfinite }.count) Jobs with no line)

    """
    for n in r.notes { s += n + "\n" }
    jsSay(s)
}

// MARK: - sluice as a DaemonSet

/// The two pipelines of the storm: to `flusher_file` outputs, or (with `httpPort`) to
/// `flusher_http` with a disk buffer, posting jsonline to `/stdio` and `/files` of that port (the
/// incumbent's tag renames undone by `TagFieldsRename`, so the events read as flusher_file's).
func jsPipelines(stdioOutput: String, filesOutput: String, httpPort: Int? = nil, diskBuffer: Bool = true) -> [(name: String, text: String)] {
    let filter = """
        ContainerFilters:
          K8sNamespaceRegex: ^\(jsCollectedNamespace)$
    """
    func flusher(_ output: String, _ path: String) -> String {
        guard let httpPort else {
            return """
              - Type: flusher_file
                FilePath: \(SluiceTesting.quoted(output))
                MaxFileSize: 0
            """
        }
        return """
          - Type: flusher_http
            RemoteURL: http://127.0.0.1:\(httpPort)/\(path)
            Convert:
              Protocol: jsonline
              TagFieldsRename: {k8s.pod.name: _pod_name_, k8s.namespace.name: _namespace_, k8s.pod.uid: _pod_uid_, k8s.container.name: _container_name_, container.name: _container_name_, log.file.path: __path__}
            Timeout: 5s
            Retry: {InitialDelay: 100ms, MaxDelay: 1s}
        \(diskBuffer ? "    Buffer: {Type: disk}" : "")
        """
    }
    let stdio = """
    enable: true
    inputs:
      - Type: input_container_stdio
    \(filter)
    flushers:
    \(flusher(stdioOutput, "stdio"))

    """
    let files = """
    enable: true
    inputs:
      - Type: input_file
        EnableContainerDiscovery: true
        FilePaths:
          - \(jsFileInContainer)
    \(filter)
    flushers:
    \(flusher(filesOutput, "files"))

    """
    return [("jobstorm-stdio", stdio), ("jobstorm-files", files)]
}

/// An HTTP destination for the storm's `flusher_http` pipelines: each jsonline body it takes is
/// appended to the output file of its path, which the tail reads as it reads flusher_file's.
/// `stop` takes it down (connections refused), `start` brings it back on the same port.
final class JSHTTPDestination: @unchecked Sendable {
    // @unchecked: `receiver` is changed only by the test's task, between the storm's phases.
    let port = TestServer.freePort()
    let outputs: [String: Int32]
    private let writeLock = NSLock()
    private var receiver: HTTPTestReceiver?

    init(outputs: [String: String]) {
        var fds: [String: Int32] = [:]
        for (path, file) in outputs { fds[path] = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644) }
        self.outputs = fds
    }

    deinit { for fd in outputs.values { close(fd) } }

    func start() async throws {
        let outputs = self.outputs
        let lock = writeLock
        receiver = try await HTTPTestReceiver(keepBodies: false, port: port) { r, _ in
            guard let fd = outputs[r.uri] else { return HTTPTestReceiver.Response(status: 404) }
            var body = r.body
            if body.last != 0x0A { body.append(0x0A) }
            lock.withLock { _ = body.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
            return .ok
        }
    }

    func stop() async {
        await receiver?.stop()
        receiver = nil
    }
}

/// Descriptors sluice holds on deleted files (a released descriptor no longer pins a rootfs).
func jsDeletedDescriptors(pid: pid_t) -> (count: Int, samples: [String]) {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else { return (-1, []) }
    var n = 0
    var samples: [String] = []
    for name in names {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(name)") else { continue }
        if target.hasSuffix(" (deleted)") {
            n += 1
            if samples.count < 3 { samples.append(target) }
        }
    }
    return (n, samples)
}

/// The destination down for the whole storm: taken down after the warm-up, brought back once
/// every Job is deleted and the release of their files (with the destination still down) is
/// measured.
struct JSOutage {
    var down: () async -> Void
    var up: () async throws -> Void
    /// Through a disk buffer: the deleted files must be released while the destination is down.
    /// Without one, sluice holds them (and the queues hold it back) until the destination is back.
    var buffered = true
}

/// Runs a whole storm against sluice: sluice already runs (`sluice`), the tail follows its outputs.
/// Warms up (one Job that stays up until its lines are seen), runs the storm, waits for the
/// output to be complete, stops sluice, checks, prints. The caller asserts on the report.
func jsStormAgainstSluice(runtime: any JSRuntime, settings: JSSettings, sluice: SluiceProcess, scenario: E2EScenario,
                          tail: JSOutputTail, stdioOutput: Int, filesOutput: Int, outage: JSOutage? = nil,
                          warmUp: (JSJob) async throws -> Void) async throws -> JSReport {
    let prefix = runtime.name == "docker" ? "d" : "c"
    func uid() -> String { UUID().uuidString.lowercased() }
    var notes: [String] = []

    // 1. Warm-up: proves the whole path works before the storm (sluice found the runtime, both
    //    pipelines deliver). The warm-up Job stays up until its lines are in, so a slow start of
    //    sluice cannot lose them; it is not part of the figures.
    let warm = JSJob(pod: "\(prefix)warmup", namespace: jsCollectedNamespace, uid: uid(), lines: 3, tail: "sleep 60")
    let warmStart = jsMonoNanos()
    try await warmUp(warm)
    let warmSeconds = Double(jsMonoNanos() - warmStart) / 1e9
    notes.append("warm-up Job collected (stdout, stderr and file lines) \(jsFmt(warmSeconds, 2)) s after sluice started")

    // 2. The storm.
    let jobs = (0..<settings.jobs).map { JSJob(pod: String(format: "\(prefix)job-%04d", $0), namespace: jsCollectedNamespace, uid: uid(), lines: settings.linesPerStream) }
    let others = (0..<settings.otherJobs).map { JSJob(pod: String(format: "\(prefix)other-%04d", $0), namespace: jsOtherNamespace, uid: uid(), lines: settings.linesPerStream) }
    if let outage { await outage.down() }
    let linesBefore = tail.count
    // While the storm runs: the most descriptors held on deleted files at any moment.
    let sampler = Task {
        var most = 0
        while !Task.isCancelled {
            most = max(most, jsDeletedDescriptors(pid: sluice.pid).count)
            try? await Task.sleep(for: .milliseconds(500))
        }
        return most
    }
    let t0 = jsMonoNanos()
    let (results, timedOut) = await jsRunStorm(runtime, jobs: jobs, concurrency: settings.concurrency, others: others,
                                               otherConcurrency: settings.otherConcurrency, deleteDelayMs: settings.deleteDelayMs,
                                               timeout: settings.stormTimeoutSeconds)
    let stormSeconds = Double(jsMonoNanos() - t0) / 1e9
    sampler.cancel()
    notes.append("during the storm: at most \(await sampler.value) descriptors on deleted files at once")
    if timedOut { notes.append("THE STORM TIMED OUT after \(jsFmt(stormSeconds)) s: \(results.count) of \(jobs.count + others.count) Jobs ran") }
    var heldInOutage: Int?
    var arrivedInOutage = 0
    if let outage {
        // Every Job is deleted and the destination is still down: what sluice read is in its disk
        // buffer, so the deleted files must go now, not when the destination returns.
        let t = jsMonoNanos()
        var held = jsDeletedDescriptors(pid: sluice.pid)
        while outage.buffered && held.count > 0 && jsMonoNanos() - t < 10_000_000_000 {
            try? await Task.sleep(for: .milliseconds(200))
            held = jsDeletedDescriptors(pid: sluice.pid)
        }
        heldInOutage = outage.buffered ? max(0, held.count) : nil
        arrivedInOutage = tail.count - linesBefore
        if !outage.buffered {
            notes.append("destination down, no disk buffer: \(held.count) deleted files held open for it")
        } else {
        notes.append(held.count == 0
            ? "destination down: every deleted file released \(jsFmt(Double(jsMonoNanos() - t) / 1e9, 1)) s after the last pod's deletion"
            : "destination down: \(held.count) deleted files still held 10 s after the last deletion, e.g. \(held.samples)")
        }
        let st = readStats(scenario.statsFile)["gauges"] as? [String: Any] ?? [:]
        let buffered = st.keys.filter { $0.hasPrefix("component_buffer_events{") }.compactMap { statValue(st, $0) }.reduce(0, +)
        notes.append("destination down: \(buffered) events in the disk buffers, \(arrivedInOutage) lines arrived; bringing it back")
        try await outage.up()
    }

    // 3. Wait until every expected line is in (or nothing arrives for a while), then a little more
    //    so duplicates have a chance to show.
    let okJobs = results.filter { $0.job.namespace == jsCollectedNamespace && $0.ranToEnd }
    let expected = okJobs.count * 3 * settings.linesPerStream
    let drainStart = jsMonoNanos()
    var lastCount = -1
    var lastChange = jsMonoNanos()
    while Double(jsMonoNanos() - drainStart) / 1e9 < settings.drainTimeoutSeconds {
        let c = tail.count - linesBefore
        if c >= expected { break }
        if c != lastCount { lastCount = c; lastChange = jsMonoNanos() }
        if Double(jsMonoNanos() - lastChange) / 1e9 > 10 { break }
        try? await Task.sleep(for: .milliseconds(100))
    }
    notes.append("output complete (or given up) \(jsFmt(Double(jsMonoNanos() - drainStart) / 1e9, 2)) s after the last Job was deleted")
    try? await Task.sleep(for: .seconds(2))

    // Descriptors still held on deleted files once everything is drained and deleted.
    let held = jsDeletedDescriptors(pid: sluice.pid)
    notes.append("sluice: \(openDescriptorCount(pid: sluice.pid)) open descriptors, \(held.count) on deleted files\(held.samples.isEmpty ? "" : " e.g. \(held.samples)"), RSS \(residentSetKiB(pid: sluice.pid) / 1024) MiB")
    // They must be let go once drained and their containers gone (5 s after the drain by default).
    let releaseStart = jsMonoNanos()
    var stillHeld = held
    while stillHeld.count > 0 && jsMonoNanos() - releaseStart < 20_000_000_000 {
        try? await Task.sleep(for: .milliseconds(200))
        stillHeld = jsDeletedDescriptors(pid: sluice.pid)
    }
    notes.append(stillHeld.count == 0
        ? "descriptors on deleted files: all released \(jsFmt(Double(jsMonoNanos() - releaseStart) / 1e9, 1)) s later"
        : "descriptors on deleted files: \(stillHeld.count) still held 20 s later, e.g. \(stillHeld.samples)")
    let deletedHeldAtEnd = max(0, stillHeld.count)
    let stats = readStats(scenario.statsFile)
    if !stats.isEmpty {
        let keys = stats.keys.sorted().filter { k in
            let v = statValue(stats, k) ?? 0
            return v != 0 && !k.contains("bytes") && !k.contains("_ns")
        }
        notes.append("sluice stats (non-zero counters): " + keys.prefix(30).map { "\($0)=\(statValue(stats, $0)!)" }.joined(separator: " "))
    }

    // 4. Stop sluice (as a DaemonSet pod is stopped), then read the outputs one last time.
    let rc = sluice.stop(timeout: 40)
    notes.append("sluice exit status after SIGTERM: \(rc.map(String.init) ?? "did not exit")")
    tail.stop()

    // 5. Check.
    let events = tail.lines.compactMap { line -> JSEvent? in
        if let e = jsParse(line) { return e }
        return JSEvent(content: "<unparsable> " + String(decoding: line.bytes.prefix(100), as: UTF8.self), tags: [:], time: nil, arrival: line.arrival, output: line.output)
    }
    var report = jsCheck(runtime: runtime.name, results: results, events: events, stdioOutput: stdioOutput, filesOutput: filesOutput,
                         ignoredPods: [warm.pod])
    if timedOut { report.jobsFailed += jobs.count + others.count - results.count }
    let errors = sluice.stderr.split(separator: "\n").filter { $0.contains("error") || $0.contains("warning") }
    if !errors.isEmpty {
        notes.append("sluice warnings/errors: \(errors.count); first: " + errors.prefix(5).map { String($0.prefix(300)) }.joined(separator: "\n    "))
    }
    report.notes = notes
    report.deletedHeldAtEnd = deletedHeldAtEnd
    report.heldAfterStormInOutage = heldInOutage
    report.arrivedDuringOutage = arrivedInOutage
    jsPrint(report, settings: settings, stormSeconds: stormSeconds, binary: SluiceProcess.binaryPath)
    return report
}

/// Waits until the warm-up Job's 3 lines of each kind are in the output (and the tail saw them).
func jsWaitForWarmUp(_ job: JSJob, tail: JSOutputTail, timeout: Double) async -> [JSKind: Int] {
    let deadline = jsMonoNanos() + Int64(timeout * 1e9)
    var counts: [JSKind: Int] = [:]
    while jsMonoNanos() < deadline {
        counts = [:]
        for line in tail.lines {
            // Cheap pre-filter before parsing JSON.
            guard line.bytes.count > 20, let e = jsParse(line), let (pod, kind, _) = jsParseContent(e.content), pod == job.pod else { continue }
            counts[kind, default: 0] += 1
        }
        if JSKind.allCases.allSatisfy({ (counts[$0] ?? 0) >= job.lines }) { return counts }
        try? await Task.sleep(for: .milliseconds(100))
    }
    return counts
}

/// With SLUICE_JOBSTORM_KEEP_STDERR=<path>, sluice's whole stderr is kept there (for a run at
/// SLUICE_JOBSTORM_LOG_LEVEL=debug).
func jsKeepStderr(_ proc: SluiceProcess?, runtime: String) {
    guard let proc, let dest = ProcessInfo.processInfo.environment["SLUICE_JOBSTORM_KEEP_STDERR"], !dest.isEmpty else { return }
    let path = "\(dest).\(runtime)"
    try? FileManager.default.removeItem(atPath: path)
    try? FileManager.default.copyItem(atPath: proc.stderrPath, toPath: path)
}
