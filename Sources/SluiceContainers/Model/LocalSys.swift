#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceFiles

/// The few system calls the registry, the pod log directory source and the static container file
/// source need: SluiceFiles' `Sys` where it has them, plus whole-file reads and the environment.
enum LocalSys {
    /// What `stat` says of a path, for change detection.
    struct FileStat: Equatable {
        var inode: UInt64
        var size: Int64
        var mtimeNanos: Int64
        var isDirectory: Bool
    }

    /// CLOCK_MONOTONIC in nanoseconds.
    static func monotonicNanos() -> Int64 { Sys.monotonicNanos() }

    /// stat(2), following symlinks; the errno on failure.
    static func stat(_ path: String) -> Result<FileStat, LocalErrno> {
        Sys.stat(path).map { FileStat(inode: $0.inode, size: $0.size, mtimeNanos: $0.mtimeNanos, isDirectory: $0.isDirectory) }
    }

    static func isDirectory(_ path: String) -> Bool {
        if case .success(let st) = stat(path) { return st.isDirectory }
        return false
    }

    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Directory entries without "." and "..", with their d_type (DT_UNKNOWN when the file
    /// system does not say).
    static func listDirectory(_ path: String) -> Result<[(name: String, type: UInt8)], LocalErrno> {
        Sys.listDirectory(path)
    }

    /// The whole file, at most `limit` bytes (more is an error: `EFBIG`).
    static func readFile(_ path: String, limit: Int = 64 << 20) -> Result<[UInt8], LocalErrno> {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return .failure(LocalErrno(errno)) }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(LocalErrno(errno))
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
            if out.count > limit { return .failure(LocalErrno(EFBIG)) }
        }
        return .success(out)
    }

    /// The value of an environment variable.
    static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}

/// An errno value with its message (SluiceFiles' `Errno`).
typealias LocalErrno = Errno
