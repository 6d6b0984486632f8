#if canImport(Glibc)
import Glibc
#endif
import SluiceFiles
import Synchronization


/// A stop request for a thread blocked in poll(2): a flag plus SluiceFiles' `Waker` pipe, whose
/// read end is polled.
final class LocalStopSignal: Sendable {
    private let flag = Atomic<Bool>(false)
    private let waker = Waker()
    /// The end to poll for POLLIN.
    var readFD: Int32 { waker.fd }

    var isStopped: Bool { flag.load(ordering: .acquiring) }

    /// Sets the flag and wakes the thread.
    func stop() {
        flag.store(true, ordering: .releasing)
        waker.wake()
    }

    /// Wakes the thread without stopping it.
    func wake() { waker.wake() }

    /// Empties the pipe after a wake-up.
    func drain() { waker.drain() }
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

/// poll(2) on the stop pipe and, when given, another fd; returns whether `fd` is readable.
func pollStopOr(_ signal: LocalStopSignal, fd: Int32?, timeoutMs: Int32) -> Bool {
    var fds = [pollfd(fd: signal.readFD, events: Int16(POLLIN), revents: 0)]
    if let fd { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
    let rc = poll(&fds, nfds_t(fds.count), max(0, timeoutMs))
    if rc > 0 && fds[0].revents != 0 { signal.drain() }
    return rc > 0 && fds.count > 1 && fds[1].revents != 0
}
