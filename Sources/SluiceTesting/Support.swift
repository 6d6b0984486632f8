import Glibc
import Foundation
import Logging
import SluiceConfig
import SluiceCore
import SluiceRuntime
import SluiceSystem
import Synchronization

/// A temporary directory removed on `remove()`.
public struct TempDir: Sendable {
    public let path: String
    public init(_ prefix: String = "sluice-test") {
        var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        path = String(cString: p!)
    }
    public func sub(_ name: String) -> String {
        let p = path + "/" + name
        mkdir(p, 0o755)
        return p
    }
    public func remove() {
        _ = shell("rm -rf '\(path)'")
    }
}

/// Runs a shell command, returns its exit status.
@discardableResult
public func shell(_ cmd: String) -> Int32 {
    let rc = system(cmd)
    return rc == -1 ? -1 : (rc >> 8) & 0xff
}

public func writeFile(_ path: String, _ text: String, append: Bool = false) {
    writeFile(path, Array(text.utf8), append: append)
}

public func writeFile(_ path: String, _ bytes: [UInt8], append: Bool = false) {
    let fd = open(path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC) | O_CLOEXEC, 0o644)
    precondition(fd >= 0, "cannot open \(path): \(String(cString: strerror(errno)))")
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, bytes.count - off) }
        precondition(n > 0)
        off += n
    }
    close(fd)
}

/// Sets the file's access and modification times to `secondsAgo` seconds before now, as if it
/// had last been written then.
public func setModificationTime(_ path: String, secondsAgo: Int) {
    let t = timespec(tv_sec: time(nil) - secondsAgo, tv_nsec: 0)
    var times = [t, t]
    precondition(utimensat(AT_FDCWD, path, &times, 0) == 0, "cannot set the times of \(path)")
}

/// The whole file (tests read outputs of up to a few GiB); empty when it cannot be read.
public func readFileBytes(_ path: String) -> [UInt8] {
    (try? Sys.readFile(path, limit: 8 << 30).get()) ?? []
}

/// Blocks, polling `condition` every `pollMs` until it holds or `timeout` seconds pass (monotonic
/// clock). For synchronous tests that drive the real binary.
public func waitUntil(timeout: Double, pollMs: Int = 20, _ condition: () -> Bool) -> Bool {
    let deadline = Sys.monotonicNanos() + Int64(timeout * 1e9)
    while Sys.monotonicNanos() < deadline {
        if condition() { return true }
        usleep(useconds_t(pollMs * 1000))
    }
    return condition()
}

/// Suspends (never blocking a pool thread), polling `condition` every `pollMs` until it holds or
/// `timeout` seconds pass (monotonic clock). For async tests.
public func eventually(_ timeout: Double = 10, pollMs: Int = 5, _ condition: () async -> Bool) async -> Bool {
    let deadline = Sys.monotonicNanos() + Int64(timeout * 1e9)
    while Sys.monotonicNanos() < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(pollMs))
    }
    return await condition()
}

/// Suspends for `seconds`.
public func pause(_ seconds: Double) async {
    try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
}

public func sleepMs(_ ms: Int) { usleep(useconds_t(ms * 1000)) }

/// One JSON object per line, parsed (tests only; the hot path never parses JSON).
public func readJSONLines(_ path: String) -> [[String: Any]] {
    let bytes = readFileBytes(path)
    var out: [[String: Any]] = []
    var start = 0
    for i in 0..<bytes.count where bytes[i] == 0x0A {
        let line = Data(bytes[start..<i])
        start = i + 1
        if let o = try? JSONSerialization.jsonObject(with: line) as? [String: Any] { out.append(o) } else {
            out.append(["__unparseable__": String(decoding: line, as: UTF8.self)])
        }
    }
    return out
}

/// Contents of the `content` field of every line of a flusher_file output (and its rotated files).
public func outputContents(_ path: String) -> [String] {
    readJSONLines(path).map { ($0["content"] as? String) ?? "<no content>" }
}

/// Counts newline bytes in a file (fast progress check).
public func countLines(_ path: String) -> Int {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return 0 }
    defer { close(fd) }
    let size = 1 << 20
    let buf = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
    defer { buf.deallocate() }
    var n = 0
    while true {
        let k = read(fd, buf, size)
        if k <= 0 { break }
        // memchr keeps this fast in debug builds of the tests too.
        var p = UnsafeRawPointer(buf)
        let end = p + k
        while p < end, let hit = memchr(p, 0x0A, end - p) {
            n += 1
            p = UnsafeRawPointer(hit) + 1
        }
    }
    return n
}

/// The real `sluice` binary, run as a child process.
public final class SluiceProcess: @unchecked Sendable {
    public let pid: pid_t
    public let stderrPath: String
    public let stdoutPath: String
    private var exited: Int32?

    /// Path of the built `sluice` executable: $SLUICE_BIN, or next to the test bundle.
    public static var binaryPath: String {
        if let p = ProcessInfo.processInfo.environment["SLUICE_BIN"] { return p }
        var dir = CommandLine.arguments[0]
        // .../debug/sluicePackageTests.xctest → .../debug
        while !dir.isEmpty {
            if let slash = dir.lastIndex(of: "/") { dir = String(dir[..<slash]) } else { break }
            if access(dir + "/sluice", X_OK) == 0 { return dir + "/sluice" }
        }
        let cwd = FileManager.default.currentDirectoryPath
        for c in [".build/debug/sluice", ".build/release/sluice"] where access(cwd + "/" + c, X_OK) == 0 { return cwd + "/" + c }
        return "sluice"
    }

    /// Starts the binary with `arguments`.
    /// - Parameters:
    ///   - commandPrefix: words run before the binary, e.g. `["/usr/bin/setpriv", "--reuid=65534", ...]`
    ///     (the first must be an absolute path); the process id is then that of the prefix command,
    ///     which must exec the binary (setpriv, env, nice do).
    ///   - binary: the executable to run instead of ``binaryPath``.
    public init(arguments: [String], environment: [String: String] = [:], workDir: String,
                commandPrefix: [String] = [], binary: String? = nil) throws {
        stderrPath = workDir + "/sluice.stderr.\(UInt32.random(in: 0...UInt32.max))"
        stdoutPath = workDir + "/sluice.stdout.\(UInt32.random(in: 0...UInt32.max))"
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        let argv = commandPrefix + [binary ?? SluiceProcess.binaryPath] + arguments
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // The child starts with no blocked signals and default dispositions, whatever the test runner set.
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attr, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // Nothing else of the test process goes along: an inherited listening socket (a test
        // receiver's, opened without CLOEXEC by NIO) would keep its port open in the child after
        // the test closed it.
        if let addCloseFrom = Self.addCloseFrom { _ = addCloseFrom(&actions, 3) }
        var cargv: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        var cenv: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in cargv { free(p) }; for p in cenv { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, argv[0], &actions, &attr, &cargv, &cenv)
        if rc != 0 { throw SpawnError(message: "cannot start \(argv[0]): \(String(cString: strerror(rc)))") }
        pid = child
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), which Swift's Glibc module does
    /// not declare.
    private static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(sym, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    public struct SpawnError: Error, CustomStringConvertible { public var message: String; public var description: String { message } }

    public func signal(_ sig: Int32) { kill(pid, sig) }

    /// Waits for exit; returns the exit status (128+signal if killed), or nil on timeout.
    public func wait(timeout: Double) -> Int32? {
        if let e = exited { return e }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var status: Int32 = 0
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid {
                let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                exited = code
                return code
            }
            usleep(10_000)
        }
        return nil
    }

    /// SIGTERM and wait; SIGKILL if it does not exit in time.
    @discardableResult
    public func stop(timeout: Double = 40) -> Int32? {
        if exited != nil { return exited }
        signal(SIGTERM)
        if let c = wait(timeout: timeout) { return c }
        signal(SIGKILL)
        return wait(timeout: 5)
    }

    public func kill9() -> Int32? {
        signal(SIGKILL)
        return wait(timeout: 10)
    }

    public var stderr: String { String(decoding: readFileBytes(stderrPath), as: UTF8.self) }
    public var stdout: [UInt8] { readFileBytes(stdoutPath) }
    public var isRunning: Bool { exited == nil && wait(timeout: 0) == nil }

    deinit {
        if exited == nil {
            kill(pid, SIGKILL)
            var s: Int32 = 0
            waitpid(pid, &s, 0)
        }
    }
}

/// A sink for in-process input tests: keeps every line, acknowledges batches (or not).
public final class CollectingSink: BatchSink, @unchecked Sendable {
    private let lock = NSLock()
    private var _lines: [[UInt8]] = []
    private var _batches: [EventBatch] = []
    private var _tags: [[EventTag]] = []
    public var acknowledge: Bool
    public var accepting = true

    public init(acknowledge: Bool = true) { self.acknowledge = acknowledge }

    public func send(_ batch: consuming EventBatch) -> Bool {
        lock.lock()
        if !accepting { lock.unlock(); return false }
        for i in 0..<batch.events.count { _lines.append(batch.contentBytes(i)) }
        _tags.append(batch.tags)
        if !acknowledge { _batches.append(copy batch) }
        lock.unlock()
        if acknowledge {
            batch.ack?.expect(1)
            batch.ack?.acknowledge()
        }
        return true
    }

    public var lines: [String] {
        lock.lock(); defer { lock.unlock() }
        return _lines.map { String(decoding: $0, as: UTF8.self) }
    }
    public var rawLines: [[UInt8]] {
        lock.lock(); defer { lock.unlock() }
        return _lines
    }
    public var batchTags: [[EventTag]] {
        lock.lock(); defer { lock.unlock() }
        return _tags
    }
    public var count: Int {
        lock.lock(); defer { lock.unlock() }
        return _lines.count
    }
    /// Acknowledges the held batches (when created with acknowledge: false).
    public func acknowledgeHeld() {
        lock.lock()
        let b = _batches
        _batches = []
        lock.unlock()
        for x in b { x.ack?.expect(1); x.ack?.acknowledge() }
    }
}

public func testLogger(_ label: String = "test") -> Logger {
    var l = Logger(label: label)
    l.logLevel = ProcessInfo.processInfo.environment["SLUICE_TEST_LOG"] == nil ? .critical : .debug
    return l
}

/// A plugin context for tests: component `kind`s[0] of type `type` in pipeline `pipeline`, state
/// under `dataDir`; built the way pipelines build theirs.
public func testContext(pipeline: String = "t", kind: PluginKind = .input, type: String = "input_file", dataDir: String = "/tmp",
                        pipelineMetrics: PipelineMetrics = PipelineMetrics(), services: PluginServices = PluginServices()) -> PluginContext {
    PipelineEnvironment(logger: testLogger(), pipelineMetrics: pipelineMetrics, globals: GlobalParameters(), hostname: "h",
                        dataDirectory: dataDir, services: services)
        .context(pipeline: pipeline, kind: kind, type: type, index: 0)
}
