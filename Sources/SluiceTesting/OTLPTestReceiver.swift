import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import SluiceFlushers
import Synchronization

/// An OTLP logs receiver on 127.0.0.1 for `flusher_otlp`'s tests: a gRPC server of the official
/// `LogsService` (server stubs generated from opentelemetry-proto) that keeps every
/// `ExportLogsServiceRequest` with its metadata and answers what the test scripts — OK, a
/// `partial_success`, a status (with RetryInfo when asked), or no answer. The HTTP/protobuf path
/// uses `HTTPTestReceiver`; `decode(_:)` and `httpAnswer(...)` read and write its bodies with the
/// same generated messages.
public final class OTLPTestReceiver: Sendable {
    package typealias ExportRequest = Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest
    package typealias ExportResponse = Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceResponse

    /// What the receiver answers to one export.
    public enum Answer: Sendable {
        case ok
        /// `partial_success` with `rejected_log_records` (accepted otherwise).
        case partial(rejected: Int64, message: String)
        /// A failed call with this status; `retryDelay` adds a `google.rpc.RetryInfo` detail.
        case fail(RPCError.Code, String, retryDelay: Duration? = nil)
        /// Never answer (until the call is cancelled).
        case hang
    }

    /// One export as received.
    package struct Received: Sendable {
        package var request: ExportRequest
        /// gRPC metadata (string values).
        package var metadata: [(String, String)]
    }

    /// Called for each export with its sequence number (0, 1, ...): the answer to give.
    public typealias Script = @Sendable (Int) -> Answer

    final class Shared: Sendable {
        let state = Mutex<(received: [Received], count: Int)>(([], 0))
        let script: Mutex<Script>
        init(_ s: @escaping Script) { script = Mutex(s) }
    }

    struct Service: Opentelemetry_Proto_Collector_Logs_V1_LogsService.ServiceProtocol {
        let shared: Shared
        func export(request: ServerRequest<ExportRequest>, context: ServerContext) async throws -> ServerResponse<ExportResponse> {
            var md: [(String, String)] = []
            for (k, v) in request.metadata {
                if case .string(let s) = v { md.append((k, s)) }
            }
            let n = shared.state.withLock { s -> Int in
                s.received.append(Received(request: request.message, metadata: md))
                s.count += 1
                return s.count - 1
            }
            switch shared.script.withLock({ $0 })(n) {
            case .ok:
                return ServerResponse(message: ExportResponse())
            case .partial(let rejected, let message):
                return ServerResponse(message: OTLPTestReceiver.partialResponse(rejected: rejected, message: message))
            case .fail(let code, let message, let delay):
                if let delay { throw GoogleRPCStatus(code: code, message: message, details: [.retryInfo(delay: delay)]) }
                throw RPCError(code: code, message: message)
            case .hang:
                try await Task.sleep(for: .seconds(3600))
                return ServerResponse(message: ExportResponse())
            }
        }
    }

    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let serving: Task<Void, Never>
    private let shared: Shared
    public let port: Int
    /// `127.0.0.1:<port>`, the form of `Logs.Endpoint`.
    public var endpoint: String { "127.0.0.1:\(port)" }

    /// Starts listening; with `tls` (PEM certificate and key files) it speaks TLS.
    public init(port: Int = 0, tls: (cert: String, key: String)? = nil, script: @escaping Script = { _ in .ok }) async throws {
        let shared = Shared(script)
        self.shared = shared
        let security: HTTP2ServerTransport.Posix.TransportSecurity = tls.map {
            .tls(certificateChain: [.file(path: $0.cert, format: .pem)], privateKey: .file(path: $0.key, format: .pem))
        } ?? .plaintext
        let transport = HTTP2ServerTransport.Posix(
            address: .ipv4(host: "127.0.0.1", port: port), transportSecurity: security,
            config: .defaults {
                $0.rpc.maxRequestPayloadSize = 64 << 20
                $0.compression.enabledAlgorithms = .all
            })
        let server = GRPCServer(transport: transport, services: [Service(shared: shared)])
        self.server = server
        serving = Task { try? await server.serve() }
        guard let bound = try await transport.listeningAddress.ipv4?.port else {
            server.beginGracefulShutdown()
            throw RPCError(code: .internalError, message: "the test receiver is not listening on IPv4")
        }
        self.port = bound
    }

    /// Changes the answers from now on.
    public func setScript(_ s: @escaping Script) { shared.script.withLock { $0 = s } }

    /// Every export received so far, in order.
    package var received: [Received] { shared.state.withLock { $0.received } }
    /// How many exports arrived.
    public var requestCount: Int { shared.state.withLock { $0.count } }

    public func stop() async {
        server.beginGracefulShutdown()
        serving.cancel()
        await serving.value
    }

    // MARK: - Decoding, for the gRPC and the HTTP paths

    /// One log record flattened: what a test checks.
    public struct Log: Sendable, Equatable {
        public var resource: [String: String]
        public var attributes: [String: String]
        public var body: String
        public var severityText: String
        public var timeUnixNano: UInt64
        public var observedTimeUnixNano: UInt64
    }

    /// The log records of `request`, in order, each with its resource's attributes.
    package static func logs(_ request: ExportRequest) -> [Log] {
        var out: [Log] = []
        for rl in request.resourceLogs {
            let resource = strings(rl.resource.attributes)
            for sl in rl.scopeLogs {
                for r in sl.logRecords {
                    out.append(Log(resource: resource, attributes: strings(r.attributes), body: r.body.stringValue, severityText: r.severityText,
                                   timeUnixNano: r.timeUnixNano, observedTimeUnixNano: r.observedTimeUnixNano))
                }
            }
        }
        return out
    }

    /// Every log record received over gRPC, in arrival order.
    public var logs: [Log] { received.flatMap { OTLPTestReceiver.logs($0.request) } }

    /// Metadata of export `n`.
    public func metadata(_ n: Int) -> [(String, String)] { received[n].metadata }

    /// An HTTP/protobuf body (already decompressed by `HTTPTestReceiver`) as log records; nil when
    /// it is not an `ExportLogsServiceRequest`.
    public static func decode(_ body: [UInt8]) -> [Log]? {
        guard let r = try? ExportRequest(serializedBytes: body) else { return nil }
        return logs(r)
    }

    /// A 200 body for the HTTP path carrying `partial_success` (protobuf; small values keep every
    /// byte ASCII, so it fits `HTTPTestReceiver.Response`'s text body unchanged).
    public static func httpPartialBody(rejected: Int64, message: String) -> String {
        let bytes: [UInt8] = (try? partialResponse(rejected: rejected, message: message).serializedBytes()) ?? []
        precondition(bytes.allSatisfy { $0 < 0x80 }, "keep rejected < 128 and the message ASCII and short")
        return String(decoding: bytes, as: UTF8.self)
    }

    static func partialResponse(rejected: Int64, message: String) -> ExportResponse {
        var resp = ExportResponse()
        resp.partialSuccess.rejectedLogRecords = rejected
        resp.partialSuccess.errorMessage = message
        return resp
    }

    static func strings(_ kvs: [Opentelemetry_Proto_Common_V1_KeyValue]) -> [String: String] {
        var d: [String: String] = [:]
        for kv in kvs { d[kv.key] = kv.value.stringValue }
        return d
    }
}
