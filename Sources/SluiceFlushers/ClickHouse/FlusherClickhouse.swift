import Logging
import NIOCore
import SluiceConfig
import SluiceCore
import SluiceSystem
import Synchronization

/// `flusher_clickhouse`: inserts over ClickHouse's HTTP interface, one `INSERT … FORMAT
/// JSONEachRow` per request. `Format: ilogtail` (the default) keeps the incumbent's layout: a Null
/// table `ilogtail_<Table>` (`_timestamp` Int64, `_log` String) with its Buffer table, created at
/// start, each event's document in `_log`. `Format: JSONEachRow` inserts each event's flat document
/// into the user's `Table` as a row (unknown fields skipped). A retry sends the same block, so a
/// Replicated table deduplicates it. A server answer with a data error (bad row, unknown column,
/// syntax) is rejected and counted; anything else is retried.
public final class FlusherClickhouse: FlusherPlugin {
    public static let spec = PluginSpec(
        type: "flusher_clickhouse", kind: .flusher,
        summary: "Inserts events into ClickHouse over its HTTP interface, one `INSERT … FORMAT JSONEachRow` per request. **Delivery:** a batch is acknowledged when ClickHouse answered 200 to its insert; data errors (a row the table cannot take, an unknown table in `JSONEachRow` mode) are rejected and counted; everything else is retried with the same block, which a Replicated table deduplicates. `Format: ilogtail` writes the incumbent's Null + Buffer tables (a Buffer table acknowledges before its data is on disk); `Format: JSONEachRow` writes fields into your table. **Unlike the incumbent** (native protocol on 9000, no retry), Sluice speaks HTTP (8123) and retries; `_timestamp` is the event time, not the flush time.",
        fields: [
            FieldSpec(name: "Addresses", type: .stringList, doc: "HTTP interface addresses (required): `http://host:8123` or `host:8123`. The native port 9000 the incumbent uses is refused with a hint.", defaultValue: nil),
            FieldSpec(name: "Table", type: .string, doc: "Table base name (required).", defaultValue: nil),
            FieldSpec(name: "Cluster", type: .string, doc: "Adds `ON CLUSTER '<Cluster>'` to the tables' DDL.", defaultValue: nil),
            FieldSpec(name: "Format", type: .string, doc: "Sluice: `ilogtail` (the incumbent's tables) or `JSONEachRow` (fields into the user's Table).", defaultValue: "ilogtail"),
            HTTPClientOptions.authenticationField,
            HTTPClientOptions.compressionField(default: ""),
            FieldSpec(name: "MaxExecutionTime", type: .int, doc: "Seconds: the `max_execution_time` setting.", defaultValue: "60"),
            FieldSpec(name: "DialTimeout", type: .any, doc: "Connect timeout.", defaultValue: "10s"),
            FieldSpec(name: "MaxOpenConns", type: .int, doc: "Inserts in flight (and connections).", defaultValue: "5"),
            FieldSpec(name: "MaxIdleConns", type: .int, doc: "Accepted.", defaultValue: "5"),
            FieldSpec(name: "ConnMaxLifetime", type: .any, doc: "Accepted.", defaultValue: nil),
            FieldSpec(name: "BlockBufferSize", type: .int, doc: "Accepted.", defaultValue: "10"),
            FieldSpec(name: "BufferNumLayers", type: .int, doc: "Buffer engine: layers.", defaultValue: "16"),
            FieldSpec(name: "BufferMinTime", type: .int, doc: "Buffer engine: min_time.", defaultValue: "10"),
            FieldSpec(name: "BufferMaxTime", type: .int, doc: "Buffer engine: max_time.", defaultValue: "100"),
            FieldSpec(name: "BufferMinRows", type: .int, doc: "Buffer engine: min_rows.", defaultValue: "10000"),
            FieldSpec(name: "BufferMaxRows", type: .int, doc: "Buffer engine: max_rows.", defaultValue: "1000000"),
            FieldSpec(name: "BufferMinBytes", type: .int, doc: "Buffer engine: min_bytes.", defaultValue: "10000000"),
            FieldSpec(name: "BufferMaxBytes", type: .int, doc: "Buffer engine: max_bytes.", defaultValue: "100000000"),
            FieldSpec(name: "MaxInsertBytes", type: .int, doc: "Sluice: input bytes per insert.", defaultValue: "4194304"),
            ConvertOptions.field(protocols: [.customSingle, .customSingleFlatten]),
            FlusherRoute.matchField,
        ])

    public struct Options: Sendable {
        public var addresses: [String]
        public var table: String
        public var database = "default"
        public var cluster = ""
        public var jsonEachRow = false
        public var user = ""
        public var password = ""
        public var maxExecutionTime = 60
        public var buffer = [16, 10, 100, 10000, 1_000_000, 10_000_000, 100_000_000]
        public var maxInsertBytes = 4 << 20
        public var convert = ConvertOptions()
        public var client = HTTPClientOptions()
        public var concurrency = 5
    }

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        var addrs: [String] = []
        for a in try c.stringList("Addresses") ?? [] {
            let url = a.hasPrefix("http://") || a.hasPrefix("https://") ? a : "http://" + a
            if url.hasSuffix(":9000") || url.hasSuffix(":9000/") {
                throw c.error(at: "Addresses", "\(a): Sluice speaks ClickHouse's HTTP interface; use its port (8123 by default), not the native 9000")
            }
            addrs.append(url.hasSuffix("/") ? String(url.dropLast()) : url)
        }
        guard !addrs.isEmpty else { throw c.error(at: nil, "Addresses is required") }
        guard let table = try c.string("Table"), !table.isEmpty else { throw c.error(at: nil, "Table is required") }
        var o = Options(addresses: addrs, table: table)
        o.cluster = try c.string("Cluster") ?? ""
        switch try c.string("Format") ?? "ilogtail" {
        case "ilogtail": o.jsonEachRow = false
        case "JSONEachRow": o.jsonEachRow = true
        case let v: throw c.error(at: "Format", "unknown format \"\(v)\" (known: ilogtail, JSONEachRow)")
        }
        if let p = try c.object("Authentication")?.object("PlainText") {
            o.user = try p.expandedString("Username") ?? ""
            o.password = try p.expandedString("Password") ?? ""
            if let db = try p.string("Database"), !db.isEmpty { o.database = db }
        }
        // TLS settings; the credentials go in ClickHouse's own headers, not as Basic auth.
        try o.client.readAuthentication(c)
        o.client.auth = nil
        try o.client.readCompression(c)
        if let n = try c.int("MaxExecutionTime") { o.maxExecutionTime = max(1, n) }
        if let d = try GoDuration.read(c, "DialTimeout") { o.client.connectTimeout = d }
        o.client.requestTimeout = .seconds(Int64(o.maxExecutionTime) + 10)
        if let n = try c.int("MaxOpenConns") { o.concurrency = max(1, n) }
        for (i, k) in ["BufferNumLayers", "BufferMinTime", "BufferMaxTime", "BufferMinRows", "BufferMaxRows", "BufferMinBytes", "BufferMaxBytes"].enumerated() {
            if let v = try c.int(k) {
                guard v >= 0 else { throw c.error(at: k, "must be ≥ 0") }
                o.buffer[i] = v
            }
        }
        if let n = try c.int("MaxInsertBytes") { o.maxInsertBytes = max(1024, n) }
        o.convert = try ConvertOptions.read(c, allowed: [.customSingle, .customSingleFlatten])
        if o.jsonEachRow && !c.has("Convert") { o.convert.protocol = .customSingleFlatten }
        o.client.maxConnectionsPerHost = o.concurrency
        return o
    }

    let options: Options
    let logger: Logger
    let sender: HTTPSender
    let next = Atomic<Int>(0)
    /// Whether the incumbent's tables exist (created at start, again after "unknown table").
    let tablesReady = Atomic<Bool>(false)
    public let delivery: DeliveryOptions
    /// The bodies, reused once sent: room for all in flight.
    let bodies: BodyBufferPool
    /// Encode buffers for compressed bodies (an uncompressed one is encoded in place).
    let buffers = BufferPool(keep: 2)

    public init(options: Options, context: PluginContext) throws {
        self.options = options
        logger = context.logger
        sender = try HTTPSender(options: options.client)
        delivery = DeliveryOptions(maxBytes: options.maxInsertBytes, concurrency: options.concurrency)
        bodies = BodyBufferPool(inFlight: delivery)
    }

    static func quote(_ name: String) -> String { "`" + name.split(separator: "`", omittingEmptySubsequences: false).joined(separator: "``") + "`" }
    var nullTable: String { FlusherClickhouse.quote(options.database) + "." + FlusherClickhouse.quote("ilogtail_" + options.table) }
    var bufferTable: String { FlusherClickhouse.quote(options.database) + "." + FlusherClickhouse.quote("ilogtail_" + options.table + "_buffer") }
    var onCluster: String { options.cluster.isEmpty ? "" : " ON CLUSTER '\(options.cluster.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "\\'"))'" }

    /// The insert statement of every request.
    var insertQuery: String {
        options.jsonEachRow
            ? "INSERT INTO \(FlusherClickhouse.quote(options.database)).\(FlusherClickhouse.quote(options.table)) FORMAT JSONEachRow"
            : "INSERT INTO \(bufferTable) (_timestamp, _log) FORMAT JSONEachRow"
    }

    public func start() async throws {
        if !options.jsonEachRow { try await createTables() }
    }

    func createTables() async throws(FlushError) {
        let b = options.buffer
        let ddl = [
            "CREATE TABLE IF NOT EXISTS \(nullTable)\(onCluster) (`_timestamp` Int64, `_log` String) ENGINE = Null",
            "CREATE TABLE IF NOT EXISTS \(bufferTable)\(onCluster) AS \(nullTable) ENGINE = Buffer(\(FlusherClickhouse.quote(options.database)), \(FlusherClickhouse.quote("ilogtail_" + options.table))," +
                " \(b[0]), \(b[1]), \(b[2]), \(b[3]), \(b[4]), \(b[5]), \(b[6]))",
        ]
        for q in ddl {
            var body = ByteBufferAllocator().buffer(capacity: q.utf8.count)
            body.writeString(q)
            let ex = await sender.send(url: url(query: nil), headers: authHeaders, body: body)
            if case .response(let s, _, _) = ex, (200...299).contains(s) { continue }
            let why: String
            switch ex {
            case .failed(let m): why = m
            case .response(let s, _, let body): why = HTTPStatusPolicy.describe(status: s, body: body)
            }
            throw FlushError("cannot create the tables: \(why)")
        }
        tablesReady.store(true, ordering: .releasing)
    }

    var authHeaders: [(String, String)] {
        var h: [(String, String)] = []
        if !options.user.isEmpty { h.append(("X-ClickHouse-User", options.user)) }
        if !options.password.isEmpty { h.append(("X-ClickHouse-Key", options.password)) }
        return h
    }

    func url(query: String?) -> String {
        let base = options.addresses[next.add(1, ordering: .relaxed).oldValue % options.addresses.count]
        var params = [("max_execution_time", String(options.maxExecutionTime))]
        if let query { params.append(("query", query)) }
        if options.jsonEachRow { params.append(("input_format_skip_unknown_fields", "1")) }
        return URLQuery.append(params, to: base + "/")
    }

    public func stop() async { await sender.shutdown() }

    public func makeRequest(_ batches: [EventBatch]) async throws(FlushError) -> HTTPPostsRequest {
        var enc = LogDocumentEncoder(options: options.convert)
        var events = 0
        func encodeRows(_ rows: OutputBuffer) {
            for batch in batches {
                enc.begin(batch)
                events += batch.events.count
                for i in batch.events.indices {
                    if options.jsonEachRow {
                        guard enc.append(i, of: batch, to: rows) else { continue }
                    } else {
                        let start = rows.count
                        rows.append("{\"_timestamp\":")
                        rows.append(decimal: LogDocumentEncoder.seconds(of: batch.events[i], batch))
                        rows.append(",\"_log\":\"")
                        // The document as a string, escaped as it is encoded.
                        guard enc.appendAsString(i, of: batch, to: rows) else {
                            rows.count = start
                            continue
                        }
                        rows.append("\"}")
                    }
                    rows.append(byte: 0x0A)
                }
            }
        }
        let scratch = buffers.take()
        defer { buffers.put(scratch) }
        let body = try bodies.body(options.client.compression, forInput: batches.reduce(0) { $0 + $1.arena.count }, scratch: scratch, encodeRows)
        return HTTPPostsRequest(posts: [HTTPPost(url: "", headers: [], body: body, events: events)])
    }

    /// ClickHouse error codes that mean the data or the statement is wrong: sending the same block
    /// again cannot succeed.
    static let permanentCodes: Set<Int> = [6, 16, 26, 27, 38, 41, 53, 62, 69, 70, 72, 117, 130, 131]
    /// Unknown table (60), database (81) or setting (115): with `Format: JSONEachRow` the table is
    /// the user's, and Sluice does not create it, so these are rejected too (with `ilogtail` the
    /// tables are created again and the insert retried).
    static let missingTargetCodes: Set<Int> = [60, 81, 115]

    public func send(_ request: HTTPPostsRequest) async -> SendOutcome<HTTPPostsRequest> {
        if !options.jsonEachRow && !tablesReady.load(ordering: .acquiring) {
            do { try await createTables() } catch { return .retry(after: nil, reason: error.description) }
        }
        let post = request.posts[0]
        let exchange = await sender.send(url: url(query: insertQuery), headers: authHeaders, body: post.body)
        guard case .response(let status, _, let body) = exchange, !(200...299).contains(status) else {
            return HTTPStatusPolicy.standard.outcome(exchange)
        }
        let text = String(decoding: body.readableBytesView.prefix(2048), as: UTF8.self)
        let code = FlusherClickhouse.errorCode(text)
        if code == 60 && !options.jsonEachRow { tablesReady.store(false, ordering: .releasing) }
        if let code, FlusherClickhouse.permanentCodes.contains(code) || (options.jsonEachRow && FlusherClickhouse.missingTargetCodes.contains(code)) {
            return .rejected(reason: HTTPStatusPolicy.describe(status: status, body: body))
        }
        if (400...499).contains(status) && status != 408 && status != 429 && code == nil {
            return .rejected(reason: HTTPStatusPolicy.describe(status: status, body: body))
        }
        return .retry(after: nil, reason: HTTPStatusPolicy.describe(status: status, body: body))
    }

    /// `Code: 60` from a ClickHouse error text.
    static func errorCode(_ text: String) -> Int? {
        guard let r = text.range(of: "Code: ") else { return nil }
        return Int(text[r.upperBound...].prefix { $0.isNumber })
    }
}
