import AsyncHTTPClient
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Logging
import NIOCore
import SluiceConfig
import SluiceCore
import SluiceSystem
import SwiftProtobuf
import Synchronization

/// `flusher_otlp`: OTLP logs, over gRPC (`LogsService/Export`, grpc-swift-2) or HTTP/protobuf
/// (`POST <Endpoint>/v1/logs`, `application/x-protobuf`, through the shared `HTTPSender`), chosen
/// by `Logs.Protocol`. The incumbent's v1 mapping: one `ResourceLogs` per batch whose resource
/// attributes are the batch's tags (raw names); per event one `LogRecord`: `content` → body,
/// `level` → severity text, every other field and every converted tag (`__path__` →
/// `log.file.path`, ...) → string attributes, time = the event's (else the read time) in ns,
/// observed time = when the request was built.
///
/// A request is encoded once (the same bytes on every try). A `partial_success` with
/// `rejected_log_records` is counted as rejected and never sent again; only the codes the OTLP
/// specification calls retryable are retried (gRPC: Unavailable, Cancelled, DeadlineExceeded,
/// Aborted, OutOfRange, DataLoss, and ResourceExhausted when the server sent RetryInfo; HTTP: 429,
/// 502, 503, 504 with `Retry-After`; no answer at all), until delivered unless `Retry.MaxCount`
/// bounds them; everything else is rejected and counted.
public final class FlusherOtlp: FlusherPlugin {
    public static let spec = PluginSpec(
        type: "flusher_otlp", kind: .flusher,
        summary: "Sends events as OTLP logs (`ExportLogsServiceRequest`) over gRPC or HTTP/protobuf (`/v1/logs`), one ResourceLogs per batch: tags → resource attributes, `content` → body, `level` → severity text, other fields and converted tags → attributes. **Delivery:** a request is acknowledged when the receiver answers OK; a `partial_success` counts its `rejected_log_records` as rejected and the rest delivered, and is never sent again; only the codes the OTLP specification calls retryable are retried, with the same bytes (gRPC: Unavailable, Cancelled, DeadlineExceeded, Aborted, OutOfRange, DataLoss, and ResourceExhausted with RetryInfo, whose delay is honoured; HTTP: 429, 502, 503, 504 with `Retry-After`; no answer at all); every other status is rejected and counted. **Unlike the incumbent** (no retry unless `Retry.Enable`), Sluice retries until delivered unless `Retry.Enable: true` with `Retry.MaxCount` bounds it; `Logs.Protocol: http/protobuf` and `Logs.Authentication` are Sluice's.",
        fields: [
            FieldSpec(name: "Version", type: .string, doc: "Only `v1` (the incumbent's log mapping).", defaultValue: "v1"),
            FieldSpec(name: "Logs", type: .object(fields: [
                FieldSpec(name: "Endpoint", type: .string, doc: "Where to send (required). gRPC: `host:port` (4317 when no port), `http://` plaintext, `https://` TLS (also with an `Authentication.TLS` block), `unix:/path`. HTTP/protobuf: the base URL; `/v1/logs` is appended unless it ends with it.", defaultValue: nil),
                FieldSpec(name: "Protocol", type: .string, doc: "Sluice: `grpc` or `http/protobuf`.", defaultValue: "grpc"),
                FieldSpec(name: "Compression", type: .string, doc: "gRPC: `gzip` or none. HTTP/protobuf: `gzip`, `zstd`, `snappy` or none (with `Content-Encoding`).", defaultValue: nil),
                FieldSpec(name: "Headers", type: .stringMap, doc: "gRPC metadata / HTTP headers of every request (`${ENV}` references allowed).", defaultValue: nil),
                FieldSpec(name: "Timeout", type: .int, doc: "Per export call, in milliseconds; ≤ 0 means the default.", defaultValue: "5000"),
                FieldSpec(name: "WaitForReady", type: .bool, doc: "gRPC: a call waits for the connection (within Timeout) instead of failing at once while it is down.", defaultValue: "false"),
                FieldSpec(name: "Retry", type: .object(fields: [
                    FieldSpec(name: "Enable", type: .bool, doc: "With MaxCount: bound the retries. Sluice retries the retryable codes until delivered either way (the incumbent does not retry unless true).", defaultValue: "false"),
                    FieldSpec(name: "MaxCount", type: .int, doc: "With `Enable: true`: a request still failing after this many retries is rejected and counted.", defaultValue: nil),
                    FieldSpec(name: "DefaultDelay", type: .any, doc: "First retry delay: nanoseconds (the incumbent's form) or text such as `500ms`. Default 100ms, doubling up to 30s.", defaultValue: nil),
                ]), doc: "Retries of retryable failures.", defaultValue: nil),
                HTTPClientOptions.authenticationField,
                FieldSpec(name: "BalancerName", type: .string, doc: "Accepted.", defaultValue: nil,
                          status: .acceptedNotYetEffective(reason: "one endpoint, one connection: no load balancing")),
                FieldSpec(name: "ReadBufferSize", type: .int, doc: "Accepted.", defaultValue: nil,
                          status: .acceptedNotYetEffective(reason: "the transport sizes its buffers")),
                FieldSpec(name: "WriteBufferSize", type: .int, doc: "Accepted.", defaultValue: nil,
                          status: .acceptedNotYetEffective(reason: "the transport sizes its buffers")),
            ], allowUnknown: false), doc: "Where and how logs are sent (required).", defaultValue: nil),
            FieldSpec(name: "Metrics", type: .any, doc: "Accepted; a v1 pipeline sends only logs.", defaultValue: nil,
                      status: .acceptedNotYetEffective(reason: "a v1 pipeline sends only logs")),
            FieldSpec(name: "Traces", type: .any, doc: "Accepted; a v1 pipeline sends only logs.", defaultValue: nil,
                      status: .acceptedNotYetEffective(reason: "a v1 pipeline sends only logs")),
            FieldSpec(name: "Concurrency", type: .int, doc: "Sluice: requests in flight. Default: `send_request_concurrency`.", defaultValue: nil),
            FlusherRoute.matchField,
        ])

    public enum WireProtocol: String, Sendable {
        case grpc
        case httpProtobuf = "http/protobuf"
    }

    /// Where a gRPC client connects.
    public enum GRPCTarget: Sendable, Equatable {
        case host(String, port: Int)
        case unix(String)
    }

    public struct Options: Sendable {
        public var wireProtocol: WireProtocol = .grpc
        /// gRPC: where to connect, and whether with TLS.
        public var grpcTarget: GRPCTarget = .host("127.0.0.1", port: 4317)
        public var tls = false
        /// HTTP/protobuf: the full `/v1/logs` URL.
        public var url = ""
        public var headers: [(String, String)] = []
        /// gRPC: gzip or not. HTTP/protobuf: `client.compression`.
        public var grpcGzip = false
        public var timeout: Duration = .seconds(5)
        public var waitForReady = false
        public var maxRetries: Int?
        public var backoff = Backoff()
        public var concurrency: Int
        public var client = HTTPClientOptions()
        /// The incumbent's tag renames (`__path__` → `log.file.path`, ...) for the log attributes.
        public var convert = ConvertOptions()
    }

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        var o = Options(concurrency: max(1, globals.sendRequestConcurrency))
        if let v = try c.string("Version"), !v.isEmpty, v != "v1" { throw c.error(at: "Version", "only v1 is supported, not \"\(v)\"") }
        guard let logs = try c.object("Logs") else { throw c.error(at: nil, "Logs is required (a v1 pipeline sends logs)") }
        guard let endpoint = try logs.string("Endpoint"), !endpoint.isEmpty else { throw logs.error(at: nil, "Endpoint is required") }
        if let p = try logs.string("Protocol"), !p.isEmpty {
            guard let wp = WireProtocol(rawValue: p) else { throw logs.error(at: "Protocol", "unknown protocol \"\(p)\" (known: grpc, http/protobuf)") }
            o.wireProtocol = wp
        }
        switch o.wireProtocol {
        case .grpc:
            (o.grpcTarget, o.tls) = try grpcTarget(endpoint, logs)
            if let comp = try logs.string("Compression"), !comp.isEmpty, comp != "none" {
                guard comp == "gzip" else {
                    throw logs.error(at: "Compression", "\"\(comp)\" is not available over gRPC here (gzip or none; use Protocol: http/protobuf for zstd or snappy)")
                }
                o.grpcGzip = true
            }
        case .httpProtobuf:
            var base = endpoint
            if !base.contains("://") { base = "http://" + base }
            guard base.hasPrefix("http://") || base.hasPrefix("https://") else { throw logs.error(at: "Endpoint", "must be an http:// or https:// URL for http/protobuf") }
            while base.hasSuffix("/") { base.removeLast() }
            o.url = base.hasSuffix("/v1/logs") ? base : base + "/v1/logs"
            try o.client.readCompression(logs)
        }
        // gRPC metadata keys are lower case on the wire (HTTP/2).
        o.headers = (try logs.expandedPairs("Headers") ?? []).map { o.wireProtocol == .grpc ? ($0.0.lowercased(), $0.1) : $0 }
        if let ms = try logs.int("Timeout"), ms > 0 { o.timeout = .milliseconds(ms) }
        o.waitForReady = try logs.bool("WaitForReady") ?? false
        if let r = try logs.object("Retry") {
            let enabled = try r.bool("Enable") ?? false
            if let n = try r.int("MaxCount") {
                guard n >= 0 else { throw r.error(at: "MaxCount", "must be ≥ 0") }
                if enabled { o.maxRetries = n }
            }
            if let d = try GoDuration.read(r, "DefaultDelay"), d > .zero { o.backoff.initial = d }
        }
        o.concurrency = try HTTPClientOptions.concurrency(c, globals: globals)
        try o.client.readAuthentication(logs)
        if o.client.tls != nil && o.wireProtocol == .grpc { o.tls = true }
        if o.client.tls != nil && o.wireProtocol == .httpProtobuf && !o.url.hasPrefix("https://") {
            throw logs.error(at: "Authentication", "TLS needs an https:// Endpoint")
        }
        o.client.requestTimeout = o.timeout
        o.client.connectTimeout = min(o.client.connectTimeout, o.timeout)
        o.client.headers = o.wireProtocol == .httpProtobuf ? o.headers : []
        o.client.maxConnectionsPerHost = o.concurrency
        return o
    }

    /// The incumbent's endpoint forms: `http://` stripped (plaintext), `https://` → TLS, else
    /// `host:port`; Sluice adds `unix:/path` and the default port 4317.
    static func grpcTarget(_ endpoint: String, _ logs: ConfigObject) throws(ConfigError) -> (GRPCTarget, Bool) {
        var rest = Substring(endpoint)
        var tls = false
        if rest.hasPrefix("unix:") {
            var path = rest.dropFirst(5)
            if path.hasPrefix("//") { path = path.dropFirst(2) }
            guard !path.isEmpty else { throw logs.error(at: "Endpoint", "unix: needs a socket path") }
            return (.unix(String(path)), false)
        }
        if rest.hasPrefix("https://") { tls = true; rest = rest.dropFirst(8) } else if rest.hasPrefix("http://") { rest = rest.dropFirst(7) }
        else if rest.contains("://") { throw logs.error(at: "Endpoint", "use host:port, http://host:port or https://host:port") }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        var host = rest
        var port = 4317
        if rest.hasPrefix("[") {
            // [v6]:port
            guard let close = rest.firstIndex(of: "]") else { throw logs.error(at: "Endpoint", "unclosed [ in \(endpoint)") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw logs.error(at: "Endpoint", "bad port in \(endpoint)") }
                port = p
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else { throw logs.error(at: "Endpoint", "bad port in \(endpoint)") }
            port = p
        }
        guard !host.isEmpty else { throw logs.error(at: "Endpoint", "no host in \(endpoint)") }
        return (.host(String(host), port: port), tls)
    }

    let options: Options
    let logger: Logger
    public let delivery: DeliveryOptions
    let sender: HTTPSender?
    let grpc: GRPCClient<HTTP2ClientTransport.Posix>?
    let connections = Mutex<Task<Void, Never>?>(nil)

    public init(options: Options, context: PluginContext) throws {
        self.options = options
        logger = context.logger
        delivery = DeliveryOptions(maxBytes: 1 << 20, concurrency: options.concurrency, maxRetries: options.maxRetries, backoff: options.backoff)
        switch options.wireProtocol {
        case .httpProtobuf:
            sender = try HTTPSender(options: options.client)
            grpc = nil
        case .grpc:
            sender = nil
            let config = HTTP2ClientTransport.Posix.Config.defaults { c in
                c.backoff = .init(initial: .milliseconds(100), max: .seconds(5), multiplier: 1.6, jitter: 0.2)
                c.connection.maxIdleTime = .seconds(300)
                if options.grpcGzip { c.compression = .init(algorithm: .gzip, enabledAlgorithms: [.gzip]) }
            }
            let security = options.tls ? FlusherOtlp.transportSecurity(options.client.tls) : .plaintext
            let transport: HTTP2ClientTransport.Posix
            switch options.grpcTarget {
            case .host(let h, let p):
                // A literal address goes in without a name: TLS then sends no SNI (an IP address
                // is not allowed there) and checks the certificate's IP SAN.
                switch try? NIOCore.SocketAddress(ipAddress: h, port: p) {
                case .v4?:
                    transport = try HTTP2ClientTransport.Posix(target: .ipv4(address: h, port: p), transportSecurity: security, config: config)
                case .v6?:
                    transport = try HTTP2ClientTransport.Posix(target: .ipv6(address: h, port: p), transportSecurity: security, config: config)
                default:
                    transport = try HTTP2ClientTransport.Posix(target: .dns(host: h, port: p), transportSecurity: security, config: config)
                }
            case .unix(let path):
                transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: path), transportSecurity: security, config: config)
            }
            grpc = GRPCClient(transport: transport)
        }
    }

    /// TLS of the gRPC connection: the system's roots, or `CAFile`; a client certificate; no
    /// verification with `InsecureSkipVerify`.
    static func transportSecurity(_ t: HTTPTLSOptions?) -> HTTP2ClientTransport.Posix.TransportSecurity {
        .tls { c in
            guard let t else { return }
            if let ca = t.caFile { c.trustRoots = .certificates([.file(path: ca, format: .pem)]) }
            if let cert = t.certFile, let key = t.keyFile {
                c.certificateChain = [.file(path: cert, format: .pem)]
                c.privateKey = .file(path: key, format: .pem)
            }
            if t.insecureSkipVerify { c.serverCertificateVerification = .noVerification }
        }
    }

    public func start() async throws {
        guard let grpc else { return }
        connections.withLock { t in
            if t == nil { t = Task { try? await grpc.runConnections() } }
        }
    }

    public func stop() async {
        if let sender { await sender.shutdown() }
        if let grpc {
            grpc.beginGracefulShutdown()
            let t = connections.withLock { t in defer { t = nil }; return t }
            t?.cancel()
            await t?.value
        }
    }

    // MARK: - Encoding

    public func makeRequest(_ batches: [EventBatch]) async throws(FlushError) -> OtlpRequest {
        let out = buffers.take()
        defer { buffers.put(out) }
        var events = 0
        let observed = UInt64(max(0, Sys.wallNanos()))
        var encoder = OtlpLogsEncoder()
        for batch in batches {
            events += batch.events.count
            let tags = tagPairs(batch)
            func bytes(_ pairs: [(String, String)]) -> [OtlpLogsEncoder.Pair] { pairs.map { (Array($0.0.utf8), Array($0.1.utf8)) } }
            if encoder.appendResourceLogs(batch, resource: bytes(tags.resource), tagAttributes: bytes(tags.attributes), observed: observed, to: out) { continue }
            // Bytes that are not valid UTF-8: the generated message, whose strings replace them.
            var export = Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest()
            export.resourceLogs = [resourceLogs(batch, observed: observed)]
            do { out.append(try export.serializedBytes() as [UInt8]) } catch { throw FlushError("cannot encode the OTLP request: \(error)") }
        }
        let body = UnsafeRawBufferPointer(out.bytes)
        switch options.wireProtocol {
        case .grpc:
            return OtlpRequest(body: ByteBuffer(bytes: body), events: events)
        case .httpProtobuf:
            return OtlpRequest(body: try options.client.compression.compress(body), events: events)
        }
    }

    /// Encode buffers reused across requests (the body is copied out of one).
    let buffers = BufferPool(keep: 2)

    /// A batch's tags as the resource's attributes (raw names) and as each record's (converted
    /// names, the tags `Convert` drops left out).
    func tagPairs(_ batch: EventBatch) -> (resource: [(String, String)], attributes: [(String, String)]) {
        (batch.tags.map { ($0.key, $0.value) },
         batch.tags.compactMap { t in options.convert.convertedTagName(t.key).map { ($0, t.value) } })
    }

    /// One batch as one `ResourceLogs` (the incumbent's "one ResourceLogs per group").
    func resourceLogs(_ batch: EventBatch, observed: UInt64) -> Opentelemetry_Proto_Logs_V1_ResourceLogs {
        var rl = Opentelemetry_Proto_Logs_V1_ResourceLogs()
        let tags = tagPairs(batch)
        rl.resource.attributes = tags.resource.map { FlusherOtlp.attribute($0.0, $0.1) }
        let tagAttributes = tags.attributes.map { FlusherOtlp.attribute($0.0, $0.1) }
        var scope = Opentelemetry_Proto_Logs_V1_ScopeLogs()
        scope.logRecords.reserveCapacity(batch.events.count)
        batch.arena.withUnsafeBufferPointer { arena in
            func text(_ s: Span) -> String {
                String(decoding: UnsafeBufferPointer(rebasing: arena[Int(s.offset)..<Int(s.offset + s.length)]), as: UTF8.self)
            }
            for ev in batch.events {
                var r = Opentelemetry_Proto_Logs_V1_LogRecord()
                r.timeUnixNano = OtlpLogsEncoder.nanos(ev, batch)
                r.observedTimeUnixNano = observed
                if !ev.isParsed {
                    r.body.stringValue = text(ev.content)
                } else {
                    var live = 0
                    for f in batch.fields[Int(ev.fieldStart)..<Int(ev.fieldStart + ev.fieldCount)] where f.kind != .deleted {
                        live += 1
                        let key = text(f.key)
                        if key == "content" {
                            r.body.stringValue = text(f.value)
                        } else if key == "level" {
                            r.severityText = text(f.value)
                        } else {
                            r.attributes.append(FlusherOtlp.attribute(key, text(f.value)))
                        }
                    }
                    // A parsed event whose fields were all removed is not written (as every flusher).
                    if live == 0 { continue }
                }
                r.attributes.append(contentsOf: tagAttributes)
                scope.logRecords.append(r)
            }
        }
        rl.scopeLogs = [scope]
        return rl
    }

    static func attribute(_ key: String, _ value: String) -> Opentelemetry_Proto_Common_V1_KeyValue {
        var kv = Opentelemetry_Proto_Common_V1_KeyValue()
        kv.key = key
        kv.value.stringValue = value
        return kv
    }

    // MARK: - Sending

    public func send(_ request: OtlpRequest) async -> SendOutcome<OtlpRequest> {
        if let grpc { return await sendGRPC(request, grpc) }
        return await sendHTTP(request, sender!)
    }

    /// What an `ExportLogsServiceResponse` says about a request of `events` events.
    static func outcome(_ response: Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceResponse, events: Int) -> SendOutcome<OtlpRequest> {
        guard response.hasPartialSuccess, response.partialSuccess.rejectedLogRecords > 0 else { return .delivered }
        let rejected = Int(clamping: response.partialSuccess.rejectedLogRecords)
        let message = response.partialSuccess.errorMessage
        let reason = "partial success: \(rejected) log records rejected" + (message.isEmpty ? "" : ": \(message)")
        if rejected >= events { return .rejected(reason: reason) }
        // The others were accepted; the rejected ones must not be sent again (OTLP specification).
        return .partial(retry: OtlpRequest(body: ByteBuffer(), events: 0), rejected: rejected, reason: reason)
    }

    // MARK: gRPC

    /// gRPC codes the OTLP specification calls retryable (ResourceExhausted only with RetryInfo).
    static let retryableCodes: Set<RPCError.Code> = [.cancelled, .deadlineExceeded, .aborted, .outOfRange, .unavailable, .dataLoss]

    static func outcome(_ error: RPCError) -> SendOutcome<OtlpRequest> {
        let status = try? error.unpackGoogleRPCStatus()
        let retryDelay = status?.details.lazy.compactMap(\.retryInfo).first?.delay
        let reason = "gRPC \(error.code): \(error.message)"
        if retryableCodes.contains(error.code) { return .retry(after: retryDelay, reason: reason) }
        if error.code == .resourceExhausted, let d = retryDelay { return .retry(after: d, reason: reason) }
        return .rejected(reason: reason)
    }

    func sendGRPC(_ request: OtlpRequest, _ grpc: GRPCClient<HTTP2ClientTransport.Posix>) async -> SendOutcome<OtlpRequest> {
        var metadata = Metadata()
        switch options.client.auth {
        case .basic(let user, let password): metadata.addString(HTTPClient.Authorization.basic(username: user, password: password).headerValue, forKey: "authorization")
        case .bearer(let token): metadata.addString(HTTPClient.Authorization.bearer(tokens: token).headerValue, forKey: "authorization")
        case nil: break
        }
        for (k, v) in options.headers { metadata.replaceOrAddString(v, forKey: k) }
        var call = CallOptions.defaults
        call.timeout = options.timeout
        call.waitForReady = options.waitForReady
        if options.grpcGzip { call.compression = .gzip }
        let descriptor = Opentelemetry_Proto_Collector_Logs_V1_LogsService.Method.Export.descriptor
        let body = request.body
        let events = request.eventCount
        let limit = options.timeout + .milliseconds(250)
        // The call is bounded here as well: grpc-swift's deadline does not fire while a call waits
        // for a connection that never becomes ready.
        return await withTaskGroup(of: SendOutcome<OtlpRequest>?.self) { group in
            group.addTask { [metadata, call] in
                do {
                    let response = try await grpc.unary(
                        request: ClientRequest(message: body, metadata: metadata), descriptor: descriptor,
                        serializer: BufferSerializer(),
                        deserializer: ProtobufDeserializer<Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceResponse>(),
                        options: call) { try $0.message }
                    return FlusherOtlp.outcome(response, events: events)
                } catch let e as RPCError {
                    return FlusherOtlp.outcome(e)
                } catch {
                    return .retry(after: nil, reason: "gRPC: \(error)")
                }
            }
            group.addTask {
                do { try await Task.sleep(for: limit) } catch { return nil }
                return .retry(after: nil, reason: "gRPC: no answer within \(limit)")
            }
            var result: SendOutcome<OtlpRequest> = .retry(after: nil, reason: "gRPC: cancelled")
            if let first = await group.next(), let r = first { result = r }
            group.cancelAll()
            return result
        }
    }

    // MARK: HTTP/protobuf

    func sendHTTP(_ request: OtlpRequest, _ sender: HTTPSender) async -> SendOutcome<OtlpRequest> {
        let exchange = await sender.send(url: options.url, headers: [("Content-Type", "application/x-protobuf")], body: request.body)
        switch exchange {
        case .failed(let message):
            return .retry(after: nil, reason: message)
        case .response(let status, let headers, let body):
            if (200...299).contains(status) {
                guard body.readableBytes > 0 else { return .delivered }
                let isJSON = headers.first(name: "Content-Type")?.lowercased().hasPrefix("application/json") == true
                let response: Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceResponse
                do {
                    if isJSON {
                        response = try .init(jsonUTF8Bytes: Array(body.readableBytesView), options: FlusherOtlp.lenientJSON)
                    } else {
                        response = try .init(serializedBytes: Array(body.readableBytesView))
                    }
                } catch {
                    // The data was accepted; an answer we cannot read says nothing more.
                    return .delivered
                }
                return FlusherOtlp.outcome(response, events: request.eventCount)
            }
            let reason = FlusherOtlp.describe(status: status, body: body)
            if [429, 502, 503, 504].contains(status) {
                return .retry(after: HTTPStatusPolicy.retryAfter(headers, now: Sys.wallNanos()), reason: reason)
            }
            return .rejected(reason: reason)
        }
    }

    static let lenientJSON: JSONDecodingOptions = {
        var o = JSONDecodingOptions()
        o.ignoreUnknownFields = true
        return o
    }()

    /// `HTTP 400: <message>`: the `google.rpc.Status` message of the body, else its first bytes.
    static func describe(status: Int, body: ByteBuffer) -> String {
        if body.readableBytes > 0, let s = try? GoogleRPCStatus(serializedBytes: Array(body.readableBytesView)), !s.message.isEmpty {
            return "HTTP \(status): \(s.message)"
        }
        return HTTPStatusPolicy.describe(status: status, body: body)
    }
}

/// A `flusher_otlp` request: the encoded `ExportLogsServiceRequest` (compressed for HTTP when
/// configured), built once and sent as is on every try.
public struct OtlpRequest: FlushRequest {
    public var body: ByteBuffer
    public var events: Int
    public var byteCount: Int { body.readableBytes }
    public var eventCount: Int { events }
}

/// Sends already-encoded protobuf bytes as a gRPC message.
struct BufferSerializer: MessageSerializer {
    typealias Message = ByteBuffer
    func serialize<Bytes: GRPCContiguousBytes>(_ message: ByteBuffer) throws -> Bytes {
        message.withUnsafeReadableBytes { Bytes($0) }
    }
}
