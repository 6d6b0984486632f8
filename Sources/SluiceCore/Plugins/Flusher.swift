/// A request a flusher built from one or more batches, ready to be sent (and sent again on retry
/// without being built again).
public protocol FlushRequest: Sendable {
    /// Bytes it carries on the wire (counted as sent when it is delivered).
    var byteCount: Int { get }
    /// Events it carries (a partial retry carries fewer than the batches it was built from).
    var eventCount: Int { get }
}

/// How the runner feeds a flusher: how many batches go into one request, how many requests are
/// in flight, and when it gives up on a request. A flusher states its own; config keys (e.g.
/// `Concurrency`, `Retry.MaxRetryTimes`) set them.
public struct DeliveryOptions: Sendable, Equatable {
    /// A request takes batches until it holds this many events...
    public var maxEvents: Int
    /// ...or this many bytes of input...
    public var maxBytes: Int
    /// ...or the oldest batch in it has waited this long. Zero: send what is queued now, never wait.
    public var maxAge: Duration
    /// Requests in flight at once. With 1, requests are sent in order, one after the other, and
    /// the next one is built while the current one is being sent.
    public var concurrency: Int
    /// Failed sends of one request after which it is rejected (counted as discarded); nil: retried
    /// until delivered or until shutdown.
    public var maxRetries: Int?
    public var backoff: Backoff

    public init(maxEvents: Int = .max, maxBytes: Int = 1 << 20, maxAge: Duration = .zero, concurrency: Int = 1, maxRetries: Int? = nil, backoff: Backoff = Backoff()) {
        self.maxEvents = max(1, maxEvents)
        self.maxBytes = max(1, maxBytes)
        self.maxAge = maxAge
        self.concurrency = max(1, concurrency)
        self.maxRetries = maxRetries
        self.backoff = backoff
    }
}

/// A flusher delivers to one destination. It builds a request from batches and sends it once,
/// saying what came of it; the runner (`FlusherRunner`) owns everything else: batching, requests
/// in flight, retries with backoff, the retry limit, finishing each batch with its status, and
/// counting. A flusher never sleeps, retries or acknowledges.
public protocol Flusher: AnyObject, Sendable {
    associatedtype Request: FlushRequest
    /// How the runner should feed this flusher.
    var delivery: DeliveryOptions { get }
    /// Opens what the flusher needs (a file, a client). A failure is logged; sends retry it.
    func start() async throws
    /// Encodes `batches` into one request. Called in order, one at a time; may suspend (e.g. for a
    /// free buffer). A thrown error rejects the batches.
    func makeRequest(_ batches: [EventBatch]) async throws(FlushError) -> Request
    /// Sends `request` once.
    func send(_ request: Request) async -> SendOutcome<Request>
    /// Releases what `start` opened. Nothing is in flight any more when it is called.
    func stop() async
}
