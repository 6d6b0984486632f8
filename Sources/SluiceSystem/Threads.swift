import Glibc

/// Runs `body` on a dedicated OS thread and returns when it has finished. Inputs use this so
/// their blocking reads never occupy the cooperative thread pool.
public func runOnDedicatedThread(name: String, _ body: @escaping @Sendable () -> Void) async {
    await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
        startThread(name: name) {
            body()
            cont.resume()
        }
    }
}

/// Starts `body` on a detached OS thread of its own (a writer, a watcher) and returns at once.
/// The thread is named `name` (its first 15 bytes: what `top -H`, `ps -L` and `perf` show). A
/// thread that cannot be created for lack of resources (EAGAIN: a pids cgroup or thread limit) is
/// retried for about 10 s; past that, or on any other error, the process exits (status 71) with the
/// error on stderr. Running the body inline instead would give a long-lived loop one of the
/// cooperative pool's threads for good, and stall the daemon; its sources keep their checkpoints.
public func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
    let rc = startThread(name: name, attempts: 100, retryDelayMicros: 100_000, create: { pthread_create($0, $1, $2, $3) }, body)
    if rc != 0 {
        let message = Array("sluice: cannot start thread \(name): \(String(cString: strerror(rc))) (after retrying); exiting.\n".utf8)
        _ = message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        exit(71)  // EX_OSERR
    }
}

typealias ThreadEntry = @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer?
typealias ThreadCreate = (UnsafeMutablePointer<pthread_t>, UnsafePointer<pthread_attr_t>, ThreadEntry, UnsafeMutableRawPointer) -> Int32

/// `startThread` with the thread creation and its retry policy given (tests inject failures):
/// `create` is tried up to `attempts` times while it returns EAGAIN. Returns 0 once the thread is
/// started, else the last error (`body` is then released, not run).
func startThread(name: String, attempts: Int, retryDelayMicros: UInt32, create: ThreadCreate, _ body: @escaping @Sendable () -> Void) -> Int32 {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        let name: String
        init(_ b: @escaping @Sendable () -> Void, _ n: String) { body = b; name = n }
    }
    let box = Unmanaged.passRetained(Box(body, name)).toOpaque()
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    defer { pthread_attr_destroy(&attr) }
    pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
    pthread_attr_setstacksize(&attr, 4 << 20)
    var tid = pthread_t()
    var rc: Int32 = 0
    for attempt in 0..<max(1, attempts) {
        if attempt > 0 { usleep(retryDelayMicros) }
        rc = create(&tid, &attr, { arg in
            let b = Unmanaged<AnyObject>.fromOpaque(arg!).takeRetainedValue() as! Box
            // The kernel keeps 15 bytes of a thread's name; cut at a UTF-8 boundary.
            let all = Array(b.name.utf8)
            var n = min(15, all.count)
            if n < all.count { while n > 0 && all[n] & 0xC0 == 0x80 { n -= 1 } }
            setThreadName(Array(all[..<n]))
            b.body()
            return nil
        }, box)
        if rc != EAGAIN { break }
    }
    if rc != 0 { Unmanaged<AnyObject>.fromOpaque(box).release() }
    return rc
}

/// Names the calling thread (`/proc/thread-self/comm`; `pthread_setname_np` is not visible to Swift
/// here). A name that cannot be set is left as it is.
private func setThreadName(_ name: [UInt8]) {
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    _ = name.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}
