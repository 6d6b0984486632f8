import Glibc
import Logging
import SluiceConfig
import SluiceCore
import SluiceSystem

/// `flusher_kafka_native` (LoongCollector's C++ Kafka flusher, reference §3.5): the same producer
/// and delivery as `flusher_kafka_v2`, with the native flusher's parameter names and units
/// (milliseconds) and its message value: the `flusher_file` JSON line of the event, newline
/// included.
public final class FlusherKafkaNative: FlusherPlugin {
    public static let spec = PluginSpec(
        type: "flusher_kafka_native", kind: .flusher,
        summary: "LoongCollector's native Kafka flusher: one message per event, its value the event's JSON line as `flusher_file` writes it (ending with a newline, as the incumbent's). Same producer and delivery as `flusher_kafka_v2`: a batch is acknowledged only when every message's delivery report says the broker has it; messages refused for good are rejected and counted; the rest is sent again until delivered. **Unlike the incumbent**, `RequiredAcks` defaults to -1 with the idempotent producer; an explicit 1 or 0 turns idempotence off.",
        fields: [
            FieldSpec(name: "Brokers", type: .stringList, doc: "Broker addresses `host:port` (required).", defaultValue: nil),
            FieldSpec(name: "Topic", type: .string, doc: "Topic (required); `%{content.<field>}` and `%{tag.<tag>}` per event; `${NAME}` is the environment variable NAME, read once at start (empty when not set), as the incumbent's code does (its docs say a group tag). A reference without a value renders as its own text (`app-content.service`), as `flusher_kafka_v2` does. **Unlike the incumbent**, whose native flusher then sends to the template text itself (`app-%{content.service}`, a name Kafka refuses, so the event is lost), Sluice delivers such events to that topic.", defaultValue: nil),
            FieldSpec(name: "Version", type: .string, doc: "Kafka version librdkafka falls back to (`broker.version.fallback`).", defaultValue: "1.0.0", aliases: ["KafkaVersion"]),
            FieldSpec(name: "BulkFlushFrequency", type: .int, doc: "`linger.ms`; 0 keeps librdkafka's 5 ms.", defaultValue: "0"),
            FieldSpec(name: "BulkMaxSize", type: .int, doc: "`batch.num.messages`.", defaultValue: "2048"),
            FieldSpec(name: "MaxMessageBytes", type: .int, doc: "`message.max.bytes`; a larger message is rejected and counted.", defaultValue: "1000000"),
            FieldSpec(name: "QueueBufferingMaxKbytes", type: .int, doc: "`queue.buffering.max.kbytes` (a full queue is backpressure).", defaultValue: "1048576"),
            FieldSpec(name: "QueueBufferingMaxMessages", type: .int, doc: "`queue.buffering.max.messages`.", defaultValue: "100000"),
            FieldSpec(name: "RequiredAcks", type: .int, doc: "-1 all in-sync replicas, 1 the leader, 0 none. **Sluice's default is -1** (the incumbent's is 1), which the idempotent producer needs; 1 or 0 turn idempotence off (a retry may then write a message twice).", defaultValue: "-1"),
            FieldSpec(name: "Timeout", type: .int, doc: "Milliseconds the broker may take to acknowledge (`request.timeout.ms`).", defaultValue: "30000"),
            FieldSpec(name: "MessageTimeoutMs", type: .int, doc: "`message.timeout.ms`: how long librdkafka tries a message before Sluice sends it again.", defaultValue: "300000"),
            FieldSpec(name: "MaxRetries", type: .int, doc: "`retries` when idempotence is off (the idempotent producer retries until MessageTimeoutMs); Sluice sends failed messages again in any case.", defaultValue: "3"),
            FieldSpec(name: "RetryBackoffMs", type: .int, doc: "`retry.backoff.ms`.", defaultValue: "100"),
            FieldSpec(name: "PartitionerType", type: .string, doc: "`random` or `hash` (murmur2 of the key from HashKeys, random without one).", defaultValue: "random"),
            FieldSpec(name: "HashKeys", type: .stringList, doc: "With `hash`: `content.<field>` references; the key is their values joined with `###`.", defaultValue: nil),
            FieldSpec(name: "Compression", type: .string, doc: "`none`, `gzip`, `snappy`, `lz4` or `zstd`.", defaultValue: "none"),
            FieldSpec(name: "CompressionLevel", type: .int, doc: "`compression.level`; -1 is the codec's default.", defaultValue: "-1"),
            FieldSpec(name: "Kafka", type: .stringMap, doc: "librdkafka properties set last, as they are; `sluice validate` checks them.", defaultValue: nil),
            FieldSpec(name: "Headers", type: .objectList(fields: [
                FieldSpec(name: "key", type: .string, doc: "Header name (lower case, as the incumbent reads it).", defaultValue: nil),
                FieldSpec(name: "value", type: .string, doc: "Header value.", defaultValue: nil),
            ]), doc: "Static headers of every message.", defaultValue: nil),
            KafkaSettings.nativeAuthenticationField,
            FlusherRoute.matchField,
        ])

    public struct Options: Sendable {
        public var settings: KafkaSettings
        public var topic: DynamicTemplate
        public var hashKeys: [String] = []
        public var headers: [(String, String)] = []
    }

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        let brokers = try c.stringList("Brokers") ?? []
        guard !brokers.isEmpty else { throw c.error(at: nil, "Brokers is required") }
        // `${X}` is the environment variable X, empty when it is not set, as the incumbent's
        // FormattedString reads it (its docs call it a group tag; the code calls getenv).
        guard let rawTopic = try c.string("Topic"), !rawTopic.isEmpty else { throw c.error(at: nil, "Topic is required") }
        let topicText: String
        do { topicText = try EnvReference.expand(rawTopic, environment: { Sys.environment($0) ?? "" }) } catch { throw c.error(at: "Topic", error.message) }
        let topic: DynamicTemplate
        do { topic = try DynamicTemplate(parsing: topicText) } catch { throw c.error(at: "Topic", error.message) }
        var s = KafkaSettings.base(brokers: brokers, clientID: "LoongCollector")
        s.set("broker.version.fallback", try c.string("Version") ?? "1.0.0")
        func positive(_ key: String, _ d: Int, min: Int = 0) throws(ConfigError) -> Int {
            let v = try c.int(key) ?? d
            guard v >= min else { throw c.error(at: key, "must be ≥ \(min)") }
            return v
        }
        let linger = try positive("BulkFlushFrequency", 0)
        if linger > 0 { s.set("linger.ms", String(linger)) }
        s.set("batch.num.messages", String(try positive("BulkMaxSize", 2048, min: 1)))
        s.set("message.max.bytes", String(try positive("MaxMessageBytes", 1_000_000, min: 1000)))
        s.set("queue.buffering.max.kbytes", String(try positive("QueueBufferingMaxKbytes", 1_048_576, min: 1)))
        s.set("queue.buffering.max.messages", String(try positive("QueueBufferingMaxMessages", 100_000, min: 1)))
        try s.setRequiredAcks(try c.int("RequiredAcks") ?? -1, c, key: "RequiredAcks")
        s.set("request.timeout.ms", String(try positive("Timeout", 30000, min: 1)))
        s.set("message.timeout.ms", String(try positive("MessageTimeoutMs", 300_000)))
        let retries = try positive("MaxRetries", 3)
        if !s.idempotent { s.set("retries", String(retries)) }
        s.set("retry.backoff.ms", String(try positive("RetryBackoffMs", 100, min: 1)))
        switch try c.string("PartitionerType") ?? "random" {
        case "random": s.partitioner = .random
        case "hash": s.partitioner = .murmur2
        case let v: throw c.error(at: "PartitionerType", "unknown partitioner \"\(v)\" (known: random, hash)")
        }
        var o = Options(settings: s, topic: topic)
        for k in try c.stringList("HashKeys") ?? [] {
            guard k.hasPrefix("content."), k.count > 8 else { throw c.error(at: "HashKeys", "\"\(k)\" must start with content.") }
            o.hashKeys.append(String(k.dropFirst(8)))
        }
        try s.setCompression(try c.string("Compression") ?? "none", c, key: "Compression")
        let level = try c.int("CompressionLevel") ?? -1
        if level != -1 { s.set("compression.level", String(level)) }
        for h in try c.objectList("Headers") ?? [] {
            let key = try h.string("key") ?? ""
            if !key.isEmpty { o.headers.append((key, try h.expandedString("value") ?? "")) }
        }
        try s.readNativeAuthentication(c)
        for (k, v) in try c.expandedPairs("Kafka") ?? [] { s.set(k, v) }
        try s.check(c)
        o.settings = s
        return o
    }

    let options: Options
    let producer: KafkaProducerSlot
    public let delivery: DeliveryOptions

    public init(options: Options, context: PluginContext) throws {
        self.options = options
        producer = KafkaProducerSlot(settings: options.settings, logger: context.logger)
        delivery = DeliveryOptions(maxBytes: 4 << 20, concurrency: 4, backoff: Backoff(initial: .seconds(1), maximum: .seconds(60)))
        if !options.settings.idempotent {
            context.logger.warning("Kafka: RequiredAcks \(options.settings.value("acks") ?? "?") turns the idempotent producer off: a retry may write a message twice.")
        }
    }

    public func start() async throws { try producer.start() }

    public func makeRequest(_ batches: [EventBatch]) async throws(FlushError) -> KafkaRequest {
        let m = KafkaMessages(capacity: max(4096, batches.reduce(0) { $0 + $1.inputBytes } * 2))
        let encoder = JSONLineEncoder()
        let hashing = options.settings.partitioner == .murmur2 && !options.hashKeys.isEmpty
        let now = Sys.wallSeconds()
        var events = 0
        for batch in batches {
            events += batch.events.count
            var tags: [String: String] = [:]
            for t in batch.tags { tags[t.key] = t.value }
            let from = m.buffer.count
            encoder.encode(batch, into: m.buffer)
            let end = m.buffer.count
            let batchTopic = options.topic.isStatic ? options.topic.text
                : (options.topic.usesContent ? nil : options.topic.render(event: 0, of: batch, tags: tags, now: now))
            // One line per event that has something to write (see JSONLineEncoder).
            var at = from
            var lines: [(start: Int, length: Int, event: Int)] = []
            for (i, ev) in batch.events.enumerated() {
                if ev.isParsed && !batch.fields[Int(ev.fieldStart)..<Int(ev.fieldStart + ev.fieldCount)].contains(where: { $0.kind != .deleted }) { continue }
                guard at < end, let nl = memchr(m.buffer.base + at, 0x0A, end - at) else { break }
                let stop = UnsafeMutablePointer<UInt8>(nl.assumingMemoryBound(to: UInt8.self)) - m.buffer.base + 1
                lines.append((at, stop - at, i))
                at = stop
            }
            for l in lines {
                var key: Range<Int>?
                if hashing {
                    let k0 = m.buffer.count
                    m.buffer.append(options.hashKeys.compactMap { DynamicTemplate.field($0, event: l.event, of: batch) }.joined(separator: "###"))
                    key = k0..<m.buffer.count
                }
                let topic = batchTopic ?? options.topic.render(event: l.event, of: batch, tags: tags, now: now)
                m.add(topic: m.topicNumber(topic), value: l.start..<(l.start + l.length), key: key)
            }
        }
        return KafkaRequest(messages: m, events: events)
    }

    public func send(_ request: KafkaRequest) async -> SendOutcome<KafkaRequest> {
        await producer.send(request, headers: options.headers)
    }

    public func stop() async { await producer.close() }
}
