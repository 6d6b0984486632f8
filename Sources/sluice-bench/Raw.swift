// The machine's raw ceiling on the same input: read(2) with a 1 MiB buffer, count lines with memchr, write(2)
// the bytes to a file on the same file system (a) or to /dev/null (b). On runtime log files the lines counted are
// the records (no decoding, no joining).

import Glibc

struct RawResult {
    var bytes = 0
    var lines = 0
    var wall = 0.0
    var cpu = CPUTimes(user: 0, sys: 0)
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
