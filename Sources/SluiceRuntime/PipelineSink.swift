import SluiceCore
import Synchronization

/// Hands an input's batches to the processors (run here, on the input's thread) and then to
/// the bounded queue of each flusher whose `Match` selects them (all, without one). Blocking when
/// a queue is full is the backpressure. A batch's acknowledgement completes when every flusher that
/// received it has finished it; one that no flusher selects is dropped, counted, and acknowledged.
final class PipelineSink: BatchSink {
    let processors: [(processor: any Processor, metrics: ComponentMetrics)]
    let queues: [BatchQueue]
    let routes: [FlusherRoute?]
    let metrics: PipelineMetrics
    let stopping = Atomic<Bool>(false)
    /// Every flusher receives every batch: no routing work.
    private let unrouted: Bool

    init(processors: [(processor: any Processor, metrics: ComponentMetrics)], queues: [BatchQueue],
         routes: [FlusherRoute?]? = nil, metrics: PipelineMetrics = PipelineMetrics()) {
        self.processors = processors
        self.queues = queues
        self.routes = routes ?? queues.map { _ in nil }
        self.metrics = metrics
        unrouted = self.routes.allSatisfy { $0 == nil }
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
        if unrouted {
            b.ack?.expect(queues.count)
            for q in queues where !push(b, to: q) { return false }
            return true
        }
        let chosen = routes.indices.filter { routes[$0]?.selects(b) ?? true }
        b.ack?.expect(max(1, chosen.count))
        if chosen.isEmpty {
            metrics.eventsDropped.add(b.events.count)
            metrics.eventsUnrouted.add(b.events.count)
            b.ack?.finish(.delivered)
            return true
        }
        for i in chosen where !push(routes[i]?.adapt(b) ?? b, to: queues[i]) { return false }
        return true
    }

    private func push(_ b: EventBatch, to q: BatchQueue) -> Bool {
        while !q.push(b, timeoutMs: 200) {
            if stopping.load(ordering: .acquiring) { return false }
        }
        return true
    }
}
