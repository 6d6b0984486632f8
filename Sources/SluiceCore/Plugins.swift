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

/// A flusher delivers batches. `flush` returning normally means the batch is delivered and may be
/// acknowledged; throwing means it was not, and the runner retries with backoff.
public protocol Flusher: AnyObject, Sendable {
    func start() async throws
    func flush(_ batch: EventBatch) async throws
    /// Flushes what is buffered and releases resources.
    func stop() async
}
