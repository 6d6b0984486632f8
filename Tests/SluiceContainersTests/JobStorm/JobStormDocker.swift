// The Job storm on a real dockerd (DockerHarness: private daemon, overlay2, busybox image).
// Containers are driven through the Engine API on the daemon's socket, as `docker run` (no
// `--rm`) and `docker rm` do, from OS threads: create + start, wait for the exit, inspect
// (State.StartedAt / FinishedAt), remove 0.2 s after FinishedAt.
import Glibc
import Foundation
import SluiceTesting
import Synchronization
import Testing
@testable import SluiceContainers

// MARK: - A minimal blocking Engine API client (one connection per request)

struct JSHTTPReply: Sendable {
    var status: Int
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] }
}

/// One HTTP/1.1 request on a Unix socket (`Connection: close`), blocking; chunked replies decoded.
func jsUnixHTTP(socketPath: String, method: String, path: String, json: Any? = nil, timeout: Double = 60) throws -> JSHTTPReply {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw JSError("socket: errno \(errno)") }
    defer { close(fd) }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let pathBytes = Array(socketPath.utf8)
    guard pathBytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw JSError("socket path too long: \(socketPath)") }
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
        for (i, b) in pathBytes.enumerated() { raw[i] = b }
        raw[pathBytes.count] = 0
    }
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard rc == 0 else { throw JSError("connect \(socketPath): errno \(errno)") }
    var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let body: [UInt8] = try json.map { Array(try JSONSerialization.data(withJSONObject: $0)) } ?? []
    var head = "\(method) \(path) HTTP/1.1\r\nHost: docker\r\nUser-Agent: sluice-jobstorm\r\nConnection: close\r\n"
    if !body.isEmpty { head += "Content-Type: application/json\r\n" }
    head += "Content-Length: \(body.count)\r\n\r\n"
    let request = Array(head.utf8) + body
    var off = 0
    while off < request.count {
        let n = request[off...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw JSError("send: errno \(errno)") }
        off += n
    }
    var reply: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 16384)
    while true {
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 && errno == EINTR { continue }
        if n < 0 { throw JSError("\(method) \(path): recv: errno \(errno) (timeout \(timeout) s?)") }
        if n == 0 { break }
        reply.append(contentsOf: buf[0..<n])
    }
    guard let sep = jsFind(reply, Array("\r\n\r\n".utf8)) else { throw JSError("\(method) \(path): no HTTP header in reply") }
    let header = String(decoding: reply[..<sep], as: UTF8.self)
    let statusLine = header.split(separator: "\r\n").first ?? ""
    let parts = statusLine.split(separator: " ")
    guard parts.count >= 2, let status = Int(parts[1]) else { throw JSError("\(method) \(path): bad status line \(statusLine)") }
    var payload = Array(reply[(sep + 4)...])
    if header.lowercased().contains("transfer-encoding: chunked") { payload = jsDechunk(payload) }
    return JSHTTPReply(status: status, body: payload)
}

func jsFind(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
    guard hay.count >= needle.count else { return nil }
    var i = 0
    while i <= hay.count - needle.count {
        if hay[i] == needle[0] && hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
        i += 1
    }
    return nil
}

func jsDechunk(_ b: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    var i = 0
    while i < b.count {
        guard let lineEnd = jsFind(Array(b[i...]), [13, 10]) else { break }
        let sizeText = String(decoding: b[i..<(i + lineEnd)], as: UTF8.self).split(separator: ";").first ?? ""
        guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size > 0 else { break }
        let start = i + lineEnd + 2
        guard start + size <= b.count else { out.append(contentsOf: b[start...]); break }
        out.append(contentsOf: b[start..<(start + size)])
        i = start + size + 2
    }
    return out
}

/// The Engine API calls a Job needs.
struct JSDockerAPI: Sendable {
    let socketPath: String

    func call(_ method: String, _ path: String, json: Any? = nil, expect: Set<Int>, timeout: Double = 60) throws -> JSHTTPReply {
        let r = try jsUnixHTTP(socketPath: socketPath, method: method, path: path, json: json, timeout: timeout)
        guard expect.contains(r.status) else { throw JSError("\(method) \(path): HTTP \(r.status): \(r.text.prefix(300))") }
        return r
    }

    /// `docker create` of a Job's container: Kubernetes-style labels (namespace, pod, uid,
    /// container name) as the kubelet (dockershim / cri-dockerd) sets them.
    func create(_ job: JSJob, image: String) throws -> String {
        let labels: [String: String] = [
            KubernetesNames.podNameLabel: job.pod,
            KubernetesNames.podNamespaceLabel: job.namespace,
            KubernetesNames.podUIDLabel: job.uid,
            KubernetesNames.containerNameLabel: jsContainerName,
        ]
        let spec: [String: Any] = [
            "Image": image,
            "Cmd": ["sh", "-c", job.script],
            "Labels": labels,
            "AttachStdout": false, "AttachStderr": false, "Tty": false,
            "HostConfig": ["NetworkMode": "none"],
        ]
        let r = try call("POST", "/containers/create?name=\(job.pod)", json: spec, expect: [201])
        guard let id = r.json?["Id"] as? String, !id.isEmpty else { throw JSError("create: no Id in \(r.text)") }
        return id
    }

    func start(_ id: String) throws { _ = try call("POST", "/containers/\(id)/start", expect: [204, 304]) }

    /// Blocks until the container is not running; its exit code.
    func wait(_ id: String, timeout: Double = 120) throws -> Int {
        let r = try call("POST", "/containers/\(id)/wait", expect: [200], timeout: timeout)
        return (r.json?["StatusCode"] as? NSNumber)?.intValue ?? -1
    }

    /// StartedAt, FinishedAt (Unix nanoseconds), LogPath and the overlay UpperDir.
    func inspect(_ id: String) throws -> (started: Int64, finished: Int64, logPath: String, upperDir: String) {
        let r = try call("GET", "/containers/\(id)/json", expect: [200])
        let state = r.json?["State"] as? [String: Any]
        let driver = (r.json?["GraphDriver"] as? [String: Any])?["Data"] as? [String: Any]
        return (DockerTime.unixNanos(state?["StartedAt"] as? String), DockerTime.unixNanos(state?["FinishedAt"] as? String),
                r.json?["LogPath"] as? String ?? "", driver?["UpperDir"] as? String ?? "")
    }

    func remove(_ id: String, force: Bool = false) throws {
        _ = try call("DELETE", "/containers/\(id)\(force ? "?force=1" : "")", expect: [204])
    }
}

struct JSDockerRuntime: JSRuntime {
    let name = "docker"
    let api: JSDockerAPI
    let image: String

    func run(_ job: JSJob, deleteDelayMs: Int) async -> JSJobResult {
        let api = self.api
        let image = self.image
        let r = try? await jsOnThread { () -> JSJobResult in
            var r = JSJobResult(job: job)
            do {
                r.createCalled = jsWallNanos()
                r.containerID = try api.create(job, image: image)
                r.startCalled = jsWallNanos()
                try api.start(r.containerID)
                r.startReturned = jsWallNanos()
                r.exitCode = try api.wait(r.containerID)
                r.exitSeen = jsWallNanos()
                let facts = try api.inspect(r.containerID)
                (r.startedAt, r.finishedAt) = (facts.started, facts.finished)
                // Removed 0.2 s after the exit (FinishedAt), or at once if that moment has passed.
                let due = (r.finishedAt > 0 ? r.finishedAt : jsWallNanos()) + Int64(deleteDelayMs) * 1_000_000
                let wait = due - jsWallNanos()
                if wait > 0 { usleep(useconds_t(wait / 1000)) }
                // Ground truth, read (not changed) just before the removal.
                if !facts.logPath.isEmpty, let c = jsCountJobLines(facts.logPath, pod: job.pod, kinds: [.stdout, .stderr]) {
                    r.runtimeWrote.merge(c) { $1 }
                }
                if !facts.upperDir.isEmpty {
                    r.runtimeWrote[.file] = jsCountJobLines(facts.upperDir + jsFileInContainer, pod: job.pod, kinds: [.file])?[.file] ?? 0
                }
                r.deleteBegan = jsWallNanos()
                try api.remove(r.containerID)
                r.deleted = jsWallNanos()
            } catch {
                r.error = "\(error)"
                if !r.containerID.isEmpty { try? api.remove(r.containerID, force: true) }
            }
            return r
        }
        return r ?? JSJobResult(job: job, error: "thread failed")
    }
}

// MARK: - The test

/// Part of the suite (`.ci/run` runs it, ~1 min per runtime); `SLUICE_JOBSTORM=0` skips it.
let jobStormEnabled = ProcessInfo.processInfo.environment["SLUICE_JOBSTORM"] != "0"

@Suite("Job storm", .serialized, .enabled(if: jobStormEnabled, "skipped: SLUICE_JOBSTORM=0"))
struct JobStormTests {
    @Test("Job storm on dockerd: no line lost, duplicated or mislabelled; first line p99 ≤ 500 ms",
          .enabled(if: dkIsRoot, "needs root to start a private dockerd"), .timeLimit(.minutes(10)))
    func dockerJobStorm() async throws {
        let settings = JSSettings.fromEnvironment()
        let h = DockerHarness(tag: "storm")
        let scenario = E2EScenario("jobstorm-docker")
        var sluice: SluiceProcess?
        var outputTail: JSOutputTail?
        do {
            let t0 = jsMonoNanos()
            try await h.start()
            jsSay("    [docker] dockerd pid \(h.pid), storage driver \(h.storageDriver), up in \(jsFmt(Double(jsMonoNanos() - t0) / 1e9, 2)) s")
            try #require(h.storageDriver == "overlay2", "files inside containers need the overlay upper dir (vfs has none)")

            let stdioOut = scenario.path("out/stdio.jsonl")
            let filesOut = scenario.path("out/files.jsonl")
            scenario.dir("out")
            for p in jsPipelines(stdioOutput: stdioOut, filesOutput: filesOut) { scenario.writePipeline(p.name, p.text) }
            let emptyPods = scenario.dir("no-pods")  // no kubelet here: an empty pod log dir
            let proc = try scenario.start(extraArguments: [
                "--docker-host", h.dockerHost, "--cri-socket", scenario.path("no-cri.sock"),
                "--pod-log-dir", emptyPods, "--host-root", "/",
            ], logLevel: settings.logLevel)
            sluice = proc
            let tail = JSOutputTail(paths: [stdioOut, filesOut])
            outputTail = tail
            let api = JSDockerAPI(socketPath: h.socketPath)
            let runtime = JSDockerRuntime(api: api, image: DockerHarness.imageName)

            let report = try await jsStormAgainstSluice(
                runtime: runtime, settings: settings, sluice: proc, scenario: scenario, tail: tail, stdioOutput: 0, filesOutput: 1,
                warmUp: { job in
                    let id = try await jsOnThread { () -> String in
                        let id = try api.create(job, image: DockerHarness.imageName)
                        try api.start(id)
                        return id
                    }
                    let counts = await jsWaitForWarmUp(job, tail: tail, timeout: 60)
                    _ = try? await jsOnThread { try api.remove(id, force: true) }
                    guard JSKind.allCases.allSatisfy({ (counts[$0] ?? 0) >= job.lines }) else {
                        throw JSError("""
                            the warm-up container (up for 60 s) was not collected: lines seen per kind \(counts); sluice stderr (tail):
                            \(proc.stderr.suffix(3000))
                            """)
                    }
                })
            jsAssertTargets(report)
        } catch {
            jsSay("    [docker] failed: \(error)\n    --- sluice stderr (tail) ---\n\(sluice?.stderr.suffix(3000) ?? "")\n    --- dockerd.log (tail) ---\n\((try? String(contentsOfFile: h.dir + "/dockerd.log", encoding: .utf8))?.suffix(2000) ?? "")")
            outputTail?.stop()
            sluice?.stop(timeout: 10)
            await h.cleanup()
            jsKeepStderr(sluice, runtime: "docker")
            scenario.cleanup()
            throw error
        }
        sluice?.stop(timeout: 10)
        await h.cleanup()
        jsKeepStderr(sluice, runtime: "docker")
            scenario.cleanup()
    }
}

/// The targets of issue 4: 0 lost, 0 duplicated, 100 % correct metadata, nothing of the other
/// namespace, first line in the output p99 ≤ 500 ms after the container started.
/// `latency: false` for a storm whose destination was down (its first lines arrive only after).
func jsAssertTargets(_ r: JSReport, latency: Bool = true, sourceLocation: SourceLocation = #_sourceLocation) {
    // A Job the runtime could not run (dockerd's `start` timing out for 60 s, which this VM's
    // dockerd does now and then) is the harness's failure, not sluice's: its lines are not
    // expected. Up to a quarter of the Jobs may fail so; more, and the storm did not happen.
    #expect(r.jobsFailed * 4 <= r.jobsRun, "Jobs that did not run cleanly (a harness problem, not sluice's): \(r.jobsFailed), e.g. \(r.failures)", sourceLocation: sourceLocation)
    if r.jobsFailed > 0 { jsSay("    [\(r.runtime)] \(r.jobsFailed) Jobs did not run cleanly (the runtime's failure; their lines are not expected): \(r.failures)") }
    #expect(r.jobsRun > 0, sourceLocation: sourceLocation)
    for k in JSKind.allCases {
        let f = r.kinds[k]!
        #expect(f.lost == 0, "\(r.runtime) \(k.rawValue): \(f.lost) of \(f.expected) lines lost; e.g. \(f.lossSamples)", sourceLocation: sourceLocation)
        #expect(f.duplicated == 0, "\(r.runtime) \(k.rawValue): \(f.duplicated) lines duplicated", sourceLocation: sourceLocation)
        #expect(f.metadataOK == f.collected, "\(r.runtime) \(k.rawValue): metadata correct on \(f.metadataOK) of \(f.collected) events; wrong tags \(f.wrongTags)", sourceLocation: sourceLocation)
    }
    for k in JSKind.allCases {
        let f = r.kinds[k]!
        #expect(f.lostBySluice == 0, "\(r.runtime) \(k.rawValue): \(f.lostBySluice) lost lines were in the runtime's file when the pod was deleted (sluice's loss)", sourceLocation: sourceLocation)
        #expect(f.runtimeMissing == 0, "\(r.runtime) \(k.rawValue): \(f.runtimeMissing) lines the Jobs printed were not in the runtime's file at deletion (the runtime's loss, or the harness's)", sourceLocation: sourceLocation)
    }
    #expect(r.leaked == 0, "\(r.runtime): \(r.leaked) events of namespace \(jsOtherNamespace) came through the filter", sourceLocation: sourceLocation)
    #expect(r.foreign == 0 && r.misrouted == 0, "\(r.runtime): \(r.foreign) foreign lines \(r.foreignSamples), \(r.misrouted) misrouted", sourceLocation: sourceLocation)
    if latency {
        #expect(r.p99 <= 500, "\(r.runtime): container start → first line p99 \(jsFmt(r.p99)) ms > 500 ms", sourceLocation: sourceLocation)
    }
    if let held = r.heldAfterStormInOutage {
        #expect(held == 0, "\(r.runtime): \(held) deleted files still held 10 s after the last deletion with the destination down (the buffer must release them)", sourceLocation: sourceLocation)
        #expect(r.arrivedDuringOutage == 0, "\(r.runtime): \(r.arrivedDuringOutage) lines arrived while the destination was down", sourceLocation: sourceLocation)
    }
    #expect(r.deletedHeldAtEnd == 0, "\(r.runtime): \(r.deletedHeldAtEnd) descriptors on deleted files still held 20 s after the end (an exited container's rootfs stays pinned)", sourceLocation: sourceLocation)
}
