import Glibc

/// A bounded queue of batches between a producing thread (an input) and one consuming task
/// (a flusher runner). Bounded by memory with two watermarks: when the queued bytes reach
/// `highWatermark`, producers block until the consumer has brought them down to `lowWatermark`.
/// That is the backpressure: a slow flusher stops the readers and the data waits in its files.
///
/// Producers are plain threads and block in `push`; the consumer is async and suspends in `pop`.
public final class BatchQueue: @unchecked Sendable {
    // Everything below is guarded by `mutex`.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let notFull: UnsafeMutablePointer<pthread_cond_t>
    private var items: [EventBatch] = []
    private var head = 0
    private var bytes = 0
    private var closed = false
    private var draining = false
    private var waiter: CheckedContinuation<EventBatch?, Never>?
    /// Which `pop(timeout:)` the waiter belongs to (0: a plain `pop`).
    private var waiterToken: UInt64 = 0
    private var nextToken: UInt64 = 0
    /// The last timed wait whose timeout passed.
    private var expiredToken: UInt64 = 0

    public let highWatermark: Int
    public let lowWatermark: Int

    public init(highWatermark: Int, lowWatermark: Int? = nil) {
        precondition(highWatermark > 0)
        self.highWatermark = highWatermark
        self.lowWatermark = lowWatermark ?? highWatermark / 2
        mutex = .allocate(capacity: 1)
        notFull = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(notFull, nil)
    }

    deinit {
        pthread_cond_destroy(notFull)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        notFull.deallocate()
    }

    /// Queued bytes right now (for metrics).
    public var queuedBytes: Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return bytes
    }

    public var count: Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return items.count - head
    }

    /// Enqueues a batch, blocking the calling thread while the queue is above its watermarks.
    /// Returns false, without enqueuing, once the queue is closed.
    @discardableResult
    public func push(_ batch: EventBatch) -> Bool {
        let size = batch.memoryBytes
        pthread_mutex_lock(mutex)
        while !closed && (bytes >= highWatermark || (draining && bytes > lowWatermark)) {
            pthread_cond_wait(notFull, mutex)
        }
        return enqueueLocked(batch, size: size)
    }

    /// Like `push` but gives up after `timeoutMs` when the queue stays full; returns false then.
    public func push(_ batch: EventBatch, timeoutMs: Int) -> Bool {
        let size = batch.memoryBytes
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let ns = Int(deadline.tv_nsec) + (timeoutMs % 1000) * 1_000_000
        deadline.tv_sec += timeoutMs / 1000 + ns / 1_000_000_000
        deadline.tv_nsec = ns % 1_000_000_000
        pthread_mutex_lock(mutex)
        while !closed && (bytes >= highWatermark || (draining && bytes > lowWatermark)) {
            if pthread_cond_timedwait(notFull, mutex, &deadline) == ETIMEDOUT {
                pthread_mutex_unlock(mutex)
                return false
            }
        }
        // Enqueued under the same lock as the wait: another producer cannot fill the queue in
        // between and leave this one blocked with no timeout.
        return enqueueLocked(batch, size: size)
    }

    /// With the mutex held and room in the queue (or it closed): hands the batch to a waiting
    /// consumer or queues it, and unlocks. False, without enqueuing, when the queue is closed.
    private func enqueueLocked(_ batch: EventBatch, size: Int) -> Bool {
        if closed {
            pthread_mutex_unlock(mutex)
            return false
        }
        if let w = waiter {
            waiter = nil
            waiterToken = 0
            pthread_mutex_unlock(mutex)
            w.resume(returning: batch)
            return true
        }
        items.append(batch)
        bytes += size
        if bytes >= highWatermark { draining = true }
        pthread_mutex_unlock(mutex)
        return true
    }

    /// Whether a push would block now.
    public var isFull: Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return bytes >= highWatermark || (draining && bytes > lowWatermark)
    }

    /// Takes the next batch, suspending while the queue is empty. Returns nil once the queue is
    /// closed and empty. One consumer only.
    public func pop() async -> EventBatch? {
        await popWaiting(token: 0)
    }

    /// Takes the next batch or, if none is queued and the queue is open, waits for one as the
    /// waiter `token` (0: untimed). Returns nil when the queue is closed and empty, or when
    /// `expire(token)` ended the wait (also if it did so before the wait began).
    private func popWaiting(token: UInt64) async -> EventBatch? {
        pthread_mutex_lock(mutex)
        if head < items.count {
            let b = takeLocked()
            pthread_mutex_unlock(mutex)
            return b
        }
        if closed || (token != 0 && expiredToken == token) {
            pthread_mutex_unlock(mutex)
            return nil
        }
        return await withCheckedContinuation { (c: CheckedContinuation<EventBatch?, Never>) in
            precondition(waiter == nil, "BatchQueue has a single consumer")
            waiter = c
            waiterToken = token
            pthread_mutex_unlock(mutex)
        }
    }

    /// What `pop(timeout:)` found.
    public enum TimedPop: Sendable {
        case batch(EventBatch)
        case timedOut
        case closed
    }

    /// Takes the next batch, waiting at most `timeout` for one. One consumer only.
    public func pop(timeout: Duration) async -> TimedPop {
        if timeout <= .zero {
            if let b = tryPop() { return .batch(b) }
            return isClosedAndEmpty ? .closed : .timedOut
        }
        pthread_mutex_lock(mutex)
        nextToken += 1
        let token = nextToken
        pthread_mutex_unlock(mutex)
        // The timer is a child task: it ends the wait at the timeout, and is cancelled once the
        // wait ends first.
        let got = await withTaskGroup(of: Void.self) { group -> EventBatch? in
            group.addTask { [self] in
                // Also when the waiting task was cancelled (the sleep then ends at once): a timed
                // wait never becomes an untimed one. Expiring a wait that already ended is a no-op.
                try? await Task.sleep(for: timeout)
                expire(token)
            }
            let got = await popWaiting(token: token)
            group.cancelAll()
            return got
        }
        if let b = got { return .batch(b) }
        return isClosedAndEmpty ? .closed : .timedOut
    }

    private var isClosedAndEmpty: Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return closed && head == items.count
    }

    private func expire(_ token: UInt64) {
        pthread_mutex_lock(mutex)
        expiredToken = token
        guard let w = waiter, waiterToken == token else {
            pthread_mutex_unlock(mutex)
            return
        }
        waiter = nil
        waiterToken = 0
        pthread_mutex_unlock(mutex)
        w.resume(returning: nil)
    }

    /// Takes the next batch if one is queued, without waiting.
    public func tryPop() -> EventBatch? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return head < items.count ? takeLocked() : nil
    }

    private func takeLocked() -> EventBatch {
        let b = items[head]
        items[head] = EventBatch(arena: [], events: [], tags: [], timeSeconds: 0, inputBytes: 0)
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 256 {
            items.removeFirst(head)
            head = 0
        }
        bytes -= b.memoryBytes
        if draining && bytes <= lowWatermark { draining = false }
        if !draining { pthread_cond_broadcast(notFull) }
        return b
    }

    /// Closes the queue: pushes fail from now on (blocked producers return false), the consumer
    /// gets what is queued and then nil.
    public func close() {
        pthread_mutex_lock(mutex)
        closed = true
        let w = waiter
        waiter = nil
        waiterToken = 0
        pthread_cond_broadcast(notFull)
        pthread_mutex_unlock(mutex)
        w?.resume(returning: nil)
    }

    /// Removes and returns everything queued (a pipeline abandoning what it could not deliver by
    /// its shutdown deadline).
    public func removeAll() -> [EventBatch] {
        pthread_mutex_lock(mutex)
        let out = Array(items[head...])
        items.removeAll()
        head = 0
        bytes = 0
        draining = false
        pthread_cond_broadcast(notFull)
        pthread_mutex_unlock(mutex)
        return out
    }
}
