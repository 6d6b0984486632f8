// The counting HTTP receiver of the network scenarios: a small HTTP/1.1 server (one thread per connection,
// keep-alive, Content-Length and chunked bodies) inside sluice-bench. It keeps no bodies: it finds every
// ` id=<file>:<line>` in each body and counts it against the dataset (delivered, unique, lost, duplicated), and
// answers as the backend would: 200 `{}` (http), `{"took":1,"errors":false,"items":[]}` on `_bulk`
// (Elasticsearch), 204 (Loki), an empty 200 `application/x-protobuf` (OTLP's ExportLogsServiceResponse with
// nothing rejected). Loki's protobuf pushes (snappy block format, `application/x-protobuf`) are decompressed
// first: the lines are protobuf strings, so their ids are then found the same way; OTLP's protobuf bodies are
// not compressed and are searched as they are.
// Also a tiny HTTP/1.0 client for ClickHouse queries.

import CSnappy
import Glibc

enum ReceiverMode {
    case http
    case elasticsearch
    case loki
    case otlp
}

private let memmemFn: @convention(c) (UnsafeRawPointer?, Int, UnsafeRawPointer?, Int) -> UnsafeMutableRawPointer? = {
    unsafeBitCast(dlsym(nil, "memmem")!, to: (@convention(c) (UnsafeRawPointer?, Int, UnsafeRawPointer?, Int) -> UnsafeMutableRawPointer?).self)
}()

final class CountingReceiver: @unchecked Sendable {
    let mode: ReceiverMode
    let lineBase: [Int]
    let lineCounts: [Int]
    let total: Int
    private let counts: UnsafeMutablePointer<UInt8>
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private(set) var port = 0
    private var listenFd: Int32 = -1
    // under mutex
    private var _delivered = 0
    private var _unique = 0
    private var _malformed = 0
    private var _requests = 0
    private var _bodyBytes = 0
    private var _lastReceive = 0.0
    private var _stopping = false

    init(mode: ReceiverMode, ds: Dataset) throws {
        self.mode = mode
        lineBase = ds.lineBase
        lineCounts = ds.lineCounts
        total = ds.totalLines
        counts = .allocate(capacity: max(1, total))
        counts.initialize(repeating: 0, count: max(1, total))
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        try listen()
    }

    deinit {
        counts.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    struct Snapshot {
        var delivered: Int, unique: Int, malformed: Int, requests: Int, bodyBytes: Int, lastReceive: Double
        var lost: Int { 0 }
    }

    func snapshot() -> Snapshot {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return Snapshot(delivered: _delivered, unique: _unique, malformed: _malformed, requests: _requests,
                        bodyBytes: _bodyBytes, lastReceive: _lastReceive)
    }

    /// Forgets every id seen (between runs on the same receiver).
    func reset() {
        pthread_mutex_lock(mutex)
        counts.update(repeating: 0, count: max(1, total))
        _delivered = 0; _unique = 0; _malformed = 0; _requests = 0; _bodyBytes = 0; _lastReceive = 0
        pthread_mutex_unlock(mutex)
    }

    /// The first global line index never received, as `file:line`.
    func firstMissing() -> String? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        for g in 0..<total where counts[g] == 0 {
            var f = 0
            while f + 1 < lineBase.count && lineBase[f + 1] <= g { f += 1 }
            return "id=\(f):\(g - lineBase[f] + 1)"
        }
        return nil
    }

    func stop() {
        pthread_mutex_lock(mutex)
        _stopping = true
        pthread_mutex_unlock(mutex)
        if listenFd >= 0 { shutdown(listenFd, Int32(SHUT_RDWR)); close(listenFd); listenFd = -1 }
    }

    private func listen() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw BenchError("receiver: socket: \(errnoText())") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0 { close(fd); throw BenchError("receiver: bind: \(errnoText())") }
        if Glibc.listen(fd, 128) != 0 { close(fd); throw BenchError("receiver: listen: \(errnoText())") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        listenFd = fd
        startThread { [self] in acceptLoop(fd) }
    }

    private func acceptLoop(_ lfd: Int32) {
        while true {
            let c = accept(lfd, nil, nil)
            if c < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            _ = fcntl(c, F_SETFD, FD_CLOEXEC)
            var one: Int32 = 1
            setsockopt(c, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            startThread { [self] in serve(c) }
        }
    }

    /// Records the ids found in one body.
    /// Snappy-decompresses a protobuf push, then counts it.
    private func countSnappy(_ body: UnsafePointer<UInt8>, _ n: Int) {
        var len = 0
        let ok = body.withMemoryRebound(to: CChar.self, capacity: n) { c -> Bool in
            guard snappy_uncompressed_length(c, n, &len) == SNAPPY_OK else { return false }
            let out = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, len))
            defer { out.deallocate() }
            var outLen = len
            guard snappy_uncompress(c, n, out, &outLen) == SNAPPY_OK else { return false }
            out.withMemoryRebound(to: UInt8.self, capacity: outLen) { count($0, outLen) }
            return true
        }
        if !ok {
            pthread_mutex_lock(mutex)
            _malformed += 1
            _requests += 1
            pthread_mutex_unlock(mutex)
        }
    }

    private func count(_ body: UnsafePointer<UInt8>, _ n: Int) {
        var ids: [Int] = []
        ids.reserveCapacity(n / 150)
        var malformed = 0
        findIds(body, n, &ids, &malformed)
        record(ids, malformed: malformed, bodyBytes: n)
    }

    /// Counts an OTLP `ExportLogsServiceRequest`: the ids are searched for in each log record's body
    /// strings only (a plain search would run into the next field's key: attributes are field 6, the
    /// byte `2`, right after a body that ends in a line number).
    private func countOTLP(_ body: UnsafePointer<UInt8>, _ n: Int) {
        var ids: [Int] = []
        ids.reserveCapacity(n / 150)
        var malformed = 0
        if !OTLPBodies.walk(body, n, .request, { findIds($0, $1, &ids, &malformed) }) { malformed += 1 }
        record(ids, malformed: malformed, bodyBytes: n)
    }

    /// Appends the dataset index of every ` id=<file>:<line>` in the `n` bytes at `body` to `ids`.
    private func findIds(_ body: UnsafePointer<UInt8>, _ n: Int, _ ids: inout [Int], _ malformed: inout Int) {
        let key: StaticString = " id="
        var p = body
        let end = body + n
        while end - p > 4, let hit = memmemFn(p, end - p, key.utf8Start, 4) {
            var q = UnsafePointer(hit.assumingMemoryBound(to: UInt8.self)) + 4
            var file = 0, line = 0, d1 = 0, d2 = 0
            while q < end && q.pointee >= 48 && q.pointee <= 57 && d1 < 9 { file = file * 10 + Int(q.pointee - 48); q += 1; d1 += 1 }
            if d1 > 0 && q < end && q.pointee == UInt8(ascii: ":") {
                q += 1
                while q < end && q.pointee >= 48 && q.pointee <= 57 && d2 < 12 { line = line * 10 + Int(q.pointee - 48); q += 1; d2 += 1 }
            }
            if d1 > 0 && d2 > 0 && file < lineCounts.count && line >= 1 && line <= lineCounts[file] {
                ids.append(lineBase[file] + line - 1)
            } else {
                malformed += 1
            }
            p = q
        }
    }

    private func record(_ ids: [Int], malformed: Int, bodyBytes n: Int) {
        let now = realNow()
        pthread_mutex_lock(mutex)
        for g in ids {
            if counts[g] == 0 { _unique += 1 }
            if counts[g] < 255 { counts[g] += 1 }
        }
        _delivered += ids.count
        _malformed += malformed
        _requests += 1
        _bodyBytes += n
        if !ids.isEmpty { _lastReceive = now }
        pthread_mutex_unlock(mutex)
    }

    private func countBody(_ body: UnsafePointer<UInt8>, _ n: Int, protobuf: Bool) {
        switch (protobuf, mode) {
        case (true, .loki): countSnappy(body, n)
        case (true, .otlp): countOTLP(body, n)
        default: count(body, n)
        }
    }

    private func respond(_ fd: Int32, method: String, path: String) -> Bool {
        var status = "200 OK"
        var body = "{}"
        switch mode {
        case .http: break
        case .elasticsearch:
            if path.contains("_bulk") { body = #"{"took":1,"errors":false,"items":[]}"# }
            else if method == "GET" && (path == "/" || path.hasPrefix("/?")) {
                body = #"{"name":"bench","version":{"number":"8.11.0","distribution":"elasticsearch"},"tagline":"You Know, for Search"}"#
            }
        case .loki:
            status = "204 No Content"
            body = ""
        case .otlp:
            body = ""
        }
        let type = mode == .otlp ? "application/x-protobuf" : "application/json"
        let head = "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
        return head.withCString { writeAllBytes(fd: fd, $0, strlen($0)) }
    }

    /// One connection: requests until EOF.
    private func serve(_ fd: Int32) {
        defer { close(fd) }
        var cap = 1 << 20
        var buf = UnsafeMutablePointer<UInt8>.allocate(capacity: cap)
        defer { buf.deallocate() }
        var start = 0, end = 0
        /// Reads more bytes at `end`; false on EOF / error.
        func fill() -> Bool {
            if start > 0 && (end == cap || start > cap / 2) {
                if end > start { memmove(buf, buf + start, end - start) }
                end -= start
                start = 0
            }
            if end == cap {
                cap *= 2
                let nb = UnsafeMutablePointer<UInt8>.allocate(capacity: cap)
                nb.update(from: buf, count: end)
                buf.deallocate()
                buf = nb
            }
            while true {
                let n = read(fd, buf + end, cap - end)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                end += n
                return true
            }
        }
        /// Ensures `need` bytes from `start` are buffered.
        func ensure(_ need: Int) -> Bool {
            while end - start < need {
                if start + need > cap {
                    // grow so that `need` bytes fit after compaction
                    if end > start { memmove(buf, buf + start, end - start) }
                    end -= start
                    start = 0
                    if need > cap {
                        var nc = cap
                        while nc < need { nc *= 2 }
                        let nb = UnsafeMutablePointer<UInt8>.allocate(capacity: nc)
                        nb.update(from: buf, count: end)
                        buf.deallocate()
                        buf = nb
                        cap = nc
                    }
                }
                if !fill() { return false }
            }
            return true
        }
        let crlf2: StaticString = "\r\n\r\n"
        while true {
            // headers
            var headerEnd = -1
            while headerEnd < 0 {
                if end - start >= 4, let h = memmemFn(buf + start, end - start, crlf2.utf8Start, 4) {
                    headerEnd = h.assumingMemoryBound(to: UInt8.self) - buf
                    break
                }
                if !fill() { return }
            }
            let head = String(decoding: UnsafeBufferPointer(start: buf + start, count: headerEnd - start), as: UTF8.self)
            start = headerEnd + 4
            let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
            let reqLine = lines.first.map { $0.split(separator: " ") } ?? []
            let method = reqLine.count > 0 ? String(reqLine[0]) : ""
            let path = reqLine.count > 1 ? String(reqLine[1]) : "/"
            var contentLength = 0
            var chunked = false
            var expectContinue = false
            var protobuf = false
            for l in lines.dropFirst() {
                guard let colon = l.firstIndex(of: ":") else { continue }
                let name = l[..<colon].lowercased()
                let value = l[l.index(after: colon)...].trimmingCharacters(in: " ")
                switch name {
                case "content-length": contentLength = Int(value) ?? 0
                case "transfer-encoding": chunked = value.lowercased().contains("chunked")
                case "expect": expectContinue = value.lowercased() == "100-continue"
                case "content-type": protobuf = value.lowercased().contains("protobuf")
                default: break
                }
            }
            if expectContinue {
                let c = "HTTP/1.1 100 Continue\r\n\r\n"
                _ = c.withCString { writeAllBytes(fd: fd, $0, strlen($0)) }
            }
            if chunked {
                // chunks are copied together into one body
                var body: [UInt8] = []
                while true {
                    var lineEnd = -1
                    while lineEnd < 0 {
                        if let nl = memchr(buf + start, 0x0A, end - start) {
                            lineEnd = nl.assumingMemoryBound(to: UInt8.self) - buf
                        } else if !fill() { return }
                    }
                    let sizeText = String(decoding: UnsafeBufferPointer(start: buf + start, count: lineEnd - start), as: UTF8.self)
                    let hex = sizeText.split(separator: ";").first.map { $0.trimmingCharacters(in: " \r") } ?? ""
                    let size = Int(hex, radix: 16) ?? 0
                    start = lineEnd + 1
                    if !ensure(size + 2) { return }
                    body.append(contentsOf: UnsafeBufferPointer(start: buf + start, count: size))
                    start += size + 2
                    if size == 0 { break }
                }
                body.withUnsafeBufferPointer { b in
                    if b.count > 0 { countBody(b.baseAddress!, b.count, protobuf: protobuf) }
                }
            } else if contentLength > 0 {
                if !ensure(contentLength) { return }
                countBody(buf + start, contentLength, protobuf: protobuf)
                start += contentLength
            }
            if !respond(fd, method: method, path: path) { return }
        }
    }
}

private extension Substring {
    func trimmingCharacters(in set: String) -> String {
        var s = self[...]
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

private final class ThreadBody {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// Starts a detached pthread running `body`.
func startThread(_ body: @escaping () -> Void) {
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var tid = pthread_t()
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
    let rc = pthread_create(&tid, &attr, { arg in
        let b = Unmanaged<ThreadBody>.fromOpaque(arg!).takeRetainedValue()
        b.run()
        return nil
    }, box)
    pthread_attr_destroy(&attr)
    if rc != 0 {
        Unmanaged<ThreadBody>.fromOpaque(box).release()
        note("sluice-bench: cannot start a receiver thread: \(errnoText(rc))")
    }
}

/// Sends `method path` with `body` to 127.0.0.1:`port` with HTTP/1.0; returns (status, response body).
func httpRequest(port: Int, method: String = "POST", path: String, body: String, timeoutSec: Int = 30) -> (Int, String)? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    if fd < 0 { return nil }
    defer { close(fd) }
    var tv = timeval(tv_sec: timeoutSec, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    if rc != 0 { return nil }
    let req = "\(method) \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
    guard req.withCString({ writeAllBytes(fd: fd, $0, strlen($0)) }) else { return nil }
    var resp: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, 65536) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        resp.append(contentsOf: chunk[0..<n])
    }
    let text = String(decoding: resp, as: UTF8.self)
    guard let sep = text.firstRange(of: "\r\n\r\n") else { return nil }
    let status = text[..<sep.lowerBound].split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
    return (status, String(text[sep.upperBound...]))
}

/// The strings of an OTLP logs request that can hold a line: each record's body, a string
/// (Sluice) or the strings of a key/value list (Fluent Bit's record as a map). Fields by number:
/// ExportLogsServiceRequest.resource_logs 1, ResourceLogs.scope_logs 2, ScopeLogs.log_records 2,
/// LogRecord.body 5, AnyValue.string_value 1 / kvlist_value 6, KeyValueList.values 1, KeyValue.value 2.
enum OTLPBodies {
    enum Kind { case request, resourceLogs, scopeLogs, logRecord, anyValue, kvList, keyValue }

    /// Calls `string` with each body string; false when the bytes are not a well-formed message.
    static func walk(_ p: UnsafePointer<UInt8>, _ n: Int, _ kind: Kind, _ string: (UnsafePointer<UInt8>, Int) -> Void) -> Bool {
        var i = 0
        func varint() -> UInt64? {
            var v: UInt64 = 0, shift: UInt64 = 0
            while i < n && shift < 64 {
                let b = p[i]
                i += 1
                v |= UInt64(b & 0x7F) << shift
                if b < 0x80 { return v }
                shift += 7
            }
            return nil
        }
        while i < n {
            guard let key = varint() else { return false }
            let field = key >> 3
            switch key & 7 {
            case 0: guard varint() != nil else { return false }
            case 1: i += 8
            case 5: i += 4
            case 2:
                guard let len = varint(), len <= UInt64(n - i) else { return false }
                let sub = p + i, m = Int(len)
                i += m
                let inner: Kind?
                switch (kind, field) {
                case (.request, 1): inner = .resourceLogs
                case (.resourceLogs, 2): inner = .scopeLogs
                case (.scopeLogs, 2): inner = .logRecord
                case (.logRecord, 5), (.keyValue, 2): inner = .anyValue
                case (.anyValue, 6): inner = .kvList
                case (.kvList, 1): inner = .keyValue
                case (.anyValue, 1):
                    string(sub, m)
                    inner = nil
                default: inner = nil
                }
                if let inner, !walk(sub, m, inner, string) { return false }
            default: return false
            }
            if i > n { return false }
        }
        return true
    }
}
