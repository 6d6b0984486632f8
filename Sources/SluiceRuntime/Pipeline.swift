import Logging
import SluiceConfig
import SluiceCore
import SluiceSystem
import Synchronization

/// What every component of a pipeline shares: where it logs and counts, the daemon's settings,
/// where component state goes, and the daemon's services (checkpoints, discovery).
public struct PipelineEnvironment: Sendable {
    public var logger: Logger
    public var pipelineMetrics: PipelineMetrics
    public var globals: GlobalParameters
    public var hostname: String
    /// See `PluginContext.hostTags`; nil: the host name as `__hostname__`.
    public var hostTags: [EventTag]?
    public var dataDirectory: String
    public var rateLimiter: RateLimiter?
    public var governor: ResourceGovernor?
    public var services: PluginServices

    public init(logger: Logger, pipelineMetrics: PipelineMetrics, globals: GlobalParameters, hostname: String, hostTags: [EventTag]? = nil,
                dataDirectory: String, rateLimiter: RateLimiter? = nil, governor: ResourceGovernor? = nil, services: PluginServices = PluginServices()) {
        self.logger = logger
        self.pipelineMetrics = pipelineMetrics
        self.globals = globals
        self.hostname = hostname
        self.hostTags = hostTags
        self.dataDirectory = dataDirectory
        self.rateLimiter = rateLimiter
        self.governor = governor
        self.services = services
    }

    /// The context of one component of pipeline `pipeline`; its state directory is
    /// `<data-dir>/components/<pipeline, made a safe file name>/<kind>s[<index>]`.
    public func context(pipeline: String, kind: PluginKind, type: String, index: Int) -> PluginContext {
        let id = ComponentID(pipeline: pipeline, kind: kind.rawValue, type: type, index: index)
        return PluginContext(component: id, logger: logger, pipelineMetrics: pipelineMetrics, globals: globals, hostname: hostname,
                             hostTags: hostTags, stateDirectory: dataDirectory + "/components/" + FileNames.component(pipeline) + "/" + id.id,
                             rateLimiter: rateLimiter, governor: governor, services: services)
    }
}

/// One running pipeline: an input, its processors, its flushers (each fed by its own runner) and
/// the queues between them.
public final class Pipeline: Sendable {
    public let name: String
    public let document: PipelineDocument
    let input: any Input
    let flushers: [(flusher: any Flusher, context: PluginContext)]
    let sink: PipelineSink
    let logger: Logger
    let shutdownTimeoutSeconds: Double
    /// Every component's counters (inputs, processors, flushers), for the stats file and metrics.
    public let components: [ComponentMetrics]
    /// The disk buffer of each flusher that has one (nil for the others), by flusher position.
    public let buffers: [(component: ComponentID, buffer: DiskBuffer)?]
    private let stopRequested = Atomic<Bool>(false)
    /// A drain's deadline (monotonic nanoseconds; 0: none, the flushers get the shutdown
    /// timeout from when the input stopped).
    private let drainDeadline = Atomic<Int64>(0)
    private let done = Latch()
    /// Set by `run()` as it begins, or by `cancelUnstarted()`: a pipeline runs at most once, and
    /// one that will never run does not keep `stop()` / `drain` waiting.
    private let begun = Atomic<Bool>(false)

    public init(_ pipeline: ValidatedPipeline, environment env: PipelineEnvironment, queueBytes: Int, shutdownTimeoutSeconds: Double) throws {
        let doc = pipeline.document
        self.name = doc.name
        self.document = doc
        self.logger = env.logger
        self.shutdownTimeoutSeconds = shutdownTimeoutSeconds
        guard let inPlugin = pipeline.inputs.first, let makeInput = inPlugin.entry.makeInput else {
            throw ConfigErrors(errors: [ConfigError(file: doc.file, line: 0, column: 0, keyPath: "inputs", message: "no usable input")])
        }
        var components: [ComponentMetrics] = []
        let inCtx = env.context(pipeline: doc.name, kind: .input, type: inPlugin.type, index: inPlugin.config.index)
        components.append(inCtx.metrics)
        input = try makeInput(inPlugin.options, inCtx)
        // With process_thread_count above 1, each processing thread gets its own instances (one
        // context, so one set of counters, per processor).
        let threads = pipeline.processors.isEmpty ? 1 : max(1, env.globals.processThreadCount)
        var procSets = [PipelineSink.Processors](repeating: [], count: threads)
        for p in pipeline.processors {
            guard let make = p.entry.makeProcessor else { continue }
            let ctx = env.context(pipeline: doc.name, kind: .processor, type: p.type, index: p.config.index)
            components.append(ctx.metrics)
            for t in 0..<threads { procSets[t].append((try make(p.options, ctx), ctx.metrics)) }
        }
        var fl: [(any Flusher, PluginContext)] = []
        var routes: [FlusherRoute?] = []
        var buffers: [(component: ComponentID, buffer: DiskBuffer)?] = []
        for f in pipeline.flushers {
            guard let make = f.entry.makeFlusher else { continue }
            let ctx = env.context(pipeline: doc.name, kind: .flusher, type: f.type, index: f.config.index)
            components.append(ctx.metrics)
            fl.append((try make(f.options, ctx), ctx))
            routes.append(f.route)
            if let o = f.buffer {
                let dir = env.globals.bufferFilePath.map { $0 + "/" + FileNames.component(doc.name) + "/" + ctx.component.id }
                    ?? ctx.stateDirectory + "/buffer"
                buffers.append((ctx.component, try DiskBuffer(directory: dir, options: o, logger: ctx.logger)))
            } else {
                buffers.append(nil)
            }
        }
        self.buffers = buffers
        flushers = fl
        self.components = components
        let queues = fl.map { _ in BatchQueue(highWatermark: queueBytes, lowWatermark: queueBytes / 2) }
        sink = PipelineSink(processorSets: procSets, queues: queues, routes: routes, metrics: env.pipelineMetrics, name: doc.name)
    }

    /// Runs until `stop()`; then stops the input first, lets the flushers deliver what is queued
    /// (bounded by the shutdown timeout) and returns. Past the deadline, what is undelivered is
    /// finished as abandoned: it stays in its source and is read again on the next start.
    public func run() async {
        guard !begun.exchange(true, ordering: .acquiringAndReleasing) else { return }
        for (f, ctx) in flushers {
            do { try await f.start() } catch {
                ctx.logger.error("Flusher could not start; its sends will retry.", metadata: ["error": "\(error)"])
            }
        }
        let queues = sink.queues
        let buffers = self.buffers
        sink.startProcessing()
        await withTaskGroup(of: Bool.self) { group in
            for (i, (f, ctx)) in flushers.enumerated() {
                group.addTask {
                    if let b = buffers[i]?.buffer {
                        // Queue → disk (the source is acknowledged there) → the flusher.
                        async let spooled: Void = spool(queues[i], into: b, metrics: ctx.metrics)
                        await Pipeline.runFlusher(f, queue: DiskBufferSource(buffer: b), context: ctx)
                        await spooled
                    } else {
                        await Pipeline.runFlusher(f, queue: queues[i], context: ctx)
                    }
                    return true
                }
            }
            do {
                try await input.run(sink: sink)
            } catch {
                logger.error("Input failed.", metadata: ["error": "\(error)"])
            }
            await sink.finishProcessing()
            // The input has stopped: no more batches. Flushers deliver what is queued, within the deadline.
            for q in queues { q.close() }
            let drainBy = drainDeadline.load(ordering: .acquiring)
            let deadline = drainBy > 0 ? max(0, Int((drainBy - Sys.monotonicNanos()) / 1_000_000)) : Int(shutdownTimeoutSeconds * 1000)
            group.addTask {
                try? await Task.sleep(for: .milliseconds(deadline))
                return false
            }
            var finished = 0
            while let flusherDone = await group.next() {
                if flusherDone {
                    finished += 1
                    if finished == flushers.count { break }
                } else {
                    logger.warning("Shutdown deadline reached; abandoning undelivered batches (they will be read again on the next start).")
                    for (i, q) in queues.enumerated() {
                        let left = q.removeAll()
                        flushers[i].context.metrics.abandonedEvents.add(left.reduce(0) { $0 + $1.events.count })
                        for b in left { b.ack?.finish(.abandoned) }
                    }
                    break
                }
            }
            // Cancelled runners stop retrying and finish what they hold as abandoned.
            group.cancelAll()
        }
        for (f, _) in flushers { await f.stop() }
        done.open()
    }

    static func runFlusher<F: Flusher>(_ flusher: F, queue: any BatchSource, context: PluginContext) async {
        await FlusherRunner(flusher: flusher, queue: queue, context: context).run()
    }

    /// For a pipeline whose `run()` will never be called (its start raced the daemon's shutdown):
    /// marks it done without running, so `stop()` and `drain` return at once. Nothing was read
    /// from its sources, so nothing is lost; a `run()` that comes anyway returns at once.
    public func cancelUnstarted() {
        if !begun.exchange(true, ordering: .acquiringAndReleasing) { done.open() }
    }

    /// Reads every source to its end, delivers it all and stops, within `timeoutSeconds`. Past
    /// that the input is stopped where it is and what the flushers hold is abandoned (its files'
    /// positions stay before it, to be read again). Returns the events abandoned.
    public func drain(timeoutSeconds: Double) async -> Int {
        let before = abandonedEvents
        let limit = Int64(timeoutSeconds * 1e9)
        drainDeadline.store(Sys.monotonicNanos() + limit, ordering: .releasing)
        if !stopRequested.exchange(true, ordering: .acquiringAndReleasing) {
            input.requestDrain()
        }
        let watchdog = Task { [sink, input] in
            try? await Task.sleep(for: .nanoseconds(limit))
            if Task.isCancelled { return }
            sink.stopping.store(true, ordering: .releasing)
            input.requestStop()
        }
        await done.wait()
        watchdog.cancel()
        return abandonedEvents - before
    }

    /// Events the flushers gave up at a deadline, so far.
    var abandonedEvents: Int { flushers.reduce(0) { $0 + $1.context.metrics.abandonedEvents.current } }

    /// Bytes waiting in each flusher's queue.
    public var queuedBytes: [(ComponentID, Int)] {
        zip(flushers, sink.queues).map { ($0.context.component, $1.queuedBytes) }
    }

    /// Asks the pipeline to stop and waits until it has.
    public func stop() async {
        // Also ends a drain in progress where it is.
        stopRequested.store(true, ordering: .releasing)
        sink.stopping.store(true, ordering: .releasing)
        input.requestStop()
        await done.wait()
    }
}
