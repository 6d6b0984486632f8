import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import SluiceCore

/// What one HTTP exchange came to: an answer (any status), or no answer (connection refused or
/// reset, a timeout, a TLS failure).
public enum HTTPExchange: Sendable {
    case response(status: Int, headers: HTTPHeaders, body: ByteBuffer)
    case failed(String)
}

/// The one HTTP client of a network flusher instance, on AsyncHTTPClient: created with the
/// flusher, shut down at its stop. It adds the fixed headers and credentials to every request
/// and sends a body once; what to do with the answer is the flusher's (see `HTTPStatusPolicy`).
public final class HTTPSender: Sendable {
    let client: HTTPClient
    let options: HTTPClientOptions
    let fixedHeaders: HTTPHeaders
    /// At most this much of an answer's body is read (error messages, bulk item results).
    public let maxResponseBytes: Int

    public init(options: HTTPClientOptions, maxResponseBytes: Int = 64 << 20) throws(FlushError) {
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .nanoseconds(options.connectTimeout.nanoseconds), read: .nanoseconds(options.requestTimeout.nanoseconds))
        config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, options.maxConnectionsPerHost))
        config.httpVersion = .http1Only
        var tls = TLSConfiguration.makeClientConfiguration()
        if let t = options.tls {
            do {
                if let ca = t.caFile { tls.trustRoots = .file(ca) }
                if let cert = t.certFile, let key = t.keyFile {
                    tls.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
                    tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
                }
            } catch {
                throw FlushError("cannot load the TLS files: \(error)")
            }
            if t.insecureSkipVerify { tls.certificateVerification = .none }
        }
        config.tlsConfiguration = tls
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: config)
        self.options = options
        self.maxResponseBytes = maxResponseBytes
        var h = HTTPHeaders()
        switch options.auth {
        case .basic(let user, let password):
            h.add(name: "Authorization", value: HTTPClient.Authorization.basic(username: user, password: password).headerValue)
        case .bearer(let token):
            h.add(name: "Authorization", value: HTTPClient.Authorization.bearer(tokens: token).headerValue)
        case nil: break
        }
        if let enc = options.compression.contentEncoding { h.add(name: "Content-Encoding", value: enc) }
        fixedHeaders = h
    }

    public var compression: BodyCompression { options.compression }

    /// Sends `body` (already compressed with `compression`) once.
    public func send(_ method: HTTPMethod = .POST, url: String, headers: [(String, String)] = [], body: ByteBuffer?) async -> HTTPExchange {
        var req = HTTPClientRequest(url: url)
        req.method = method
        req.headers = fixedHeaders
        for (k, v) in headers { req.headers.replaceOrAdd(name: k, value: v) }
        for (k, v) in options.headers { req.headers.replaceOrAdd(name: k, value: v) }
        if let body { req.body = .bytes(body) }
        do {
            let resp = try await client.execute(req, timeout: .nanoseconds(options.requestTimeout.nanoseconds))
            let data = try await resp.body.collect(upTo: maxResponseBytes)
            return .response(status: Int(resp.status.code), headers: resp.headers, body: data)
        } catch {
            return .failed(HTTPSender.describe(error))
        }
    }

    /// Closes the connections. Nothing may be sent afterwards.
    public func shutdown() async {
        try? await client.shutdown()
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? HTTPClientError {
            switch e {
            case .deadlineExceeded: return "the request timed out"
            case .connectTimeout: return "connecting timed out"
            case .remoteConnectionClosed: return "the server closed the connection"
            default: return "\(e)"
            }
        }
        return "\(error)"
    }
}

extension Duration {
    /// Whole nanoseconds (saturating).
    var nanoseconds: Int64 {
        let c = components
        let (s, o) = c.seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return o ? .max : s &+ c.attoseconds / 1_000_000_000
    }
}
