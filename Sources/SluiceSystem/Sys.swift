import Glibc

/// The operating system, once: thin wrappers over the system calls every target uses (stat,
/// open, whole-file reads and atomic writes, directories, clocks). Linux only.
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

    public static func fromStat(_ st: stat) -> FileStat {
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

    public static func fstat(_ fd: Int32) -> Result<FileStat, Errno> {
        var st = Glibc.stat()
        if fstatFD(fd, &st) != 0 { return .failure(Errno(errno)) }
        return .success(fromStat(st))
    }

    /// The inode's generation number (`FS_IOC_GETVERSION`): the file system gives a new one when
    /// it reuses an inode number for a new file (ext2/3/4, xfs, btrfs), so a device and inode
    /// seen again can be told from a different file that got the same number. nil where the file
    /// system does not keep one (tmpfs, overlayfs, NFS).
    public static func inodeGeneration(_ fd: Int32) -> UInt64? {
        var generation: CLong = 0
        // _IOR('v', 1, long)
        let fsIocGetVersion: UInt = 0x8008_7601
        guard ioctl(fd, fsIocGetVersion, &generation) == 0 else { return nil }
        return UInt64(UInt(bitPattern: generation))
    }

    public static func openRead(_ path: String) -> Result<Int32, Errno> {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        if fd < 0 { return .failure(Errno(errno)) }
        return .success(fd)
    }

    /// pread until `count` bytes or EOF; returns bytes read or errno.
    public static func preadFull(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int, _ offset: Int64) -> Result<Int, Errno> {
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

    /// An interval in seconds (from a config) as nanoseconds, saturating at 10⁹ s (~31 years; no
    /// wait is longer): a huge, infinite or negative value never traps Int64's conversion, and a
    /// deadline `now + nanos` cannot overflow. Not a number is 0.
    public static func nanos(seconds s: Double) -> Int64 {
        guard s > 0 else { return 0 }
        return Int64(min(s, 1e9) * 1e9)
    }

    /// CLOCK_MONOTONIC in nanoseconds: for intervals and deadlines.
    public static func monotonicNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// CLOCK_REALTIME in nanoseconds since the Unix epoch: for timestamps.
    public static func wallNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// CLOCK_REALTIME in whole seconds since the Unix epoch.
    public static func wallSeconds() -> Int64 { wallNanos() / 1_000_000_000 }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func isDirectory(_ path: String) -> Bool {
        if case .success(let st) = stat(path) { return st.isDirectory }
        return false
    }

    /// The value of an environment variable.
    public static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// The whole file, at most `limit` bytes (a larger file is an error: `EFBIG`).
    public static func readFile(_ path: String, limit: Int = 64 << 20) -> Result<[UInt8], Errno> {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return .failure(Errno(errno)) }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(Errno(errno))
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
            if out.count > limit { return .failure(Errno(EFBIG)) }
        }
        return .success(out)
    }

    /// Writes all of `bytes` to `fd` (retrying short writes and EINTR).
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Result<Void, Errno> {
        var off = 0
        while off < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + off, bytes.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(Errno(errno))
            }
            off += n
        }
        return .success(())
    }

    /// Replaces `path` with `bytes` atomically: a temp file beside it, written, then renamed over
    /// it. With `durable`, the temp file is fsynced before the rename and the directory after it,
    /// so the new content survives a power loss; without, it survives a crash of the process.
    /// The directory is created if missing. On failure, the path and errno of the step that failed.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], durable: Bool) -> Result<Void, PathError> {
        guard let slash = path.lastIndex(of: "/") else { return writeAtomically("./" + path, bytes, durable: durable) }
        let dir = slash == path.startIndex ? "/" : String(path[..<slash])
        if case .failure(let e) = makeDirectories(dir) { return .failure(e) }
        let tmp = path + ".tmp"
        let fd = Glibc.open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { return .failure(PathError(path: tmp, errno: Errno(errno))) }
        if case .failure(let e) = bytes.withUnsafeBytes({ writeAll(fd, $0) }) {
            close(fd)
            return .failure(PathError(path: tmp, errno: e))
        }
        if durable && fsync(fd) != 0 {
            let e = Errno(errno)
            close(fd)
            return .failure(PathError(path: tmp, errno: e))
        }
        close(fd)
        if rename(tmp, path) != 0 { return .failure(PathError(path: path, errno: Errno(errno))) }
        if durable {
            let dfd = Glibc.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dfd >= 0 { fsync(dfd); close(dfd) }
        }
        return .success(())
    }

    /// mkdir -p.
    public static func makeDirectories(_ dir: String, mode: mode_t = 0o755) -> Result<Void, PathError> {
        var cur = dir.hasPrefix("/") ? "" : "."
        for c in dir.split(separator: "/") {
            cur += "/" + c
            if mkdir(cur, mode) != 0 && errno != EEXIST {
                return .failure(PathError(path: cur, errno: Errno(errno)))
            }
        }
        return .success(())
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

/// A system call on a path failed.
public struct PathError: Error, Equatable, CustomStringConvertible, Sendable {
    public var path: String
    public var errno: Errno
    public init(path: String, errno: Errno) {
        self.path = path
        self.errno = errno
    }
    public var description: String { "\(path): \(errno)" }
}

/// An errno value with its message.
public struct Errno: Error, Equatable, CustomStringConvertible, Sendable {
    public var code: Int32
    public init(_ code: Int32) { self.code = code }
    public var description: String { "\(Sys.errorString(code)) (errno \(code))" }
}

private func statFollowing(_ path: String, _ st: inout stat) -> Int32 { stat(path, &st) }
private func fstatFD(_ fd: Int32, _ st: inout stat) -> Int32 { fstat(fd, &st) }
