import Crypto
import Logging
import NIOCore
import SluiceConfig
import SluiceCore
import SluiceSystem
import Synchronization

/// `flusher_elasticsearch`: `_bulk` requests to Elasticsearch or OpenSearch, every item's outcome
/// read (Filebeat's model): an item answered 2xx is delivered, 409 on `create` is a duplicate of
/// one already indexed (delivered), 429 and 5xx items are retried alone, other 4xx items are
/// rejected and counted with the server's reason; a 413 splits the request in halves. With
/// `GenerateId` each document gets a deterministic `_id` and `create`, so a retried item is never
/// indexed twice.
public final class FlusherElasticsearch: FlusherPlugin {
    public static let spec = PluginSpec(
        type: "flusher_elasticsearch", kind: .flusher,
        summary: "Indexes events into Elasticsearch / OpenSearch with `_bulk`. **Delivery:** every item's result is read: 2xx and 409 are delivered, 429 / 5xx items are retried alone until delivered, other item errors are rejected and counted with the server's reason, a 413 splits the request; a batch is acknowledged when all its items are delivered or rejected. With `GenerateId`, neither a retry nor a re-read after a crash indexes a line twice. **Unlike the incumbent**, which drops a failed `_bulk` and never looks at item errors, Sluice retries; an empty `Authentication.PlainText` is allowed (servers without auth).",
        fields: [
            FieldSpec(name: "Addresses", type: .stringList, doc: "Base URLs, e.g. `http://es:9200` (required); used in turn, the next one after a network error.", defaultValue: nil),
            FieldSpec(name: "Index", type: .string, doc: "Target index (required): `%{content.x}`, `%{tag.x}`, `%{+yyyy.MM.dd}` (the flush time in local time, as the incumbent; its letters: `yyyy`, `yy`, `MM`/`M`, `MMM`, `dd`/`d`, `EEE`, `HH`, `KK`, `mm`, `ss`, `aa`, `ww` the ISO week).", defaultValue: nil),
            FieldSpec(name: "OpType", type: .string, doc: "Sluice: `index` (the incumbent's) or `create` (data streams; a 409 then counts as delivered).", defaultValue: "index"),
            FieldSpec(name: "GenerateId", type: .bool, doc: "Sluice: a deterministic `_id` per document with `create` (a line of a file: its file, offset and bytes; else its time, bytes and place in the batch), so neither a retry nor a re-read after a crash indexes an event twice.", defaultValue: "false"),
            FieldSpec(name: "Timeout", type: .any, doc: "Sluice: request timeout (nanoseconds or text such as `60s`).", defaultValue: "60s"),
            FieldSpec(name: "MaxBulkBytes", type: .int, doc: "Sluice: input bytes per `_bulk` request.", defaultValue: "5242880"),
            HTTPClientOptions.compressionField(default: ""),
            HTTPClientOptions.authenticationField,
            FieldSpec(name: "HTTPConfig", type: .object(fields: [
                FieldSpec(name: "MaxIdleConnsPerHost", type: .int, doc: "Connections kept per host.", defaultValue: nil),
                FieldSpec(name: "ResponseHeaderTimeout", type: .string, doc: "Accepted; Timeout applies.", defaultValue: nil),
            ]), doc: "Connection settings.", defaultValue: nil),
            ConvertOptions.field(protocols: [.customSingle, .customSingleFlatten]),
            FieldSpec(name: "Concurrency", type: .int, doc: "Sluice: requests in flight. Default: `send_request_concurrency`.", defaultValue: nil),
            FlusherRoute.matchField,
        ])

    public struct Options: Sendable {
        public var addresses: [String]
        public var index: DynamicTemplate
        public var create = false
        public var generateId = false
        public var maxBulkBytes = 5 << 20
        public var convert = ConvertOptions()
        public var client = HTTPClientOptions()
        public var concurrency: Int
    }

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        let addrs = try c.stringList("Addresses") ?? []
        guard !addrs.isEmpty else { throw c.error(at: nil, "Addresses is required") }
        for a in addrs where !(a.hasPrefix("http://") || a.hasPrefix("https://")) {
            throw c.error(at: "Addresses", "\(a): must start with http:// or https://")
        }
        guard let idx = try c.string("Index"), !idx.isEmpty else { throw c.error(at: nil, "Index is required") }
        let index: DynamicTemplate
        do { index = try DynamicTemplate(parsing: idx) } catch { throw c.error(at: "Index", error.message) }
        var o = Options(addresses: addrs.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }, index: index, concurrency: try HTTPClientOptions.concurrency(c, globals: globals))
        switch try c.string("OpType") ?? "index" {
        case "index": o.create = false
        case "create": o.create = true
        case let v: throw c.error(at: "OpType", "unknown op type \"\(v)\" (known: index, create)")
        }
        o.generateId = try c.bool("GenerateId") ?? false
        if o.generateId { o.create = true }
        if let n = try c.int("MaxBulkBytes") {
            guard n >= 1024 else { throw c.error(at: "MaxBulkBytes", "must be ≥ 1024") }
            o.maxBulkBytes = n
        }
        if let t = try GoDuration.read(c, "Timeout") { o.client.requestTimeout = t }
        o.convert = try ConvertOptions.read(c, allowed: [.customSingle, .customSingleFlatten])
        try o.client.readCompression(c)
        try o.client.readAuthentication(c)
        o.client.maxConnectionsPerHost = max(o.concurrency, try c.object("HTTPConfig")?.int("MaxIdleConnsPerHost") ?? 0)
        return o
    }

    let options: Options
    let sender: HTTPSender
    let next = Atomic<Int>(0)
    public let delivery: DeliveryOptions

    public init(options: Options, context: PluginContext) throws {
        self.options = options
        sender = try HTTPSender(options: options.client)
        delivery = DeliveryOptions(maxBytes: options.maxBulkBytes, concurrency: options.concurrency)
        stores = BodyBufferPool(inFlight: delivery, largest: max(8 << 20, 4 * options.maxBulkBytes))
    }

    /// The requests' byte stores, reused once a request is done with its store: a fresh one per
    /// request (about 8 MiB for 5 MiB of input) was faulted in and cleared page by page, a fifth
    /// of the flusher's CPU in the elasticsearch bench. A request's store is held until every
    /// item of it is delivered or rejected, so at most `Concurrency` of them are in use. (Before,
    /// none was kept: 5 MiB of input asks for 12.5 MiB, NIO makes that 16 MiB, over `largest`.)
    let stores: BodyBufferPool

    public func start() async throws {}
    public func stop() async { await sender.shutdown() }

    public func makeRequest(_ batches: [EventBatch]) async throws(FlushError) -> BulkRequest {
        var enc = LogDocumentEncoder(options: options.convert)
        let doc = OutputBuffer(capacity: 4096)
        var items: [Range<Int>] = []
        var empty = 0
        let now = Sys.wallSeconds()
        let action = options.create ? "create" : "index"
        let input = batches.reduce(0) { $0 + $1.arena.count }
        // Encoded straight into the request's store: no 8 MiB copy out of an encode buffer.
        let store = stores.fill(forInput: input) { out in
            for batch in batches {
                enc.begin(batch)
                // The action line's head (`{"index":{"_index":"x"`), once per batch when the index
                // does not depend on the event.
                let head = OutputBuffer(capacity: 128)
                func writeHead(_ index: String) {
                    head.clear()
                    head.append("{\"\(action)\":{\"_index\":")
                    JSONLineEncoder.appendString(index, to: head)
                }
                let perEvent = options.index.usesContent
                if !perEvent { writeHead(options.index.render(event: 0, of: batch, tags: enc.tagValues, now: now)) }
                var seen: [SHA256Digest: Int] = [:]
                for i in batch.events.indices {
                    if perEvent { writeHead(options.index.render(event: i, of: batch, tags: enc.tagValues, now: now)) }
                    let start = out.count
                    if options.generateId && batch.sourceOffset < 0 {
                        // The id is made from the document: encode it first.
                        doc.clear()
                        guard enc.append(i, of: batch, to: doc) else {
                            empty += 1
                            continue
                        }
                        out.append(head.base, head.count)
                        out.append(",\"_id\":\"")
                        out.append(documentId(doc, batch: batch, event: i, seen: &seen))
                        out.append("\"}}\n")
                        out.append(doc.base, doc.count)
                    } else {
                        out.append(head.base, head.count)
                        if options.generateId {
                            out.append(",\"_id\":\"")
                            out.append(documentId(doc, batch: batch, event: i, seen: &seen))
                            out.append("\"")
                        }
                        out.append(literal: "}}\n")
                        guard enc.append(i, of: batch, to: out) else {
                            out.count = start
                            empty += 1
                            continue
                        }
                    }
                    out.append(byte: 0x0A)
                    items.append(start..<out.count)
                }
            }
        }
        var request = BulkRequest(store: store, items: items, itemsPerBody: max(1, items.count))
        request.emptyEvents = empty
        return request
    }

    /// A deterministic `_id`, 40 hex chars of SHA-256. An event read from a file's own bytes is
    /// named by where it is and what it is: the file's identity, the event's offset in it and its
    /// bytes, so reading it again after a crash gives the same `_id` (a 409, not a second
    /// document), while other lines written at that offset after a truncation (copytruncate) get
    /// their own. Other events (runtime
    /// logs, transcoded files) are named by their time, their document and how many identical
    /// documents came before them in the batch, which is stable across retries of the request and,
    /// for runtime logs whose time is the runtime's, across re-reads.
    func documentId(_ doc: OutputBuffer, batch: EventBatch, event i: Int, seen: inout [SHA256Digest: Int]) -> String {
        var h = SHA256()
        let ev = batch.events[i]
        if batch.sourceOffset >= 0 {
            var key = (batch.sourceKey, batch.sourceOffset + Int64(ev.content.offset), Int64(ev.content.length))
            withUnsafeBytes(of: &key) { h.update(bufferPointer: $0) }
            batch.arena.withUnsafeBytes { h.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[Int(ev.content.offset)..<Int(ev.content.offset) + Int(ev.content.length)])) }
            return DocumentIDs.hex(h.finalize())
        }
        var t = ev.timeNanos == 0 ? batch.observedNanos : ev.timeNanos
        withUnsafeBytes(of: &t) { h.update(bufferPointer: $0) }
        h.update(bufferPointer: UnsafeRawBufferPointer(doc.bytes))
        let base = h.finalize()
        let n = seen[base, default: 0]
        seen[base] = n + 1
        var h2 = SHA256()
        base.withUnsafeBytes { h2.update(bufferPointer: $0) }
        var k = n
        withUnsafeBytes(of: &k) { h2.update(bufferPointer: $0) }
        return DocumentIDs.hex(h2.finalize())
    }

    public func send(_ request: BulkRequest) async -> SendOutcome<BulkRequest> {
        var retry: [Range<Int>] = []
        var rejected = 0
        var delivered = 0
        var reason = ""
        var asked: Duration?
        var perBody = request.itemsPerBody
        var start = 0
        while start < request.items.count {
            let end = min(request.items.count, start + perBody)
            let body: ByteBuffer
            do { body = try options.client.compression.compress(request.body(start..<end)) } catch { return .rejected(reason: error.description) }
            let base = options.addresses[next.add(1, ordering: .relaxed).oldValue % options.addresses.count]
            let exchange = await sender.send(url: base + "/_bulk?filter_path=errors,items.*.error,items.*.status",
                                             headers: [("Content-Type", "application/x-ndjson")], body: body)
            let slice = Array(request.items[start..<end])
            switch exchange {
            case .failed(let why):
                retry += slice
                reason = why
            case .response(let status, let headers, let answer):
                if status == 413 {
                    if slice.count == 1 {
                        rejected += 1
                        reason = "HTTP 413: a single document is larger than the server accepts"
                    } else {
                        // Split: this body's items go again in halves.
                        perBody = max(1, slice.count / 2)
                        retry += slice
                        reason = "HTTP 413: request too large; splitting"
                    }
                } else if HTTPStatusPolicy.standard.isRetried(status) {
                    retry += slice
                    reason = HTTPStatusPolicy.describe(status: status, body: answer)
                    asked = HTTPStatusPolicy.retryAfter(headers, now: Sys.wallNanos()) ?? asked
                } else if !(200...299).contains(status) {
                    rejected += slice.count
                    reason = HTTPStatusPolicy.describe(status: status, body: answer)
                } else if BulkResponse.hasNoErrors(answer) {
                    delivered += slice.count
                } else {
                    let r = itemOutcomes(answer, slice)
                    delivered += r.delivered
                    rejected += r.rejected
                    retry += r.retry
                    if !r.reason.isEmpty { reason = r.reason }
                }
            }
            start = end
        }
        if retry.isEmpty && rejected == 0 { return .delivered }
        if delivered == 0 && rejected == 0 && perBody == request.itemsPerBody { return .retry(after: asked, reason: reason) }
        if delivered == 0 && retry.isEmpty { return .rejected(reason: reason) }
        return .partial(retry: request.with(items: retry, itemsPerBody: perBody), rejected: rejected, reason: reason)
    }

    /// Item by item: 2xx and 409 (a duplicate of what is indexed) delivered, 429 and 5xx retried,
    /// other statuses rejected with the server's error. An answer that cannot be read retries all.
    func itemOutcomes(_ answer: ByteBuffer, _ items: [Range<Int>]) -> (delivered: Int, rejected: Int, retry: [Range<Int>], reason: String) {
        guard let r = try? BulkResponse.decode(answer), let results = r.items, results.count == items.count else {
            return (0, 0, items, "the _bulk answer could not be read: \(HTTPStatusPolicy.describe(status: 200, body: answer))")
        }
        var d = 0, rej = 0
        var retry: [Range<Int>] = []
        var reason = ""
        for (k, item) in results.enumerated() {
            guard let res = item.values.first else { retry.append(items[k]); continue }
            if (200...299).contains(res.status) || res.status == 409 {
                d += 1
            } else if HTTPStatusPolicy.standard.isRetried(res.status) {
                retry.append(items[k])
                reason = "item status \(res.status): \(res.error?.text ?? "")"
            } else {
                rej += 1
                reason = "item status \(res.status): \(res.error?.text ?? "")"
            }
        }
        return (d, rej, retry, reason)
    }
}

enum DocumentIDs {
    static let digits = Array("0123456789abcdef".utf8)
    /// The first 20 bytes of `d` as 40 lower-case hex digits.
    static func hex(_ d: SHA256Digest) -> String {
        var s: [UInt8] = []
        s.reserveCapacity(40)
        for b in d.prefix(20) { s.append(digits[Int(b >> 4)]); s.append(digits[Int(b & 15)]) }
        return String(decoding: s, as: UTF8.self)
    }
}
