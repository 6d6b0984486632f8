import Logging
import NIOCore
import SluiceConfig
import SluiceCore
import SluiceSystem

/// `flusher_loki`: Loki's push API (`/loki/api/v1/push`): protobuf + snappy as the incumbent's
/// client sends (`PushFormat: protobuf`, the default), or JSON. Events are grouped into
/// streams by their labels (`StaticLabels`, and `DynamicLabels` from fields and tags), entries
/// sorted by time within a stream. Each entry keeps the nanosecond time it was given when the
/// request was built — the event's own time, or the batch's read time plus the event's place in it,
/// so two equal lines are two entries — and a retry sends the same bytes, which Loki deduplicates.
/// 429 and 5xx are retried; a 400 with Loki's "total ignored: N out of M" is a partial result (the
/// others were stored); another 4xx is rejected and counted. 260, a 2xx Loki gives while its
/// ingestion is blocked, stored nothing: it is retried.
public final class FlusherLoki: FlusherPlugin {
    public static let spec = PluginSpec(
        type: "flusher_loki", kind: .flusher,
        summary: "Pushes events to Grafana Loki's push API (protobuf + snappy, or JSON), one stream per label set. **Delivery:** a push is acknowledged on 2xx; 429, 5xx and network errors are retried with the same entries and nanosecond timestamps (Loki drops the duplicates of a push it had stored); a 400 that reports \"total ignored: N out of M\" counts N rejected and the others delivered; another 4xx is rejected and counted; 260 (Loki's answer while its ingestion is blocked: nothing stored, though a 2xx) is retried. **Unlike the incumbent** (10 retries, then dropped), Sluice retries until delivered unless `MaxRetries` is set; label names are sanitised to Loki's `[a-zA-Z_][a-zA-Z0-9_]*`.",
        fields: [
            FieldSpec(name: "URL", type: .string, doc: "Push endpoint (required), e.g. `http://loki:3100/loki/api/v1/push`.", defaultValue: nil),
            FieldSpec(name: "PushFormat", type: .string, doc: "Sluice: `protobuf` (snappy-compressed, as the incumbent's client) or `json`.", defaultValue: "protobuf"),
            FieldSpec(name: "TenantID", type: .string, doc: "Sent as `X-Scope-OrgID` (empty: single tenant).", defaultValue: nil),
            FieldSpec(name: "StaticLabels", type: .stringMap, doc: "Labels of every stream.", defaultValue: nil),
            FieldSpec(name: "DynamicLabels", type: .stringList, doc: "`content.<field>` / `tag.<name>`: a label named without the prefix (dots become `_`).", defaultValue: nil),
            FieldSpec(name: "MaxMessageWait", type: .any, doc: "Longest wait to fill a push.", defaultValue: "1s"),
            FieldSpec(name: "MaxMessageBytes", type: .int, doc: "Input bytes per push.", defaultValue: "1048576"),
            FieldSpec(name: "Timeout", type: .any, doc: "Request timeout.", defaultValue: "10s"),
            FieldSpec(name: "MinBackoff", type: .any, doc: "First retry delay.", defaultValue: "500ms"),
            FieldSpec(name: "MaxBackoff", type: .any, doc: "Longest retry delay.", defaultValue: "5m"),
            FieldSpec(name: "MaxRetries", type: .int, doc: "When set, a push still failing after this many retries is rejected and counted. Unset: retried until delivered (the incumbent gives up after 10).", defaultValue: nil),
            ConvertOptions.field(protocols: [.customSingle, .customSingleFlatten], extra: [
                FieldSpec(name: "OnlyContents", type: .bool, doc: "With custom_single_flatten: the line holds the contents only.", defaultValue: "false"),
            ]),
            HTTPClientOptions.compressionField(default: ""),
            HTTPClientOptions.authenticationField,
            FieldSpec(name: "ClientConfig", type: .any, doc: "Accepted; the incumbent does not use it either.", defaultValue: nil,
                      status: .acceptedNotYetEffective(reason: "not used (nor by the incumbent)")),
            FieldSpec(name: "Concurrency", type: .int, doc: "Sluice: pushes in flight. Default: `send_request_concurrency`.", defaultValue: nil),
            FlusherRoute.matchField,
        ])

    public struct Options: Sendable {
        public var url: String
        public var tenant = ""
        public var protobuf = true
        public var staticLabels: [(String, String)] = []
        public var dynamicLabels: [(name: String, value: DynamicTemplate)] = []
        public var maxWait: Duration = .seconds(1)
        public var maxBytes = 1 << 20
        public var maxRetries: Int?
        public var backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(300))
        public var convert = ConvertOptions()
        public var client = HTTPClientOptions()
        public var concurrency: Int
    }

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        guard let url = try c.string("URL"), !url.isEmpty else { throw c.error(at: nil, "URL is required") }
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else { throw c.error(at: "URL", "must start with http:// or https://") }
        var o = Options(url: url, concurrency: try HTTPClientOptions.concurrency(c, globals: globals))
        o.tenant = try c.expandedString("TenantID") ?? ""
        switch try c.string("PushFormat") ?? "protobuf" {
        case "protobuf": o.protobuf = true
        case "json": o.protobuf = false
        case let v: throw c.error(at: "PushFormat", "unknown push format \"\(v)\" (known: protobuf, json)")
        }
        o.staticLabels = (try c.stringPairs("StaticLabels") ?? []).map { (sanitize($0.0), $0.1) }
        for ref in try c.stringList("DynamicLabels") ?? [] {
            let name: String
            if ref.hasPrefix("content.") { name = String(ref.dropFirst(8)) } else if ref.hasPrefix("tag.") { name = String(ref.dropFirst(4)) } else {
                throw c.error(at: "DynamicLabels", "\(ref): use content.<field> or tag.<name>")
            }
            do { o.dynamicLabels.append((sanitize(name), try DynamicTemplate(parsing: "%{\(ref)}"))) } catch { throw c.error(at: "DynamicLabels", error.message) }
        }
        guard !o.staticLabels.isEmpty || !o.dynamicLabels.isEmpty else { throw c.error(at: nil, "set StaticLabels or DynamicLabels: a Loki stream needs a label") }
        if let d = try GoDuration.read(c, "MaxMessageWait") { o.maxWait = d }
        if let n = try c.int("MaxMessageBytes") {
            guard n > 0 else { throw c.error(at: "MaxMessageBytes", "must be > 0") }
            o.maxBytes = n
        }
        o.client.requestTimeout = try GoDuration.read(c, "Timeout") ?? .seconds(10)
        if let d = try GoDuration.read(c, "MinBackoff") { o.backoff.initial = d }
        if let d = try GoDuration.read(c, "MaxBackoff") { o.backoff.maximum = d }
        if let n = try c.int("MaxRetries") {
            guard n >= 0 else { throw c.error(at: "MaxRetries", "must be ≥ 0") }
            o.maxRetries = n
        }
        o.convert = try ConvertOptions.read(c, allowed: [.customSingle, .customSingleFlatten])
        try o.client.readCompression(c)
        // A protobuf push is snappy-compressed by definition, with no Content-Encoding.
        if o.protobuf { o.client.compression = .none }
        try o.client.readAuthentication(c)
        o.client.maxConnectionsPerHost = o.concurrency
        return o
    }

    /// A Loki label name: `[a-zA-Z_][a-zA-Z0-9_]*`; anything else becomes `_`.
    static func sanitize(_ s: String) -> String {
        var out = ""
        for (i, ch) in s.unicodeScalars.enumerated() {
            let ok = ch == "_" || (ch.isASCII && (ch.properties.isAlphabetic || (i > 0 && ("0"..."9").contains(ch))))
            out.unicodeScalars.append(ok ? ch : "_")
        }
        return out.isEmpty ? "_" : out
    }

    let options: Options
    let sender: HTTPSender
    public let delivery: DeliveryOptions

    public init(options: Options, context: PluginContext) throws {
        self.options = options
        sender = try HTTPSender(options: options.client)
        delivery = DeliveryOptions(maxBytes: options.maxBytes, maxAge: options.maxWait, concurrency: options.concurrency,
                                   maxRetries: options.maxRetries, backoff: options.backoff)
        bodies = BodyBufferPool(inFlight: delivery)
    }

    /// Encode buffers reused across requests (a body is copied out of them before it is sent).
    let buffers = BufferPool(keep: 4)
    /// The (compressed) bodies, reused once sent: room for all in flight.
    let bodies: BodyBufferPool

    public func start() async throws {}
    public func stop() async { await sender.shutdown() }

    struct Entry { var ns: Int64; var line: Range<Int> }

    public func makeRequest(_ batches: [EventBatch]) async throws(FlushError) -> HTTPPostsRequest {
        var enc = LogDocumentEncoder(options: options.convert)
        let lines = buffers.take()
        defer { buffers.put(lines) }
        // Streams in the order they first appear; a label set's JSON text is its key.
        var index: [String: Int] = [:]
        var keys: [String] = []
        var pairsOf: [[(String, String)]] = []
        var entries: [[Entry]] = []
        func stream(_ pairs: [(String, String)]) -> Int {
            let key = FlusherLoki.labelsJSON(pairs)
            if let k = index[key] { return k }
            index[key] = keys.count
            keys.append(key)
            pairsOf.append(pairs)
            entries.append([])
            return keys.count - 1
        }
        var events = 0
        let now = Sys.wallSeconds()
        for batch in batches {
            enc.begin(batch)
            events += batch.events.count
            // Labels from tags only: one stream for the whole batch, looked up once.
            let batchStream = options.dynamicLabels.contains { $0.value.usesContent } ? nil : stream(labels(event: 0, batch, enc.tagValues, now))
            for i in batch.events.indices {
                let start = lines.count
                // The JSON push carries each line as a string: escaped as it is encoded.
                guard options.protobuf ? enc.append(i, of: batch, to: lines) : enc.appendAsString(i, of: batch, to: lines) else { continue }
                let ev = batch.events[i]
                let ns = ev.timeNanos != 0 ? ev.timeNanos : batch.observedNanos + Int64(i)
                let k = batchStream ?? stream(labels(event: i, batch, enc.tagValues, now))
                entries[k].append(Entry(ns: ns, line: start..<lines.count))
            }
        }
        var headers = [("Content-Type", options.protobuf ? "application/x-protobuf" : "application/json")]
        if !options.tenant.isEmpty { headers.append(("X-Scope-OrgID", options.tenant)) }
        // Entries by time within a stream (stable: equal times keep their order); usually already so.
        for k in entries.indices where !zip(entries[k], entries[k].dropFirst()).allSatisfy({ $0.ns <= $1.ns }) {
            entries[k] = entries[k].enumerated().sorted { ($0.element.ns, $0.offset) < ($1.element.ns, $1.offset) }.map(\.element)
        }
        let body = options.protobuf
            ? try protobufBody(keys.indices.map { (FlusherLoki.labelsText(pairsOf[$0]), entries[$0]) }, lines)
            : try jsonBody(keys.indices.map { (keys[$0], entries[$0]) }, lines)
        return HTTPPostsRequest(posts: [HTTPPost(url: options.url, headers: headers, body: body, events: events)])
    }

    /// `{"streams":[{"stream":{labels},"values":[["<ns>","<line>"],...]},...]}`; `lines` holds each
    /// line escaped already (`LogDocumentEncoder.appendAsString`).
    func jsonBody(_ streams: [(String, [Entry])], _ lines: OutputBuffer) throws(FlushError) -> ByteBuffer {
        func encode(_ body: OutputBuffer) {
            var ns = RepeatedDecimal()
            body.append("{\"streams\":[")
            for (n, (key, entries)) in streams.enumerated() {
                if n > 0 { body.append(byte: UInt8(ascii: ",")) }
                body.append("{\"stream\":")
                body.append(key)
                body.append(",\"values\":[")
                for (k, e) in entries.enumerated() {
                    // `,["<ns>","<line>"]`: the punctuation as literals, the time's digits moved
                    // up from the last entry's.
                    body.append(literal: k > 0 ? ",[\"" : "[\"")
                    ns.append(e.ns, to: body)
                    body.append(literal: "\",\"")
                    body.append(lines.base + e.line.lowerBound, e.line.count)  // escaped already
                    body.append(literal: "\"]")
                }
                body.append("]}")
            }
            body.append("]}")
        }
        let scratch = buffers.take()
        defer { buffers.put(scratch) }
        return try bodies.body(options.client.compression, forInput: lines.count, scratch: scratch, encode)
    }

    /// A `logproto.PushRequest` (written by `LokiPushEncoder`), snappy-compressed (block
    /// format), as Loki's clients send it.
    func protobufBody(_ streams: [(String, [Entry])], _ lines: OutputBuffer) throws(FlushError) -> ByteBuffer {
        let body = buffers.take()
        defer { buffers.put(body) }
        LokiPushEncoder.encode(streams, lines: lines, into: body)
        return try BodyCompression.snappy.compress(UnsafeRawBufferPointer(body.bytes), reusing: bodies)
    }

    /// The stream's labels, keys sorted (so equal label sets are one stream); a later name wins.
    func labels(event i: Int, _ b: EventBatch, _ tags: [String: String], _ now: Int64) -> [(String, String)] {
        var pairs = options.staticLabels
        // A label whose field or tag is missing is left out, as the incumbent does.
        for d in options.dynamicLabels {
            if let v = d.value.renderIfFound(event: i, of: b, tags: tags, now: now) { pairs.append((d.name, v)) }
        }
        var seen = Set<String>()
        return pairs.reversed().filter { seen.insert($0.0).inserted }.sorted { $0.0 < $1.0 }
    }

    /// Labels as a JSON object (the JSON push's `stream`).
    static func labelsJSON(_ pairs: [(String, String)]) -> String {
        let out = OutputBuffer(capacity: 128)
        out.append(byte: UInt8(ascii: "{"))
        for (n, (k, v)) in pairs.enumerated() {
            if n > 0 { out.append(byte: UInt8(ascii: ",")) }
            JSONLineEncoder.appendString(k, to: out)
            out.append(byte: UInt8(ascii: ":"))
            JSONLineEncoder.appendString(v, to: out)
        }
        out.append(byte: UInt8(ascii: "}"))
        return String(decoding: out.bytes, as: UTF8.self)
    }

    /// Labels in Loki's text form, `{job="a", path="/x"}` (`\`, `"` and newlines escaped).
    static func labelsText(_ pairs: [(String, String)]) -> String {
        func esc(_ v: String) -> String {
            var o = ""
            for ch in v {
                switch ch {
                case "\\": o += "\\\\"
                case "\"": o += "\\\""
                case "\n": o += "\\n"
                default: o.append(ch)
                }
            }
            return o
        }
        return "{" + pairs.map { "\($0.0)=\"\(esc($0.1))\"" }.joined(separator: ", ") + "}"
    }

    public func send(_ request: HTTPPostsRequest) async -> SendOutcome<HTTPPostsRequest> {
        let post = request.posts[0]
        let exchange = await sender.send(url: post.url, headers: post.headers, body: post.body)
        // Loki answers a push it is told not to take (`block_ingestion_until`) with its
        // `block_ingestion_status_code`, 260 by default: a 2xx, but nothing was stored.
        if case .response(FlusherLoki.blockedIngestionStatus, let headers, _) = exchange {
            return .retry(after: HTTPStatusPolicy.retryAfter(headers, now: Sys.wallNanos()), reason: "Loki is blocking ingestion (status 260): nothing was stored")
        }
        if case .response(400, _, let body) = exchange, let (ignored, total) = FlusherLoki.ignoredCount(body), total > 0 {
            // Loki stored the other entries of the push.
            if ignored == 0 { return .delivered }
            return .partial(retry: HTTPPostsRequest(posts: []), rejected: min(ignored, post.events), reason: HTTPStatusPolicy.describe(status: 400, body: body))
        }
        return HTTPStatusPolicy.standard.outcome(exchange)
    }

    /// The status of a push Loki refused while ingestion is blocked (its default
    /// `block_ingestion_status_code`).
    static let blockedIngestionStatus = 260

    /// Loki's "total ignored: N out of M" from a 400 answer.
    static func ignoredCount(_ body: ByteBuffer) -> (Int, Int)? {
        let text = String(decoding: body.readableBytesView, as: UTF8.self)
        guard let r = text.range(of: "total ignored: ") else { return nil }
        let words = text[r.upperBound...].split(separator: " ")
        guard words.count >= 4, let n = Int(words[0]), words[1] == "out", words[2] == "of", let m = Int(words[3].prefix { $0.isNumber }) else { return nil }
        return (n, m)
    }
}
