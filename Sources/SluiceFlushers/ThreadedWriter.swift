import Glibc
import SluiceCore
import SluiceSystem
import Synchronization

/// Where a `ThreadedWriter` puts bytes: a file that rotates, or a descriptor.
public protocol WriteTarget: AnyObject {
    /// Writes all of `bytes[from...]`; returns how far it got. Throws on failure after writing
    /// `partial` bytes (reported through the return of the next call's `from`).
    func write(_ buffer: OutputBuffer, from: Int) throws(PartialWriteError) -> Int
    func sync()
    func close()
}

public struct PartialWriteError: Error, CustomStringConvertible, Sendable {
    public var written: Int
    public var message: String
    public var description: String { message }
}

/// A write job: one encoded buffer and how much of it is already written (a failed write is
/// sent again from there, so nothing is written twice). Returns its buffer to the pool it came
/// from when the runner is done with it.
public final class WriteRequest: FlushRequest, @unchecked Sendable {
    public let buffer: OutputBuffer
    public let eventCount: Int
    /// Bytes of `buffer` already written. Only the writer thread changes it, between a send's
    /// submit and its completion (sends of one request never overlap).
    public internal(set) var written = 0
    let pool: BufferPool

    init(buffer: OutputBuffer, eventCount: Int, pool: BufferPool) {
        self.buffer = buffer
        self.eventCount = eventCount
        self.pool = pool
    }
    public var byteCount: Int { buffer.count }
    deinit { pool.put(buffer) }
}

/// Writes encoded buffers on a thread of its own, so the blocking `write(2)` never runs on the
/// cooperative pool, while the flusher's runner builds the next request. Each write is tried
/// once; a failure is reported with how far it got, and the runner decides when to send again.
public final class ThreadedWriter: @unchecked Sendable {
    struct Job {
        var request: WriteRequest
        var done: CheckedContinuation<PartialWriteError?, Never>
    }
    // Guarded by `mutex`.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var jobs: [Job] = []
    private var closing = false
    private var finished = false
    private var finishWaiters: [CheckedContinuation<Void, Never>] = []

    let target: WriteTarget
    let pool = BufferPool(keep: 4)

    public init(name: String, target: WriteTarget) {
        self.target = target
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
        startThread(name: name) { [self] in loop() }
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        cond.deallocate()
    }

    /// Encodes `batches` as JSON lines into a pooled buffer.
    public func makeJSONLinesRequest(_ batches: [EventBatch]) -> WriteRequest {
        let buffer = pool.take()
        var events = 0
        let encoder = JSONLineEncoder()
        for b in batches {
            encoder.encode(b, into: buffer)
            events += b.events.count
        }
        return WriteRequest(buffer: buffer, eventCount: events, pool: pool)
    }

    /// Writes the rest of `request` once: nil when all of it is written, else the error (with
    /// `request.written` telling how far it got).
    public func write(_ request: WriteRequest) async -> PartialWriteError? {
        await withCheckedContinuation { (c: CheckedContinuation<PartialWriteError?, Never>) in
            pthread_mutex_lock(mutex)
            if finished {
                pthread_mutex_unlock(mutex)
                c.resume(returning: PartialWriteError(written: request.written, message: "the writer has stopped"))
                return
            }
            jobs.append(Job(request: request, done: c))
            pthread_cond_signal(cond)
            pthread_mutex_unlock(mutex)
        }
    }

    /// The send of a line-oriented flusher: one write, classified.
    public func send(_ request: WriteRequest) async -> SendOutcome<WriteRequest> {
        if let e = await write(request) { return .retry(after: nil, reason: e.message) }
        return .delivered
    }

    /// Ends the thread once what was submitted is written, syncing and closing the target.
    public func finish() async {
        pthread_mutex_lock(mutex)
        closing = true
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

    private func loop() {
        while true {
            pthread_mutex_lock(mutex)
            while jobs.isEmpty && !closing { pthread_cond_wait(cond, mutex) }
            if jobs.isEmpty && closing {
                finished = true
                let w = finishWaiters
                finishWaiters = []
                pthread_mutex_unlock(mutex)
                target.sync()
                target.close()
                for c in w { c.resume() }
                return
            }
            let job = jobs.removeFirst()
            pthread_mutex_unlock(mutex)
            let r = job.request
            do {
                r.written = try target.write(r.buffer, from: r.written)
                job.done.resume(returning: nil)
            } catch {
                r.written = error.written
                job.done.resume(returning: error)
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
    public func write(_ buffer: OutputBuffer, from: Int) throws(PartialWriteError) -> Int {
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
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex,
           case .failure(let e) = Sys.makeDirectories(String(path[..<slash])) {
            throw PartialWriteError(written: 0, message: "cannot create the directory \(e)")
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

    public func write(_ buffer: OutputBuffer, from: Int) throws(PartialWriteError) -> Int {
        var written = from
        while written < buffer.count {
            do { try open() } catch { throw PartialWriteError(written: written, message: error.message) }
            var end = buffer.count
            if maxFileSize > 0 && Int64(buffer.count - written) > maxFileSize - size {
                // Whole lines that still fit go into this file, the rest into the next one.
                let limit = written + Int(max(0, maxFileSize - size))
                if let nl = lastNewline(buffer, written, limit) {
                    end = nl + 1
                } else if size > 0 {
                    rotate()
                    continue
                } else {
                    // One line longer than MaxFileSize: alone in its file.
                    end = firstNewline(buffer, written).map { $0 + 1 } ?? buffer.count
                }
            }
            while written < end {
                let n = Glibc.write(fd, buffer.base + written, end - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw PartialWriteError(written: written, message: "cannot write \(path): \(String(cString: strerror(errno)))")
                }
                written += n
                size += Int64(n)
            }
        }
        return written
    }

    private func lastNewline(_ b: OutputBuffer, _ from: Int, _ to: Int) -> Int? {
        var i = to - 1
        while i >= from {
            if b.base[i] == 0x0A { return i }
            i -= 1
        }
        return nil
    }

    private func firstNewline(_ b: OutputBuffer, _ from: Int) -> Int? {
        guard b.count > from, let p = memchr(b.base + from, 0x0A, b.count - from) else { return nil }
        return from + (p.assumingMemoryBound(to: UInt8.self) - (b.base + from))
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
