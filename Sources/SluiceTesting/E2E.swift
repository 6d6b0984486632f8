import Glibc
import Foundation
import SluiceSystem

// Helpers for end-to-end tests that drive the real `sluice` binary against real files.

/// Monotonic seconds (for measuring delays in tests).
public func monotonicSeconds() -> Double { Double(Sys.monotonicNanos()) / 1e9 }

/// Size of a file in bytes, 0 if it does not exist.
public func fileSize(_ path: String) -> Int {
    var st = stat()
    return stat(path, &st) == 0 ? Int(st.st_size) : 0
}

/// `mkdir -p`.
public func makeDirectories(_ path: String, mode: mode_t = 0o755) {
    _ = Sys.makeDirectories(path, mode: mode)
}

/// Writes bytes to a file with one `open`, as many `write`s as needed and `close`; `append` adds at the end.
public func appendFile(_ path: String, _ bytes: [UInt8]) { writeFile(path, bytes, append: true) }
public func appendFile(_ path: String, _ text: String) { writeFile(path, text, append: true) }

/// `bytes` of a file from `offset` (to the end when `length` is nil), read with pread into one buffer.
public func readFileRegion(_ path: String, offset: Int = 0, length: Int? = nil) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return [] }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { return [] }
    let total = max(0, min(length ?? Int.max, Int(st.st_size) - offset))
    if total == 0 { return [] }
    return [UInt8](unsafeUninitializedCapacity: total) { buf, initialized in
        var done = 0
        while done < total {
            let n = pread(fd, buf.baseAddress! + done, total - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            done += n
        }
        initialized = done
    }
}

/// Lines of fixed length, numbered: `<prefix><n, zero-padded to digits> <filler>` plus `\n`,
/// each exactly `lineLength` bytes including the newline. Fixed lengths make offsets and output
/// sizes predictable.
public struct NumberedLines: Sendable {
    public let prefix: String
    public let digits: Int
    public let lineLength: Int
    private let prefixBytes: [UInt8]
    /// "abc…z" repeated, long enough to copy any line's filler from offset `n % 26`.
    private let alphabet: [UInt8]

    public init(prefix: String, digits: Int = 8, lineLength: Int = 64) {
        precondition(lineLength >= prefix.utf8.count + digits + 2)
        self.prefix = prefix
        self.digits = digits
        self.lineLength = lineLength
        prefixBytes = Array(prefix.utf8)
        alphabet = (0..<(lineLength + 52)).map { UInt8(ascii: "a") + UInt8($0 % 26) }
    }

    /// The line's content (without the newline).
    public func content(_ n: Int) -> String {
        String(decoding: line(n).dropLast(), as: UTF8.self)
    }

    public func contents(_ r: Range<Int>) -> [String] { r.map(content) }

    /// One line with its newline.
    public func line(_ n: Int) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: lineLength)
        b.withUnsafeMutableBufferPointer { fill($0.baseAddress!, n) }
        return b
    }

    /// Lines `r` as bytes.
    public func bytes(_ r: Range<Int>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: r.count * lineLength)
        out.withUnsafeMutableBufferPointer { buf in
            var p = buf.baseAddress!
            for n in r {
                fill(p, n)
                p += lineLength
            }
        }
        return out
    }

    private func fill(_ base: UnsafeMutablePointer<UInt8>, _ n: Int) {
        let pc = prefixBytes.count
        prefixBytes.withUnsafeBufferPointer { base.update(from: $0.baseAddress!, count: pc) }
        var v = n
        var i = pc + digits - 1
        while i >= pc {
            base[i] = UInt8(ascii: "0") + UInt8(v % 10)
            v /= 10
            i -= 1
        }
        base[pc + digits] = UInt8(ascii: " ")
        let fillerStart = pc + digits + 1
        let fillerCount = lineLength - 1 - fillerStart
        alphabet.withUnsafeBufferPointer { a in
            (base + fillerStart).update(from: a.baseAddress! + (fillerStart + n) % 26, count: fillerCount)
        }
        base[lineLength - 1] = 0x0A
    }

    /// Writes lines `r` to `path` in chunks of about `chunkBytes` (one `write` each; the file is
    /// created, or appended to when `append`).
    public func write(to path: String, _ r: Range<Int>, append: Bool, chunkBytes: Int = 1 << 20, betweenChunks: (() -> Void)? = nil) {
        let perChunk = max(1, chunkBytes / lineLength)
        let fd = open(path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC) | O_CLOEXEC, 0o644)
        precondition(fd >= 0, "cannot open \(path): \(String(cString: strerror(errno)))")
        defer { close(fd) }
        var n = r.lowerBound
        while n < r.upperBound {
            let end = min(r.upperBound, n + perChunk)
            let b = bytes(n..<end)
            var off = 0
            while off < b.count {
                let k = b.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, b.count - off) }
                precondition(k > 0)
                off += k
            }
            n = end
            betweenChunks?()
        }
    }
}

/// What arrived compared with what should have: every expected line exactly once, nothing else.
public struct DeliveryReport: CustomStringConvertible, Sendable {
    public var expected: Int
    public var delivered: Int
    public var missing: [String]
    /// Line → how many times it arrived (only lines that arrived more than once).
    public var duplicated: [String: Int]
    /// Lines that arrived but were not expected at all.
    public var unexpected: [String]
    public var ok: Bool { missing.isEmpty && duplicated.isEmpty && unexpected.isEmpty && expected == delivered }

    public var description: String {
        func sample(_ a: [String]) -> String {
            a.prefix(3).map { "\"" + ($0.count > 60 ? String($0.prefix(60)) + "…" : $0) + "\"" }.joined(separator: ", ")
        }
        var s = "expected \(expected), delivered \(delivered), missing \(missing.count), duplicated \(duplicated.count), unexpected \(unexpected.count)"
        if !missing.isEmpty { s += "; missing e.g. " + sample(missing) }
        if !duplicated.isEmpty { s += "; duplicated e.g. " + sample(duplicated.keys.sorted()) }
        if !unexpected.isEmpty { s += "; unexpected e.g. " + sample(unexpected) }
        return s
    }
}

public func deliveryReport(expected: [String], delivered: [String]) -> DeliveryReport {
    var want: [String: Int] = [:]
    for e in expected { want[e, default: 0] += 1 }
    var got: [String: Int] = [:]
    for d in delivered { got[d, default: 0] += 1 }
    var missing: [String] = []
    var dup: [String: Int] = [:]
    var unexpected: [String] = []
    for e in expected where got[e] == nil { missing.append(e) }
    for (k, v) in got {
        if let w = want[k] {
            if v > w { dup[k] = v }
        } else {
            unexpected.append(k)
        }
    }
    return DeliveryReport(expected: expected.count, delivered: delivered.count, missing: missing, duplicated: dup, unexpected: unexpected.sorted())
}

/// `(content, __path__)` of every line of a flusher_file output.
public func outputRecords(_ path: String) -> [(content: String, path: String)] {
    readJSONLines(path).map { (($0["content"] as? String) ?? "<no content>", ($0["__path__"] as? String) ?? "<no path>") }
}

/// The stats file written with --stats-file, parsed.
public func readStats(_ path: String) -> [String: Any] {
    let b = readFileBytes(path)
    return ((try? JSONSerialization.jsonObject(with: Data(b))) as? [String: Any]) ?? [:]
}

public func statValue(_ stats: [String: Any], _ key: String) -> Int? {
    (stats[key] as? NSNumber)?.intValue ?? (stats[key] as? Int)
}

/// Number of open descriptors of a process (entries of /proc/PID/fd).
public func openDescriptorCount(pid: pid_t) -> Int {
    guard let d = opendir("/proc/\(pid)/fd") else { return -1 }
    defer { closedir(d) }
    var n = 0
    while let e = readdir(d) {
        let first = withUnsafePointer(to: &e.pointee.d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 2) { $0[0] } }
        if first != CChar(UInt8(ascii: ".")) { n += 1 }
    }
    return n
}

/// Descriptors a process holds on deleted files (what pins a deleted log's disk space).
public func deletedDescriptorCount(pid: pid_t) -> Int {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else { return -1 }
    return names.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)"))?.hasSuffix(" (deleted)") == true }.count
}

/// A field of /proc/PID/status (e.g. "VmRSS", "Uid"), without its label, trimmed.
public func procStatusField(pid: pid_t, _ name: String) -> String? {
    let text = String(decoding: readFileBytes("/proc/\(pid)/status"), as: UTF8.self)
    for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
        return line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces)
    }
    return nil
}

/// Resident set size in KiB (VmRSS), or -1.
public func residentSetKiB(pid: pid_t) -> Int {
    guard let v = procStatusField(pid: pid, "VmRSS") else { return -1 }
    return Int(v.split(separator: " ").first ?? "") ?? -1
}

/// JSON string literal of `s` (also a valid YAML double-quoted scalar for the characters used in paths).
public func quoted(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}

/// Pipeline documents in the iLogtail format.
public enum Pipelines {
    /// `input_file` → `flusher_file`. Output rotation is off (MaxFileSize 0) unless given, so a
    /// test reads one file.
    public static func fileToFile(paths: [String], output: String, maxDirSearchDepth: Int? = nil, tailSizeKB: Int? = nil,
                                  flushTimeoutSecs: Double? = nil, inputExtra: [String] = [], maxFileSize: Int = 0) -> String {
        var s = "enable: true\ninputs:\n  - Type: input_file\n    FilePaths:\n"
        for p in paths { s += "      - \(quoted(p))\n" }
        if let d = maxDirSearchDepth { s += "    MaxDirSearchDepth: \(d)\n" }
        if let t = tailSizeKB { s += "    TailSizeKB: \(t)\n" }
        if let f = flushTimeoutSecs { s += "    FlushTimeoutSecs: \(f)\n" }
        for x in inputExtra { s += "    \(x)\n" }
        s += "flushers:\n  - Type: flusher_file\n    FilePath: \(quoted(output))\n    MaxFileSize: \(maxFileSize)\n"
        return s
    }
}

/// One end-to-end scenario: a private directory tree (config, data, inputs, outputs) and the
/// sluice processes run against it. `cleanup()` kills what still runs and removes the tree
/// (kept when SLUICE_E2E_KEEP is set).
public final class E2EScenario: @unchecked Sendable {
    public let name: String
    public let tmp: TempDir
    public var root: String { tmp.path }
    public let configDir: String
    public let dataDir: String
    public let statsFile: String
    public let hostname = "e2e-host"
    public private(set) var processes: [SluiceProcess] = []
    public var process: SluiceProcess? { processes.last }

    public init(_ name: String) {
        self.name = name
        tmp = TempDir("sluice-e2e-\(name)")
        configDir = tmp.sub("config")
        dataDir = tmp.sub("data")
        statsFile = tmp.path + "/stats.json"
    }

    /// A directory under the scenario's root (created with parents).
    @discardableResult
    public func dir(_ rel: String) -> String {
        let p = root + "/" + rel
        makeDirectories(p)
        return p
    }

    /// A path under the root (its parent directory is not created).
    public func path(_ rel: String) -> String { root + "/" + rel }

    /// Writes a pipeline file atomically (a hidden temporary file renamed into place), as a
    /// config management tool would.
    public func writePipeline(_ name: String, _ text: String, ext: String = "yaml") {
        let tmp = configDir + "/.\(name).\(ext).tmp"
        writeFile(tmp, text)
        rename(tmp, configDir + "/\(name).\(ext)")
    }

    public func removePipeline(_ name: String, ext: String = "yaml") {
        unlink(configDir + "/\(name).\(ext)")
    }

    /// Starts `sluice run` on the scenario's config and data directories.
    @discardableResult
    public func start(environment: [String: String] = [:], extraArguments: [String] = [], commandPrefix: [String] = [],
                      binary: String? = nil, logLevel: String = "info", shutdownTimeout: Double? = nil) throws -> SluiceProcess {
        var args = ["run", "--config-dir", configDir, "--data-dir", dataDir, "--stats-file", statsFile,
                    "--hostname", hostname, "--log-level", logLevel]
        if let t = shutdownTimeout { args += ["--shutdown-timeout", String(t)] }
        // Several daemons may run at once: each monitoring endpoint on a free port of its own.
        if !extraArguments.contains("--http-address") { args += ["--http-address", "127.0.0.1:0"] }
        args += extraArguments
        let p = try SluiceProcess(arguments: args, environment: environment, workDir: root, commandPrefix: commandPrefix, binary: binary)
        processes.append(p)
        return p
    }

    /// Standard error of the last process.
    public var stderr: String { process?.stderr ?? "" }

    /// Standard error of every process started so far, in order.
    public var allStderr: String { processes.map(\.stderr).joined(separator: "\n") }

    /// Waits until the last process's standard error holds `text` at least `count` times.
    public func waitForLog(_ text: String, count: Int = 1, timeout: Double = 10) -> Bool {
        waitUntil(timeout: timeout) { occurrences(of: text, in: stderr) >= count }
    }

    public func cleanup() {
        for p in processes where p.isRunning { _ = p.kill9() }
        if ProcessInfo.processInfo.environment["SLUICE_E2E_KEEP"] != nil {
            print("[e2e] \(name): kept \(root)")
        } else {
            tmp.remove()
        }
    }
}

public func occurrences(of needle: String, in hay: String) -> Int {
    guard !needle.isEmpty else { return 0 }
    var n = 0
    var r = hay.startIndex..<hay.endIndex
    while let f = hay.range(of: needle, range: r) {
        n += 1
        r = f.upperBound..<hay.endIndex
    }
    return n
}

/// The numbers of a flusher_file output whose contents are `<prefix><digits>…`, in output order,
/// read from byte `offset` to `end`. Fast (memchr, no JSON parser) for outputs of millions of lines.
/// Lines that do not have that shape are counted in `bad` (with a few samples), and a last line
/// without its newline is reported in `unterminatedTail`.
public struct NumberedScan: Sendable {
    public var numbers: [Int] = []
    public var bad = 0
    public var badSamples: [String] = []
    public var unterminatedTail = false
}

public func scanNumberedOutput(_ path: String, prefix: String, digits: Int, offset: Int = 0, end: Int? = nil) -> NumberedScan {
    let bytes = readFileRegion(path, offset: offset, length: end.map { $0 - offset })
    var scan = NumberedScan()
    let head = Array(("{\"content\":\"" + prefix).utf8)
    scan.numbers.reserveCapacity(bytes.count / 100)
    bytes.withUnsafeBufferPointer { buf in
        guard let base = buf.baseAddress else { return }
        let count = buf.count
        var start = 0
        while start < count {
            let hit = memchr(base + start, 0x0A, count - start)
            let lineEnd = hit.map { UnsafePointer<UInt8>($0.assumingMemoryBound(to: UInt8.self)) - base } ?? count
            if hit == nil { scan.unterminatedTail = true }
            let len = lineEnd - start
            var ok = len >= head.count + digits && hit != nil
            if ok { ok = head.withUnsafeBufferPointer { memcmp(base + start, $0.baseAddress!, head.count) == 0 } }
            var v = 0
            if ok {
                for i in 0..<digits {
                    let c = base[start + head.count + i]
                    if c < 0x30 || c > 0x39 { ok = false; break }
                    v = v * 10 + Int(c - 0x30)
                }
            }
            if ok {
                scan.numbers.append(v)
            } else {
                scan.bad += 1
                if scan.badSamples.count < 3 {
                    let show = min(len, 160)
                    scan.badSamples.append(String(decoding: UnsafeBufferPointer(start: base + start, count: show), as: UTF8.self))
                }
            }
            start = lineEnd + 1
        }
    }
    return scan
}

/// Where the running test binary looks for the sluice executable, and whether it is a debug build.
public var sluiceBinaryIsDebug: Bool { SluiceProcess.binaryPath.contains("/debug/") }
