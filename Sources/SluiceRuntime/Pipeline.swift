import Logging
import SluiceConfig
import SluiceCore
import Synchronization

/// Hands an input's batches to the processors (run here, on the input's thread) and then to
/// each flusher's bounded queue. Blocking when a queue is full is the backpressure.
final class PipelineSink: BatchSink {
    let processors: [any Processor]
    let queues: [BatchQueue]
    let stopping = Atomic<Bool>(false)
    let metrics: PipelineMetrics

    init(processors: [any Processor], queues: [BatchQueue], metrics: PipelineMetrics) {
        self.processors = processors
        self.queues = queues
        self.metrics = metrics
    }

    func send(_ batch: EventBatch) -> Bool {
        var b = batch
        for p in processors { p.process(&b) }
        if b.events.isEmpty {
            // Everything was filtered out: the source position may move on.
            b.ack?.expect(1)
            b.ack?.acknowledge()
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

/// One running pipeline: an input, its processors, its flushers and the queues between them.
public final class Pipeline: Sendable {
    public let name: String
    public let document: PipelineDocument
    let input: any Input
    let flushers: [(type: String, flusher: any Flusher)]
    let sink: PipelineSink
    let logger: Logger
    let metrics: PipelineMetrics
    let shutdownTimeoutSeconds: Double
    private let stopRequested = Atomic<Bool>(false)
    private let done = Latch()

    public init(document: PipelineDocument, registry: PluginRegistry, context: PluginContext, resources: BuildResources, queueBytes: Int, shutdownTimeoutSeconds: Double) throws {
        self.name = document.name
        self.document = document
        self.logger = context.logger
        self.metrics = context.metrics
        self.shutdownTimeoutSeconds = shutdownTimeoutSeconds
        guard let inCfg = document.inputs.first, let inEntry = registry.inputs[inCfg.type] else {
            throw ConfigErrors(errors: [ConfigError(file: document.file, line: 0, column: 0, keyPath: "inputs", message: "no usable input")])
        }
        input = try inEntry.build(inCfg.config, context, resources)
        var procs: [any Processor] = []
        for p in document.processors {
            guard let e = registry.processors[p.type] else { continue }
            procs.append(try e.build(p.config, context))
        }
        var fl: [(String, any Flusher)] = []
        for f in document.flushers {
            guard let e = registry.flushers[f.type] else { continue }
            fl.append((f.type, try e.build(f.config, context)))
        }
        flushers = fl
        let queues = fl.map { _ in BatchQueue(highWatermark: queueBytes, lowWatermark: queueBytes / 2) }
        sink = PipelineSink(processors: procs, queues: queues, metrics: context.metrics)
    }

    /// Runs until `stop()`; then stops the input first, lets the flushers drain their queues
    /// (bounded by the shutdown timeout) and returns.
    public func run() async {
        for (t, f) in flushers {
            do { try await f.start() } catch {
                logger.error("Flusher could not start; it will retry on each batch.", metadata: ["flusher": "\(t)", "error": "\(error)"])
            }
        }
        await withTaskGroup(of: Bool.self) { group in
            for (i, (t, f)) in flushers.enumerated() {
                let q = sink.queues[i]
                group.addTask { [logger, metrics] in
                    await Pipeline.runFlusher(type: t, flusher: f, queue: q, logger: logger, metrics: metrics)
                    return true
                }
            }
            do {
                try await input.run(sink: sink)
            } catch {
                logger.error("Input failed.", metadata: ["error": "\(error)"])
            }
            // The input has stopped: no more batches. Flushers drain what is queued, within the deadline.
            for q in sink.queues { q.close() }
            let deadline = shutdownTimeoutSeconds
            group.addTask {
                try? await Task.sleep(for: .milliseconds(Int(deadline * 1000)))
                return false
            }
            var finished = 0
            while let flusherDone = await group.next() {
                if flusherDone {
                    finished += 1
                    if finished == flushers.count { break }
                } else {
                    logger.warning("Shutdown deadline reached; abandoning undelivered batches (they will be read again on the next start).", metadata: ["pipeline": "\(name)"])
                    // Writers give up their retries now; flusher tasks waiting on them are released.
                    for (_, f) in flushers { await f.stop(deadline: 0) }
                    break
                }
            }
            group.cancelAll()
        }
        // Writers finish what they hold; failures are retried for a few more seconds at most.
        for (_, f) in flushers { await f.stop(deadline: min(5, shutdownTimeoutSeconds)) }
        done.open()
    }

    static func runFlusher(type: String, flusher: any Flusher, queue: BatchQueue, logger: Logger, metrics: PipelineMetrics) async {
        while let batch = await queue.pop() {
            var delayMs = 100
            var attempt = 0
            var result = FlushResult.delivered
            while true {
                do {
                    result = try await flusher.flush(batch)
                    break
                } catch {
                    attempt += 1
                    metrics.flushErrors.add(1, ordering: .relaxed)
                    if attempt == 1 || attempt % 10 == 0 {
                        logger.warning("Flush failed; retrying.", metadata: ["flusher": "\(type)", "attempt": "\(attempt)", "error": "\(error)"])
                    }
                    do { try await Task.sleep(for: .milliseconds(delayMs)) } catch {
                        logger.warning("Flusher abandoned undelivered data at shutdown; it will be read again on the next start.", metadata: ["flusher": "\(type)", "queued.batches": "\(queue.count + 1)"])
                        return
                    }
                    delayMs = min(delayMs * 2, 30_000)
                }
            }
            if case .delivered = result {
                metrics.eventsOut.add(batch.events.count, ordering: .relaxed)
                batch.ack?.acknowledge()
            }
            if Task.isCancelled {
                logger.warning("Flusher stopped at the shutdown deadline; undelivered data will be read again on the next start.", metadata: ["flusher": "\(type)", "queued.batches": "\(queue.count)"])
                return
            }
        }
    }

    /// Asks the pipeline to stop and waits until it has.
    public func stop() async {
        if !stopRequested.exchange(true, ordering: .acquiringAndReleasing) {
            sink.stopping.store(true, ordering: .releasing)
            input.requestStop()
        }
        await done.wait()
    }
}

/// A one-shot gate: `wait()` returns once `open()` was called.
final class Latch: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
    func open() {
        let w = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for c in w { c.resume() }
    }
    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }
}
