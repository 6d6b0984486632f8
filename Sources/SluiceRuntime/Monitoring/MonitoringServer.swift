import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// Whether the daemon is ready to take traffic, and if not, why (the body of `/readyz`).
public struct Readiness: Sendable {
    public var ready: Bool
    public var reasons: [String]
    public init(ready: Bool, reasons: [String]) {
        self.ready = ready
        self.reasons = reasons
    }
}

/// The self-monitoring endpoint, off the hot path (its own NIO event loop; a scrape reads atomics
/// and builds one text body): `GET /metrics` (Prometheus text format), `/healthz` (the process
/// answers), `/readyz` (200 when config is loaded, pipelines started and discovery connected,
/// else 503 with the reasons). A service of the daemon's service group; a port that cannot be
/// bound is logged and collection goes on without it.
public final class MonitoringServer: Service, Sendable {
    public let host: String
    public let port: Int
    let exporter: PrometheusExporter
    let samples: @Sendable () -> [GaugeSample]
    let readiness: @Sendable () -> Readiness
    let logger: Logger
    /// The port actually bound (useful with port 0), once listening.
    public let bound = AsyncStream<Int>.makeStream(bufferingPolicy: .bufferingNewest(1))

    public init(address: String, exporter: PrometheusExporter, logger: Logger,
                samples: @escaping @Sendable () -> [GaugeSample], readiness: @escaping @Sendable () -> Readiness) throws {
        (host, port) = try MonitoringServer.parse(address: address)
        self.exporter = exporter
        self.samples = samples
        self.readiness = readiness
        self.logger = logger
    }

    public struct AddressError: Error, CustomStringConvertible {
        public var address: String
        public var description: String { "--http-address \"\(address)\": expected HOST:PORT, e.g. 127.0.0.1:9188 or 0.0.0.0:9188" }
    }

    /// `HOST:PORT` or `[IPv6]:PORT`.
    public static func parse(address: String) throws -> (String, Int) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
              (0...65535).contains(port) else { throw AddressError(address: address) }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw AddressError(address: address) }
        return (host, port)
    }

    public func run() async throws {
        let exporter = self.exporter, samples = self.samples, readiness = self.readiness
        let respond: @Sendable (String) -> (HTTPResponseStatus, String, [UInt8]) = { path in
            switch path {
            case "/metrics":
                return (.ok, "text/plain; version=0.0.4; charset=utf-8", exporter.render(samples()))
            case "/healthz":
                return (.ok, "text/plain; charset=utf-8", Array("ok\n".utf8))
            case "/readyz":
                let r = readiness()
                let text = r.ready ? "ready\n" : "not ready:\n" + r.reasons.map { "- \($0)\n" }.joined()
                return (r.ready ? .ok : .serviceUnavailable, "text/plain; charset=utf-8", Array(text.utf8))
            default:
                return (.notFound, "text/plain; charset=utf-8", Array("not found: try /metrics, /healthz or /readyz\n".utf8))
            }
        }
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { ch in
                    ch.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                        try ch.pipeline.syncOperations.addHandler(MonitoringHandler(respond: respond))
                    }
                }
                .bind(host: host, port: port).get()
        } catch {
            logger.error("The monitoring endpoint cannot listen; collection goes on without /metrics, /healthz and /readyz.",
                         metadata: ["address": "\(host):\(port)", "error": "\(error)"])
            bound.continuation.finish()
            try? await gracefulShutdown()
            return
        }
        let actual = channel.localAddress?.port ?? port
        logger.info("Monitoring endpoint listening.", metadata: ["address": "http://\(host):\(actual)", "paths": "/metrics /healthz /readyz"])
        bound.continuation.yield(actual)
        bound.continuation.finish()
        try? await gracefulShutdown()
        try? await channel.close()
    }
}

/// One HTTP/1.1 connection of the monitoring endpoint: GET (or HEAD) of a path, answered at once.
final class MonitoringHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let respond: @Sendable (String) -> (HTTPResponseStatus, String, [UInt8])
    var head: HTTPRequestHead?

    init(respond: @escaping @Sendable (String) -> (HTTPResponseStatus, String, [UInt8])) { self.respond = respond }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            guard let h = head else { return }
            head = nil
            let path = String(h.uri.split(separator: "?", maxSplits: 1).first ?? "")
            var (status, type, body) = respond(path)
            if h.method != .GET && h.method != .HEAD {
                (status, type, body) = (.methodNotAllowed, "text/plain; charset=utf-8", Array("only GET\n".utf8))
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: type)
            headers.add(name: "Content-Length", value: String(body.count))
            headers.add(name: "Connection", value: h.isKeepAlive ? "keep-alive" : "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: status, headers: headers))), promise: nil)
            if h.method != .HEAD {
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            }
            let keepAlive = h.isKeepAlive
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { bound.value.close(promise: nil) }
            }
        }
    }
}
