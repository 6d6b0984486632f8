import Dispatch
import SluiceCore
import SluiceSystem
import Synchronization

/// `process_thread_count` above 1: a pipeline's processors run on that many threads. A batch goes
/// to the thread its source picks (`sourceStream` modulo the count), so the batches of one file are
/// processed and queued for the flushers in the order they were read, and its checkpoint stays
/// exact; different files are processed at once. Each thread has its own processor instances
/// (a processor keeps per-call scratch) and a queue of a few batches: a reader whose thread is
/// busy waits, which is the backpressure the single-threaded path has too.
final class ProcessingWorkers: Sendable {
    /// Batches waiting per thread before the reader waits.
    static let depth = 4

    private final class Lane: Sendable {
        let slots = DispatchSemaphore(value: ProcessingWorkers.depth)
        let items = DispatchSemaphore(value: 0)
        /// nil: the end (after `finish`).
        let queue = Mutex<[EventBatch?]>([])
    }

    private let lanes: [Lane]
    private let name: String
    private let stopping = Mutex<@Sendable () -> Bool>({ false })
    /// Threads still running, and the gate opened when the last one ends.
    private let running = Atomic<Int>(0)
    private let ended = Latch()

    init(count: Int, name: String) {
        lanes = (0..<count).map { _ in Lane() }
        self.name = name
    }

    /// Starts the threads; thread `i` runs `work(i, batch)` for each batch handed to it.
    /// `stopping` says when a reader waiting for room should give up.
    func start(stopping: @escaping @Sendable () -> Bool, work: @escaping @Sendable (Int, consuming EventBatch) -> Void) {
        self.stopping.withLock { $0 = stopping }
        running.store(lanes.count, ordering: .releasing)
        for (i, lane) in lanes.enumerated() {
            startThread(name: "proc:\(name.suffix(8)):\(i)") { [self] in
                while true {
                    lane.items.wait()
                    guard let next = lane.queue.withLock({ $0.removeFirst() }) else { break }
                    lane.slots.signal()
                    work(i, consume next)
                }
                if running.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { ended.open() }
            }
        }
    }

    /// Hands `batch` to its source's thread, waiting while that thread's queue is full; false
    /// when the pipeline stops meanwhile (the batch is not taken).
    func submit(_ batch: consuming EventBatch) -> Bool {
        let lane = lanes[Int(batch.sourceStream % UInt64(lanes.count))]
        while lane.slots.wait(timeout: .now() + .milliseconds(200)) == .timedOut {
            if stopping.withLock({ $0 })() { return false }
        }
        // Moved into the queue, so the thread that takes it holds its only reference.
        var item: EventBatch? = consume batch
        lane.queue.withLock { $0.append(item.take()) }
        lane.items.signal()
        return true
    }

    /// No more batches: returns once every thread has processed what it was given and ended.
    func finish() async {
        for lane in lanes {
            lane.queue.withLock { $0.append(nil) }
            lane.items.signal()
        }
        await ended.wait()
    }
}
