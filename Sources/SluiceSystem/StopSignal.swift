import Glibc
import Synchronization

/// A stop request for a thread blocked in poll(2): a flag plus SluiceSystem's `Waker` pipe, whose
/// read end is polled.
public final class StopSignal: Sendable {
    private let flag = Atomic<Bool>(false)
    private let waker = Waker()
    /// The end to poll for POLLIN.
    public var readFD: Int32 { waker.fd }

    public var isStopped: Bool { flag.load(ordering: .acquiring) }

    /// Sets the flag and wakes the thread.
    public func stop() {
        flag.store(true, ordering: .releasing)
        waker.wake()
    }

    /// Wakes the thread without stopping it.
    public func wake() { waker.wake() }

    /// Empties the pipe after a wake-up.
    public func drain() { waker.drain() }
}

/// Runs `body` on its own thread until it returns; cancelling the calling task stops it (the
/// signal's flag is set and its pipe written, which `body` must poll).
public func runStoppableThread(name: String, _ body: @escaping @Sendable (StopSignal) -> Void) async {
    let signal = StopSignal()
    await withTaskCancellationHandler {
        await runOnDedicatedThread(name: name) { body(signal) }
    } onCancel: {
        signal.stop()
    }
}

/// poll(2) on the stop pipe and, when given, another fd; returns whether `fd` is readable.
public func pollStopOr(_ signal: StopSignal, fd: Int32?, timeoutMs: Int32) -> Bool {
    var fds = [pollfd(fd: signal.readFD, events: Int16(POLLIN), revents: 0)]
    if let fd { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
    let rc = poll(&fds, nfds_t(fds.count), max(0, timeoutMs))
    if rc > 0 && fds[0].revents != 0 { signal.drain() }
    return rc > 0 && fds.count > 1 && fds[1].revents != 0
}
