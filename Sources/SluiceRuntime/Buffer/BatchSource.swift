import SluiceCore

/// Where a flusher's runner takes its batches from: the pipeline's queue, or the flusher's disk
/// buffer.
protocol BatchSource: Sendable {
    /// The next batch, waiting for one; nil once the source is closed and empty.
    func pop() async -> EventBatch?
    /// A batch if one is ready now.
    func tryPop() -> EventBatch?
    /// The next batch, waiting at most `timeout`.
    func pop(timeout: Duration) async -> BatchQueue.TimedPop
}

extension BatchQueue: BatchSource {}

/// A disk buffer as a batch source: each batch comes with an acknowledgement that, once the
/// flusher has finished it for good (delivered or rejected), marks its frame sent. An abandoned
/// batch (shutdown deadline) stays in the buffer and is sent again after the restart.
struct DiskBufferSource: BatchSource {
    let buffer: DiskBuffer

    func pop() async -> EventBatch? {
        guard let (seq, b) = await buffer.next() else { return nil }
        return attach(seq, b)
    }

    func tryPop() -> EventBatch? {
        guard let (seq, b) = buffer.tryNext() else { return nil }
        return attach(seq, b)
    }

    func pop(timeout: Duration) async -> BatchQueue.TimedPop {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            if let b = tryPop() { return .batch(b) }
            if buffer.isDrained { return .closed }
            let left = deadline - ContinuousClock.now
            if left <= .zero { return .timedOut }
            await buffer.waitForFrame(timeout: left)
            // Cancelled, the wait ends at once: give up rather than spin until the deadline.
            if Task.isCancelled { return tryPop().map { .batch($0) } ?? .timedOut }
        }
    }

    private func attach(_ seq: UInt64, _ batch: EventBatch) -> EventBatch {
        var b = batch
        let buffer = self.buffer
        b.ack = AckToken { status in
            if status.isFinal { buffer.acknowledge(seq) }
        }
        return b
    }
}
