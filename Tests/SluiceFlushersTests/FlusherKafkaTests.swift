import CRdKafka
import Foundation
import SluiceConfig
import SluiceCore
import SluiceFlushers
import SluiceTesting
import Testing

private let runningInCI = ProcessInfo.processInfo.environment["CI"] == "true"
private let noidaInstalled = FileManager.default.fileExists(atPath: TestServer.serversDir + "/noida/noida_db/noida-db")

/// A batch of parsed events, each with these fields (no acknowledgement numbering beyond `index`).
func parsedBatch(_ tb: TestBatches, _ index: Int, _ events: [[(String, String)]]) -> EventBatch {
    var b = tb.batch(index, events.map { _ in "" })
    for (i, fields) in events.enumerated() {
        b.events[i].fieldStart = UInt32(b.fields.count)
        for (k, v) in fields {
            let ks = b.append(bytes: Array(k.utf8))
            let vs = b.append(bytes: Array(v.utf8))
            b.fields.append(EventField(key: ks, value: vs))
        }
        b.events[i].fieldCount = UInt32(fields.count)
        b.events[i].flags |= LogEvent.Flag.parsed
    }
    return b
}

/// The `content` of each custom_single document read back.
func kafkaContents(_ records: [KafkaRecord]) -> [String] {
    records.compactMap { r in
        (try? JSONSerialization.jsonObject(with: Data(r.value)) as? [String: Any]).flatMap { ($0["contents"] as? [String: Any])?["content"] as? String }
    }
}

/// flusher_kafka_v2's options: the incumbent's defaults, Sluice's idempotent producer, errors.
@Suite struct FlusherKafkaOptionsTests {
    func settings(_ yaml: String) throws -> KafkaSettings {
        try FlusherKafkaV2.options(from: try ConfigObject.parse(yaml: yaml, file: "t.yaml", fields: FlusherKafkaV2.spec.fields), globals: GlobalParameters()).settings
    }

    @Test func defaultsAreTheIncumbentsOnTheIdempotentProducer() throws {
        let s = try settings("Brokers: [k1:9092, k2:9092]\nTopic: logs")
        #expect(s.value("bootstrap.servers") == "k1:9092,k2:9092")
        #expect(s.value("enable.idempotence") == "true" && s.value("acks") == "all")
        #expect(s.value("client.id") == "LogtailPlugin")
        #expect(s.value("compression.codec") == "none")
        #expect(s.value("batch.num.messages") == "2048")
        #expect(s.value("message.max.bytes") == "1000000")
        #expect(s.value("max.in.flight") == "5")
        #expect(s.value("socket.timeout.ms") == "30000" && s.value("request.timeout.ms") == "10000")
        #expect(s.value("topic.metadata.refresh.interval.ms") == "600000")
        #expect(s.value("broker.version.fallback") == "1.0.0")
        #expect(s.value("security.protocol") == nil && s.value("linger.ms") == nil)
        #expect(s.partitioner == .random)
    }

    @Test func acksOneOrZeroTurnIdempotenceOff() throws {
        let one = try settings("Brokers: [k:9092]\nTopic: t\nRequiredAcks: 1")
        #expect(one.value("acks") == "1" && !one.idempotent)
        let zero = try settings("Brokers: [k:9092]\nTopic: t\nRequiredAcks: 0\nMaxOpenRequests: 10")
        #expect(zero.value("acks") == "0" && zero.value("max.in.flight") == "10")
        #expect(optionsError(FlusherKafkaV2.self, "Brokers: [k:9092]\nTopic: t\nMaxOpenRequests: 6")?.contains("at most 5") == true)
        #expect(optionsError(FlusherKafkaV2.self, "Brokers: [k:9092]\nTopic: t\nRequiredAcks: 2")?.contains("must be -1") == true)
    }

    @Test func compressionPartitionerAndDurations() throws {
        let s = try settings("Brokers: [k:9092]\nTopic: t\nCompression: GZIP\nCompressionLevel: 6\nPartitionerType: hash\nHashKeys: [content.user, tag.host.name]\nBulkFlushFrequency: 20ms\nTimeout: 5000000000\nKeepAlive: 30s\nMetadata: {RefreshFrequency: 1m}")
        #expect(s.value("compression.codec") == "gzip" && s.value("compression.level") == "6")
        #expect(s.partitioner == .hash)
        #expect(s.value("linger.ms") == "20" && s.value("socket.timeout.ms") == "5000")
        #expect(s.value("socket.keepalive.enable") == "true" && s.value("topic.metadata.refresh.interval.ms") == "60000")
        #expect(try settings("Brokers: [k:9092]\nTopic: t\nCompression: zstd\nCompressionLevel: 6").value("compression.level") == nil)
        #expect(try settings("Brokers: [k:9092]\nTopic: t\nPartitionerType: roundrobin").partitioner == .roundrobin)
    }

    @Test func authenticationBecomesSASLAndTLS() throws {
        let scram = try settings("Brokers: [k:9093]\nTopic: t\nAuthentication: {SASL: {SaslMechanism: scram-sha-512, Username: u, Password: p}, TLS: {Enabled: true, InsecureSkipVerify: true}}")
        #expect(scram.value("sasl.mechanisms") == "SCRAM-SHA-512" && scram.value("sasl.username") == "u" && scram.value("sasl.password") == "p")
        #expect(scram.value("security.protocol") == "SASL_SSL" && scram.value("enable.ssl.certificate.verification") == "false")
        let plain = try settings("Brokers: [k:9092]\nTopic: t\nAuthentication: {PlainText: {Username: u, Password: p}}")
        #expect(plain.value("sasl.mechanisms") == "PLAIN" && plain.value("security.protocol") == "SASL_PLAINTEXT")
        #expect(optionsError(FlusherKafkaV2.self, "Brokers: [k:9092]\nTopic: t\nAuthentication: {PlainText: {Username: u}}")?.contains("password is required") == true)
        #expect(optionsError(FlusherKafkaV2.self, "Brokers: [k:9092]\nTopic: t\nAuthentication: {SASL: {SaslMechanism: OAUTH, Username: u}}")?.contains("unknown mechanism") == true)
    }

    @Test func mistakesAreConfigErrors() {
        #expect(optionsError(FlusherKafkaV2.self, "Topic: t")?.contains("Brokers is required") == true)
        #expect(optionsError(FlusherKafkaV2.self, "Brokers: [k:9092]")?.contains("Topic is required") == true)
        #expect(optionsError(FlusherKafkaV2.self, "Brokers: ['a:1,b:2']\nTopic: t")?.contains("one broker per element") == true)
        #expect(optionsError(FlusherKafkaV2.self, "Brokers: [k:9092]\nTopic: t\nPartitionerType: sticky")?.contains("unknown partitioner") == true)
        #expect(optionsError(FlusherKafkaV2.self, "Brokers: [k:9092]\nTopic: t\nCompression: brotli")?.contains("unknown compression") == true)
        #expect(optionsError(FlusherKafkaV2.self, "Brokers: [k:9092]\nTopic: t\nHashKeys: [user]")?.contains("unsupported field") == true)
        #expect(optionsError(FlusherKafkaV2.self, "Brokers: [k:9092]\nTopic: '%{field.x}'")?.contains("unsupported field") == true)
        #expect(optionsError(FlusherKafkaV2.self, "Brokers: [k:9092]\nTopic: t\nVersion: latest")?.contains("Kafka version") == true)
        #expect(optionsError(FlusherKafkaV2.self, "Brokers: [k:9092]\nTopic: t\nConvert: {Protocol: jsonline}")?.contains("unsupported protocol") == true)
        // librdkafka's own parser checks the pass-through properties.
        #expect(optionsError(FlusherKafkaV2.self, "Brokers: [k:9092]\nTopic: t\nKafka: {no.such.property: '1'}")?.contains("librdkafka refuses") == true)
        #expect(optionsError(FlusherKafkaV2.self, "Brokers: [k:9092]\nTopic: t\nKafka: {acks: '1'}")?.contains("idempotence") == true)
    }

    /// flusher_kafka_native's `Authentication` has LoongCollector's own names and checks
    /// (AuthConfig): `SASL.Mechanism`, `Kerberos.Enabled` / `Principal` / `Keytab`, `TLS.KeyPassword`.
    @Test func nativeAuthenticationHasTheIncumbentsNames() throws {
        func native(_ auth: String) throws -> KafkaSettings {
            try FlusherKafkaNative.options(from: try ConfigObject.parse(yaml: "Brokers: [k:9093]\nTopic: t\nAuthentication: \(auth)", file: "t.yaml",
                                                                       fields: FlusherKafkaNative.spec.fields), globals: GlobalParameters()).settings
        }
        func nativeError(_ auth: String) -> String? { optionsError(FlusherKafkaNative.self, "Brokers: [k:9093]\nTopic: t\nAuthentication: \(auth)") }
        let sasl = try native("{SASL: {Mechanism: scram-sha-256, Username: user, Password: pass}}")
        #expect(sasl.value("sasl.mechanisms") == "SCRAM-SHA-256" && sasl.value("sasl.username") == "user" && sasl.value("security.protocol") == "SASL_PLAINTEXT")
        let dir = TempDir("sluice-kafka-auth")
        defer { dir.remove() }
        let keytab = dir.path + "/client.keytab", cert = dir.path + "/c.pem", key = dir.path + "/k.pem"
        for f in [keytab, cert, key] { writeFile(f, "x") }
        let krb = try native("{Kerberos: {Enabled: true, Mechanisms: GSSAPI, ServiceName: kafka, Principal: client@EXAMPLE.COM, Keytab: \(keytab)}, TLS: {Enabled: true, CertFile: \(cert), KeyFile: \(key), KeyPassword: secret}}")
        #expect(krb.value("sasl.mechanisms") == "GSSAPI" && krb.value("sasl.kerberos.principal") == "client@EXAMPLE.COM" && krb.value("sasl.kerberos.keytab") == keytab)
        #expect(krb.value("security.protocol") == "SASL_SSL" && krb.value("ssl.key.password") == "secret" && krb.value("ssl.certificate.location") == cert)
        // Kerberos off: only TLS; nothing set at all without Authentication.
        #expect(try native("{Kerberos: {Enabled: false, Principal: p}, TLS: {Enabled: true}}").value("security.protocol") == "SSL")
        #expect(nativeError("{SASL: {Mechanism: PLAIN, Username: user}}")?.contains("Username and Password are required") == true)
        #expect(nativeError("{SASL: {Mechanism: OAUTHBEARER, Username: u, Password: p}}")?.contains("unknown mechanism") == true)
        #expect(nativeError("{Kerberos: {Enabled: true, Keytab: \(keytab)}}")?.contains("Principal is required") == true)
        #expect(nativeError("{Kerberos: {Enabled: true, Principal: p, Keytab: /nonexistent.keytab}}")?.contains("no such file") == true)
        #expect(nativeError("{SASL: {Mechanism: PLAIN, Username: u, Password: p}, Kerberos: {Enabled: true, Principal: p, Keytab: \(keytab)}}")?.contains("cannot be enabled together") == true)
        #expect(nativeError("{TLS: {Enabled: true, CertFile: \(cert)}}")?.contains("CertFile and KeyFile go together") == true)
    }

    @Test func nativeFlusherReadsMillisecondsAndEnvironmentTopics() throws {
        setenv("SLUICE_TEST_KAFKA_ENV", "prod", 1)
        defer { unsetenv("SLUICE_TEST_KAFKA_ENV") }
        let o = try FlusherKafkaNative.options(from: try ConfigObject.parse(yaml: "Brokers: [k:29092]\nTopic: 'app-%{content.service}-${SLUICE_TEST_KAFKA_ENV}-%{tag.__hostname__}${SLUICE_TEST_UNSET_VARIABLE}'\nKafkaVersion: 2.8.0\nRequiredAcks: 1\nTimeout: 30000\nMessageTimeoutMs: 5000\nMaxRetries: 3\nPartitionerType: hash\nHashKeys: [content.service]\nHeaders: [{key: env, value: prod}]",
                                                                         file: "t.yaml", fields: FlusherKafkaNative.spec.fields), globals: GlobalParameters())
        // `${NAME}` is an environment variable (empty when unset), as the incumbent's code reads it.
        #expect(o.topic.text == "app-%{content.service}-prod-%{tag.__hostname__}")
        #expect(o.settings.value("broker.version.fallback") == "2.8.0" && o.settings.value("acks") == "1" && !o.settings.idempotent)
        #expect(o.settings.value("request.timeout.ms") == "30000" && o.settings.value("message.timeout.ms") == "5000" && o.settings.value("retries") == "3")
        #expect(o.settings.partitioner == .murmur2 && o.hashKeys == ["service"] && o.headers.first?.0 == "env")
    }
}

/// flusher_kafka_v2 against librdkafka's mock cluster (in this process): every message's delivery
/// report decides, broker errors are retried by librdkafka without duplicates (idempotent
/// producer), errors that cannot pass are rejected and counted, a broker that is down holds the
/// data back until it is up. What the cluster holds is read back with a consumer.
@Suite(.serialized) struct FlusherKafkaMockTests {
    func cluster(brokers: Int32 = 3, topic: String = "logs", partitions: Int32 = 4) throws -> KafkaMockCluster {
        let c = try #require(KafkaMockCluster(brokers: brokers), "librdkafka's mock cluster")
        c.createTopic(topic, partitions: partitions)
        return c
    }

    @Test func everyLineOnceAcrossPartitionsAndAcknowledgedOnReports() async throws {
        let c = try cluster()
        defer { c.destroy() }
        let f = try makeFlusher(FlusherKafkaV2.self, "Brokers: [\(c.bootstraps.split(separator: ",").joined(separator: ", "))]\nTopic: logs\nPartitionerType: roundrobin")
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 20_000, per: 1000, tags: [EventTag("__path__", "/var/log/app.log")])
        let ctx = await drive(f, batches)
        for k in batches.indices { #expect(tb.statuses(of: k) == [.delivered]) }
        #expect(ctx.metrics.sentEvents.current == lines.count)
        let records = try #require(KafkaTestConsumer.readAll(brokers: c.bootstraps, topic: "logs"))
        let got = kafkaContents(records)
        #expect(deliveryReport(expected: lines, delivered: got).ok, "\(deliveryReport(expected: lines, delivered: got))")
        // Round robin: every partition has its share.
        let perPartition = Dictionary(grouping: records, by: \.partition).mapValues(\.count)
        #expect(perPartition.count == 4 && perPartition.values.allSatisfy { $0 >= 4000 }, "\(perPartition)")
        #expect(records.first.map { String(decoding: $0.value, as: UTF8.self).contains("\"log.file.path\":\"/var/log/app.log\"") } == true)
    }

    @Test func brokerErrorsAreRetriedWithoutDuplicates() async throws {
        let c = try cluster(partitions: 2)
        defer { c.destroy() }
        // Leader changes and timeouts on the first Produce requests.
        c.pushProduceErrors([RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                             RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION])
        let f = try makeFlusher(FlusherKafkaV2.self, "Brokers: [\(c.bootstraps)]\nTopic: logs\nCompression: zstd")
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 5000, per: 500)
        let ctx = await drive(f, batches)
        for k in batches.indices { #expect(tb.statuses(of: k) == [.delivered]) }
        #expect(ctx.metrics.discardedByReason.isEmpty)
        let got = kafkaContents(try #require(KafkaTestConsumer.readAll(brokers: c.bootstraps, topic: "logs")))
        #expect(deliveryReport(expected: lines, delivered: got).ok, "\(deliveryReport(expected: lines, delivered: got))")
    }

    @Test func permanentErrorsAreRejectedAndCounted() async throws {
        let c = try cluster(brokers: 1, partitions: 1)
        defer { c.destroy() }
        // The broker refuses the first Produce request for good.
        c.pushProduceErrors([RD_KAFKA_RESP_ERR_INVALID_RECORD])
        let f = try makeFlusher(FlusherKafkaV2.self, "Brokers: [\(c.bootstraps)]\nTopic: logs\nMaxMessageBytes: 2000")
        let tb = TestBatches()
        let first = tb.batch(0, (0..<10).map { "refused-\($0)" })
        let ctx = await drive(f, [first])
        #expect(tb.statuses(of: 0) == [.rejected])
        #expect(ctx.metrics.discardedByReason["rejected"] == 10)

        // A message over MaxMessageBytes is refused by librdkafka itself; the rest of its request
        // is delivered (partial), and the batch is finished as rejected, counted once.
        let g = try makeFlusher(FlusherKafkaV2.self, "Brokers: [\(c.bootstraps)]\nTopic: logs\nMaxMessageBytes: 2000")
        let big = String(repeating: "x", count: 5000)
        let ctx2 = await drive(g, [tb.batch(1, ["small-1", big, "small-2"])])
        #expect(tb.statuses(of: 1) == [.rejected])
        #expect(ctx2.metrics.discardedByReason["rejected"] == 1)
        #expect(ctx2.metrics.sentEvents.current == 2)
        let got = kafkaContents(try #require(KafkaTestConsumer.readAll(brokers: c.bootstraps, topic: "logs")))
        #expect(got.filter { $0.hasPrefix("small-") }.sorted() == ["small-1", "small-2"])
        #expect(!got.contains { $0.hasPrefix("refused-") })
    }

    @Test func unknownTopicWithoutAutoCreateIsRejected() async throws {
        let c = try cluster(brokers: 1, partitions: 1)
        defer { c.destroy() }
        c.setTopicError("missing", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        // librdkafka waits topic.metadata.propagation.max.ms for a topic to appear.
        let f = try makeFlusher(FlusherKafkaV2.self, "Brokers: [\(c.bootstraps)]\nTopic: missing\nKafka: {topic.metadata.propagation.max.ms: '1000', message.timeout.ms: '5000'}")
        let tb = TestBatches()
        let ctx = await drive(f, [tb.batch(0, ["a", "b"])], cancelAfter: 30)
        #expect(tb.statuses(of: 0) == [.rejected], "\(tb.statuses(of: 0))")
        #expect(ctx.metrics.discardedByReason["rejected"] == 2)
    }

    @Test func aBrokerDownHoldsTheDataUntilItIsUp() async throws {
        let c = try cluster(brokers: 1, partitions: 2)
        defer { c.destroy() }
        let f = try makeFlusher(FlusherKafkaV2.self, "Brokers: [\(c.bootstraps)]\nTopic: logs")
        try await f.start()
        c.setBrokerDown(1)
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 3000, per: 300)
        let up = Task {
            try? await Task.sleep(for: .seconds(3))
            // Nothing is acknowledged while the broker is down.
            let early = batches.indices.filter { !tb.statuses(of: $0).isEmpty }.count
            c.setBrokerUp(1)
            return early
        }
        let ctx = await drive(f, batches)
        #expect(await up.value == 0, "no batch finished while the broker was down")
        for k in batches.indices { #expect(tb.statuses(of: k) == [.delivered]) }
        #expect(ctx.metrics.sentEvents.current == lines.count)
        let got = kafkaContents(try #require(KafkaTestConsumer.readAll(brokers: c.bootstraps, topic: "logs")))
        #expect(deliveryReport(expected: lines, delivered: got).ok, "\(deliveryReport(expected: lines, delivered: got))")
    }

    @Test func downUntilTheShutdownDeadlineIsAbandonedNotAcknowledged() async throws {
        let c = try cluster(brokers: 1, partitions: 1)
        defer { c.destroy() }
        c.setBrokerDown(1)
        let f = try makeFlusher(FlusherKafkaV2.self, "Brokers: [\(c.bootstraps)]\nTopic: logs")
        let tb = TestBatches()
        let (batches, _) = numberedBatches(tb, 100, per: 10)
        let t0 = monotonicSeconds()
        await drive(f, batches, cancelAfter: 1.5)
        // Batches in requests are abandoned; those the runner had not taken from the queue when the
        // deadline came (its requests in flight were at the concurrency limit) are never finished.
        // Either way none is acknowledged, so the source reads them again.
        let statuses = batches.indices.map { tb.statuses(of: $0) }
        #expect(statuses.allSatisfy { $0 == [.abandoned] || $0.isEmpty }, "\(statuses)")
        #expect(statuses.contains([.abandoned]), "\(statuses)")
        // stop() gives up after its flush timeout (10 s) at most.
        #expect(monotonicSeconds() - t0 < 15)
    }

    @Test func dynamicTopicsHashKeysAndHeaders() async throws {
        let c = try cluster(brokers: 1, partitions: 3)
        defer { c.destroy() }
        c.createTopic("app-web", partitions: 3)
        c.createTopic("app-db", partitions: 3)
        c.createTopic("app-content.service", partitions: 1)
        let f = try makeFlusher(FlusherKafkaV2.self, """
            Brokers: [\(c.bootstraps)]
            Topic: app-%{content.service}
            PartitionerType: hash
            HashKeys: [content.user, tag.host.name]
            Headers: [{Key: env, Value: prod}, {key: team, value: obs}]
            Convert: {Protocol: custom_single_flatten}
            """)
        let tb = TestBatches()
        var events: [[(String, String)]] = []
        for i in 0..<300 { events.append([("service", i % 3 == 0 ? "web" : "db"), ("user", "u\(i % 5)"), ("n", "\(i)")]) }
        events.append([("user", "nobody"), ("n", "300")])
        var b = parsedBatch(tb, 0, events)
        b.tags = [EventTag("__hostname__", "node-1")]
        await drive(f, [b])
        #expect(tb.statuses(of: 0) == [.delivered])
        let web = try #require(KafkaTestConsumer.readAll(brokers: c.bootstraps, topic: "app-web", withHeaders: true))
        let db = try #require(KafkaTestConsumer.readAll(brokers: c.bootstraps, topic: "app-db"))
        let missing = try #require(KafkaTestConsumer.readAll(brokers: c.bootstraps, topic: "app-content.service"))
        #expect(web.count == 100 && db.count == 200 && missing.count == 1)
        // The key is the referenced values joined with ###, and equal keys share a partition.
        #expect(web.allSatisfy { $0.key.map { String(decoding: $0, as: UTF8.self).hasSuffix("###node-1") } == true })
        for (_, group) in Dictionary(grouping: web + db, by: { $0.key ?? [] }) where group.count > 1 {
            let topicPartitions = Set(group.map { "\($0.partition)" })
            #expect(topicPartitions.count <= 2, "one partition per key and topic")
        }
        #expect(web.first?.headers.map { "\($0.0)=\($0.1)" } == ["env=prod", "team=obs"])
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(web[0].value)) as? [String: Any])
        #expect(doc["service"] as? String == "web" && doc["host.name"] as? String == "node-1" && doc["time"] is Int)
    }
}

/// flusher_kafka_v2 against a Kafka-protocol broker running here (noida-db, which Debian's
/// librdkafka 2.0.2 speaks to): the idempotent producer with each codec, read back whole.
@Suite(.serialized, .enabled(if: noidaInstalled || runningInCI, "noida-db is not unpacked (scripts/install-deps.sh does it): skipped"))
struct FlusherKafkaBrokerTests {
    @Test(arguments: ["none", "gzip", "snappy", "lz4", "zstd"])
    func everyLineReadBackWithEachCodec(_ codec: String) async throws {
        let k = try #require(try TestServer.kafka(), "noida-db is installed by scripts/install-deps.sh")
        defer { k.stop() }
        let f = try makeFlusher(FlusherKafkaV2.self, "Brokers: [\(k.address)]\nTopic: logs-\(codec)\nCompression: \(codec)")
        let tb = TestBatches()
        let (batches, lines) = numberedBatches(tb, 20_000, per: 2000)
        let ctx = await drive(f, batches)
        for b in batches.indices { #expect(tb.statuses(of: b) == [.delivered]) }
        #expect(ctx.metrics.sentEvents.current == lines.count)
        let got = kafkaContents(try #require(KafkaTestConsumer.readAll(brokers: k.address, topic: "logs-\(codec)")))
        #expect(deliveryReport(expected: lines, delivered: got).ok, "\(codec): \(deliveryReport(expected: lines, delivered: got))")
    }
}
