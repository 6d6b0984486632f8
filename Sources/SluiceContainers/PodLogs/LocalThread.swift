#if canImport(Glibc)
import Glibc
#endif
import SluiceFiles
import Synchronization


/// A stop request for a thread blocked in poll(2): a flag plus a pipe whose read end is polled.
final class LocalStopSignal: Sendable {
    private let flag = Atomic<Bool>(false)
    /// The end to poll for POLLIN.
    let readFD: Int32
    private let writeFD: Int32

    init() {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) != 0 { fds = [-1, -1] }
        for fd in fds where fd >= 0 {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        readFD = fds[0]
        writeFD = fds[1]
    }

    deinit {
        if readFD >= 0 { close(readFD) }
        if writeFD >= 0 { close(writeFD) }
    }

    var isStopped: Bool { flag.load(ordering: .acquiring) }

    /// Sets the flag and wakes the thread.
    func stop() {
        flag.store(true, ordering: .releasing)
        wake()
    }

    /// Wakes the thread without stopping it.
    func wake() {
        var one: UInt8 = 1
        _ = write(writeFD, &one, 1)
    }

    /// Empties the pipe after a wake-up.
    func drain() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while buffer.withUnsafeMutableBytes({ read(readFD, $0.baseAddress!, $0.count) }) > 0 {}
    }
}

/// Runs `body` on its own thread until it returns; cancelling the calling task stops it (the
/// signal's flag is set and its pipe written, which `body` must poll).
func runStoppableThread(_ body: @escaping @Sendable (LocalStopSignal) -> Void) async {
    let signal = LocalStopSignal()
    await withTaskCancellationHandler {
        await runOnDedicatedThread(name: "podlogs") { body(signal) }
    } onCancel: {
        signal.stop()
    }
}

/// inotify(7) on directories, non-blocking; owned by one thread.
final class LocalInotify {
    struct Event {
        var wd: Int32
        var mask: UInt32
        var name: String

        func has<T: BinaryInteger>(_ bit: T) -> Bool { mask & UInt32(truncatingIfNeeded: bit) != 0 }
    }

    let fd: Int32
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    /// Creations, deletions and renames in the directory, and the directory's own end.
    static let directoryMask: UInt32 = UInt32(IN_CREATE) | UInt32(IN_DELETE) | UInt32(IN_MOVED_FROM) | UInt32(IN_MOVED_TO)
        | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF) | UInt32(IN_ONLYDIR)

    init?() {
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        if fd < 0 { return nil }
    }

    deinit { close(fd) }

    func addWatch(_ directory: String, mask: UInt32 = LocalInotify.directoryMask) -> Result<Int32, LocalErrno> {
        let wd = inotify_add_watch(fd, directory, mask)
        if wd < 0 { return .failure(LocalErrno(errno)) }
        return .success(wd)
    }

    func removeWatch(_ wd: Int32) {
        _ = inotify_rm_watch(fd, wd)
    }

    /// Every queued event, without blocking.
    func readEvents() -> [Event] {
        var out: [Event] = []
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n <= 0 { break }
            buffer.withUnsafeBytes { raw in
                var offset = 0
                while offset + 16 <= n {
                    let wd = raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                    let mask = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                    let length = Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    var name = ""
                    if length > 0 {
                        let bytes = raw[(offset + 16)..<(offset + 16 + length)]
                        let end = bytes.firstIndex(of: 0) ?? bytes.endIndex
                        name = String(decoding: raw[(offset + 16)..<end], as: UTF8.self)
                    }
                    out.append(Event(wd: wd, mask: mask, name: name))
                    offset += 16 + length
                }
            }
        }
        return out
    }
}

/// poll(2) on the stop pipe and, when given, another fd; returns whether `fd` is readable.
func pollStopOr(_ signal: LocalStopSignal, fd: Int32?, timeoutMs: Int32) -> Bool {
    var fds = [pollfd(fd: signal.readFD, events: Int16(POLLIN), revents: 0)]
    if let fd { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
    let rc = poll(&fds, nfds_t(fds.count), max(0, timeoutMs))
    if rc > 0 && fds[0].revents != 0 { signal.drain() }
    return rc > 0 && fds.count > 1 && fds[1].revents != 0
}
