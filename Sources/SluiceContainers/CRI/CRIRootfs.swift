#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Finding a container's rootfs on the host: the overlay upper dir (its writable layer) and the
/// merged dir (the whole rootfs, while it runs).
///
/// Order, as the incumbent does it: (a) containerd's snapshots service for the container's
/// snapshot key (done by `CRIClient`, which has the connection); (b) the overlay mounted on `/` in
/// `/proc/<pid>/mounts`; (c) the runtime's state dir: containerd mounts the rootfs at
/// `{state dir}/io.containerd.runtime.v2.task/k8s.io/<id>/rootfs` (its overlay mount, found in
/// this process's mount table, names the upper dir; otherwise the merged dir is used as it is);
/// CRI-O's spec names an absolute merged dir whose sibling `diff` is the upper dir.
///
/// Paths are host paths as the runtime reports them; `hostRoot` prefixes them only for reading
/// (a DaemonSet sees the host's `/` at `/logtail_host`).
public enum CRIRootfs {
    /// The `upperdir=` option of an overlay mount's options.
    public static func upperDir(fromOptions options: [String]) -> String? {
        for o in options where o.hasPrefix("upperdir=") {
            let v = String(o.dropFirst("upperdir=".count))
            if !v.isEmpty { return v }
        }
        return nil
    }

    /// One line of a `mounts` file (`/proc/<pid>/mounts` format): device, mount point, type, options.
    public struct MountEntry: Sendable, Equatable {
        public var device: String
        public var mountPoint: String
        public var type: String
        public var options: [String]
    }

    /// Parses `/proc/<pid>/mounts` text; octal escapes (`\040` for a space) are decoded.
    public static func parseMounts(_ text: String) -> [MountEntry] {
        var out: [MountEntry] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 4 else { continue }
            out.append(MountEntry(
                device: unescape(f[0]), mountPoint: unescape(f[1]), type: String(f[2]),
                options: f[3].split(separator: ",").map { unescape($0) }))
        }
        return out
    }

    /// The upper dir of the overlay mounted at `mountPoint` (the last such mount wins: it is on top).
    public static func overlayUpperDir(in entries: [MountEntry], mountPoint: String) -> String? {
        for e in entries.reversed() where e.mountPoint == mountPoint && e.type == "overlay" {
            if let u = upperDir(fromOptions: e.options) { return u }
        }
        return nil
    }

    /// (b): the overlay on `/` in `<hostRoot>/proc/<pid>/mounts` (else `/proc/<pid>/mounts`:
    /// with the host's pid namespace, /proc is the host's).
    public static func upperDirFromProc(pid: Int, hostRoot: String) -> String? {
        guard pid > 0 else { return nil }
        guard let text = readSmallFile(join(hostRoot, "/proc/\(pid)/mounts")) ?? readSmallFile("/proc/\(pid)/mounts")
        else { return nil }
        return overlayUpperDir(in: parseMounts(text), mountPoint: "/")
    }

    /// containerd's bundle rootfs: `{stateDir}/io.containerd.runtime.v2.task/{namespace}/{id}/rootfs`.
    public static func containerdBundleRootfs(stateDir: String, namespace: String = "k8s.io", id: String) -> String {
        join(stateDir, "/io.containerd.runtime.v2.task/\(namespace)/\(id)/rootfs")
    }

    /// (c): from the merged dir: the overlay mounted there in this process's mount table, else
    /// containers/storage's layout (`.../<layer>/merged` beside `.../<layer>/diff`).
    public static func upperDirFromMergedDir(_ merged: String, hostRoot: String) -> String? {
        guard !merged.isEmpty else { return nil }
        if let text = readSmallFile("/proc/self/mounts") {
            let entries = parseMounts(text)
            if let u = overlayUpperDir(in: entries, mountPoint: join(hostRoot, merged)) { return u }
            if hostRoot != "/", let u = overlayUpperDir(in: entries, mountPoint: merged) { return u }
        }
        if merged.hasSuffix("/merged") {
            let diff = String(merged.dropLast("merged".count)) + "diff"
            if isDirectory(join(hostRoot, diff)) { return diff }
        }
        return nil
    }

    // MARK: - Small file-system helpers

    /// `hostRoot` + `path` (host root "/" or "" leaves the path alone).
    public static func join(_ hostRoot: String, _ path: String) -> String {
        if hostRoot.isEmpty || hostRoot == "/" { return path }
        var root = hostRoot
        while root.hasSuffix("/") { root.removeLast() }
        return path.hasPrefix("/") ? root + path : root + "/" + path
    }

    /// `path` without the `hostRoot` prefix (the inverse of `join`); unchanged when it has none.
    public static func stripHostRoot(_ path: String, _ hostRoot: String) -> String {
        var root = hostRoot
        while root.hasSuffix("/") { root.removeLast() }
        guard !root.isEmpty, path.hasPrefix(root) else { return path }
        let rest = path.dropFirst(root.count)
        if rest.isEmpty { return "/" }
        return rest.hasPrefix("/") ? String(rest) : path
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    public static func isSocket(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK
    }

    /// Reads a file of at most `limit` bytes (procfs files report size 0: read until EOF).
    static func readSmallFile(_ path: String, limit: Int = 4 << 20) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while bytes.count < limit {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            bytes.append(contentsOf: buf[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func unescape(_ s: Substring) -> String {
        guard s.contains("\\") else { return String(s) }
        var out: [UInt8] = []
        let u = Array(s.utf8)
        var i = 0
        while i < u.count {
            if u[i] == UInt8(ascii: "\\"), i + 3 < u.count {
                let digits = u[(i + 1)...(i + 3)]
                if digits.allSatisfy({ $0 >= 48 && $0 <= 55 }) {
                    let v = digits.reduce(0) { $0 * 8 + Int($1 - 48) }
                    out.append(UInt8(truncatingIfNeeded: v))
                    i += 4
                    continue
                }
            }
            out.append(u[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
