import Synchronization

/// End-to-end acknowledgement of one batch. The pipeline sets `expected` to the number of
/// flushers the batch goes to; each flusher calls `acknowledge()` after it delivered the batch.
/// When the last one does, `onComplete` runs once (the input then moves its checkpoint).
/// A batch that is never acknowledged (shutdown, crash) leaves the checkpoint behind it, so its
/// data is read again on the next start: nothing acknowledged is lost.
public final class AckToken: Sendable {
    private let remaining: Atomic<Int>
    private let onComplete: @Sendable () -> Void

    public init(expected: Int = 1, onComplete: @escaping @Sendable () -> Void) {
        self.remaining = Atomic(expected)
        self.onComplete = onComplete
    }

    /// Adds `n` further acknowledgements to wait for (fan-out to more flushers).
    public func expect(_ n: Int) {
        remaining.add(n, ordering: .relaxed)
    }

    public func acknowledge() {
        let (_, now) = remaining.subtract(1, ordering: .acquiringAndReleasing)
        if now == 0 { onComplete() }
    }
}

/// Tracks the batches of one source (e.g. one file) in the order they were emitted and gives
/// the highest position up to which every batch has been acknowledged. Pure logic, no I/O.
public struct OrderedAckTracker: Sendable {
    private var pending: [(seq: UInt64, position: Int64, done: Bool)] = []
    private var head = 0
    private var nextSeq: UInt64 = 0
    /// Position up to which everything has been acknowledged.
    public private(set) var committed: Int64

    public init(committed: Int64) {
        self.committed = committed
    }

    /// Registers a batch that ends at `position`; returns its sequence number.
    public mutating func emitted(upTo position: Int64) -> UInt64 {
        let s = nextSeq
        nextSeq += 1
        pending.append((s, position, false))
        return s
    }

    /// Marks `seq` acknowledged; returns true if `committed` moved.
    @discardableResult
    public mutating func acknowledged(_ seq: UInt64) -> Bool {
        guard head < pending.count else { return false }
        let idx = head &+ Int(truncatingIfNeeded: seq &- pending[head].seq)
        guard idx >= head, idx < pending.count, pending[idx].seq == seq else { return false }
        pending[idx].done = true
        var moved = false
        while head < pending.count, pending[head].done {
            committed = pending[head].position
            head += 1
            moved = true
        }
        if head > 64, head * 2 > pending.count {
            pending.removeFirst(head)
            head = 0
        }
        return moved
    }

    /// Forgets batches in flight (after a truncation restarted the source at `position`).
    public mutating func reset(committed position: Int64) {
        pending.removeAll()
        head = 0
        committed = position
    }

    public var inFlight: Int { pending.count - head }
}
