import CRdKafka
import Glibc
import SluiceSystem

/// librdkafka's own mock cluster (in this process, on loopback ports), for the Kafka flushers'
/// fault cases: broker errors pushed per request type, brokers taken down and up, topic errors.
public final class KafkaMockCluster: @unchecked Sendable {
    /// A handle the mock cluster belongs to (librdkafka needs one to host it).
    let host: OpaquePointer
    let cluster: OpaquePointer
    /// `host:port,host:port,...` of the mock brokers.
    public let bootstraps: String

    /// Kafka's Produce request type, for `pushErrors`.
    public static let produceRequest: Int16 = 0

    public init?(brokers: Int32 = 3) {
        guard let conf = rd_kafka_conf_new() else { return nil }
        var err = [CChar](repeating: 0, count: 512)
        rd_kafka_conf_set(conf, "log_level", "0", &err, err.count)
        guard let rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &err, err.count) else { return nil }
        guard let mc = rd_kafka_mock_cluster_new(rk, brokers) else {
            rd_kafka_destroy(rk)
            return nil
        }
        host = rk
        cluster = mc
        bootstraps = String(cString: rd_kafka_mock_cluster_bootstraps(mc))
    }

    public func createTopic(_ name: String, partitions: Int32, replication: Int32 = 1) {
        _ = rd_kafka_mock_topic_create(cluster, name, partitions, replication)
    }

    /// The next Produce requests (of any broker) fail with these errors, one each, in order.
    public func pushProduceErrors(_ errors: [rd_kafka_resp_err_t]) {
        errors.withUnsafeBufferPointer { rd_kafka_mock_push_request_errors_array(cluster, KafkaMockCluster.produceRequest, $0.count, $0.baseAddress) }
    }

    /// Metadata and requests for `topic` answer with `error` (NO_ERROR clears it).
    public func setTopicError(_ topic: String, _ error: rd_kafka_resp_err_t) {
        rd_kafka_mock_topic_set_error(cluster, topic, error)
    }

    /// Takes broker `id` (1-based) down: its connections are closed and new ones refused.
    public func setBrokerDown(_ id: Int32) { _ = rd_kafka_mock_broker_set_down(cluster, id) }
    public func setBrokerUp(_ id: Int32) { _ = rd_kafka_mock_broker_set_up(cluster, id) }

    public func destroy() {
        rd_kafka_mock_cluster_destroy(cluster)
        rd_kafka_destroy(host)
    }
}

/// One message read back from a topic.
public struct KafkaRecord: Sendable {
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [(String, String)]
    public var text: String { String(decoding: value, as: UTF8.self) }
}

/// Reads topics back with a librdkafka consumer (partitions assigned, no consumer group join), as
/// a test checks what a broker holds.
public enum KafkaTestConsumer {
    /// Every message of `topic`, all partitions from the beginning up to their end at the time of
    /// reading; nil when the topic's metadata could not be had within `timeout`.
    public static func readAll(brokers: String, topic: String, timeout: Double = 30, withHeaders: Bool = false) -> [KafkaRecord]? {
        guard let conf = rd_kafka_conf_new() else { return nil }
        var err = [CChar](repeating: 0, count: 512)
        for (k, v) in [("bootstrap.servers", brokers), ("group.id", "sluice-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"),
                       ("enable.auto.commit", "false"), ("enable.partition.eof", "true"), ("auto.offset.reset", "earliest"),
                       ("log_level", "3"), ("fetch.message.max.bytes", "10485760"),
                       // noida-db answers a fetch with the whole partition, whatever its size.
                       ("receive.message.max.bytes", "2000000000")] {
            rd_kafka_conf_set(conf, k, v, &err, err.count)
        }
        guard let rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &err, err.count) else { return nil }
        defer {
            rd_kafka_consumer_close(rk)
            rd_kafka_destroy(rk)
        }
        guard let partitions = partitionCount(rk, topic, timeout: timeout), partitions > 0 else { return nil }
        let list = rd_kafka_topic_partition_list_new(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for p in 0..<partitions {
            rd_kafka_topic_partition_list_add(list, topic, p).pointee.offset = Int64(RD_KAFKA_OFFSET_BEGINNING)
        }
        guard rd_kafka_assign(rk, list) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        var out: [KafkaRecord] = []
        var atEnd = Set<Int32>()
        let deadline = monotonicSeconds() + timeout
        while atEnd.count < Int(partitions) && monotonicSeconds() < deadline {
            guard let m = rd_kafka_consumer_poll(rk, 200) else { continue }
            defer { rd_kafka_message_destroy(m) }
            let msg = m.pointee
            if msg.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { atEnd.insert(msg.partition); continue }
            if msg.err != RD_KAFKA_RESP_ERR_NO_ERROR { continue }
            atEnd.remove(msg.partition)
            let value = msg.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: msg.len)) } ?? []
            let key = msg.key.map { Array(UnsafeRawBufferPointer(start: $0, count: msg.key_len)) }
            var headers: [(String, String)] = []
            var h: OpaquePointer?
            if withHeaders, rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR, let h {
                var i = 0
                var name: UnsafePointer<CChar>?
                var val: UnsafeRawPointer?
                var size = 0
                while rd_kafka_header_get_all(h, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                    headers.append((name.map { String(cString: $0) } ?? "", val.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: size), as: UTF8.self) } ?? ""))
                    i += 1
                }
            }
            out.append(KafkaRecord(partition: msg.partition, offset: msg.offset, key: key, value: value, headers: headers))
        }
        return out
    }

    /// The number of messages in `topic` (the sum of its partitions' high watermarks minus low
    /// ones); nil when it cannot be had.
    public static func count(brokers: String, topic: String, timeout: Double = 10) -> Int? {
        guard let conf = rd_kafka_conf_new() else { return nil }
        var err = [CChar](repeating: 0, count: 512)
        rd_kafka_conf_set(conf, "bootstrap.servers", brokers, &err, err.count)
        rd_kafka_conf_set(conf, "log_level", "3", &err, err.count)
        guard let rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &err, err.count) else { return nil }
        defer { rd_kafka_destroy(rk) }
        guard let partitions = partitionCount(rk, topic, timeout: timeout) else { return nil }
        var total: Int64 = 0
        for p in 0..<partitions {
            var low: Int64 = 0, high: Int64 = 0
            guard rd_kafka_query_watermark_offsets(rk, topic, p, &low, &high, Int32(timeout * 1000)) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
            total += high - low
        }
        return Int(total)
    }

    static func partitionCount(_ rk: OpaquePointer, _ topic: String, timeout: Double) -> Int32? {
        guard let rkt = rd_kafka_topic_new(rk, topic, nil) else { return nil }
        defer { rd_kafka_topic_destroy(rkt) }
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            var md: UnsafePointer<rd_kafka_metadata>?
            if rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR, let md {
                defer { rd_kafka_metadata_destroy(md) }
                if md.pointee.topic_cnt > 0 {
                    let t = md.pointee.topics[0]
                    if t.err == RD_KAFKA_RESP_ERR_NO_ERROR && t.partition_cnt > 0 { return t.partition_cnt }
                }
            }
            usleep(200_000)
        }
        return nil
    }
}
