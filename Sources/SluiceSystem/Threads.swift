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
public func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        let name: String
        init(_ b: @escaping @Sendable () -> Void, _ n: String) { body = b; name = n }
    }
    let box = Unmanaged.passRetained(Box(body, name)).toOpaque()
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
    pthread_attr_setstacksize(&attr, 4 << 20)
    var tid = pthread_t()
    let rc = pthread_create(&tid, &attr, { arg in
        let b = Unmanaged<AnyObject>.fromOpaque(arg!).takeRetainedValue() as! Box
        b.body()
        return nil
    }, box)
    pthread_attr_destroy(&attr)
    if rc != 0 {
        // Could not start a thread: run inline rather than lose the work.
        let b = Unmanaged<AnyObject>.fromOpaque(box).takeRetainedValue() as! Box
        b.body()
    }
}

