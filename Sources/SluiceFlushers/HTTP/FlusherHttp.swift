import Logging
import NIOCore
import SluiceConfig
import SluiceCore
import SluiceSystem

/// `flusher_http`: POSTs events to `RemoteURL` in the incumbent's `Convert` shapes — `custom_single`
/// and `custom_single_flatten` one JSON object per request, as the incumbent; `jsonline` one body
/// per batch, one flat object per line. 2xx is delivered; 408, 429, 5xx, 401 and 403 (as the
/// incumbent) and network errors are retried — after `Retry-After` when the server sends one —
/// until delivered, holding the data in its source; other statuses are rejected and counted. A
/// `Retry.MaxRetryTimes` that the config sets bounds the retries (then: rejected, counted).
public final class FlusherHttp: FlusherPlugin {
    public static let spec = PluginSpec(
        type: "flusher_http", kind: .flusher,
        summary: "POSTs events to an HTTP endpoint: `custom_single` / `custom_single_flatten` one JSON document per request, `jsonline` one body per batch. **Delivery:** a batch is acknowledged (its file position moves) only when every request of it was answered 2xx; 408, 429, 5xx, 401, 403 and network errors are retried (after `Retry-After` when given) until delivered, the data waiting in its source; other statuses are rejected and counted (`discarded_events.rejected`). **Unlike the incumbent**, which drops a request after 3 failed tries, Sluice retries until delivered unless `Retry.MaxRetryTimes` is set (then: rejected and counted as `retry_limit`); `Concurrency` defaults to `send_request_concurrency`.",
        fields: [
            FieldSpec(name: "RemoteURL", type: .string, doc: "The URL to POST to (required), `http://` or `https://`.", defaultValue: nil),
            FieldSpec(name: "Headers", type: .stringMap, doc: "Headers of every request; values may use `%{content.x}`, `%{tag.x}` and `${ENV}`.", defaultValue: nil),
            FieldSpec(name: "Query", type: .stringMap, doc: "Query parameters added to the URL; same references as Headers.", defaultValue: nil),
            FieldSpec(name: "Timeout", type: .any, doc: "Request timeout: nanoseconds (the incumbent's form) or text such as `60s`.", defaultValue: "60s"),
            FieldSpec(name: "Retry", type: .object(fields: [
                FieldSpec(name: "Enable", type: .bool, doc: "false: a failed request is rejected at once.", defaultValue: "true"),
                FieldSpec(name: "MaxRetryTimes", type: .int, doc: "When set, a request still failing after this many retries is rejected and counted. Unset: retried until delivered (the incumbent drops after 3).", defaultValue: nil),
                FieldSpec(name: "InitialDelay", type: .any, doc: "First retry delay (nanoseconds or text).", defaultValue: "1s"),
                FieldSpec(name: "MaxDelay", type: .any, doc: "Longest retry delay.", defaultValue: "30s"),
            ]), doc: "Retries with exponential backoff and jitter.", defaultValue: nil),
            ConvertOptions.field(protocols: [.customSingle, .customSingleFlatten, .jsonline], extra: [
                FieldSpec(name: "Separator", type: .string, doc: "Accepted (raw protocol only, not supported).", defaultValue: nil,
                          status: .acceptedNotYetEffective(reason: "the raw protocol is not supported")),
                FieldSpec(name: "IgnoreUnExpectedData", type: .bool, doc: "Accepted.", defaultValue: "true"),
            ]),
            FieldSpec(name: "Concurrency", type: .int, doc: "Requests in flight at once. Default: `send_request_concurrency`.", defaultValue: nil),
            FieldSpec(name: "QueueCapacity", type: .int, doc: "Accepted; Sluice's queues are bounded in bytes.", defaultValue: "1024",
                      status: .acceptedNotYetEffective(reason: "queues are bounded by bytes (back-pressure), not by a count")),
            FieldSpec(name: "DropEventWhenQueueFull", type: .bool, doc: "Accepted; Sluice never drops on a full queue.", defaultValue: "false",
                      status: .acceptedNotYetEffective(reason: "a full queue holds data back in its source; nothing is dropped")),
            HTTPClientOptions.compressionField(default: ""),
            HTTPClientOptions.authenticationField,
            FieldSpec(name: "Authenticator", type: .any, doc: "Extensions are not supported: use Authentication.", defaultValue: nil,
                      status: .acceptedNotYetEffective(reason: "extensions are not supported; use Authentication")),
            FieldSpec(name: "Encoder", type: .any, doc: "Extensions are not supported: use Convert.", defaultValue: nil,
                      status: .acceptedNotYetEffective(reason: "extensions are not supported; use Convert")),
            FieldSpec(name: "RequestInterceptors", type: .any, doc: "Extensions are not supported.", defaultValue: nil,
                      status: .acceptedNotYetEffective(reason: "extensions are not supported")),
            FieldSpec(name: "FlushInterceptor", type: .any, doc: "Extensions are not supported.", defaultValue: nil,
                      status: .acceptedNotYetEffective(reason: "extensions are not supported")),
            FieldSpec(name: "AsyncIntercept", type: .bool, doc: "Accepted.", defaultValue: "false"),
            FieldSpec(name: "MaxConnsPerHost", type: .int, doc: "Connections per host (at least Concurrency).", defaultValue: nil),
            FieldSpec(name: "MaxIdleConnsPerHost", type: .int, doc: "Accepted.", defaultValue: nil),
            FieldSpec(name: "IdleConnTimeout", type: .any, doc: "Accepted; idle connections close after 60 s.", defaultValue: nil),
            FieldSpec(name: "WriteBufferSize", type: .int, doc: "Accepted.", defaultValue: nil),
            FlusherRoute.matchField,
        ])

    public struct Options: Sendable {
        public var remoteURL: String
        public var headers: [(String, DynamicTemplate)] = []
        public var query: [(String, DynamicTemplate)] = []
        public var convert = ConvertOptions()
        public var client = HTTPClientOptions()
        public var concurrency: Int
        public var maxRetries: Int?
        public var backoff = Backoff(initial: .seconds(1), maximum: .seconds(30))
    }

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        guard let url = try c.string("RemoteURL"), !url.isEmpty else { throw c.error(at: nil, "RemoteURL is required") }
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else { throw c.error(at: "RemoteURL", "must start with http:// or https://") }
        var o = Options(remoteURL: url, concurrency: try HTTPClientOptions.concurrency(c, globals: globals))
        o.headers = try templates(c, "Headers")
        o.query = try templates(c, "Query")
        o.convert = try ConvertOptions.read(c, allowed: [.customSingle, .customSingleFlatten, .jsonline])
        if let t = try GoDuration.read(c, "Timeout") { o.client.requestTimeout = t }
        if let r = try c.object("Retry") {
            if let d = try GoDuration.read(r, "InitialDelay") { o.backoff.initial = d }
            if let d = try GoDuration.read(r, "MaxDelay") { o.backoff.maximum = d }
            if let n = try r.int("MaxRetryTimes") {
                guard n >= 0 else { throw r.error(at: "MaxRetryTimes", "must be ≥ 0") }
                o.maxRetries = n
            }
            if try r.bool("Enable") == false { o.maxRetries = 0 }
        }
        try o.client.readCompression(c)
        try o.client.readAuthentication(c)
        o.client.maxConnectionsPerHost = max(o.concurrency, try c.int("MaxConnsPerHost") ?? 0)
        return o
    }

    /// A string map whose values are dynamic templates with `${ENV}` expanded.
    static func templates(_ c: ConfigObject, _ key: String) throws(ConfigError) -> [(String, DynamicTemplate)] {
        var out: [(String, DynamicTemplate)] = []
        for (k, v) in try c.expandedPairs(key) ?? [] {
            do { out.append((k, try DynamicTemplate(parsing: v))) } catch { throw c.error(at: key, "\(k): \(error.message)") }
        }
        return out
    }

    let options: Options
    let logger: Logger
    let sender: HTTPSender
    let policy = HTTPStatusPolicy(alsoRetried: [408, 401, 403])
    public let delivery: DeliveryOptions

    public init(options: Options, context: PluginContext) throws {
        self.options = options
        logger = context.logger
        sender = try HTTPSender(options: options.client)
        delivery = DeliveryOptions(maxBytes: 4 << 20, concurrency: options.concurrency, maxRetries: options.maxRetries, backoff: options.backoff)
        bodies = BodyBufferPool(inFlight: delivery)
    }

    /// Encode buffers reused across requests (the body is copied out of one before it is sent).
    let buffers = BufferPool(keep: 2)
    /// The bodies (one per batch for jsonline), reused once sent, sparing the kernel's page faults
    /// of a fresh 1 MiB buffer per batch: room for all in flight (`Concurrency` requests of up to
    /// 4 MiB of batches). Keeping 16 left a third of the http bench's batches with a fresh one.
    let bodies: BodyBufferPool

    public func start() async throws {}

    public func makeRequest(_ batches: [EventBatch]) async throws(FlushError) -> HTTPPostsRequest {
        var posts: [HTTPPost] = []
        let now = Sys.wallSeconds()
        let compression = options.client.compression
        // A pooled buffer: a fresh one per request grew by doubling and was faulted in page by page.
        let out = buffers.take()
        defer { buffers.put(out) }
        var enc = LogDocumentEncoder(options: options.convert)
        var empty = 0
        do {
            for batch in batches {
                enc.begin(batch)
                if options.convert.protocol == .jsonline {
                    var n = 0
                    func encodeLines(_ out: OutputBuffer) {
                        for i in batch.events.indices where enc.append(i, of: batch, to: out) {
                            out.append(byte: 0x0A)
                            n += 1
                        }
                        if n > 0 { out.count -= 1 }
                    }
                    let body = try bodies.body(compression, forInput: batch.arena.count, scratch: out, encodeLines)
                    guard n > 0 else {
                        empty += batch.events.count
                        continue
                    }
                    posts.append(HTTPPost(url: url(event: 0, batch, enc.tagValues, now), headers: headers(event: 0, batch, enc.tagValues, now),
                                          body: body, events: batch.events.count))
                } else {
                    for i in batch.events.indices {
                        out.clear()
                        guard enc.append(i, of: batch, to: out) else {
                            empty += 1
                            continue
                        }
                        posts.append(HTTPPost(url: url(event: i, batch, enc.tagValues, now), headers: headers(event: i, batch, enc.tagValues, now),
                                              body: try compression.compress(UnsafeRawBufferPointer(out.bytes), reusing: bodies), events: 1))
                    }
                }
            }
        }
        return HTTPPostsRequest(posts: posts, emptyEvents: empty)
    }

    func url(event i: Int, _ b: EventBatch, _ tags: [String: String], _ now: Int64) -> String {
        URLQuery.append(options.query.map { ($0.0, $0.1.render(event: i, of: b, tags: tags, now: now)) }, to: options.remoteURL)
    }

    func headers(event i: Int, _ b: EventBatch, _ tags: [String: String], _ now: Int64) -> [(String, String)] {
        [("Content-Type", "application/json")] + options.headers.map { ($0.0, $0.1.render(event: i, of: b, tags: tags, now: now)) }
    }

    public func send(_ request: HTTPPostsRequest) async -> SendOutcome<HTTPPostsRequest> {
        await request.send(with: sender, policy: policy, parallel: 16)
    }

    public func stop() async { await sender.shutdown() }
}
