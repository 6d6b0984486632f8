import SluiceSystem
/// Turns paths as runtimes report them (host paths) into paths this process can open, and paths
/// inside a container into host paths.
///
/// In a DaemonSet the host's `/` is mounted elsewhere (iLogtail: `/logtail_host`); `hostRoot` is
/// that place, `/` when Sluice runs on the host itself.
public struct HostPaths: Sendable, Equatable {
    /// Where the host's `/` is: `/` or an absolute path without a trailing slash.
    public let hostRoot: String

    /// The place the incumbent's DaemonSet mounts the host's `/`.
    public static let defaultDaemonSetRoot = "/logtail_host"

    /// Uses `hostRoot` (trailing slashes are dropped; an empty string means `/`).
    public init(hostRoot: String) {
        var root = hostRoot
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        self.hostRoot = root.isEmpty ? "/" : root
    }

    /// The `--host-root` default: `/logtail_host` when that directory exists, else `/`.
    public static func defaultHostRoot() -> String {
        Sys.isDirectory(defaultDaemonSetRoot) ? defaultDaemonSetRoot : "/"
    }

    /// `--host-root` when given (non-empty), else ``defaultHostRoot()``.
    public static func resolve(option: String?) -> HostPaths {
        if let option, !option.isEmpty { return HostPaths(hostRoot: option) }
        return HostPaths(hostRoot: defaultHostRoot())
    }

    /// A host path (as a runtime reports it) as seen from here: `hostRoot` + path, with no double
    /// slashes. With host root `/` the path is returned unchanged.
    public func hostPath(_ runtimePath: String) -> String {
        if hostRoot == "/" { return runtimePath.hasPrefix("/") ? runtimePath : "/" + runtimePath }
        return Self.join(hostRoot, runtimePath)
    }

    /// Where a path inside the container is, as seen from here.
    ///
    /// The mount whose destination is the longest prefix of `containerPath` on a `/` boundary wins
    /// (`/data` holds `/data/x` and `/data` but not `/data2/x`): `hostRoot + source + rest`.
    /// Otherwise the path is in the rootfs: `hostRoot + upperDir + containerPath`, or with the merged
    /// dir when the upper dir is not known. Nil when neither is known, or when the winning mount
    /// has no host source (tmpfs).
    public func hostPath(containerPath: String, mounts: [ContainerMount], upperDir: String, mergedDir: String = "") -> String? {
        var best: (mount: ContainerMount, length: Int)?
        for mount in mounts {
            let destination = Self.trimmed(mount.destination)
            guard Self.isPrefix(destination, of: containerPath) else { continue }
            if best == nil || destination.count > best!.length { best = (mount, destination.count) }
        }
        if let best {
            // A mount with no host source (tmpfs, a volume the runtime does not name) holds the
            // path where the host cannot see it: no host path, never the host's own root.
            guard !best.mount.source.isEmpty else { return nil }
            let rest = String(containerPath.dropFirst(best.length == 1 ? 0 : best.length))
            return hostPath(Self.join(best.mount.source, rest))
        }
        let rootfs = upperDir.isEmpty ? mergedDir : upperDir
        guard !rootfs.isEmpty else { return nil }
        return hostPath(Self.join(rootfs, containerPath))
    }

    /// ``hostPath(containerPath:mounts:upperDir:mergedDir:)`` with the container's mounts and rootfs.
    public func hostPath(containerPath: String, in container: ContainerInfo) -> String? {
        hostPath(containerPath: containerPath, mounts: container.mounts, upperDir: container.upperDir, mergedDir: container.mergedDir)
    }

    /// `prefix` is `path` or a directory above it (on a `/` boundary); `/` is a prefix of everything absolute.
    static func isPrefix(_ prefix: String, of path: String) -> Bool {
        if prefix == "/" { return path.hasPrefix("/") }
        guard path.hasPrefix(prefix) else { return false }
        let rest = path.utf8.dropFirst(prefix.utf8.count)
        return rest.isEmpty || rest.first == UInt8(ascii: "/")
    }

    /// Without trailing slashes (but `/` stays `/`).
    static func trimmed(_ path: String) -> String {
        var out = path
        while out.count > 1 && out.hasSuffix("/") { out.removeLast() }
        return out
    }

    /// `a` and `b` joined by exactly one `/`.
    static func join(_ a: String, _ b: String) -> String {
        if b.isEmpty { return a }
        if a.isEmpty { return b.hasPrefix("/") ? b : "/" + b }
        switch (a.hasSuffix("/"), b.hasPrefix("/")) {
        case (true, true): return a + b.dropFirst()
        case (false, false): return a + "/" + b
        default: return a + b
        }
    }
}
