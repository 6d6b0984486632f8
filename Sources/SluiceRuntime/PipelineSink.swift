import SluiceCore
import Synchronization

/// Hands an input's batches to the processors (run here, on the input's thread) and then to
/// each flusher's bounded queue. Blocking when a queue is full is the backpressure.
final class PipelineSink: BatchSink {
    let processors: [(processor: any Processor, metrics: ComponentMetrics)]
    let queues: [BatchQueue]
    let stopping = Atomic<Bool>(false)

    init(processors: [(processor: any Processor, metrics: ComponentMetrics)], queues: [BatchQueue]) {
        self.processors = processors
        self.queues = queues
    }

    func send(_ batch: EventBatch) -> Bool {
        var b = batch
        // Each processor's received and sent events are counted here, once per batch.
        for (p, m) in processors {
            if b.events.isEmpty { break }
            m.receivedEvents.add(b.events.count)
            p.process(&b)
            m.sentEvents.add(b.events.count)
        }
        if b.events.isEmpty {
            // Everything was filtered out: the source position may move on.
            b.ack?.expect(1)
            b.ack?.finish(.delivered)
            return true
        }
        b.ack?.expect(queues.count)
        for q in queues {
            while !q.push(b, timeoutMs: 200) {
                if stopping.load(ordering: .acquiring) { return false }
            }
        }
        return true
    }
}
