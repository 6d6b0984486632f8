import Logging
import SluiceConfig
import SluiceCore
import SluiceSystem
import Synchronization

/// `flusher_kafka_v2`: one Kafka message per event, its value the incumbent's `Convert` document,
/// on librdkafka's idempotent producer. A request's batches are acknowledged only when the
/// delivery report of every message says the broker has it (the incumbent's sarama producer, and
/// Fluent Bit, acknowledge on enqueue). Messages refused for good (too large, unknown topic) are
/// rejected and counted; the others are sent again until delivered.
public final class FlusherKafkaV2: FlusherPlugin {
    public static let spec = PluginSpec(
        type: "flusher_kafka_v2", kind: .flusher,
        summary: "Produces one Kafka message per event (the `Convert` document as its value) with librdkafka's idempotent producer. **Delivery:** a batch is acknowledged (its file position moves) only when the delivery report of every one of its messages says the broker has it; librdkafka retries a message until `message.timeout.ms` (5 min), then Sluice sends it again, so nothing is dropped; a message refused for good (too large, an unknown topic when the broker does not create topics, an invalid topic name) is rejected and counted (`discarded_events.rejected`). A full local queue is backpressure, never a drop. **Unlike the incumbent** (sarama's asynchronous producer: errors after 3 retries are only logged, data lost), and Fluent Bit (acknowledged on enqueue), nothing is acknowledged before the broker has it; `RequiredAcks` defaults to -1 (all in-sync replicas), which the idempotent producer needs.",
        fields: [
            FieldSpec(name: "Brokers", type: .stringList, doc: "Broker addresses `host:port` (required), one per element.", defaultValue: nil),
            FieldSpec(name: "Topic", type: .string, doc: "Topic (required); may use `%{content.<field>}`, `%{tag.<converted tag name>}` and `${ENV}`. A reference without a value renders as its own text (`app-content.service`), as the incumbent.", defaultValue: nil),
            FieldSpec(name: "Version", type: .string, doc: "Kafka protocol version; librdkafka asks the broker (ApiVersionRequest) and falls back to this one (`broker.version.fallback`).", defaultValue: "1.0.0"),
            FieldSpec(name: "ClientID", type: .string, doc: "`client.id`.", defaultValue: "LogtailPlugin"),
            FieldSpec(name: "PartitionerType", type: .string, doc: "`random` (a random partition, kept for 10 ms by librdkafka's sticky partitioning), `roundrobin` (one partition after the other, message by message), or `hash` (by the key from HashKeys, FNV-1a as the incumbent's sarama).", defaultValue: "random"),
            FieldSpec(name: "HashKeys", type: .stringList, doc: "With `hash`: `content.<field>` / `tag.<name>` references; the key is the values found joined with `###`, or the pipeline's name when none is found (the incumbent: the logstore name).", defaultValue: nil),
            FieldSpec(name: "HashOnce", type: .bool, doc: "Compute the key of the first event once and use it for every message.", defaultValue: "false"),
            FieldSpec(name: "RequiredAcks", type: .int, doc: "Acknowledgements the broker waits for: -1 all in-sync replicas, 1 the leader, 0 none. **Sluice's default is -1** (the incumbent's is 1): the idempotent producer requires it. 1 or 0 turn idempotence off: a retry may then write a message twice, and with 0 a delivery report only says the message was sent, not stored.", defaultValue: "-1"),
            FieldSpec(name: "Compression", type: .string, doc: "`none`, `gzip`, `snappy`, `lz4` or `zstd` (any case).", defaultValue: "none"),
            FieldSpec(name: "CompressionLevel", type: .int, doc: "gzip level 0-9 (used with gzip only, as the incumbent).", defaultValue: "4"),
            FieldSpec(name: "MaxMessageBytes", type: .int, doc: "Largest message (`message.max.bytes`); a larger one is rejected and counted.", defaultValue: "1000000"),
            FieldSpec(name: "MaxOpenRequests", type: .int, doc: "Requests in flight per broker connection (`max.in.flight`); at most 5 with the idempotent producer.", defaultValue: "5"),
            FieldSpec(name: "MaxRetries", type: .int, doc: "Accepted.", defaultValue: "3",
                      status: .acceptedNotYetEffective(reason: "librdkafka retries each message until message.timeout.ms, then Sluice sends it again until delivered: nothing is dropped after a number of tries")),
            FieldSpec(name: "Backoff", type: .object(fields: [
                FieldSpec(name: "Init", type: .any, doc: "First delay before Sluice sends failed messages again (nanoseconds or text).", defaultValue: "1s"),
                FieldSpec(name: "Max", type: .any, doc: "Longest delay.", defaultValue: "60s"),
            ]), doc: "Backoff between Sluice's tries of messages librdkafka gave up on.", defaultValue: nil),
            FieldSpec(name: "BulkMaxSize", type: .int, doc: "Messages per produce request (`batch.num.messages`).", defaultValue: "2048"),
            FieldSpec(name: "BulkFlushFrequency", type: .any, doc: "How long librdkafka waits to fill a batch (`linger.ms`), nanoseconds or text; 0 keeps librdkafka's 5 ms.", defaultValue: "0"),
            FieldSpec(name: "Timeout", type: .any, doc: "Network timeout (`socket.timeout.ms`), nanoseconds or text.", defaultValue: "30s"),
            FieldSpec(name: "BrokerTimeout", type: .any, doc: "How long the broker may take to acknowledge (`request.timeout.ms`).", defaultValue: "10s"),
            FieldSpec(name: "KeepAlive", type: .any, doc: "Non-zero turns TCP keep-alive on (`socket.keepalive.enable`).", defaultValue: "0"),
            FieldSpec(name: "ChanBufferSize", type: .int, doc: "Accepted; librdkafka's queue is bounded instead (a full queue is backpressure).", defaultValue: "256",
                      status: .acceptedNotYetEffective(reason: "librdkafka's own queue is bounded; a full queue holds data back")),
            FieldSpec(name: "Metadata", type: .object(fields: [
                FieldSpec(name: "Retry", type: .object(fields: [
                    FieldSpec(name: "Max", type: .int, doc: "Accepted.", defaultValue: "3"),
                    FieldSpec(name: "Backoff", type: .any, doc: "Accepted.", defaultValue: "250ms"),
                ]), doc: "Accepted; librdkafka retries metadata requests itself.", defaultValue: nil),
                FieldSpec(name: "RefreshFrequency", type: .any, doc: "`topic.metadata.refresh.interval.ms`.", defaultValue: "10m"),
                FieldSpec(name: "Full", type: .bool, doc: "Accepted; librdkafka asks for the topics it uses.", defaultValue: "false"),
            ]), doc: "Cluster metadata.", defaultValue: nil),
            FieldSpec(name: "Headers", type: .objectList(fields: [
                FieldSpec(name: "Key", type: .string, doc: "Header name; empty ones are skipped.", defaultValue: nil, aliases: ["key"]),
                FieldSpec(name: "Value", type: .string, doc: "Header value.", defaultValue: nil, aliases: ["value"]),
            ]), doc: "Static headers of every message.", defaultValue: nil),
            ConvertOptions.field(protocols: [.customSingle, .customSingleFlatten]),
            KafkaSettings.authenticationField,
            FieldSpec(name: "Kafka", type: .stringMap, doc: "Sluice: librdkafka properties set last, as they are (e.g. `message.timeout.ms`, `linger.ms`); `sluice validate` checks them.", defaultValue: nil),
            FlusherRoute.matchField,
        ])

    /// A `HashKeys` reference.
    public enum HashKey: Sendable, Equatable {
        case content(String)
        case tag(String)
    }

    public struct Options: Sendable {
        public var settings: KafkaSettings
        public var topic: DynamicTemplate
        public var hashKeys: [HashKey] = []
        public var hashOnce = false
        public var headers: [(String, String)] = []
        public var convert = ConvertOptions()
        public var backoff = Backoff(initial: .seconds(1), maximum: .seconds(60))
        /// Input bytes per request, and requests in flight: while some wait for their reports the
        /// next ones are produced, so librdkafka always has enough to fill its batches.
        public var maxRequestBytes = 4 << 20
        public var concurrency = 4
    }

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        let brokers = try c.stringList("Brokers") ?? []
        guard !brokers.isEmpty else { throw c.error(at: nil, "Brokers is required") }
        for b in brokers where b.isEmpty || b.contains(",") {
            throw c.error(at: "Brokers", "one broker per element, host:port (\"\(b)\")")
        }
        guard let topicText = try c.expandedString("Topic"), !topicText.isEmpty else { throw c.error(at: nil, "Topic is required") }
        let topic: DynamicTemplate
        do { topic = try DynamicTemplate(parsing: topicText) } catch { throw c.error(at: "Topic", error.message) }
        var s = KafkaSettings.base(brokers: brokers, clientID: try c.string("ClientID") ?? "LogtailPlugin")
        var o = Options(settings: s, topic: topic)

        let version = try c.string("Version") ?? "1.0.0"
        let parts = version.split(separator: ".", omittingEmptySubsequences: false)
        guard (3...4).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }) else {
            throw c.error(at: "Version", "expected a Kafka version such as 2.8.0, found \"\(version)\"")
        }
        s.set("broker.version.fallback", version)
        switch try c.string("PartitionerType") ?? "random" {
        case "random": s.partitioner = .random
        case "roundrobin": s.partitioner = .roundrobin
        case "hash": s.partitioner = .hash
        case let v: throw c.error(at: "PartitionerType", "unknown partitioner \"\(v)\" (known: random, roundrobin, hash)")
        }
        for k in try c.stringList("HashKeys") ?? [] {
            if k.hasPrefix("content."), k.count > 8 { o.hashKeys.append(.content(String(k.dropFirst(8)))) }
            else if k.hasPrefix("tag."), k.count > 4 { o.hashKeys.append(.tag(String(k.dropFirst(4)))) }
            else { throw c.error(at: "HashKeys", "unsupported field \"\(k)\" (use content.<field> or tag.<name>)") }
        }
        o.hashOnce = try c.bool("HashOnce") ?? false
        try s.setRequiredAcks(try c.int("RequiredAcks") ?? -1, c, key: "RequiredAcks")
        let codec = try c.string("Compression") ?? "none"
        try s.setCompression(codec, c, key: "Compression")
        let level = try c.int("CompressionLevel") ?? 4
        guard (0...9).contains(level) || codec.lowercased() != "gzip" else { throw c.error(at: "CompressionLevel", "gzip levels are 0 to 9") }
        if codec.lowercased() == "gzip" { s.set("compression.level", String(level)) }
        let maxBytes = try c.int("MaxMessageBytes") ?? 1_000_000
        guard maxBytes >= 1000 else { throw c.error(at: "MaxMessageBytes", "must be ≥ 1000") }
        s.set("message.max.bytes", String(maxBytes))
        let inFlight = try c.int("MaxOpenRequests") ?? 5
        guard inFlight >= 1 else { throw c.error(at: "MaxOpenRequests", "must be ≥ 1") }
        if s.idempotent && inFlight > 5 {
            throw c.error(at: "MaxOpenRequests", "at most 5 with the idempotent producer (RequiredAcks -1)")
        }
        s.set("max.in.flight", String(inFlight))
        let bulk = try c.int("BulkMaxSize") ?? 2048
        guard bulk >= 1 else { throw c.error(at: "BulkMaxSize", "must be ≥ 1") }
        s.set("batch.num.messages", String(bulk))
        if let d = try GoDuration.read(c, "BulkFlushFrequency"), d > .zero { s.set("linger.ms", KafkaSettings.millis(d, minimum: 0)) }
        s.set("socket.timeout.ms", KafkaSettings.millis(try GoDuration.read(c, "Timeout") ?? .seconds(30), minimum: 10))
        s.set("request.timeout.ms", KafkaSettings.millis(try GoDuration.read(c, "BrokerTimeout") ?? .seconds(10)))
        if let d = try GoDuration.read(c, "KeepAlive"), d > .zero { s.set("socket.keepalive.enable", "true") }
        var refresh: Duration = .seconds(600)
        if let m = try c.object("Metadata"), let d = try GoDuration.read(m, "RefreshFrequency") { refresh = d }
        s.set("topic.metadata.refresh.interval.ms", KafkaSettings.millis(refresh, minimum: 10))
        if let b = try c.object("Backoff") {
            if let d = try GoDuration.read(b, "Init") { o.backoff.initial = d }
            if let d = try GoDuration.read(b, "Max") { o.backoff.maximum = d }
        }
        for h in try c.objectList("Headers") ?? [] {
            let key = try h.string("Key") ?? ""
            if !key.isEmpty { o.headers.append((key, try h.expandedString("Value") ?? "")) }
        }
        o.convert = try ConvertOptions.read(c, allowed: [.customSingle, .customSingleFlatten])
        try s.readAuthentication(c)
        for (k, v) in try c.expandedPairs("Kafka") ?? [] { s.set(k, v) }
        if s.idempotent && !["all", "-1"].contains(s.value("acks") ?? "all") {
            throw c.error(at: "Kafka", "enable.idempotence needs acks=all")
        }
        try s.check(c)
        o.settings = s
        return o
    }

    let options: Options
    let logger: Logger
    let fallbackKey: String
    let producer: KafkaProducerSlot
    public let delivery: DeliveryOptions
    /// The HashOnce key, once computed.
    let onceKey = Mutex<[UInt8]?>(nil)

    public init(options: Options, context: PluginContext) throws {
        self.options = options
        logger = context.logger
        fallbackKey = context.pipelineName
        producer = KafkaProducerSlot(settings: options.settings, logger: context.logger)
        delivery = DeliveryOptions(maxBytes: options.maxRequestBytes, concurrency: options.concurrency, backoff: options.backoff)
        if !options.settings.idempotent {
            logger.warning("Kafka: RequiredAcks \(options.settings.value("acks") ?? "?") turns the idempotent producer off: a retry may write a message twice.")
        }
    }

    public func start() async throws { try producer.start() }

    public func makeRequest(_ batches: [EventBatch]) async throws(FlushError) -> KafkaRequest {
        let m = KafkaMessages(capacity: max(4096, batches.reduce(0) { $0 + $1.inputBytes } * 2))
        var enc = LogDocumentEncoder(options: options.convert)
        let staticTopic = options.topic.isStatic ? options.topic.text : nil
        let hashing = options.settings.partitioner == .hash
        let now = Sys.wallSeconds()
        var events = 0
        for batch in batches {
            enc.begin(batch)
            events += batch.events.count
            // Tag-only topics are the same for the whole batch.
            let batchTopic = staticTopic ?? (options.topic.usesContent ? nil : options.topic.render(event: 0, of: batch, tags: enc.tagValues, now: now))
            var topicNumber = batchTopic.map { m.topicNumber($0) }
            for i in batch.events.indices {
                let start = m.buffer.count
                guard enc.append(i, of: batch, to: m.buffer) else { continue }
                let length = m.buffer.count - start
                var key: Range<Int>?
                if hashing {
                    let before = m.buffer.count
                    appendKey(event: i, of: batch, tags: enc.tagValues, to: m.buffer)
                    key = before..<m.buffer.count
                }
                let t = topicNumber ?? m.topicNumber(options.topic.render(event: i, of: batch, tags: enc.tagValues, now: now))
                if batchTopic != nil { topicNumber = t }
                m.add(topic: t, value: start..<(start + length), key: key)
            }
        }
        return KafkaRequest(messages: m, events: events)
    }

    /// The message key of event `i`: the HashKeys values joined with `###`, or the fallback key.
    func appendKey(event i: Int, of batch: EventBatch, tags: [String: String], to out: OutputBuffer) {
        if options.hashOnce, let k = onceKey.withLock({ $0 }) { out.append(k); return }
        var parts: [String] = []
        for k in options.hashKeys {
            switch k {
            case .content(let f): if let v = DynamicTemplate.field(f, event: i, of: batch) { parts.append(v) }
            case .tag(let t): if let v = tags[t] { parts.append(v) }
            }
        }
        let key = parts.isEmpty ? fallbackKey : parts.joined(separator: "###")
        if options.hashOnce { onceKey.withLock { if $0 == nil { $0 = Array(key.utf8) } } }
        out.append(key)
    }

    public func send(_ request: KafkaRequest) async -> SendOutcome<KafkaRequest> {
        await producer.send(request, headers: options.headers)
    }

    public func stop() async { await producer.close() }
}
