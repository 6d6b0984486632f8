import Glibc
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import SluiceFiles
import SluiceSystem

/// Watches containerd's task state directory (`<state>/io.containerd.runtime.v2.task/<namespace>`)
/// with inotify: the moment a task's bundle gets its `config.json` (before the container's process
/// starts), the container is reported from it (`CRITaskBundle`). This does not depend on
/// containerd's event stream, which lags by up to seconds on a busy node, nor on an API call that
/// containerd answers as slowly: a Job that runs for milliseconds and is deleted at once is known,
/// with its pod, by the time its first line is written.
final class CRITaskDirWatcher: @unchecked Sendable {
    // @unchecked: its state is confined to the one thread `run` starts.
    let directory: String
    let logger: Logger
    let report: @Sendable (ContainerInfo) -> Void
    private let inotify = Inotify()
    private var rootWatch: Int32 = -1
    private var taskOf: [Int32: String] = [:]
    private var watchOf: [String: Int32] = [:]
    private var reported = Set<String>()

    static let bundleMask: UInt32 = UInt32(IN_CLOSE_WRITE) | UInt32(IN_MOVED_TO) | UInt32(IN_DELETE_SELF) | UInt32(IN_ONLYDIR)

    /// `directory` is the namespace's task directory as seen by this process (host root applied).
    init(directory: String, logger: Logger, report: @escaping @Sendable (ContainerInfo) -> Void) {
        self.directory = directory
        self.logger = logger
        self.report = report
    }

    /// Runs on its own thread until the calling task is cancelled (and, without inotify, just
    /// waits for that: the session treats any of its tasks ending as its own end).
    func run() async {
        await runStoppableThread(name: "containerd-tasks") { signal in self.loop(signal) }
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
    }

    private func loop(_ signal: StopSignal) {
        guard let inotify else {
            logger.debug("containerd task dir: inotify unavailable; relying on containerd's events")
            return
        }
        while !signal.isStopped {
            if rootWatch < 0 {
                // Not there yet (containerd started later, or no task ever ran): look every second.
                if case .success(let wd) = inotify.addWatch(directory, mask: UInt32(IN_CREATE) | UInt32(IN_MOVED_TO) | UInt32(IN_DELETE_SELF) | UInt32(IN_ONLYDIR)) {
                    rootWatch = wd
                    logger.debug("watching containerd's task directory", metadata: ["dir": "\(directory)"])
                    scan()
                }
            }
            if pollStopOr(signal, fd: inotify.fd, timeoutMs: rootWatch < 0 ? 1000 : 60_000) {
                handle(inotify.readEvents())
            }
        }
    }

    private func scan() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names { follow(task: name) }
    }

    private func follow(task id: String) {
        guard let inotify, watchOf[id] == nil, Self.looksLikeID(id) else { return }
        if case .success(let wd) = inotify.addWatch(directory + "/" + id, mask: Self.bundleMask) {
            watchOf[id] = wd
            taskOf[wd] = id
        }
        tryRead(id)  // config.json may be complete already
    }

    private func handle(_ events: [Inotify.Event]) {
        for e in events {
            if e.has(IN_Q_OVERFLOW) { scan(); continue }
            if e.wd == rootWatch {
                if e.has(IN_DELETE_SELF) || e.has(IN_IGNORED) {
                    rootWatch = -1
                    continue
                }
                if e.has(IN_ISDIR) { follow(task: e.name) }
                continue
            }
            guard let id = taskOf[e.wd] else { continue }
            if e.has(IN_IGNORED) || e.has(IN_DELETE_SELF) {
                taskOf[e.wd] = nil
                watchOf[id] = nil
                reported.remove(id)
                continue
            }
            if e.name == "config.json" { tryRead(id) }
        }
    }

    private func tryRead(_ id: String) {
        guard !reported.contains(id),
              let data = FileManager.default.contents(atPath: "\(directory)/\(id)/config.json"), !data.isEmpty,
              let spec = try? JSONDecoder().decode(OCISpec.self, from: data) else { return }
        reported.insert(id)
        // No merged dir from here (this path is under the host root): the CRI fills it.
        guard var info = CRITaskBundle.containerInfo(id: id, bundle: nil, pid: 0, rootfs: [], spec: spec, runtime: .containerd) else { return }
        info.state = .unknown
        if info.isSandbox { return }
        report(info)
    }

    static func looksLikeID(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 128 && !name.hasPrefix(".") && !name.contains("/")
    }
}
