import Glibc
import Logging
import SluiceFiles
import SluiceSystem

/// Reports the containers listed in a static container file (``StaticContainerFile``), re-reading
/// it when it changes: inotify on its directory reacts within milliseconds, and the file's inode,
/// size and mtime are also checked every `pollIntervalSeconds` (default 1 s) in case inotify misses
/// something. Each successful read is a ``ContainerRegistry/resync(source:present:)``.
///
/// A file that cannot be parsed is reported once (as an error with line, column, entry and field)
/// and the last good list is kept. A file still being written is not reported: an error is logged
/// only when the file has stayed the same for a poll interval. A missing file is reported once at
/// info level and also keeps the last good list.
///
/// The loop runs on its own thread and ends when the task running ``run(registry:)`` is cancelled.
public struct StaticContainerFileSource: ContainerSource {
    /// Always ``ContainerRuntimeKind/static``.
    public var kind: ContainerRuntimeKind { .static }
    /// The file, as this process sees it.
    public let path: String
    /// Seconds between checks of the file's identity, size and mtime.
    public let pollIntervalSeconds: Double
    let logger: Logger

    /// - Parameters:
    ///   - path: the static container file.
    ///   - pollIntervalSeconds: see ``pollIntervalSeconds``.
    ///   - logger: for the source's messages.
    public init(path: String, pollIntervalSeconds: Double = 1, logger: Logger) {
        self.path = path
        self.pollIntervalSeconds = pollIntervalSeconds
        self.logger = logger
    }

    /// The file to use: `option` (`--static-container-info`) when non-empty, else the value of
    /// `ALIYUN_LOG_STATIC_CONTAINER_INFO`, else nil (no static file).
    public static func configuredPath(option: String?) -> String? {
        if let option, !option.isEmpty { return option }
        if let value = Sys.environment(StaticContainerFile.environmentVariable), !value.isEmpty { return value }
        return nil
    }

    /// Watches the file until the task is cancelled.
    public func run(registry: ContainerRegistry) async {
        let source = self
        await runStoppableThread(name: "static-containers") { signal in
            var watcher = StaticFileWatcher(source: source, registry: registry)
            watcher.run(signal)
        }
    }
}

/// The state of the watching thread.
private struct StaticFileWatcher {
    enum Seen: Equatable {
        case nothing
        case missing
        case file(Sys.FileStat)
    }

    let source: StaticContainerFileSource
    let registry: ContainerRegistry
    var seen: Seen = .nothing
    /// A parse failure not logged yet: it is logged if the file is still the same at the next check.
    var unreportedFailure: (stat: Sys.FileStat, message: String, at: Int64)?
    var inotify: Inotify?
    var watching = false
    let directory: String

    init(source: StaticContainerFileSource, registry: ContainerRegistry) {
        self.source = source
        self.registry = registry
        if let slash = source.path.lastIndex(of: "/") {
            let dir = String(source.path[..<slash])
            directory = dir.isEmpty ? "/" : dir
        } else {
            directory = "."
        }
        inotify = Inotify()
    }

    var logger: Logger { source.logger }

    mutating func run(_ signal: StopSignal) {
        let mask = UInt32(IN_CREATE) | UInt32(IN_MODIFY) | UInt32(IN_CLOSE_WRITE) | UInt32(IN_MOVED_TO)
            | UInt32(IN_MOVED_FROM) | UInt32(IN_DELETE) | UInt32(IN_ATTRIB) | UInt32(IN_ONLYDIR)
        let intervalNanos = Sys.nanos(seconds: max(0.01, source.pollIntervalSeconds))
        while !signal.isStopped {
            if !watching, let inotify, case .success = inotify.addWatch(directory, mask: mask) {
                watching = true
            }
            check(now: Sys.monotonicNanos(), intervalNanos: intervalNanos)
            if pollStopOr(signal, fd: inotify?.fd, timeoutMs: Int32(clamping: intervalNanos / 1_000_000)), let inotify {
                // Any event only wakes the loop; the check above decides from stat.
                if inotify.readEvents().contains(where: { $0.has(IN_IGNORED) }) { watching = false }
            }
        }
    }

    /// Re-reads the file when its identity, size or mtime changed. A parse failure is logged once
    /// the file has stayed the same for a poll interval (a writer may still be at work).
    mutating func check(now: Int64, intervalNanos: Int64) {
        switch Sys.stat(source.path) {
        case .failure(let error):
            if seen != .missing {
                logger.info("The static container file is not there; keeping the containers it listed last.",
                            metadata: ["file.path": "\(source.path)", "error": "\(error)"])
            }
            seen = .missing
            unreportedFailure = nil
        case .success(let stat):
            if seen == .file(stat) {
                if let failure = unreportedFailure, failure.stat == stat, now - failure.at >= intervalNanos {
                    logger.error("The static container file is not valid; keeping the containers it listed last.",
                                 metadata: ["file.path": "\(source.path)", "error": "\(failure.message)"])
                    unreportedFailure = nil
                }
                return
            }
            seen = .file(stat)
            read(stat, now: now)
        }
    }

    mutating func read(_ stat: Sys.FileStat, now: Int64) {
        switch Sys.readFile(source.path) {
        case .failure(let error):
            unreportedFailure = (stat, "cannot read it: \(error)", now)
        case .success(let bytes):
            do {
                let containers = try StaticContainerFile.parse(bytes)
                unreportedFailure = nil
                registry.resync(source: .static, present: containers)
                logger.info("Read the static container file.", metadata: ["file.path": "\(source.path)", "containers.count": "\(containers.count)"])
            } catch {
                unreportedFailure = (stat, error.description, now)
            }
        }
    }
}
