// The machine's raw ceiling on the same input: read(2) with a 1 MiB buffer, count lines with memchr, write(2)
// the bytes to a file on the same file system (a) or to /dev/null (b). On runtime log files the lines counted are
// the records (no decoding, no joining).

import Glibc
import SluiceRegex

struct RawResult {
    var bytes = 0
    var lines = 0
    var wall = 0.0
    var cpu = CPUTimes(user: 0, sys: 0)

    var mbPerSec: Double { Double(bytes) / wall / 1e6 }
    var gib: Double { Double(bytes) / 1073741824 }
    var cpuPerGiB: Double { cpu.total / gib }
    var sysPerGiB: Double { cpu.sys / gib }
}

/// Runs the loop over every file of `ds` found in `dir`, writing to `outPath` (created / truncated).
func rawCeiling(_ ds: Dataset, dir: String, outPath: String) throws -> RawResult {
    let bufSize = 1 << 20
    let buf = UnsafeMutableRawPointer.allocate(byteCount: bufSize, alignment: 4096)
    defer { buf.deallocate() }
    let paths = ds.fileNames.map { dir + "/" + $0 }
    var r = RawResult()
    let cpu0 = selfCPU()
    let t0 = monoNow()
    let ofd = open(outPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    if ofd < 0 { throw BenchError("cannot open \(outPath): \(errnoText())") }
    for path in paths {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { close(ofd); throw BenchError("cannot open \(path): \(errnoText())") }
        while true {
            let n = read(fd, buf, bufSize)
            if n < 0 {
                if errno == EINTR { continue }
                close(fd); close(ofd)
                throw BenchError("cannot read \(path): \(errnoText())")
            }
            if n == 0 { break }
            let p = buf.assumingMemoryBound(to: UInt8.self)
            var q = p
            let end = p + n
            while q < end, let nl = memchr(q, 0x0A, end - q) {
                r.lines += 1
                q = nl.assumingMemoryBound(to: UInt8.self) + 1
            }
            if !writeAllBytes(fd: ofd, buf, n) {
                close(fd); close(ofd)
                throw BenchError("cannot write \(outPath): \(errnoText())")
            }
            r.bytes += n
        }
        close(fd)
    }
    close(ofd)
    r.wall = monoNow() - t0
    let cpu1 = selfCPU()
    r.cpu = CPUTimes(user: cpu1.user - cpu0.user, sys: cpu1.sys - cpu0.sys)
    if r.lines != ds.totalRecords {
        throw BenchError("raw ceiling counted \(r.lines) lines in \(dir), expected \(ds.totalRecords)")
    }
    return r
}

/// The regex ceiling of a parsing scenario: PCRE2 JIT alone (no collector) over every line of `ds`, full match
/// with the same pattern, captures read. Lines that do not match are an error (the dataset is made to match).
func regexCeiling(_ ds: Dataset, dir: String, pattern: String) throws -> RawResult {
    let regex: RegexPattern
    do { regex = try RegexPattern(pattern, anchoring: .full, syntax: .boost) } catch { throw BenchError("\(error)") }
    let matcher = RegexMatcher(for: [regex])
    var r = RawResult()
    var captured = 0
    let cpu0 = selfCPU()
    let t0 = monoNow()
    r.bytes = try readWholeLines(ds.fileNames.map { dir + "/" + $0 }) { buf, end, path in
        var s = 0
        while s < end, let nl = memchr(buf + s, 0x0A, end - s) {
            let e = UnsafePointer<UInt8>(nl.assumingMemoryBound(to: UInt8.self)) - buf
            guard matcher.match(regex, buf + s, e - s) == .matched else {
                throw BenchError("regex ceiling: a line of \(path) does not match the pattern")
            }
            for g in 1...regex.captureCount { captured &+= matcher.bounds(g).end }
            r.lines += 1
            s = e + 1
        }
    }
    r.wall = monoNow() - t0
    let cpu1 = selfCPU()
    r.cpu = CPUTimes(user: cpu1.user - cpu0.user, sys: cpu1.sys - cpu0.sys)
    if captured == 42 { note("") }  // keeps the capture reads from being optimised away
    return r
}

/// The network ceiling of the HTTP scenarios: the same loop as (b), but each read's whole lines go, as they are, in
/// one `POST` over one keep-alive loopback connection to the counting receiver, which finds every line's id in
/// them; the next read waits for the answer. What reading the input and handing it to the kernel's loopback TCP
/// costs, with no encoding and no client library. CPU is this thread's alone (RUSAGE_THREAD): the receiver runs
/// in this process too. The receiver is reset before and after, and must have found every line once.
func rawHTTPCeiling(_ ds: Dataset, dir: String, receiver: CountingReceiver) throws -> RawResult {
    receiver.reset()
    defer { receiver.reset() }
    let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    if sock < 0 { throw BenchError("raw http: socket: \(errnoText())") }
    defer { close(sock) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(receiver.port).bigEndian
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(sock, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    if rc != 0 { throw BenchError("raw http: connect to 127.0.0.1:\(receiver.port): \(errnoText())") }

    let respSize = 4096
    let resp = UnsafeMutablePointer<UInt8>.allocate(capacity: respSize)
    defer { resp.deallocate() }

    /// One request with the `n` bytes at `buf`, then its whole answer (status 200, a Content-Length body).
    func post(_ buf: UnsafePointer<UInt8>, _ n: Int) throws {
        let head = "POST /raw HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: \(n)\r\n\r\n"
        var ok = head.utf8CString.withUnsafeBufferPointer { writeAllBytes(fd: sock, $0.baseAddress!, $0.count - 1) }
        ok = ok && writeAllBytes(fd: sock, buf, n)
        if !ok { throw BenchError("raw http: send: \(errnoText())") }
        var have = 0
        while true {
            let r = read(sock, resp + have, respSize - have)
            if r < 0 && errno == EINTR { continue }
            if r <= 0 { throw BenchError("raw http: the receiver closed the connection") }
            have += r
            let text = String(decoding: UnsafeBufferPointer(start: resp, count: have), as: UTF8.self)
            guard let sep = text.firstRange(of: "\r\n\r\n") else { continue }
            let header = text[..<sep.lowerBound]
            guard header.hasPrefix("HTTP/1.1 200") else { throw BenchError("raw http: the receiver answered \(header.prefix(40))") }
            let length = header.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst(15).filter { $0 != " " }) } ?? 0
            if text.utf8.distance(from: sep.upperBound, to: text.utf8.endIndex) >= length { return }
        }
    }

    var r = RawResult()
    let cpu0 = threadCPU()
    let t0 = monoNow()
    r.bytes = try readWholeLines(ds.fileNames.map { dir + "/" + $0 }) { buf, end, _ in
        var s = 0
        while s < end, let nl = memchr(buf + s, 0x0A, end - s) {
            r.lines += 1
            s = UnsafePointer<UInt8>(nl.assumingMemoryBound(to: UInt8.self)) - buf + 1
        }
        try post(buf, end)
    }
    r.wall = monoNow() - t0
    let cpu1 = threadCPU()
    r.cpu = CPUTimes(user: cpu1.user - cpu0.user, sys: cpu1.sys - cpu0.sys)
    let seen = receiver.snapshot()
    if r.lines != ds.totalRecords || seen.unique != ds.totalLines || seen.delivered != ds.totalLines || seen.malformed != 0 {
        throw BenchError("raw http: sent \(r.lines) lines, the receiver found \(seen.delivered) ids (\(seen.unique) distinct, "
            + "\(seen.malformed) malformed); expected \(ds.totalLines)")
    }
    return r
}

/// Reads each file with 1 MiB reads and calls `body` with the whole lines read so far (the bytes up to the
/// last newline: `end` bytes at `buf`) and the file's path, carrying the rest over to the next read.
/// Returns the bytes read. A file that does not end with a newline is an error.
func readWholeLines(_ paths: [String], _ body: (UnsafePointer<UInt8>, Int, String) throws -> Void) throws -> Int {
    let bufSize = 1 << 20
    let buf = UnsafeMutablePointer<UInt8>.allocate(capacity: bufSize)
    defer { buf.deallocate() }
    var bytes = 0
    for path in paths {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw BenchError("cannot open \(path): \(errnoText())") }
        defer { close(fd) }
        var have = 0
        while true {
            let n = read(fd, buf + have, bufSize - have)
            if n < 0 { if errno == EINTR { continue }; throw BenchError("cannot read \(path): \(errnoText())") }
            if n == 0 { break }
            bytes += n
            let end = have + n
            // The whole lines: up to the last newline.
            var last = end
            while last > 0 && buf[last - 1] != 0x0A { last -= 1 }
            if last > 0 { try body(buf, last, path) }
            have = end - last
            if have > 0 { memmove(buf, buf + last, have) }
            if have == bufSize { throw BenchError("\(path) has a line longer than \(bufSize) bytes") }
        }
        if have > 0 { throw BenchError("\(path) does not end with a newline") }
    }
    return bytes
}
