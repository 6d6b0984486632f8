#if canImport(Glibc)
import SluiceTesting
import SluiceSystem
import Glibc
#endif
import Foundation
import Logging
import SluiceContainers
import Synchronization
import Testing

// Test support for the CRI tests: a real containerd under a temp dir, a busybox image built
// locally, fake sockets, log capture. Everything here is prefixed `CRI`/`cri` so it cannot clash
// with other test files of this target.

enum CRITestEnv {
    static let isRoot = geteuid() == 0
    static let missingTools: [String] = ["containerd", "ctr", "runc", "containerd-shim-runc-v2", "busybox", "tar", "sha256sum"]
        .filter { criWhich($0) == nil }
    static let canRunContainerd = isRoot && missingTools.isEmpty
    static let skipReason: Comment = isRoot
        ? "CRI integration tests need \(missingTools.joined(separator: ", ")) (apt-get install containerd runc busybox-static)"
        : "CRI integration tests need root (they start a private containerd): skipped"

    /// Printed once, so a skip is visible in the test output.
    static let announced: Bool = {
        if !canRunContainerd { print("⚠️  SKIPPED: \(skipReason)") }
        return true
    }()
}

func criWhich(_ tool: String) -> String? {
    for dir in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = dir + "/" + tool
        if access(p, X_OK) == 0 { return p }
    }
    return nil
}

func criMillis(_ ns: Int64) -> Double { Double(ns) / 1e6 }

/// Nearest-rank percentile of `values` (ms).
func criPercentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    let rank = max(1, Int((p / 100 * Double(sorted.count)).rounded(.up)))
    return sorted[min(rank, sorted.count) - 1]
}

func criFormat(_ v: Double) -> String {
    String(format: "%.1f", v)
}

/// Runs a shell script; throws with its output when it fails.
@discardableResult
func criShell(_ script: String) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", "set -e\n" + script]
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let out = String(decoding: data, as: UTF8.self)
    if p.terminationStatus != 0 {
        throw CRITestError("command failed (\(p.terminationStatus)): \(script)\n\(out)")
    }
    return out
}

struct CRITestError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Whether the registry no longer holds `id` as a live container (removed containers stay
/// visible to `lookup` for the grace period).
func criIsGone(_ registry: ContainerRegistry, _ id: String) -> Bool {
    registry.lookup(id: id) == nil || registry.isRemoved(id: id)
}

// MARK: - Log capture

/// A swift-log handler that keeps every message (and echoes warnings and above).
final class CRILogCapture: Sendable {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
    }
    private let store = Mutex<[Entry]>([])
    let echo: Bool

    init(echo: Bool = true) { self.echo = echo }

    var entries: [Entry] { store.withLock { $0 } }

    func count(_ level: Logger.Level, containing text: String) -> Int {
        entries.filter { $0.level == level && $0.message.contains(text) }.count
    }

    func count(atLeast level: Logger.Level) -> Int {
        entries.filter { $0.level >= level }.count
    }

    func logger(_ label: String = "test.cri") -> Logger {
        var l = Logger(label: label) { _ in Handler(capture: self) }
        l.logLevel = .debug
        return l
    }

    fileprivate func append(_ e: Entry) {
        store.withLock { $0.append(e) }
        if echo, e.level >= .info { print("    [log \(e.level)] \(e.message)") }
    }

    struct Handler: LogHandler {
        let capture: CRILogCapture
        var logLevel: Logger.Level = .debug
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            var all = metadata
            for (k, v) in event.metadata ?? [:] { all[k] = v }
            let meta = all.keys.sorted().map { "\($0)=\(all[$0]!)" }.joined(separator: " ")
            capture.append(Entry(level: event.level, message: meta.isEmpty ? event.message.description : "\(event.message) \(meta)"))
        }
    }
}

// MARK: - Fake Unix socket servers

/// A Unix socket that accepts connections and then never answers (`hang`), or answers with
/// bytes that are not HTTP/2 and closes (`garbage`).
final class CRIFakeSocketServer: @unchecked Sendable {
    enum Mode { case hang, garbage }
    let path: String
    let mode: Mode
    private let fd: Int32
    private let state = Mutex<(accepted: Int, held: [Int32], stopped: Bool)>((0, [], false))
    private var thread: Thread?

    var accepted: Int { state.withLock { $0.accepted } }

    init(path: String, mode: Mode) throws {
        self.path = path
        self.mode = mode
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CRITestError("socket: \(errno)") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { buf in
            for (i, b) in bytes.prefix(buf.count - 1).enumerated() { buf[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0, listen(fd, 16) == 0 else { close(fd); throw CRITestError("bind/listen \(path): \(errno)") }
        let t = Thread { [self] in self.acceptLoop() }
        thread = t
        t.start()
    }

    private func acceptLoop() {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 {
                if errno == EINTR { continue }
                return
            }
            let stopped = state.withLock { s -> Bool in
                s.accepted += 1
                if mode == .hang, !s.stopped { s.held.append(c) }
                return s.stopped
            }
            if stopped { close(c); return }
            if mode == .garbage {
                var junk = Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".utf8)
                junk += (0..<256).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
                _ = junk.withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
                usleep(20_000)
                close(c)
            }
        }
    }

    func stop() {
        let held = state.withLock { s -> [Int32] in
            s.stopped = true
            let h = s.held
            s.held = []
            return h
        }
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        for c in held { close(c) }
        unlink(path)
    }
}

// MARK: - Child processes

/// Starts `path args` with stdout and stderr appended to `log`; returns its pid (reap it with `criReap`).
func criSpawn(_ path: String, _ args: [String], log: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
    let envp: [UnsafeMutablePointer<CChar>?] = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        for p in argv { free(p) }
        for p in envp { free(p) }
    }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, nil, argv, envp)
    guard rc == 0 else { throw CRITestError("posix_spawn \(path): \(rc)") }
    return pid
}

/// Whether child `pid` has exited (reaping it if so).
func criReap(_ pid: pid_t) -> Bool {
    var status: Int32 = 0
    let r = waitpid(pid, &status, WNOHANG)
    return r == pid || (r < 0 && errno == ECHILD)
}

// MARK: - Temp dirs

func criMakeTempDir(_ prefix: String = "scri") throws -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    guard let p = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw CRITestError("mkdtemp: \(errno)")
    }
    return String(cString: p)
}

/// Unmounts everything under `dir` (deepest first), then removes it.
func criRemoveTree(_ dir: String) {
    guard dir.hasPrefix("/tmp/") else { return }
    for _ in 0..<3 {
        let text = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        let points = CRIRootfs.parseMounts(text).map(\.mountPoint).filter { $0.hasPrefix(dir + "/") }
        if points.isEmpty { break }
        for p in points.sorted(by: { $0.count > $1.count }) { umount2(p, Int32(MNT_DETACH)) }
    }
    try? FileManager.default.removeItem(atPath: dir)
}

// MARK: - A private containerd

/// A real containerd (CRI plugin on, host-network pods only: no CNI) with private root, state
/// and socket under a temp dir, and a busybox image imported into `k8s.io`.
final class CRIContainerd: @unchecked Sendable {
    static let image = "docker.io/sluice/busybox:1"
    static let sandboxImage = "docker.io/sluice/pause:1"

    let dir: String
    var socket: String { dir + "/state/containerd.sock" }
    var stateDir: String { dir + "/state" }
    var podLogRoot: String { dir + "/pods" }
    var containersDir: String { dir + "/containers" }
    private let lock = Mutex<pid_t?>(nil)
    private var imageTar: String { dir + "/image.tar" }

    var pid: Int32? { lock.withLock { $0 } }

    /// Prepares the dir (config, image tar) without starting the daemon.
    init(dir: String? = nil) throws {
        self.dir = try dir ?? criMakeTempDir()
        try FileManager.default.createDirectory(atPath: podLogRoot, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: containersDir, withIntermediateDirectories: true)
        try writeConfig()
        try buildImage()
    }

    /// Starts a containerd and imports the image; returns when the CRI answers.
    static func start(dir: String? = nil) async throws -> CRIContainerd {
        let c = try CRIContainerd(dir: dir)
        do {
            try await c.startDaemon()
            try criShell("ctr -a '\(c.socket)' -n k8s.io images import '\(c.imageTar)' >/dev/null")
        } catch {
            await c.cleanup()
            throw error
        }
        return c
    }

    private func writeConfig() throws {
        let d = dir
        let toml = """
            version = 2
            root = "\(d)/root"
            state = "\(d)/state"
            disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
            [grpc]
              address = "\(d)/state/containerd.sock"
            [ttrpc]
              address = "\(d)/state/containerd.sock.ttrpc"
            [debug]
              address = ""
            [metrics]
              address = ""
            [plugins]
              [plugins."io.containerd.grpc.v1.cri"]
                sandbox_image = "\(Self.sandboxImage)"
                disable_apparmor = true
                restrict_oom_score_adj = true
                stream_server_address = "127.0.0.1"
                stream_server_port = "0"
                [plugins."io.containerd.grpc.v1.cri".containerd]
                  snapshotter = "overlayfs"
                  default_runtime_name = "runc"
                  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
                    runtime_type = "io.containerd.runc.v2"
                [plugins."io.containerd.grpc.v1.cri".cni]
                  bin_dir = "\(d)/cni/bin"
                  conf_dir = "\(d)/cni/conf"
              [plugins."io.containerd.internal.v1.opt"]
                path = "\(d)/opt"
            """
        try toml.write(toFile: dir + "/config.toml", atomically: true, encoding: .utf8)
    }

    /// A docker-archive tar with two tags over one busybox-static layer: a shell image and a
    /// "pause" image whose entrypoint sleeps.
    private func buildImage() throws {
        let busybox = criWhich("busybox") ?? "/bin/busybox"
        try criShell("""
            D='\(dir)/imgbuild'
            mkdir -p "$D/rootfs/bin" "$D/rootfs/etc" "$D/rootfs/tmp" "$D/rootfs/dev" "$D/rootfs/proc" "$D/rootfs/sys" "$D/rootfs/var/log" "$D/img"
            cp '\(busybox)' "$D/rootfs/bin/busybox"
            for a in sh sleep echo cat ls env true mkdir touch printf; do ln -sf busybox "$D/rootfs/bin/$a"; done
            tar -C "$D/rootfs" --numeric-owner --owner=0 --group=0 -cf "$D/img/layer.tar" bin etc tmp dev proc sys var
            L=$(sha256sum "$D/img/layer.tar" | cut -d' ' -f1)
            printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$L" > "$D/img/busybox.json"
            printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Entrypoint":["/bin/sleep","999999999"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$L" > "$D/img/pause.json"
            printf '[{"Config":"busybox.json","RepoTags":["\(Self.image)"],"Layers":["layer.tar"]},{"Config":"pause.json","RepoTags":["\(Self.sandboxImage)"],"Layers":["layer.tar"]}]' > "$D/img/manifest.json"
            tar -C "$D/img" -cf '\(imageTar)' manifest.json busybox.json pause.json layer.tar
            rm -rf "$D"
            """)
    }

    /// Starts the daemon; returns once `Version` answers.
    func startDaemon() async throws {
        let pid = try criSpawn(criWhich("containerd") ?? "/usr/bin/containerd",
                               ["--config", dir + "/config.toml"], log: dir + "/containerd.log")
        lock.withLock { $0 = pid }
        let config = CRIClientConfig(socketPath: socket, callTimeout: .seconds(2))
        let ok = await eventually(20) {
            guard CRIRootfs.exists(self.socket) else { return false }
            return (try? await CRIClient.with(config) { try await $0.version() }) != nil
        }
        if !ok { throw CRITestError("containerd did not come up; log: \(dir)/containerd.log") }
    }

    /// Stops the daemon by its pid (SIGTERM, then SIGKILL after 10 s) and reaps it. Containers
    /// keep running (their shims do), as with a real containerd restart.
    func stopDaemon() async {
        guard let pid = lock.withLock({ $0 }) else { return }
        kill(pid, SIGTERM)
        if !(await eventually(10) { criReap(pid) }) {
            kill(pid, SIGKILL)
            _ = await eventually(5) { criReap(pid) }
        }
        lock.withLock { $0 = nil }
    }

    /// Removes every pod (as the kubelet would), stops the daemon, kills what is left of the
    /// shims and containers by pid, unmounts and removes the dir.
    func cleanup() async {
        if pid != nil {
            let config = CRIClientConfig(socketPath: socket, callTimeout: .seconds(5))
            _ = try? await CRIClient.with(config) { client in
                for s in try await client.listPodSandboxes() {
                    _ = try? await client.runtime.stopPodSandbox(.with { $0.podSandboxID = s.id })
                    _ = try? await client.runtime.removePodSandbox(.with { $0.podSandboxID = s.id })
                }
            }
        }
        await stopDaemon()
        killLeftovers()
        if ProcessInfo.processInfo.environment["SLUICE_CRI_TEST_KEEP"] == "1" {
            print("    kept \(dir) (SLUICE_CRI_TEST_KEEP=1); mounts under it were left as they were")
            return
        }
        criRemoveTree(dir)
    }

    /// Kills, by pid, container processes (`init.pid` in the task bundles) and shims started for this daemon.
    private func killLeftovers() {
        let bundles = stateDir + "/io.containerd.runtime.v2.task/k8s.io"
        for id in (try? FileManager.default.contentsOfDirectory(atPath: bundles)) ?? [] {
            if let text = try? String(contentsOfFile: "\(bundles)/\(id)/init.pid", encoding: .utf8),
               let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1 {
                kill(pid, SIGKILL)
            }
        }
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), pid > 1,
                  let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
            let cmd = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            if cmd.contains("containerd-shim"), cmd.contains(socket) { kill(pid, SIGKILL) }
        }
        usleep(200_000)
    }
}
