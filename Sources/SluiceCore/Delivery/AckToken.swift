import Synchronization

/// How a batch's delivery ended, for one flusher or, combined, for all of them.
public enum DeliveryStatus: UInt8, Sendable, CustomStringConvertible {
    /// The destination has the data.
    case delivered = 0
    /// The destination refused it for good (a bad document, a retry limit reached): the events are
    /// counted as discarded with a reason, and the source position moves past them like delivered ones.
    case rejected = 1
    /// Given up unfinished (shutdown deadline): the source position stays behind the batch, so its
    /// data is read again on the next start.
    case abandoned = 2

    public var description: String {
        switch self {
        case .delivered: return "delivered"
        case .rejected: return "rejected"
        case .abandoned: return "abandoned"
        }
    }
    /// Whether the source may move past the batch.
    public var isFinal: Bool { self != .abandoned }
}

/// End-to-end acknowledgement of one batch. The pipeline sets `expected` to the number of
/// flushers the batch goes to; each of them finishes it once with a status. When the last one
/// does, `onComplete` runs once with the combined status: the worst of them (abandoned over
/// rejected over delivered). A batch that is never finished (a crash) or finished as abandoned
/// leaves the checkpoint behind it, so its data is read again on the next start: nothing
/// acknowledged is lost.
public final class AckToken: Sendable {
    private let remaining: Atomic<Int>
    /// Bit 0: some flusher rejected it; bit 1: some flusher abandoned it.
    private let outcome = Atomic<UInt8>(0)
    private let onComplete: @Sendable (DeliveryStatus) -> Void

    public init(expected: Int = 1, onComplete: @escaping @Sendable (DeliveryStatus) -> Void) {
        self.remaining = Atomic(expected)
        self.onComplete = onComplete
    }

    /// Adds `n` further finishes to wait for (fan-out to more flushers).
    public func expect(_ n: Int) {
        remaining.add(n, ordering: .relaxed)
    }

    /// One flusher is done with the batch.
    public func finish(_ status: DeliveryStatus) {
        switch status {
        case .delivered: break
        case .rejected: outcome.bitwiseOr(1, ordering: .relaxed)
        case .abandoned: outcome.bitwiseOr(2, ordering: .relaxed)
        }
        let (_, now) = remaining.subtract(1, ordering: .acquiringAndReleasing)
        if now == 0 {
            let o = outcome.load(ordering: .relaxed)
            onComplete(o & 2 != 0 ? .abandoned : o & 1 != 0 ? .rejected : .delivered)
        }
    }

    /// `finish(.delivered)`.
    public func acknowledge() { finish(.delivered) }
}

/// Tracks the batches of one source (e.g. one file) in the order they were emitted and gives
/// the highest position up to which every batch has been acknowledged. Pure logic, no I/O.
public struct OrderedAckTracker: Sendable {
    private var pending: [(seq: UInt64, position: Int64, done: Bool)] = []
    private var head = 0
    private var nextSeq: UInt64 = 0
    /// Position up to which everything has been acknowledged.
    public private(set) var committed: Int64

    /// `nextSequence`: the first sequence number to give out. A source whose trackers come and
    /// go (a file's identity reused by a new file) starts each new one above every number it gave
    /// out before, so a late acknowledgement of an earlier batch never matches a new one.
    public init(committed: Int64, nextSequence: UInt64 = 0) {
        self.committed = committed
        self.nextSeq = nextSequence
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
