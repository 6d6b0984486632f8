// Test support for the Docker tests: a real dockerd with private roots, processes without blocking
// the cooperative pool, fake servers on Unix sockets, log capture. Helpers are prefixed `dk` / `DK`
// so they cannot clash with other files of this test target.
import SluiceTesting
import SluiceSystem
import Glibc
import Foundation
import Logging
import Synchronization
@testable import SluiceContainers

// MARK: - Small helpers

let dkIsRoot: Bool = getuid() == 0

func dkSay(_ s: String) {
    let line = s + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

func dkWallNanos() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

func dkTempDir(_ tag: String) -> String {
    // Short: Unix socket paths are limited to 107 bytes.
    var template = Array("/tmp/sdk-\(tag)-XXXXXX".utf8CString)
    let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    precondition(p != nil, "mkdtemp failed")
    return String(cString: p!)
}

func dkFileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

func dkPercentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(max(rank, 0), sorted.count - 1)]
}

func dkFormat(_ v: Double) -> String {
    let scaled = (v * 100).rounded() / 100
    return "\(scaled)"
}

// MARK: - Processes (posix_spawn + waitpid(WNOHANG) polling: never blocks a pool thread)

struct DKProcessResult: Sendable {
    var status: Int32
    var output: String
}

/// Spawns `argv` (PATH search) with stdin from /dev/null and stdout+stderr to `outputPath`.
func dkSpawn(_ argv: [String], outputPath: String, append: Bool = false) throws -> pid_t {
    var fa = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&fa)
    defer { posix_spawn_file_actions_destroy(&fa) }
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&fa, 1, outputPath, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0o644)
    posix_spawn_file_actions_adddup2(&fa, 1, 2)
    var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
    cargs.append(nil)
    defer { for p in cargs { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawnp(&pid, argv[0], &fa, nil, cargs, environ)
    guard rc == 0 else { throw DKError("posix_spawnp \(argv[0]) failed: \(String(cString: strerror(rc)))") }
    return pid
}

/// Waits for `pid` to exit (polling every 1 ms); nil on timeout.
func dkWait(_ pid: pid_t, timeout: Double) async -> Int32? {
    let deadline = Sys.monotonicNanos() + Int64(timeout * 1e9)
    while true {
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid {
            let exited = (status & 0x7f) == 0
            return exited ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        }
        if r < 0 { return -1 }  // not our child / already reaped
        if Sys.monotonicNanos() > deadline { return nil }
        try? await Task.sleep(for: .milliseconds(1))
    }
}

/// Runs a command to completion; output (stdout+stderr) captured through a temp file.
func dkRun(_ argv: [String], timeout: Double = 60) async throws -> DKProcessResult {
    let out = "/tmp/sdk-out-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    defer { unlink(out) }
    let pid = try dkSpawn(argv, outputPath: out)
    guard let status = await dkWait(pid, timeout: timeout) else {
        kill(pid, SIGKILL)
        _ = await dkWait(pid, timeout: 5)
        throw DKError("\(argv.joined(separator: " ")) timed out after \(timeout) s")
    }
    let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    return DKProcessResult(status: status, output: text)
}

func dkShell(_ script: String, timeout: Double = 60) async throws -> DKProcessResult {
    try await dkRun(["/bin/sh", "-c", script], timeout: timeout)
}

struct DKError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

// MARK: - Log capture

final class DKLogStore: Sendable {
    struct Entry: Sendable {
        var level: Logger.Level
        var text: String
    }
    private let entries = Mutex<[Entry]>([])
    let echo: Bool

    init(echo: Bool = false) { self.echo = echo }

    func append(_ e: Entry) {
        entries.withLock { $0.append(e) }
        if echo { dkSay("    [log \(e.level)] \(e.text)") }
    }
    var all: [Entry] { entries.withLock { $0 } }
    func count(_ level: Logger.Level? = nil, containing s: String) -> Int {
        all.filter { (level == nil || $0.level == level) && (s.isEmpty || $0.text.contains(s)) }.count
    }
    var dump: String { all.map { "[\($0.level)] \($0.text)" }.joined(separator: "\n") }

    func logger(_ label: String = "test.docker") -> Logger {
        Logger(label: label) { _ in DKCaptureHandler(store: self) }
    }
}

struct DKCaptureHandler: LogHandler {
    let store: DKLogStore
    var logLevel: Logger.Level = .debug
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        for (k, v) in event.metadata ?? [:] { all[k] = v }
        let meta = all.keys.sorted().map { "\($0)=\(all[$0]!)" }.joined(separator: " ")
        store.append(.init(level: event.level, text: "\(event.message) \(meta)"))
    }
}

// MARK: - Registry observation

/// Records every registry event with the wall-clock time it was received.
final class DKRecorder: Sendable {
    struct Seen: Sendable {
        var kind: String  // added / updated / removed
        var info: ContainerInfo
        var wallNanos: Int64
    }
    private let seen = Mutex<[Seen]>([])
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(_ registry: ContainerRegistry) {
        let stream = registry.subscribe()
        let me = self
        let t = Task {
            for await event in stream { me.record(event) }
        }
        task.withLock { $0 = t }
    }

    private func record(_ event: ContainerEvent) {
        let now = dkWallNanos()
        let (kind, info) = dkDescribe(event)
        seen.withLock { $0.append(Seen(kind: kind, info: info, wallNanos: now)) }
    }

    var all: [Seen] { seen.withLock { $0 } }
    func events(for id: String) -> [Seen] { all.filter { $0.info.id == id } }
    func stop() { task.withLock { $0?.cancel() } }
}

/// The one place that knows the shape of `ContainerEvent`.
func dkDescribe(_ event: ContainerEvent) -> (String, ContainerInfo) {
    switch event {
    case .added(let i): return ("added", i)
    case .updated(_, let i): return ("updated", i)
    case .removed(let i): return ("removed", i)
    }
}

/// Runs a `DockerSource` in a task; `stop()` cancels it and returns how long `run` took to return.
final class DKSourceRun: Sendable {
    let task: Task<Void, Never>
    private let box: DKBox

    init(_ source: DockerSource, registry: ContainerRegistry) {
        let box = DKBox()
        self.box = box
        self.task = Task {
            await source.run(registry: registry)
            box.set(Sys.monotonicNanos())
        }
    }

    var isFinished: Bool { box.get() != nil }

    /// Cancels and waits; returns seconds until `run` returned (nil: not within 10 s).
    func stop() async -> Double? {
        let t0 = Sys.monotonicNanos()
        task.cancel()
        let ok = await eventually(10) { box.get() != nil }
        guard ok, let end = box.get() else { return nil }
        return Double(end - t0) / 1e9
    }
}

final class DKBox: Sendable {
    private let v = Mutex<Int64?>(nil)
    func set(_ x: Int64) { v.withLock { $0 = x } }
    func get() -> Int64? { v.withLock { $0 } }
}

// MARK: - A real dockerd

/// A dockerd with private `--data-root`, `--exec-root`, `--pidfile` and socket under one temp dir,
/// its own managed containerd (dockerd starts one under the exec root when `--containerd` is not
/// given), no networking (`--bridge=none --iptables=false --ip-masq=false`).
final class DockerHarness: Sendable {
    let dir: String
    let socketPath: String
    let dockerCLI: String
    private let state = Mutex<(pid: pid_t, driver: String, starts: Int)>((0, "", 0))
    static let imageName = "sluice-busybox"
    /// The storage driver that worked on the first start of any harness in this process.
    static let knownDriver = Mutex<String?>(nil)

    var storageDriver: String { state.withLock { $0.driver } }
    var dockerHost: String { "unix://\(socketPath)" }
    var endpoint: DockerEndpoint { .unix(path: socketPath) }
    var pid: pid_t { state.withLock { $0.pid } }

    /// Also listen on 127.0.0.1:`tcpPort` (plain HTTP) when set.
    let tcpPort: Int?

    init(tag: String, tcpPort: Int? = nil) {
        self.tcpPort = tcpPort
        dir = dkTempDir(tag)
        socketPath = dir + "/docker.sock"
        dockerCLI = dkFileExists("/usr/bin/docker") ? "/usr/bin/docker" : "docker"
        for sub in ["data", "exec", "run", "rootfs/bin"] {
            _ = try? FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true)
        }
    }

    /// Installs docker.io and busybox-static with apt-get when they are missing (root only).
    static func ensureInstalled() async throws {
        let have = dkFileExists("/usr/sbin/dockerd") || dkFileExists("/usr/bin/dockerd")
        let haveBusybox = dkFileExists("/bin/busybox") || dkFileExists("/usr/bin/busybox")
        if have && haveBusybox { return }
        dkSay("DockerHarness: installing docker.io / busybox-static with apt-get")
        var r = try await dkShell("DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io busybox-static", timeout: 600)
        if r.status != 0 {
            _ = try await dkShell("apt-get update", timeout: 600)
            r = try await dkShell("DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io busybox-static", timeout: 600)
        }
        guard r.status == 0 else { throw DKError("apt-get install docker.io busybox-static failed:\n\(r.output.suffix(2000))") }
    }

    /// Starts the daemon and imports the test image (first start only). Tries overlay2, then vfs.
    func start() async throws {
        try await Self.ensureInstalled()
        // SLUICE_TEST_DOCKER_STORAGE_DRIVER forces one driver (to test the vfs fallback by hand).
        let forced = ProcessInfo.processInfo.environment["SLUICE_TEST_DOCKER_STORAGE_DRIVER"].flatMap { $0.isEmpty ? nil : $0 }
        let preferred = forced ?? Self.knownDriver.withLock { $0 }
        let candidates = preferred.map { [$0] } ?? ["overlay2", "vfs"]
        var lastError: Error?
        for driver in candidates {
            do {
                try await startDaemon(driver: driver, socket: socketPath)
                if state.withLock({ $0.starts }) == 1 { try await importImage() }
                Self.knownDriver.withLock { $0 = driver }
                return
            } catch {
                lastError = error
                dkSay("DockerHarness: dockerd with storage driver \(driver) failed: \(error)")
                await stopDaemon()
                try? FileManager.default.removeItem(atPath: dir + "/data")
                _ = try? FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
                state.withLock { $0.starts = 0 }
            }
        }
        throw lastError ?? DKError("dockerd did not start")
    }

    /// Starts dockerd (again) on `socket` (default: the harness socket) with the same roots.
    func startDaemon(driver: String? = nil, socket: String? = nil) async throws {
        let driver = driver ?? storageDriver
        let sock = socket ?? socketPath
        let argv = [
            "dockerd",
            "--data-root", dir + "/data", "--exec-root", dir + "/exec", "--pidfile", dir + "/run/docker.pid",
            "-H", "unix://\(sock)", "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip6tables=false",
            "--storage-driver", driver, "--shutdown-timeout", "2", "--log-level", "warn",
        ] + (tcpPort.map { ["-H", "tcp://127.0.0.1:\($0)"] } ?? [])
        let pid = try dkSpawn(argv, outputPath: dir + "/dockerd.log", append: true)
        state.withLock { $0.pid = pid; $0.driver = driver; $0.starts += 1 }
        let ok = await eventually(30) {
            if let _ = await dkWait(pid, timeout: 0) { return true }  // exited: stop waiting
            guard dkFileExists(sock) else { return false }
            let r = try? await dkRun([self.dockerCLI, "-H", "unix://\(sock)", "version", "--format", "{{.Server.Version}}"], timeout: 10)
            return r?.status == 0
        }
        if !ok || kill(pid, 0) != 0 {
            let log = (try? String(contentsOfFile: dir + "/dockerd.log", encoding: .utf8)) ?? ""
            throw DKError("dockerd did not come up (driver \(driver)); log tail:\n\(log.suffix(3000))")
        }
        let info = try await dkRun([dockerCLI, "-H", "unix://\(sock)", "info", "--format", "{{.Driver}}"])
        guard info.output.trimmingCharacters(in: .whitespacesAndNewlines) == driver else {
            throw DKError("dockerd runs storage driver \(info.output) instead of \(driver)")
        }
    }

    private func importImage() async throws {
        let bin = dir + "/rootfs/bin"
        let busybox = dkFileExists("/bin/busybox") ? "/bin/busybox" : "/usr/bin/busybox"
        try? FileManager.default.removeItem(atPath: bin + "/busybox")
        try FileManager.default.copyItem(atPath: busybox, toPath: bin + "/busybox")
        for applet in ["sh", "echo", "sleep", "seq", "cat", "ls", "true", "env", "date", "printf"] {
            try? FileManager.default.createSymbolicLink(atPath: bin + "/" + applet, withDestinationPath: "busybox")
        }
        _ = try? FileManager.default.createDirectory(atPath: dir + "/rootfs/tmp", withIntermediateDirectories: true)
        _ = try? FileManager.default.createDirectory(atPath: dir + "/rootfs/data", withIntermediateDirectories: true)
        let r = try await dkShell("tar -C '\(dir)/rootfs' -c . | '\(dockerCLI)' -H '\(dockerHost)' import - \(Self.imageName)")
        guard r.status == 0 else { throw DKError("docker import failed: \(r.output)") }
        // Overlay must really work: run a container once.
        let run = try await docker(["run", "--rm", "--network", "none", Self.imageName, "echo", "ok"])
        guard run.status == 0, run.output.contains("ok") else { throw DKError("test container failed: \(run.output)") }
    }

    /// `docker -H <harness socket> args...`
    @discardableResult
    func docker(_ args: [String], socket: String? = nil) async throws -> DKProcessResult {
        try await dkRun([dockerCLI, "-H", "unix://\(socket ?? socketPath)"] + args, timeout: 60)
    }

    /// `docker ...` that must succeed; returns its trimmed output.
    @discardableResult
    func dockerOK(_ args: [String], socket: String? = nil) async throws -> String {
        let r = try await docker(args, socket: socket)
        guard r.status == 0 else { throw DKError("docker \(args.joined(separator: " ")) failed (\(r.status)): \(r.output)") }
        return r.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Stops dockerd by its pid (SIGTERM, then SIGKILL after 20 s), then any process still running
    /// from this harness's directory (its containerd, shims) by pid.
    func stopDaemon() async {
        let pid = state.withLock { $0.pid }
        if pid > 0 {
            kill(pid, SIGTERM)
            if await dkWait(pid, timeout: 20) == nil {
                kill(pid, SIGKILL)
                _ = await dkWait(pid, timeout: 5)
            }
            state.withLock { $0.pid = 0 }
        }
        for p in processesUsingDir() {
            kill(p, SIGTERM)
        }
        _ = await eventually(5) { self.processesUsingDir().isEmpty }
        for p in processesUsingDir() { kill(p, SIGKILL) }
    }

    /// Pids whose command line mentions this harness's directory (managed containerd, shims).
    func processesUsingDir() -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var out: [pid_t] = []
        for e in entries {
            guard let p = pid_t(e), p != getpid() else { continue }
            guard let data = FileManager.default.contents(atPath: "/proc/\(e)/cmdline"), !data.isEmpty else { continue }
            let cmd = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            if cmd.contains(dir + "/") || cmd.contains(dir + " ") || cmd.hasSuffix(dir) { out.append(p) }
        }
        return out
    }

    /// Removes every container, stops the daemon, unmounts leftovers, removes the temp dir.
    func cleanup() async {
        if pid > 0 {
            if let ids = try? await dockerOK(["ps", "-aq"]), !ids.isEmpty {
                _ = try? await docker(["rm", "-f"] + ids.split(separator: "\n").map(String.init))
            }
        }
        await stopDaemon()
        Self.unmountAll(under: dir)
        if (try? FileManager.default.removeItem(atPath: dir)) == nil {
            _ = try? await dkShell("rm -rf '\(dir)'")
        }
    }

    /// Detaches every mount under `prefix`, deepest first.
    static func unmountAll(under prefix: String) {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return }
        var points: [String] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4 else { continue }
            let mp = String(fields[4]).replacingOccurrences(of: "\\040", with: " ")
            if mp == prefix || mp.hasPrefix(prefix + "/") { points.append(mp) }
        }
        for mp in points.sorted(by: { $0.count > $1.count }) {
            _ = umount2(mp, Int32(MNT_DETACH))
        }
    }
}

// MARK: - Fake servers on Unix sockets

/// A Unix socket server that accepts connections and never answers (nor reads).
final class DKHangingServer: Sendable {
    let path: String
    private let fd: Int32
    private let conns = Mutex<[Int32]>([])
    private let stopped = Mutex(false)

    init(path: String) throws {
        self.path = path
        fd = try dkListen(path)
        let server = self
        Thread { server.acceptLoop() }.start()
    }

    private func acceptLoop() {
        while !stopped.withLock({ $0 }) {
            let c = accept(fd, nil, nil)
            if c < 0 { if errno == EINTR { continue }; return }
            conns.withLock { $0.append(c) }
        }
    }

    var accepted: Int { conns.withLock { $0.count } }

    func stop() {
        stopped.withLock { $0 = true }
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        for c in conns.withLock({ $0 }) { close(c) }
        unlink(path)
    }
}

/// What a `DKHTTPServer` answers to one request.
enum DKReply: Sendable {
    /// A complete response.
    case full(status: Int, body: String)
    /// A chunked response: each piece written after its delay (ms) as one chunk; then, when
    /// `hold`, the connection stays open until the server stops, else the response ends.
    case stream(pieces: [(delayMs: Int, text: String)], hold: Bool)
    /// Raw bytes, then close.
    case raw(String)
    /// Read the request, never answer.
    case hang
}

/// A tiny HTTP/1.1 server on a Unix socket: one thread per connection, one request per connection.
final class DKHTTPServer: Sendable {
    let path: String
    private let fd: Int32
    private let stopped = Mutex(false)
    private let conns = Mutex<[Int32]>([])
    private let requestLog = Mutex<[String]>([])
    private let handler: Mutex<@Sendable (String) -> DKReply>

    init(path: String, handler: @escaping @Sendable (String) -> DKReply) throws {
        self.path = path
        self.handler = Mutex(handler)
        fd = try dkListen(path)
        let server = self
        let t = Thread { server.acceptLoop() }
        t.start()
    }

    func setHandler(_ h: @escaping @Sendable (String) -> DKReply) { handler.withLock { $0 = h } }
    var requests: [String] { requestLog.withLock { $0 } }
    func count(_ prefix: String) -> Int { requests.filter { $0.hasPrefix(prefix) }.count }

    private func acceptLoop() {
        while !stopped.withLock({ $0 }) {
            let c = accept(fd, nil, nil)
            if c < 0 { if errno == EINTR { continue }; return }
            conns.withLock { $0.append(c) }
            let server = self
            Thread { server.serve(c) }.start()
        }
    }

    private func serve(_ c: Int32) {
        var buf = [UInt8]()
        var tmp = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(c, &tmp, tmp.count)
            if n <= 0 { return }
            buf += tmp[0..<n]
            if let r = dkFind(buf, Array("\r\n\r\n".utf8)) { buf = Array(buf[..<r]); break }
        }
        let head = String(decoding: buf, as: UTF8.self)
        let first = head.split(separator: "\r\n").first.map(String.init) ?? ""
        let parts = first.split(separator: " ")
        let path = parts.count > 1 ? String(parts[1]) : "/"
        requestLog.withLock { $0.append(path) }
        let reply = handler.withLock { $0 }(path)
        switch reply {
        case .full(let status, let body):
            let b = Array(body.utf8)
            dkWriteAll(c, "HTTP/1.1 \(status) X\r\nContent-Type: application/json\r\nContent-Length: \(b.count)\r\nConnection: close\r\n\r\n")
            dkWriteAll(c, b)
            shutdown(c, Int32(SHUT_WR))
        case .stream(let pieces, let hold):
            dkWriteAll(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            for (delay, text) in pieces {
                if delay > 0 { usleep(UInt32(delay * 1000)) }
                if stopped.withLock({ $0 }) { return }
                let b = Array(text.utf8)
                dkWriteAll(c, String(b.count, radix: 16) + "\r\n")
                dkWriteAll(c, b)
                dkWriteAll(c, "\r\n")
            }
            if hold {
                while !stopped.withLock({ $0 }) { usleep(20_000) }
            } else {
                dkWriteAll(c, "0\r\n\r\n")
                shutdown(c, Int32(SHUT_WR))
            }
        case .raw(let text):
            dkWriteAll(c, text)
            shutdown(c, Int32(SHUT_WR))
        case .hang:
            while !stopped.withLock({ $0 }) { usleep(20_000) }
        }
    }

    func stop() {
        stopped.withLock { $0 = true }
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        for c in conns.withLock({ $0 }) {
            shutdown(c, Int32(SHUT_RDWR))
            close(c)
        }
        unlink(path)
    }
}

func dkListen(_ path: String) throws -> Int32 {
    unlink(path)
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw DKError("socket: errno \(errno)") }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw DKError("socket path too long: \(path)") }
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
        for (i, b) in bytes.enumerated() { raw[i] = b }
        raw[bytes.count] = 0
    }
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard rc == 0 else { close(fd); throw DKError("bind \(path): errno \(errno)") }
    guard listen(fd, 64) == 0 else { close(fd); throw DKError("listen: errno \(errno)") }
    return fd
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
func dkFreeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw DKError("socket: errno \(errno)") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard ok else { throw DKError("bind 127.0.0.1:0: errno \(errno)") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

func dkWriteAll(_ fd: Int32, _ s: String) { dkWriteAll(fd, Array(s.utf8)) }

func dkWriteAll(_ fd: Int32, _ b: [UInt8]) {
    var off = 0
    while off < b.count {
        let n = b[off...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { return }
        off += n
    }
}

func dkFind(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
    guard hay.count >= needle.count else { return nil }
    for i in 0...(hay.count - needle.count) where hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
    return nil
}

// MARK: - Fixtures

/// A container id of 64 hex digits derived from `n`.
func dkFakeID(_ n: Int) -> String {
    let h = String(n, radix: 16)
    return String(repeating: "0", count: 64 - h.count) + h
}

/// An inspect reply as dockerd 20.10 writes it (trimmed to what matters plus some noise).
func dkInspectJSON(id: String, name: String, status: String = "running", pid: Int = 4242,
                   labels: [String: String] = [:], env: [String] = ["PATH=/bin", "A=1"]) -> String {
    let labelsJSON = labels.isEmpty ? "{}" : "{" + labels.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",") + "}"
    let envJSON = "[" + env.map { "\"\($0)\"" }.joined(separator: ",") + "]"
    return """
    {"Id":"\(id)","Created":"2024-05-01T12:34:56.123456789Z","Path":"sh","Args":["-c","x"],
     "State":{"Status":"\(status)","Running":\(status == "running"),"Paused":false,"Restarting":false,"OOMKilled":false,"Dead":false,
       "Pid":\(pid),"ExitCode":0,"Error":"","StartedAt":"2024-05-01T12:34:57.5Z","FinishedAt":"0001-01-01T00:00:00Z"},
     "Image":"sha256:cf1dcb44fb1e6b30803b74f34139fc3280cbcdfe4ea83d1240ade397ed94a88f",
     "LogPath":"/var/lib/docker/containers/\(id)/\(id)-json.log","Name":"/\(name)","RestartCount":0,"Driver":"overlay2",
     "HostConfig":{"Binds":["/srv/data:/data"],"NetworkMode":"default"},
     "GraphDriver":{"Data":{"LowerDir":"/var/lib/docker/overlay2/abc-init/diff","MergedDir":"/var/lib/docker/overlay2/abc/merged",
       "UpperDir":"/var/lib/docker/overlay2/abc/diff","WorkDir":"/var/lib/docker/overlay2/abc/work"},"Name":"overlay2"},
     "Mounts":[{"Type":"bind","Source":"/srv/data","Destination":"/data","Mode":"","RW":true,"Propagation":"rprivate"},
               {"Type":"volume","Name":"v1","Source":"/var/lib/docker/volumes/v1/_data","Destination":"/cache","Driver":"local","RW":true}],
     "Config":{"Hostname":"abc","Env":\(envJSON),"Cmd":["sh"],"Image":"busybox:1.36","Labels":\(labelsJSON)},
     "NetworkSettings":{"Bridge":"","IPAddress":"","Networks":{"zeta":{"IPAddress":"10.9.0.7"},"alpha":{"IPAddress":"172.17.0.2"}}}}
    """
}
