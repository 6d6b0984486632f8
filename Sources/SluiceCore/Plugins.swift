import Logging

/// What every plugin of a pipeline is given when it is built.
public struct PluginContext: Sendable {
    /// The pipeline's name (its config file name without extension).
    public var pipelineName: String
    public var logger: Logger
    /// Where the daemon keeps its state (checkpoints).
    public var dataDir: String
    public var hostname: String
    public var metrics: PipelineMetrics
    /// Largest single read and largest single event (`max_read_buffer_size`).
    public var maxReadBufferSize: Int
    /// Shared read budget (`max_bytes_per_sec`), nil when unlimited.
    public var rateLimiter: RateLimiter?

    public init(pipelineName: String, logger: Logger, dataDir: String, hostname: String, metrics: PipelineMetrics, maxReadBufferSize: Int = 512 * 1024, rateLimiter: RateLimiter? = nil) {
        self.rateLimiter = rateLimiter
        self.pipelineName = pipelineName
        self.logger = logger
        self.dataDir = dataDir
        self.hostname = hostname
        self.metrics = metrics
        self.maxReadBufferSize = maxReadBufferSize
    }
}

/// Where an input delivers its batches. `send` may block the calling thread (backpressure) and
/// returns false when the pipeline is stopping: the batch was not taken and will not be acknowledged.
public protocol BatchSink: Sendable {
    func send(_ batch: EventBatch) -> Bool
}

/// An input produces batches. It runs its own thread(s) so blocking reads never starve the
/// cooperative pool. `run` returns after `requestStop()` was called and the input has let go of
/// everything (its last batch handed to the sink or abandoned).
public protocol Input: AnyObject, Sendable {
    func run(sink: any BatchSink) async throws
    func requestStop()
}

/// A processor transforms a whole batch in place (parse, filter, mask). It runs on the input's thread.
public protocol Processor: Sendable {
    func process(_ batch: inout EventBatch)
}

/// What `Flusher.flush` did with a batch.
public enum FlushResult: Sendable {
    /// Delivered: the runner acknowledges the batch and counts its events.
    case delivered
    /// Taken over: the flusher acknowledges `batch.ack` and counts the events itself once it has
    /// delivered them (pipelined flushers that encode while a previous batch is being written).
    case accepted
}

/// A flusher delivers batches. Throwing means the batch was not taken, and the runner retries it
/// with backoff.
public protocol Flusher: AnyObject, Sendable {
    func start() async throws
    func flush(_ batch: EventBatch) async throws -> FlushResult
    /// Delivers what is buffered (giving up after `deadline` seconds of failures) and releases resources.
    func stop(deadline: Double) async
}
