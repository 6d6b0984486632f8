import Glibc
import Logging
import SluiceFiles
import SluiceSystem

/// The kubelet's pod log layout: `<root>/<namespace>_<pod>_<uid>/<container>/<restart>.log`.
///
/// Namespaces contain no `_` (they are DNS labels), nor do uids, so the namespace is what comes
/// before the first `_` and the uid what comes after the last; the pod name (with its `-` and `.`)
/// is the rest. Rotated files (`0.log.20240102-150405`, `….gz`, `….tmp`) are not containers.
public enum PodLogPath {
    /// The parts of a container's current log file path under `root`; nil for any other path
    /// (rotated files, other depths, malformed names).
    public static func parse(_ path: String, root: String) -> (namespace: String, pod: String, uid: String, container: String, restart: Int)? {
        let trimmedRoot = HostPaths.trimmed(root)
        let prefix = trimmedRoot == "/" ? "/" : trimmedRoot + "/"
        guard path.hasPrefix(prefix) else { return nil }
        return parse(relative: path.dropFirst(prefix.count))
    }

    /// ``parse(_:root:)`` of a path relative to the root: `<namespace>_<pod>_<uid>/<container>/<restart>.log`.
    public static func parse<S: StringProtocol>(relative: S) -> (namespace: String, pod: String, uid: String, container: String, restart: Int)? {
        let parts = relative.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, let pod = parsePodDirectory(parts[0]), isValidContainerName(parts[1]),
              let restart = parseLogFileName(parts[2]) else { return nil }
        return (pod.namespace, pod.pod, pod.uid, String(parts[1]), restart)
    }

    /// `<namespace>_<pod>_<uid>` → its parts; nil when a part is empty or there are fewer than two `_`.
    public static func parsePodDirectory<S: StringProtocol>(_ name: S) -> (namespace: String, pod: String, uid: String)? {
        guard let first = name.firstIndex(of: "_"), let last = name.lastIndex(of: "_"), first < last else { return nil }
        let namespace = name[..<first]
        let pod = name[name.index(after: first)..<last]
        let uid = name[name.index(after: last)...]
        guard !namespace.isEmpty, !pod.isEmpty, !uid.isEmpty, !name.contains("/") else { return nil }
        return (String(namespace), String(pod), String(uid))
    }

    /// `<restart>.log` → the restart count; nil for anything else (`0.log.20240102-150405`, `x.log`).
    public static func parseLogFileName<S: StringProtocol>(_ name: S) -> Int? {
        guard name.hasSuffix(".log") else { return nil }
        let digits = name.dropLast(4)
        guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(digits)
    }

    /// Whether `name` is a rotated (or rotating / compressed) copy of a log file: `<restart>.log.<anything>`.
    public static func isRotatedLogFileName<S: StringProtocol>(_ name: S) -> Bool {
        guard let range = name.range(of: ".log.") else { return false }
        let digits = name[..<range.lowerBound]
        return !digits.isEmpty && digits.allSatisfy { $0.isASCII && $0.isNumber }
    }

    static func isValidContainerName<S: StringProtocol>(_ name: S) -> Bool {
        !name.isEmpty && name != "." && name != ".."
    }
}

/// Finds containers through the kubelet's pod log directory (`/var/log/pods`), watched with
/// inotify: a container is reported (with namespace, pod, uid, container name and restart count
/// from the path, and its log path) within milliseconds of its log file appearing, before any
/// runtime is asked; the runtime's report then completes the same registry entry (merged by log
/// path). A deleted log file withdraws the container (``ContainerRegistry/removeByLogPath(_:source:)``).
///
/// Watches: the root, each pod directory and each container directory; every directory is scanned
/// right after its watch is added, so nothing created in between is missed. A log file renamed away
/// (kubelet rotation: `0.log` → `0.log.<timestamp>`, then the runtime reopens `0.log`) is given
/// `rotationGraceSeconds` to come back before the container is withdrawn. A full rescan
/// (``ContainerRegistry/resync(source:present:)``) runs every `rescanIntervalSeconds`, after an
/// inotify queue overflow, and every second while inotify is unavailable or the root is missing.
///
/// The loop runs on its own thread and ends when the task running ``run(registry:)`` is cancelled.
public struct PodLogDirSource: ContainerSource {
    /// Always ``ContainerRuntimeKind/podLogs``.
    public var kind: ContainerRuntimeKind { .podLogs }
    /// The directory watched, as this process sees it (with the host-root prefix in a DaemonSet).
    public let directory: String
    /// The same directory as the runtimes name it (without the host root): the log paths reported
    /// to the registry start with it, so they equal the CRI's `LogPath`.
    public let reportedRoot: String
    /// Seconds between full rescans (a safety net; inotify finds changes at once).
    public let rescanIntervalSeconds: Double
    /// How long a log file renamed away may take to reappear before its container is withdrawn.
    public let rotationGraceSeconds: Double
    let logger: Logger

    /// - Parameters:
    ///   - directory: where to watch (default `/var/log/pods`; in a DaemonSet `HostPaths.hostPath("/var/log/pods")`).
    ///   - reportedRoot: the directory as runtimes name it; defaults to `directory`.
    ///   - rescanIntervalSeconds: full rescan period (default 30 s).
    ///   - rotationGraceSeconds: see ``rotationGraceSeconds`` (default 10 s).
    ///   - logger: for the source's messages.
    public init(directory: String = "/var/log/pods", reportedRoot: String? = nil, rescanIntervalSeconds: Double = 30,
                rotationGraceSeconds: Double = 10, logger: Logger) {
        self.directory = HostPaths.trimmed(directory)
        self.reportedRoot = HostPaths.trimmed(reportedRoot ?? directory)
        self.rescanIntervalSeconds = rescanIntervalSeconds
        self.rotationGraceSeconds = rotationGraceSeconds
        self.logger = logger
    }

    /// Watches the directory until the task is cancelled.
    public func run(registry: ContainerRegistry) async {
        let source = self
        await runStoppableThread(name: "pod-log-dir") { signal in
            PodLogWatcher(source: source, registry: registry).run(signal)
        }
    }

    /// The registry report for a log file given relative to the root.
    func report(relative: String, now: Int64) -> ContainerInfo? {
        guard let parts = PodLogPath.parse(relative: relative) else { return nil }
        var info = ContainerInfo(id: "", runtime: .podLogs)
        info.logPath = HostPaths.join(reportedRoot, relative)
        info.kubernetes = KubernetesInfo(namespace: parts.namespace, podName: parts.pod, podUID: parts.uid,
                                         containerName: parts.container, restartCount: parts.restart)
        info.discoveredAt = now
        return info
    }
}

/// The state of the watching thread (confined to it).
private final class PodLogWatcher {
    enum Target {
        case root
        case pod(String)
        case container(String)

        /// The directory relative to the root ("" for the root).
        var relative: String {
            switch self {
            case .root: return ""
            case .pod(let path), .container(let path): return path
            }
        }
    }

    let source: PodLogDirSource
    let registry: ContainerRegistry
    let logger: Logger
    let inotify: Inotify?
    /// Creations, deletions and renames in the directory, and the directory's own end (no writes:
    /// the pod log dir only needs to know which log files exist).
    static let directoryMask: UInt32 = UInt32(IN_CREATE) | UInt32(IN_DELETE) | UInt32(IN_MOVED_FROM) | UInt32(IN_MOVED_TO)
        | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF) | UInt32(IN_ONLYDIR)
    var targets: [Int32: Target] = [:]
    var watchOf: [String: Int32] = [:]
    /// Log files (relative paths) reported and not withdrawn.
    var known: Set<String> = []
    /// Log files renamed away: withdrawn at the deadline unless they came back.
    var pendingGone: [String: Int64] = [:]
    var rootPresent = false
    var loggedMissing = false
    var watchesDegraded = false
    var needsScan = true

    init(source: PodLogDirSource, registry: ContainerRegistry) {
        self.source = source
        self.registry = registry
        self.logger = source.logger
        self.inotify = Inotify()
    }

    func absolute(_ relative: String) -> String {
        relative.isEmpty ? source.directory : HostPaths.join(source.directory, relative)
    }

    func run(_ signal: StopSignal) {
        if inotify == nil {
            logger.warning("inotify is unavailable; the pod log directory is rescanned every second instead.",
                           metadata: ["error": "\(Errno(errno))", "pods.dir": "\(source.directory)"])
        }
        let second: Int64 = 1_000_000_000
        var nextScan: Int64 = 0
        while !signal.isStopped {
            var now = Sys.monotonicNanos()
            if needsScan || now >= nextScan {
                needsScan = false
                fullScan(now: now)
                now = Sys.monotonicNanos()
                let fast = inotify == nil || watchesDegraded || !rootPresent
                nextScan = now + (fast ? second : Sys.nanos(seconds: max(0.05, source.rescanIntervalSeconds)))
            }
            expirePending(now: now)
            let deadline = min(nextScan, pendingGone.values.min() ?? Int64.max)
            let timeoutMs = Int32(clamping: min(60_000, max(0, (deadline - now) / 1_000_000 + 1)))
            if pollStopOr(signal, fd: inotify?.fd, timeoutMs: timeoutMs), let inotify {
                handle(inotify.readEvents())
            }
        }
    }

    // MARK: Scans

    func fullScan(now: Int64) {
        guard Sys.isDirectory(source.directory) else {
            if rootPresent {
                logger.info("The pod log directory is gone; its containers are withdrawn.", metadata: ["pods.dir": "\(source.directory)"])
                for wd in targets.keys { inotify?.removeWatch(wd) }
                targets.removeAll()
                watchOf.removeAll()
                known.removeAll()
                pendingGone.removeAll()
                registry.resync(source: .podLogs, present: [])
            } else if !loggedMissing {
                logger.info("The pod log directory does not exist (yet); checking for it every second.", metadata: ["pods.dir": "\(source.directory)"])
            }
            loggedMissing = true
            rootPresent = false
            return
        }
        if !rootPresent {
            logger.info("Watching the pod log directory.", metadata: ["pods.dir": "\(source.directory)"])
        }
        rootPresent = true
        watch("", as: .root)
        var present: [String] = []
        for pod in subdirectories(of: "") where PodLogPath.parsePodDirectory(pod) != nil {
            watch(pod, as: .pod(pod))
            for container in subdirectories(of: pod) {
                let containerDir = pod + "/" + container
                watch(containerDir, as: .container(containerDir))
                present += logFiles(in: containerDir)
            }
        }
        for path in pendingGone.keys where !present.contains(path) { present.append(path) }
        known = Set(present)
        registry.resync(source: .podLogs, present: present.compactMap { source.report(relative: $0, now: now) })
    }

    func subdirectories(of relative: String) -> [String] {
        guard case .success(let entries) = Sys.listDirectory(absolute(relative)) else { return [] }
        let parent = absolute(relative)
        return entries.filter { entry in
            if entry.type == UInt8(DT_DIR) { return true }
            if entry.type == UInt8(DT_UNKNOWN) || entry.type == UInt8(DT_LNK) { return Sys.isDirectory(parent + "/" + entry.name) }
            return false
        }.map(\.name).sorted()
    }

    func logFiles(in containerDir: String) -> [String] {
        guard case .success(let entries) = Sys.listDirectory(absolute(containerDir)) else { return [] }
        return entries.filter { $0.type != UInt8(DT_DIR) && PodLogPath.parseLogFileName($0.name) != nil }
            .map { containerDir + "/" + $0.name }.sorted()
    }

    /// Adds (or refreshes) the watch on a directory.
    func watch(_ relative: String, as target: Target) {
        guard let inotify else { return }
        switch inotify.addWatch(absolute(relative), mask: Self.directoryMask) {
        case .success(let wd):
            targets[wd] = target
            watchOf[relative] = wd
        case .failure(let error):
            if error.code == ENOSPC || error.code == ENOMEM {
                if !watchesDegraded {
                    logger.warning("Out of inotify watches; the pod log directory is rescanned every second instead (raise fs.inotify.max_user_watches).",
                                   metadata: ["pods.dir": "\(source.directory)", "error": "\(error)"])
                }
                watchesDegraded = true
            }
        }
    }

    // MARK: Changes

    func podDirectoryAppeared(_ pod: String) {
        watch(pod, as: .pod(pod))
        for container in subdirectories(of: pod) {
            containerDirectoryAppeared(pod + "/" + container)
        }
    }

    func containerDirectoryAppeared(_ containerDir: String) {
        watch(containerDir, as: .container(containerDir))
        for file in logFiles(in: containerDir) { fileAppeared(file) }
    }

    func fileAppeared(_ relative: String) {
        pendingGone[relative] = nil
        guard known.insert(relative).inserted,
              let info = source.report(relative: relative, now: Sys.monotonicNanos()) else { return }
        registry.upsert(info)
    }

    func fileGone(_ relative: String) {
        pendingGone[relative] = nil
        guard known.remove(relative) != nil else { return }
        registry.removeByLogPath(HostPaths.join(source.reportedRoot, relative), source: .podLogs)
    }

    func directoryGone(_ relative: String) {
        let prefix = relative + "/"
        for file in known.filter({ $0.hasPrefix(prefix) }).sorted() { fileGone(file) }
    }

    func expirePending(now: Int64) {
        for (relative, deadline) in pendingGone where now >= deadline {
            pendingGone[relative] = nil
            if !Sys.exists(absolute(relative)) { fileGone(relative) }
        }
    }

    func handle(_ events: [Inotify.Event]) {
        for event in events {
            if event.has(IN_Q_OVERFLOW) {
                logger.warning("The inotify queue overflowed; rescanning the pod log directory.", metadata: ["pods.dir": "\(source.directory)"])
                needsScan = true
                continue
            }
            guard let target = targets[event.wd] else { continue }
            let relative = target.relative
            if event.has(IN_IGNORED) {
                // The watch is gone: the directory was deleted (or moved away).
                targets[event.wd] = nil
                if watchOf[relative] == event.wd { watchOf[relative] = nil }
                switch target {
                case .root:
                    needsScan = true
                case .pod(let pod):
                    if Sys.isDirectory(absolute(pod)) { podDirectoryAppeared(pod) } else { directoryGone(pod) }
                case .container(let dir):
                    if Sys.isDirectory(absolute(dir)) { containerDirectoryAppeared(dir) } else { directoryGone(dir) }
                }
                continue
            }
            if event.has(IN_MOVE_SELF) {
                inotify?.removeWatch(event.wd)  // IN_IGNORED follows
                continue
            }
            if event.name.isEmpty { continue }
            let isDirectory = event.has(IN_ISDIR)
            let appeared = event.has(IN_CREATE) || event.has(IN_MOVED_TO)
            let child = relative.isEmpty ? event.name : relative + "/" + event.name
            switch target {
            case .root:
                guard isDirectory, PodLogPath.parsePodDirectory(event.name) != nil else { continue }
                if appeared {
                    podDirectoryAppeared(child)
                } else if event.has(IN_DELETE) || event.has(IN_MOVED_FROM) {
                    directoryGone(child)
                }
            case .pod:
                if appeared {
                    if isDirectory || Sys.isDirectory(absolute(child)) { containerDirectoryAppeared(child) }
                } else if isDirectory && (event.has(IN_DELETE) || event.has(IN_MOVED_FROM)) {
                    directoryGone(child)
                }
            case .container:
                guard !isDirectory, PodLogPath.parseLogFileName(event.name) != nil else { continue }
                if appeared {
                    fileAppeared(child)
                } else if event.has(IN_DELETE) {
                    fileGone(child)
                } else if event.has(IN_MOVED_FROM), known.contains(child) {
                    // Kubelet rotation renames the file, then the runtime reopens it.
                    pendingGone[child] = Sys.monotonicNanos() + Sys.nanos(seconds: source.rotationGraceSeconds)
                }
            }
        }
        if needsScan {
            needsScan = false
            fullScan(now: Sys.monotonicNanos())
        }
    }
}
