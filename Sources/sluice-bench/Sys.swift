// Thin wrappers over Glibc: clocks, files, directories, formatting. No Foundation.

import Glibc

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func errnoText(_ code: Int32 = errno) -> String {
    guard let s = strerror(code) else { return "errno \(code)" }
    return String(cString: s)
}

// MARK: - Output

/// Writes all of `s` to a file descriptor (1 = stdout, 2 = stderr).
func writeAll(fd: Int32, _ s: String) {
    var s = s
    s.withUTF8 { buf in
        _ = writeAllBytes(fd: fd, buf.baseAddress!, buf.count)
    }
}

@discardableResult
func writeAllBytes(fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Bool {
    var off = 0
    while off < n {
        let r = write(fd, p + off, n - off)
        if r < 0 {
            if errno == EINTR { continue }
            return false
        }
        off += r
    }
    return true
}

func out(_ s: String) { writeAll(fd: 1, s + "\n") }
func note(_ s: String) { writeAll(fd: 2, s + "\n") }

// MARK: - Clocks

func monoNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func realNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func sleepMs(_ ms: Double) {
    var ts = timespec(tv_sec: Int(ms / 1000), tv_nsec: Int((ms.truncatingRemainder(dividingBy: 1000)) * 1_000_000))
    var rem = timespec()
    while nanosleep(&ts, &rem) != 0 && errno == EINTR { ts = rem }
}

struct CPUTimes {
    var user: Double
    var sys: Double
    var total: Double { user + sys }
}

func tvSeconds(_ tv: timeval) -> Double { Double(tv.tv_sec) + Double(tv.tv_usec) / 1e6 }

func selfCPU() -> CPUTimes {
    var ru = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &ru)
    return CPUTimes(user: tvSeconds(ru.ru_utime), sys: tvSeconds(ru.ru_stime))
}

/// The calling thread's CPU times (RUSAGE_THREAD: not the other threads of this process).
func threadCPU() -> CPUTimes {
    var ru = rusage()
    getrusage(__rusage_who_t(1), &ru)   // RUSAGE_THREAD
    return CPUTimes(user: tvSeconds(ru.ru_utime), sys: tvSeconds(ru.ru_stime))
}

// MARK: - Files

struct FileInfo {
    var size: Int
    var mtime: Double  // CLOCK_REALTIME seconds
    var isDir: Bool
    var isRegular: Bool
}

func statPath(_ path: String) -> FileInfo? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    let mode = st.st_mode & S_IFMT
    return FileInfo(
        size: Int(st.st_size),
        mtime: Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9,
        isDir: mode == S_IFDIR, isRegular: mode == S_IFREG)
}

func fileExists(_ path: String) -> Bool { statPath(path) != nil }

func mkdirP(_ path: String) throws {
    if let info = statPath(path) {
        if info.isDir { return }
        throw BenchError("\(path) exists and is not a directory")
    }
    let parent = dirName(path)
    if parent != path && !parent.isEmpty { try mkdirP(parent) }
    if mkdir(path, 0o755) != 0 && errno != EEXIST {
        throw BenchError("cannot create directory \(path): \(errnoText())")
    }
}

func dirName(_ path: String) -> String {
    var bytes = Array(path.utf8)
    while bytes.count > 1 && bytes.last == UInt8(ascii: "/") { bytes.removeLast() }
    guard let i = bytes.lastIndex(of: UInt8(ascii: "/")) else { return "." }
    if i == 0 { return "/" }
    return String(decoding: bytes[..<i], as: UTF8.self)
}

func baseName(_ path: String) -> String {
    let bytes = Array(path.utf8)
    guard let i = bytes.lastIndex(of: UInt8(ascii: "/")) else { return path }
    return String(decoding: bytes[(i + 1)...], as: UTF8.self)
}

/// Names in a directory (no "." / ".."), sorted.
func listDir(_ path: String) -> [String] {
    guard let d = opendir(path) else { return [] }
    defer { closedir(d) }
    var names: [String] = []
    while let e = readdir(d) {
        let name = withUnsafePointer(to: e.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
        }
        if name == "." || name == ".." { continue }
        names.append(name)
    }
    return names.sorted()
}

/// rm -rf. Does not follow symlinks to directories.
func removeTree(_ path: String) {
    var st = stat()
    guard lstat(path, &st) == 0 else { return }
    if st.st_mode & S_IFMT == S_IFDIR {
        for name in listDir(path) { removeTree(path + "/" + name) }
        rmdir(path)
    } else {
        unlink(path)
    }
}

func renameOrThrow(_ from: String, _ to: String) throws {
    if rename(from, to) != 0 {
        throw BenchError("rename \(from) -> \(to) failed: \(errnoText())")
    }
}

func readSmallFile(_ path: String, limit: Int = 1 << 20) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return nil }
    defer { close(fd) }
    var result: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while result.count < limit {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR { continue }; return nil }
        if n == 0 { break }
        result.append(contentsOf: buf[0..<n])
    }
    return result
}

func writeFile(_ path: String, _ text: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    if fd < 0 { throw BenchError("cannot create \(path): \(errnoText())") }
    defer { close(fd) }
    var t = text
    let ok = t.withUTF8 { writeAllBytes(fd: fd, $0.baseAddress!, $0.count) }
    if !ok { throw BenchError("cannot write \(path): \(errnoText())") }
}

/// Absolute path of this executable.
func selfExecutablePath() -> String? {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    if n <= 0 { return nil }
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    var buf = [CChar](repeating: 0, count: 4096)
    guard getcwd(&buf, buf.count) != nil else { return path }
    let n = buf.firstIndex(of: 0) ?? buf.count
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/" + path
}

// MARK: - Number formatting (no String(format:), which needs all of Foundation)

/// Fixed-point decimal rendering of `x` with `decimals` digits after the point.
func fmt(_ x: Double, _ decimals: Int) -> String {
    if x.isNaN { return "nan" }
    if x.isInfinite { return x > 0 ? "inf" : "-inf" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let negative = x < 0
    let scaled = (abs(x) * scale).rounded()
    if scaled >= 9.0e18 { return String(x) }
    let n = UInt64(scaled)
    let p = UInt64(scale)
    var s = String(n / p)
    if decimals > 0 {
        var frac = String(n % p)
        while frac.count < decimals { frac = "0" + frac }
        s += "." + frac
    }
    return (negative && n != 0 ? "-" : "") + s
}

func padLeft(_ s: String, _ width: Int) -> String {
    let c = s.count
    return c >= width ? s : String(repeating: " ", count: width - c) + s
}

func padRight(_ s: String, _ width: Int) -> String {
    let c = s.count
    return c >= width ? s : s + String(repeating: " ", count: width - c)
}

/// JSON string literal for ASCII-ish text (paths, names, messages).
func jsonString(_ s: String) -> String {
    var r = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": r += "\\\""
        case "\\": r += "\\\\"
        case "\n": r += "\\n"
        case "\t": r += "\\t"
        case "\r": r += "\\r"
        default:
            if u.value < 0x20 {
                let hex = Array("0123456789abcdef")
                r += "\\u00" + String(hex[Int(u.value >> 4)]) + String(hex[Int(u.value & 15)])
            } else {
                r.unicodeScalars.append(u)
            }
        }
    }
    return r + "\""
}

func jsonNumber(_ x: Double?, _ decimals: Int) -> String {
    guard let x, x.isFinite else { return "null" }
    return fmt(x, decimals)
}

/// "128 MiB", "1.5 GiB" etc.
func humanBytes(_ n: Int) -> String {
    let d = Double(n)
    if d >= 1024 * 1024 * 1024 { return fmt(d / 1073741824, 2) + " GiB" }
    if d >= 1024 * 1024 { return fmt(d / 1048576, 1) + " MiB" }
    if d >= 1024 { return fmt(d / 1024, 1) + " KiB" }
    return "\(n) B"
}

/// Busy CPU seconds of the whole machine so far (user+nice+system+irq+softirq+steal in /proc/stat).
func procStatBusy() -> Double? {
    guard let bytes = readSmallFile("/proc/stat", limit: 1 << 20),
          let first = bytes.split(separator: 0x0A).first else { return nil }
    let f = first.split(separator: 0x20).dropFirst().compactMap { Int(String(decoding: $0, as: UTF8.self)) }
    guard f.count >= 8 else { return nil }
    let busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7]
    let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
    return Double(busy) / hz
}
