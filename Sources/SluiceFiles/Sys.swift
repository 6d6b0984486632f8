#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Thin, allocation-free wrappers over the few system calls the file input needs (the ones
/// SluiceContainers' local sources use too are public).
public enum Sys {
    public static func errorString(_ e: Int32) -> String { String(cString: strerror(e)) }

    public struct FileStat: Equatable, Sendable {
        public var dev: UInt64
        public var inode: UInt64
        public var size: Int64
        public var mtimeNanos: Int64
        public var nlink: UInt64
        public var isRegular: Bool
        public var isDirectory: Bool
    }

    static func fromStat(_ st: stat) -> FileStat {
        FileStat(dev: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
                 mtimeNanos: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
                 nlink: UInt64(st.st_nlink),
                 isRegular: (st.st_mode & S_IFMT) == S_IFREG, isDirectory: (st.st_mode & S_IFMT) == S_IFDIR)
    }

    /// stat(2) following symlinks; errno on failure.
    public static func stat(_ path: String) -> Result<FileStat, Errno> {
        var st = Glibc.stat()
        if statFollowing(path, &st) != 0 { return .failure(Errno(errno)) }
        return .success(fromStat(st))
    }

    static func fstat(_ fd: Int32) -> Result<FileStat, Errno> {
        var st = Glibc.stat()
        if fstatFD(fd, &st) != 0 { return .failure(Errno(errno)) }
        return .success(fromStat(st))
    }

    static func openRead(_ path: String) -> Result<Int32, Errno> {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        if fd < 0 { return .failure(Errno(errno)) }
        return .success(fd)
    }

    /// pread until `count` bytes or EOF; returns bytes read or errno.
    static func preadFull(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int, _ offset: Int64) -> Result<Int, Errno> {
        var done = 0
        while done < count {
            let n = Glibc.pread(fd, buf + done, count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(Errno(errno))
            }
            if n == 0 { break }
            done += n
        }
        return .success(done)
    }

    public static func monotonicNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    static func wallSeconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec)
    }

    /// Directory entries (names only, without "." and ".."), with their d_type when known.
    public static func listDirectory(_ path: String) -> Result<[(name: String, type: UInt8)], Errno> {
        guard let d = opendir(path) else { return .failure(Errno(errno)) }
        defer { closedir(d) }
        var out: [(String, UInt8)] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: &e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            out.append((name, e.pointee.d_type))
        }
        return .success(out)
    }
}

/// An errno value with its message.
public struct Errno: Error, Equatable, CustomStringConvertible, Sendable {
    public var code: Int32
    public init(_ code: Int32) { self.code = code }
    public var description: String { "\(Sys.errorString(code)) (errno \(code))" }
}

/// Runs `body` on a dedicated OS thread and returns when it has finished. Inputs use this so
/// their blocking reads never occupy the cooperative thread pool.
public func runOnDedicatedThread(name: String, _ body: @escaping @Sendable () -> Void) async {
    await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
        final class Box: @unchecked Sendable {
            let body: @Sendable () -> Void
            let cont: CheckedContinuation<Void, Never>
            let name: String
            init(_ b: @escaping @Sendable () -> Void, _ c: CheckedContinuation<Void, Never>, _ n: String) { body = b; cont = c; name = n }
        }
        let box = Unmanaged.passRetained(Box(body, cont, name)).toOpaque()
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        pthread_attr_setstacksize(&attr, 4 << 20)
        var tid = pthread_t()
        let rc = pthread_create(&tid, &attr, { arg in
            let b = Unmanaged<AnyObject>.fromOpaque(arg!).takeRetainedValue() as! Box
            b.body()
            b.cont.resume()
            return nil
        }, box)
        pthread_attr_destroy(&attr)
        if rc != 0 {
            // Could not start a thread: run inline rather than lose the work.
            let b = Unmanaged<AnyObject>.fromOpaque(box).takeRetainedValue() as! Box
            b.body()
            b.cont.resume()
        }
    }
}

/// A pipe used to wake a thread blocked in poll(2): `fd` is the end to poll.
public final class Waker: Sendable {
    public let fd: Int32
    let writeFD: Int32
    public init() {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) != 0 { fds = [-1, -1] }
        for f in fds where f >= 0 {
            _ = fcntl(f, F_SETFD, FD_CLOEXEC)
            _ = fcntl(f, F_SETFL, fcntl(f, F_GETFL) | O_NONBLOCK)
        }
        fd = fds[0]
        writeFD = fds[1]
    }
    deinit {
        if fd >= 0 { close(fd) }
        if writeFD >= 0 { close(writeFD) }
    }
    public func wake() {
        var one: UInt8 = 1
        _ = write(writeFD, &one, 1)
    }
    public func drain() {
        var buf = [UInt8](repeating: 0, count: 64)
        while buf.withUnsafeMutableBytes({ read(fd, $0.baseAddress!, 64) }) > 0 {}
    }
}

private func statFollowing(_ path: String, _ st: inout stat) -> Int32 { stat(path, &st) }
private func fstatFD(_ fd: Int32, _ st: inout stat) -> Int32 { fstat(fd, &st) }
