import SluiceCore
import Synchronization

/// Hands an input's batches to the processors (run here, on the input's thread, or with
/// `process_thread_count` on that many threads, see `ProcessingWorkers`) and then to
/// the bounded queue of each flusher whose `Match` selects them (all, without one). Blocking when
/// a queue is full is the backpressure. A batch's acknowledgement completes when every flusher that
/// received it has finished it; one that no flusher selects is dropped, counted, and acknowledged.
final class PipelineSink: BatchSink {
    typealias Processors = [(processor: any Processor, metrics: ComponentMetrics)]
    /// The processors, one set per processing thread (`process_thread_count`); with one set they
    /// run on the reader's thread.
    let processorSets: [Processors]
    let queues: [BatchQueue]
    let routes: [FlusherRoute?]
    let metrics: PipelineMetrics
    let stopping = Atomic<Bool>(false)
    /// Every flusher receives every batch: no routing work.
    private let unrouted: Bool
    private let workers: ProcessingWorkers?

    init(processorSets: [Processors], queues: [BatchQueue], routes: [FlusherRoute?]? = nil,
         metrics: PipelineMetrics = PipelineMetrics(), name: String = "") {
        self.processorSets = processorSets.isEmpty ? [[]] : processorSets
        self.queues = queues
        self.routes = routes ?? queues.map { _ in nil }
        self.metrics = metrics
        unrouted = self.routes.allSatisfy { $0 == nil }
        workers = self.processorSets.count > 1 ? ProcessingWorkers(count: self.processorSets.count, name: name) : nil
    }

    /// Starts the processing threads (with more than one processor set); `finishProcessing` ends them.
    func startProcessing() {
        workers?.start(stopping: { [unowned self] in self.stopping.load(ordering: .acquiring) }) { [unowned self] i, b in
            _ = self.processAndDeliver(consume b, with: self.processorSets[i], waiting: {})
        }
    }

    func send(_ batch: consuming EventBatch) -> Bool {
        send(consume batch, waiting: {})
    }

    func send(_ batch: consuming EventBatch, waiting: () -> Void) -> Bool {
        if let workers { return workers.submit(consume batch) }
        return processAndDeliver(consume batch, with: processorSets[0], waiting: waiting)
    }

    /// After the input stopped: waits until the processing threads (if any) handed on everything.
    func finishProcessing() async {
        await workers?.finish()
    }

    /// Consumes the batch: with the only reference to it, the processors rewrite it in place.
    private func processAndDeliver(_ batch: consuming EventBatch, with processors: Processors, waiting: () -> Void) -> Bool {
        var b = consume batch
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
            for q in queues where !push(b, to: q, waiting: waiting) { return false }
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
        for i in chosen where !push(routes[i]?.adapt(b) ?? b, to: queues[i], waiting: waiting) { return false }
        return true
    }

    private func push(_ b: EventBatch, to q: BatchQueue, waiting: () -> Void) -> Bool {
        while !q.push(b, timeoutMs: 200) {
            if stopping.load(ordering: .acquiring) { return false }
            waiting()
        }
        return true
    }
}
