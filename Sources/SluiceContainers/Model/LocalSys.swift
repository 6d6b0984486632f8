#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The few system calls the registry, the pod log directory source and the static container file
/// source need (the local-source half of SluiceContainers; SluiceFiles has its own, internal, copy).
enum LocalSys {
    /// What `stat` says of a path, for change detection.
    struct FileStat: Equatable {
        var inode: UInt64
        var size: Int64
        var mtimeNanos: Int64
        var isDirectory: Bool
    }

    /// CLOCK_MONOTONIC in nanoseconds.
    static func monotonicNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    static func errorString(_ code: Int32) -> String {
        "\(String(cString: strerror(code))) (errno \(code))"
    }

    /// stat(2), following symlinks; the errno on failure.
    static func stat(_ path: String) -> Result<FileStat, LocalErrno> {
        var st = statBuffer()
        guard statPath(path, &st) == 0 else { return .failure(LocalErrno(errno)) }
        return .success(FileStat(
            inode: UInt64(st.st_ino), size: Int64(st.st_size),
            mtimeNanos: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
            isDirectory: (st.st_mode & S_IFMT) == S_IFDIR))
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
        guard let dir = opendir(path) else { return .failure(LocalErrno(errno)) }
        defer { closedir(dir) }
        var out: [(name: String, type: UInt8)] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            out.append((name, entry.pointee.d_type))
        }
        return .success(out)
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

/// An errno value with its message.
struct LocalErrno: Error, Equatable, CustomStringConvertible {
    var code: Int32
    init(_ code: Int32) { self.code = code }
    var description: String { LocalSys.errorString(code) }
}

private func statBuffer() -> stat { stat() }
private func statPath(_ path: String, _ st: inout stat) -> Int32 { stat(path, &st) }
