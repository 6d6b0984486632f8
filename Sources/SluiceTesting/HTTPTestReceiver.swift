import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SluiceFlushers
import Synchronization

/// An HTTP server on 127.0.0.1 for the network flushers' tests and benchmarks: it decodes each
/// request's body as a backend would (`Content-Encoding` gzip, zstd or snappy), keeps it, and
/// answers what the test scripts — a status with headers and a body, after a delay, or no answer
/// at all (hang), or a closed connection.
public final class HTTPTestReceiver: Sendable {
    public struct Request: Sendable {
        public var method: String
        public var uri: String
        public var headers: [(String, String)]
        /// The body after its Content-Encoding was undone.
        public var body: [UInt8]
        public var bodyText: String { String(decoding: body, as: UTF8.self) }
        public func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    }

    public struct Response: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: String
        public var delay: Duration?
        /// Never answer (the connection stays open).
        public var hang = false
        /// Close the connection without answering.
        public var close = false
        public init(status: Int = 200, headers: [(String, String)] = [], body: String = "", delay: Duration? = nil) {
            self.status = status
            self.headers = headers
            self.body = body
            self.delay = delay
        }
        public static let ok = Response()
        public static var hang: Response { var r = Response(); r.hang = true; return r }
        public static var reset: Response { var r = Response(); r.close = true; return r }
    }

    /// Called for each request with its sequence number (0, 1, ...): the answer to give.
    public typealias Script = @Sendable (Request, Int) -> Response

    private let channel: any Channel
    final class Shared: Sendable {
        let state: Mutex<(requests: [Request], count: Int, keep: Bool)>
        let script: Mutex<Script>
        /// Open connections, closed by `stop` (so a stopped receiver takes nothing more).
        let connections = Mutex<[ObjectIdentifier: any Channel]>([:])
        init(keep: Bool, script: @escaping Script) {
            state = Mutex(([], 0, keep))
            self.script = Mutex(script)
        }
        func received(_ req: Request) -> Response {
            let n = state.withLock { s -> Int in
                let n = s.count
                s.count += 1
                if s.keep { s.requests.append(req) }
                return n
            }
            return script.withLock { $0 }(req, n)
        }
    }
    private let shared: Shared
    public let port: Int
    public var url: String { "http://127.0.0.1:\(port)" }

    /// Starts listening; `keepBodies: false` counts requests and bytes only (benchmarks). With
    /// `tls` (PEM certificate chain and key files) it speaks HTTPS.
    public init(keepBodies: Bool = true, port: Int = 0, tls: (certificate: String, key: String)? = nil,
                script: @escaping Script = { _, _ in .ok }) async throws {
        let shared = Shared(keep: keepBodies, script: script)
        self.shared = shared
        let sslContext = try tls.map { t in
            try NIOSSLContext(configuration: .makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(t.certificate).map { .certificate($0) }, privateKey: .privateKey(try NIOSSLPrivateKey(file: t.key, format: .pem))))
        }
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { ch in
                let id = ObjectIdentifier(ch)
                shared.connections.withLock { $0[id] = ch }
                ch.closeFuture.whenComplete { _ in _ = shared.connections.withLock { $0.removeValue(forKey: id) } }
                if let sslContext {
                    do { try ch.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext)) } catch { return ch.eventLoop.makeFailedFuture(error) }
                }
                return ch.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                    try ch.pipeline.syncOperations.addHandler(Handler(receiver: { shared.received($0) }))
                }
            }
        channel = try await bootstrap.bind(host: "127.0.0.1", port: port).get()
        self.port = channel.localAddress?.port ?? 0
    }

    /// Changes the answers from now on.
    public func setScript(_ s: @escaping Script) { shared.script.withLock { $0 = s } }

    /// The requests received so far (those kept).
    public var requests: [Request] { shared.state.withLock { $0.requests } }
    /// How many requests arrived.
    public var requestCount: Int { shared.state.withLock { $0.count } }

    /// Stops listening and closes every open connection: the destination is down.
    public func stop() async {
        try? await channel.close()
        for c in shared.connections.withLock({ Array($0.values) }) { try? await c.close() }
    }

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let receiver: @Sendable (Request) -> Response
        var head: HTTPRequestHead?
        var body = ByteBuffer()
        init(receiver: @escaping @Sendable (Request) -> Response) { self.receiver = receiver }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h):
                head = h
                body.clear()
            case .body(var b):
                body.writeBuffer(&b)
            case .end:
                guard let h = head else { return }
                let enc = h.headers.first(name: "Content-Encoding").flatMap { BodyCompression(configValue: $0) } ?? BodyCompression.none
                let decoded = (try? enc.decompress(body)) ?? Array("<undecodable \(enc.rawValue) body>".utf8)
                let req = Request(method: h.method.rawValue, uri: h.uri, headers: h.headers.map { ($0.name, $0.value) }, body: decoded)
                let resp = receiver(req)
                if resp.close { context.close(promise: nil); return }
                if resp.hang { return }
                let loop = context.eventLoop
                let bound = NIOLoopBound(context, eventLoop: loop)
                let keepAlive = h.isKeepAlive
                let write = { @Sendable in
                    let ctx = bound.value
                    var headers = HTTPHeaders(resp.headers.map { ($0.0, $0.1) })
                    headers.replaceOrAdd(name: "Content-Length", value: String(resp.body.utf8.count))
                    headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
                    ctx.write(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: resp.status), headers: headers))), promise: nil)
                    var out = ctx.channel.allocator.buffer(capacity: resp.body.utf8.count)
                    out.writeString(resp.body)
                    ctx.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(out))), promise: nil)
                    ctx.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
                }
                if let d = resp.delay {
                    loop.scheduleTask(in: .nanoseconds(Int64(d.components.seconds) * 1_000_000_000 + d.components.attoseconds / 1_000_000_000)) { write() }
                } else {
                    write()
                }
            }
        }
    }
}
