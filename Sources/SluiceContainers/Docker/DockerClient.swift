import AsyncHTTPClient
import Logging
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SluiceSystem

/// A small client of the Docker Engine API (unversioned paths, so any daemon version answers with
/// its own API) over its Unix socket or plain TCP.
///
/// Every call throws `DockerError` (or `CancellationError` when its task is cancelled); every call
/// but the `/events` body has a deadline (`requestTimeout`), so a daemon that accepts and never
/// answers cannot hang the caller. Call `shutdown()` when done.
public final class DockerClient: Sendable {
    public let endpoint: DockerEndpoint
    public let requestTimeout: Duration
    private let http: HTTPClient

    /// Container event actions Sluice follows.
    public static let containerActions = ["create", "start", "restart", "rename", "die", "destroy"]

    public init(endpoint: DockerEndpoint, connectTimeout: Duration = .seconds(3), requestTimeout: Duration = .seconds(10)) {
        self.endpoint = endpoint
        self.requestTimeout = requestTimeout
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .nanoseconds(Self.nanos(connectTimeout)))
        config.connectionPool = .init(idleTimeout: .seconds(60))
        config.httpVersion = .http1Only
        config.redirectConfiguration = .disallow
        config.decompression = .disabled
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    /// Closes connections (including a running `/events` stream) and releases the client.
    public func shutdown() async throws {
        try await http.shutdown()
    }

    // MARK: - Calls

    /// `GET /version`: the daemon answers and speaks the Engine API.
    public func version() async throws -> DockerVersion {
        let bytes = try await body("/version")
        return try DockerJSON.decode(DockerVersion.self, from: bytes, what: "GET /version")
    }

    /// `GET /info`: dockerd's root dir and drivers.
    public func info() async throws -> DockerInfo {
        let bytes = try await body("/info")
        return try DockerJSON.decode(DockerInfo.self, from: bytes, what: "GET /info")
    }

    /// `GET /_ping`: true when the daemon answers `OK`.
    public func ping() async throws -> Bool {
        let bytes = try await body("/_ping")
        return String(decoding: bytes, as: UTF8.self).hasPrefix("OK")
    }

    /// `GET /containers/json?all=1` (or running ones only).
    public func listContainers(all: Bool = true) async throws -> [DockerContainerSummary] {
        let uri = all ? "/containers/json?all=1" : "/containers/json"
        let bytes = try await body(uri)
        return try DockerJSON.decode([DockerContainerSummary].self, from: bytes, what: "GET \(uri)")
    }

    /// `GET /containers/<id>/json` as the registry's model; nil when the container does not exist (404).
    public func inspect(id: String) async throws -> ContainerInfo? {
        let uri = "/containers/\(Self.percentEncode(id))/json"
        guard let body = try await get(uri, allowNotFound: true) else { return nil }
        return try DockerJSON.decode(DockerInspect.self, from: body, what: "GET \(uri)").containerInfo()
    }

    /// Opens `GET /events` filtered to container events with `actions`. Returns once the daemon
    /// answered with its response head (within `requestTimeout`); the stream itself has no deadline.
    public func events(actions: [String] = DockerClient.containerActions) async throws -> DockerEventStream {
        let filters = #"{"type":["container"],"event":["# + actions.map { "\"\($0)\"" }.joined(separator: ",") + "]}"
        let uri = "/events?filters=" + Self.percentEncode(filters)
        try checkReachable()
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request(uri), timeout: .nanoseconds(Self.nanos(requestTimeout)))
        } catch {
            throw mapError(error, request: "GET /events")
        }
        guard response.status.code == 200 else {
            let body = (try? await response.body.collect(upTo: 64 << 10)).map { Array($0.readableBytesView) } ?? []
            throw DockerError.httpStatus(request: "GET /events", status: Int(response.status.code), body: DockerError.snippet(body))
        }
        return DockerEventStream(body: response.body, client: self)
    }

    /// GET `uri`, whole body, within `requestTimeout`. A 404 gives nil when `allowNotFound`.
    public func get(_ uri: String, maxBytes: Int = 64 << 20, allowNotFound: Bool = false) async throws -> [UInt8]? {
        try checkReachable()
        let req = request(uri)
        let http = self.http
        let outcome: (status: Int, body: [UInt8])
        do {
            outcome = try await Self.withDeadline(requestTimeout) {
                let response = try await http.execute(req, timeout: .seconds(3600))
                let body = try await response.body.collect(upTo: maxBytes)
                return (Int(response.status.code), Array(body.readableBytesView))
            }
        } catch let e as DockerError {
            if case .timeout = e { throw DockerError.timeout(request: "GET \(uri)", seconds: Self.seconds(requestTimeout)) }
            throw e
        } catch {
            throw mapError(error, request: "GET \(uri)")
        }
        if outcome.status == 404 && allowNotFound { return nil }
        guard (200..<300).contains(outcome.status) else {
            throw DockerError.httpStatus(request: "GET \(uri)", status: outcome.status, body: DockerError.snippet(outcome.body))
        }
        return outcome.body
    }

    /// GET `uri` that must succeed (2xx), whole body.
    func body(_ uri: String) async throws -> [UInt8] {
        try await get(uri, allowNotFound: false) ?? []
    }

    // MARK: - Plumbing

    private func request(_ uri: String) -> HTTPClientRequest {
        var req = HTTPClientRequest(url: url(uri))
        req.method = .GET
        req.headers.replaceOrAdd(name: "Host", value: "docker")
        req.headers.replaceOrAdd(name: "Accept", value: "application/json")
        req.headers.replaceOrAdd(name: "User-Agent", value: "sluice")
        return req
    }

    func url(_ uri: String) -> String {
        switch endpoint {
        case .unix(let path):
            return URL(httpURLWithSocketPath: path, uri: uri)?.absoluteString ?? "http+unix://invalid\(uri)"
        case .tcp(let host, let port):
            return host.contains(":") ? "http://[\(host)]:\(port)\(uri)" : "http://\(host):\(port)\(uri)"
        }
    }

    /// A Unix socket that does not exist is "absent" without trying to connect.
    private func checkReachable() throws {
        guard case .unix(let path) = endpoint else { return }
        var st = stat()
        if stat(path, &st) != 0 {
            let e = errno
            throw DockerError.unavailable(endpoint: endpoint.description,
                                          reason: e == ENOENT ? "socket \(path) does not exist" : "cannot stat \(path): errno \(e)")
        }
        if (st.st_mode & S_IFMT) != S_IFSOCK {
            throw DockerError.unavailable(endpoint: endpoint.description, reason: "\(path) is not a socket")
        }
    }

    func mapError(_ error: any Error, request: String) -> any Error {
        if error is CancellationError { return error }
        if let d = error as? DockerError { return d }
        if let h = error as? HTTPClientError {
            if h == .deadlineExceeded || h == .readTimeout || h == .connectTimeout || h == .writeTimeout {
                return DockerError.timeout(request: request, seconds: Self.seconds(requestTimeout))
            }
            if h == .cancelled, Task.isCancelled { return CancellationError() }
        }
        if Task.isCancelled { return CancellationError() }
        let text = String(describing: error)
        for marker in ["Connection refused", "ECONNREFUSED", "No such file or directory", "ENOENT", "errno: 111", "errno: 2)"]
        where text.contains(marker) {
            return DockerError.unavailable(endpoint: endpoint.description, reason: text)
        }
        return DockerError.transport(request: request, reason: text)
    }

    /// Runs `op`, throwing `DockerError.timeout` when it has not finished after `timeout`.
    static func withDeadline<T: Sendable>(_ timeout: Duration, _ op: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Optional<T>.self) { group in
            group.addTask { try await op() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw CancellationError() }
            guard let value = first else { throw DockerError.timeout(request: "", seconds: seconds(timeout)) }
            return value
        }
    }

    static func nanos(_ d: Duration) -> Int64 {
        let c = d.components
        return c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000
    }

    static func seconds(_ d: Duration) -> Double { Double(nanos(d)) / 1e9 }

    static func percentEncode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%"
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(b >> 4)]))
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(b & 15)]))
            }
        }
        return out
    }
}


/// The `/events` body as batches of decoded events: each element holds the events completed by
/// one chunk of the body (usually one; several when the daemon emitted a burst), so a consumer can
/// coalesce them. A line that is not a JSON event becomes a `malformed` entry, never an error of
/// the stream. The sequence ends (nil) when the daemon closes the stream; a transport failure is
/// thrown as `DockerError`.
public struct DockerEventStream: AsyncSequence, Sendable {
    public struct Batch: Sendable {
        public var events: [DockerEvent]
        public var malformed: [DockerError]
        /// Monotonic nanoseconds when the chunk arrived.
        public var receivedAt: Int64
    }
    public typealias Element = Batch

    let body: HTTPClientResponse.Body
    let client: DockerClient

    public func makeAsyncIterator() -> Iterator {
        Iterator(inner: body.makeAsyncIterator(), client: client)
    }

    public struct Iterator: AsyncIteratorProtocol {
        var inner: HTTPClientResponse.Body.AsyncIterator
        let client: DockerClient
        var splitter = DockerLineSplitter()
        var ended = false

        public mutating func next() async throws -> Batch? {
            while !ended {
                let chunk: HTTPClientResponse.Body.Element?
                do {
                    chunk = try await inner.next()
                } catch {
                    ended = true
                    let mapped = client.mapError(error, request: "GET /events")
                    // The daemon closing the connection mid-stream (it stopped or restarted) is the
                    // stream's normal end, not an error.
                    if case DockerError.transport = mapped { throw DockerError.eventsStreamEnded }
                    throw mapped
                }
                guard let chunk else {
                    ended = true
                    if let tail = splitter.finish() { return Self.decode([tail]) }
                    return nil
                }
                let lines = splitter.append(chunk.readableBytesView)
                if !lines.isEmpty { return Self.decode(lines) }
            }
            return nil
        }

        static func decode(_ lines: [[UInt8]]) -> Batch {
            var batch = Batch(events: [], malformed: [], receivedAt: Sys.monotonicNanos())
            for line in lines {
                do {
                    batch.events.append(try DockerJSON.decode(DockerEvent.self, from: line, what: "GET /events"))
                } catch {
                    batch.malformed.append(error)
                }
            }
            return batch
        }
    }
}
