import Glibc
import Logging
import SluiceSystem

/// Tells when the config directory may have changed: inotify on the directory (files created,
/// written, renamed, deleted, their permissions changed), on a thread of its own. Where the watch
/// cannot be set up (the directory is missing or unreadable), it is tried again every second; the
/// manager's slow full read covers what inotify cannot see.
struct ConfigDirectoryWatcher: Sendable {
    let directory: String
    let logger: Logger

    /// Calls `changed` after each burst of events until the calling task is cancelled.
    func run(_ changed: @escaping @Sendable () -> Void) async {
        await runStoppableThread(name: "config-watch") { signal in
            loop(signal, changed)
        }
    }

    private func loop(_ signal: StopSignal, _ changed: @Sendable () -> Void) {
        guard let inotify = Inotify() else {
            logger.warning("inotify is not available; the config directory is read on a timer only.", metadata: ["config.dir": "\(directory)"])
            while !signal.isStopped { _ = pollStopOr(signal, fd: nil, timeoutMs: 1000) }
            return
        }
        let mask = UInt32(IN_CREATE) | UInt32(IN_MODIFY) | UInt32(IN_MOVED_TO) | UInt32(IN_MOVED_FROM) | UInt32(IN_DELETE)
            | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF) | UInt32(IN_ATTRIB) | UInt32(IN_CLOSE_WRITE) | UInt32(IN_ONLYDIR)
        var watch: Int32?
        var warned = false
        while !signal.isStopped {
            if watch == nil {
                switch inotify.addWatch(directory, mask: mask) {
                case .success(let wd):
                    watch = wd
                    if warned {
                        logger.info("Watching the config directory again.", metadata: ["config.dir": "\(directory)"])
                        warned = false
                    }
                    // Whatever changed while there was no watch.
                    changed()
                case .failure(let e):
                    if !warned {
                        logger.warning("Cannot watch the config directory; retrying every second.", metadata: ["config.dir": "\(directory)", "error": "\(e)"])
                        warned = true
                    }
                }
            }
            guard pollStopOr(signal, fd: watch == nil ? nil : inotify.fd, timeoutMs: 1000) else { continue }
            let events = inotify.readEvents()
            if events.contains(where: { $0.has(IN_IGNORED) || $0.has(IN_DELETE_SELF) || $0.has(IN_MOVE_SELF) }) {
                if let wd = watch { inotify.removeWatch(wd) }
                watch = nil
            }
            if !events.isEmpty { changed() }
        }
    }
}
