#if canImport(Glibc)
import Glibc
#endif
import Logging
import SluiceCore

/// Where a `ThreadedWriter` puts bytes: a file that rotates, or a descriptor.
public protocol WriteTarget: AnyObject {
    /// Writes all of `bytes[from...]`; returns how far it got. Throws on failure after writing
    /// `partial` bytes (reported through the return of the next call's `from`).
    func write(_ buffer: ByteBuffer, from: Int) throws(PartialWriteError) -> Int
    func sync()
    func close()
}

public struct PartialWriteError: Error, CustomStringConvertible {
    public var written: Int
    public var message: String
    public var description: String { message }
}

/// Pipelines a flusher: the flusher task encodes batch N+1 while this thread writes batch N.
/// Buffers circulate between them (at most `depth` in flight, which bounds memory and is the
/// backpressure). A batch is acknowledged here, after its bytes were written. A failing write is
/// retried with backoff, from where it stopped, so nothing is written twice; once the flusher is
/// stopping and the deadline has passed, undelivered batches are abandoned unacknowledged (their
/// data is read again on the next start).
public final class ThreadedWriter: @unchecked Sendable {
    struct Job {
        var buffer: ByteBuffer
        var acks: [AckToken]
        var events: Int
    }
    // Guarded by `mutex`.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var jobs: [Job] = []
    private var free: [ByteBuffer] = []
    private var waiters: [CheckedContinuation<ByteBuffer?, Never>] = []
    private var closing = false
    private var abandonAfter: Int64 = .max
    private var finished = false
    private var finishWaiters: [CheckedContinuation<Void, Never>] = []

    let target: WriteTarget
    let name: String
    let logger: Logger
    let metrics: PipelineMetrics

    public init(name: String, target: WriteTarget, depth: Int = 3, logger: Logger, metrics: PipelineMetrics) {
        self.name = name
        self.target = target
        self.logger = logger
        self.metrics = metrics
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
        for _ in 0..<max(1, depth) { free.append(ByteBuffer(capacity: 1 << 20)) }
        let box = Unmanaged.passRetained(self).toOpaque()
        var tid = pthread_t()
        pthread_create(&tid, nil, { arg in
            let me = Unmanaged<ThreadedWriter>.fromOpaque(arg!).takeRetainedValue()
            me.loop()
            return nil
        }, box)
        pthread_detach(tid)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        cond.deallocate()
    }

    public struct Closed: Error, CustomStringConvertible {
        public var description: String { "the writer has stopped" }
    }

    /// An empty buffer to encode into; suspends while all buffers are being written. Throws once
    /// the writer has stopped.
    public func takeBuffer() async throws -> ByteBuffer {
        pthread_mutex_lock(mutex)
        if finished {
            pthread_mutex_unlock(mutex)
            throw Closed()
        }
        if let b = free.popLast() {
            pthread_mutex_unlock(mutex)
            b.clear()
            return b
        }
        let got = await withCheckedContinuation { (c: CheckedContinuation<ByteBuffer?, Never>) in
            waiters.append(c)
            pthread_mutex_unlock(mutex)
        }
        guard let b = got else { throw Closed() }
        b.clear()
        return b
    }

    /// Queues an encoded buffer for writing; `ack` is acknowledged once it is written.
    public func submit(_ buffer: ByteBuffer, ack: AckToken?, events: Int) {
        pthread_mutex_lock(mutex)
        jobs.append(Job(buffer: buffer, acks: ack.map { [$0] } ?? [], events: events))
        pthread_cond_signal(cond)
        pthread_mutex_unlock(mutex)
    }

    /// Encodes `batch` as JSON lines into a free buffer and queues it; the batch is acknowledged
    /// once written. What a line-oriented flusher's `flush` does.
    public func submitJSONLines(_ batch: EventBatch) async throws -> FlushResult {
        let buffer = try await takeBuffer()
        JSONLineEncoder().encode(batch, into: buffer)
        submit(buffer, ack: batch.ack, events: batch.events.count)
        return .accepted
    }

    /// Gives a buffer back unused.
    public func giveBack(_ buffer: ByteBuffer) {
        recycle(buffer)
    }

    private func recycle(_ b: ByteBuffer) {
        pthread_mutex_lock(mutex)
        if !waiters.isEmpty {
            let w = waiters.removeFirst()
            pthread_mutex_unlock(mutex)
            w.resume(returning: b)
            return
        }
        free.append(b)
        pthread_mutex_unlock(mutex)
    }

    /// Writes what is queued, then ends the thread. Failures keep being retried for `deadline`
    /// seconds, then the rest is abandoned.
    public func finish(deadline: Double) async {
        pthread_mutex_lock(mutex)
        closing = true
        abandonAfter = min(abandonAfter, Self.now() + Int64(deadline * 1e9))
        pthread_cond_signal(cond)
        if finished {
            pthread_mutex_unlock(mutex)
            return
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            finishWaiters.append(c)
            pthread_mutex_unlock(mutex)
        }
    }

    static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    private func loop() {
        while true {
            pthread_mutex_lock(mutex)
            while jobs.isEmpty && !closing { pthread_cond_wait(cond, mutex) }
            if jobs.isEmpty && closing {
                finished = true
                let w = finishWaiters
                finishWaiters = []
                let blocked = waiters
                waiters = []
                pthread_mutex_unlock(mutex)
                target.sync()
                target.close()
                for c in blocked { c.resume(returning: nil) }
                for c in w { c.resume() }
                return
            }
            let job = jobs.removeFirst()
            pthread_mutex_unlock(mutex)
            if write(job) {
                metrics.bytesOut.add(job.buffer.count, ordering: .relaxed)
                metrics.eventsOut.add(job.events, ordering: .relaxed)
                for a in job.acks { a.acknowledge() }
            }
            recycle(job.buffer)
        }
    }

    /// Writes one job, retrying failures with backoff; false if abandoned at the deadline.
    private func write(_ job: Job) -> Bool {
        var from = 0
        var delayMs = 100
        var attempt = 0
        while true {
            do {
                from = try target.write(job.buffer, from: from)
                if attempt > 0 {
                    logger.info("Write succeeded again.", metadata: ["flusher": "\(name)", "attempts": "\(attempt + 1)"])
                }
                return true
            } catch {
                from = error.written
                attempt += 1
                metrics.flushErrors.add(1, ordering: .relaxed)
                if attempt == 1 || attempt % 10 == 0 {
                    logger.warning("Write failed; retrying.", metadata: ["flusher": "\(name)", "attempt": "\(attempt)", "error": "\(error.message)"])
                }
                pthread_mutex_lock(mutex)
                let giveUp = closing && Self.now() >= abandonAfter
                pthread_mutex_unlock(mutex)
                if giveUp {
                    logger.warning("Abandoning undelivered data at shutdown; it will be read again on the next start.", metadata: ["flusher": "\(name)"])
                    return false
                }
                var slept = 0
                while slept < delayMs {
                    usleep(50_000)
                    slept += 50
                    pthread_mutex_lock(mutex)
                    let stop = closing && Self.now() >= abandonAfter
                    pthread_mutex_unlock(mutex)
                    if stop { break }
                }
                delayMs = min(delayMs * 2, 30_000)
            }
        }
    }
}

/// Writes to a file descriptor (standard output).
public final class DescriptorTarget: WriteTarget {
    let fd: Int32
    let label: String
    public init(fd: Int32, label: String) {
        self.fd = fd
        self.label = label
    }
    public func write(_ buffer: ByteBuffer, from: Int) throws(PartialWriteError) -> Int {
        var written = from
        while written < buffer.count {
            let n = Glibc.write(fd, buffer.base + written, buffer.count - written)
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN {
                    var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&p, 1, 100)
                    continue
                }
                throw PartialWriteError(written: written, message: "cannot write to \(label): \(String(cString: strerror(errno)))")
            }
            written += n
        }
        return written
    }
    public func sync() {}
    public func close() {}
}

/// Appends to a file, rotating it by size: `path` → `path.1` → … → `path.<maxFiles>`.
/// `@unchecked Sendable`: after `open()` (called once by the flusher before the first batch), only
/// the writer thread touches it.
public final class RotatingFileTarget: WriteTarget, @unchecked Sendable {
    let path: String
    let maxFileSize: Int64
    let maxFiles: Int
    private var fd: Int32 = -1
    private var size: Int64 = 0

    public init(path: String, maxFileSize: Int64, maxFiles: Int) {
        self.path = path
        self.maxFileSize = maxFileSize
        self.maxFiles = maxFiles
    }

    /// Opens (creating directories); throws a readable message.
    public func open() throws(PartialWriteError) {
        if fd >= 0 { return }
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            var cur = ""
            for c in path[..<slash].split(separator: "/") {
                cur += "/" + c
                mkdir(cur, 0o755)
            }
        }
        let f = Glibc.open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        if f < 0 { throw PartialWriteError(written: 0, message: "cannot open \(path): \(String(cString: strerror(errno)))") }
        var st = stat()
        fstat(f, &st)
        fd = f
        size = Int64(st.st_size)
        // A crash can leave a torn last line: end it, so the next line starts on its own.
        if size > 0 {
            var last: UInt8 = 0
            if pread(f, &last, 1, off_t(size - 1)) == 1 && last != 0x0A {
                var nl: UInt8 = 0x0A
                if Glibc.write(f, &nl, 1) == 1 { size += 1 }
            }
        }
    }

    public func write(_ buffer: ByteBuffer, from: Int) throws(PartialWriteError) -> Int {
        do { try open() } catch { throw PartialWriteError(written: from, message: error.message) }
        if from == 0 && maxFileSize > 0 && size > 0 && size + Int64(buffer.count) > maxFileSize {
            rotate()
            do { try open() } catch { throw PartialWriteError(written: from, message: error.message) }
        }
        var written = from
        while written < buffer.count {
            let n = Glibc.write(fd, buffer.base + written, buffer.count - written)
            if n < 0 {
                if errno == EINTR { continue }
                throw PartialWriteError(written: written, message: "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            written += n
            size += Int64(n)
        }
        return written
    }

    private func rotate() {
        fsync(fd)
        Glibc.close(fd)
        fd = -1
        if maxFiles == 0 {
            unlink(path)
        } else {
            unlink("\(path).\(maxFiles)")
            var i = maxFiles - 1
            while i >= 1 {
                rename("\(path).\(i)", "\(path).\(i + 1)")
                i -= 1
            }
            rename(path, "\(path).1")
        }
    }

    public func sync() { if fd >= 0 { fsync(fd) } }
    public func close() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
    }
}
