import CRdKafka
import Glibc
import Logging
import SluiceCore
import SluiceSystem
import Synchronization

/// One librdkafka producer: the handle, a thread that serves its delivery reports
/// (`rd_kafka_poll`), the topics it produced to, and `send`, which produces a request's messages
/// and waits, without blocking the cooperative pool, until librdkafka reported on every one of
/// them. A batch is delivered only when every message's delivery report says so.
///
/// A full local queue (`QUEUE_FULL`) is backpressure: the send waits a little while the poll
/// thread drains reports, and produces the same message again; nothing is dropped. A fatal error
/// (the idempotent producer's state cannot be recovered) makes `isFatal` true: the flusher then
/// replaces this producer.
final class KafkaProducer: @unchecked Sendable {
    /// What librdkafka's callbacks reach through the handle's opaque: the logger and the fatal flag.
    final class Callbacks: @unchecked Sendable {
        let logger: Logger
        let fatal = Atomic<Bool>(false)
        let errorLog = Mutex<ContinuousClock.Instant?>(nil)
        init(logger: Logger) { self.logger = logger }

        /// At most one broker error every 10 s (a broker down is reported every few hundred ms).
        func error(_ code: rd_kafka_resp_err_t, _ reason: String, handle: OpaquePointer?) {
            if code == RD_KAFKA_RESP_ERR__FATAL {
                fatal.store(true, ordering: .releasing)
                var buf = [CChar](repeating: 0, count: 512)
                let real = rd_kafka_fatal_error(handle, &buf, buf.count)
                logger.error("Kafka producer: fatal error; a new producer takes over.",
                             metadata: ["error": "\(KafkaErrors.describe(real)): \(buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })"])
                return
            }
            let now = ContinuousClock.now
            let due = errorLog.withLock { last -> Bool in
                if let l = last, now - l < .seconds(10) { return false }
                last = now
                return true
            }
            if due { logger.warning("Kafka: \(reason)", metadata: ["error": "\(KafkaErrors.describe(code))"]) }
        }
    }

    /// A round-robin counter for the `roundrobin` partitioner callback.
    final class RoundRobin: @unchecked Sendable {
        let next = Atomic<UInt32>(0)
    }

    let handle: OpaquePointer
    let settings: KafkaSettings
    let callbacks: Callbacks
    let roundRobin = RoundRobin()
    private let topics = Mutex<[String: OpaquePointer]>([:])
    private let polling = Atomic<Bool>(true)
    private let pollThreadDone = Latch()

    var isFatal: Bool { callbacks.fatal.load(ordering: .acquiring) }

    init(settings: KafkaSettings, logger: Logger) throws(FlushError) {
        self.settings = settings
        callbacks = Callbacks(logger: logger)
        guard let conf = rd_kafka_conf_new() else { throw FlushError("librdkafka: cannot create a configuration") }
        var err = [CChar](repeating: 0, count: 512)
        func text() -> String { err.withUnsafeBufferPointer { String(cString: $0.baseAddress!) } }
        for (k, v) in settings.properties where rd_kafka_conf_set(conf, k, v, &err, err.count) != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            throw FlushError("librdkafka refuses \(k): \(text())")
        }
        switch settings.partitioner {
        case .random: rd_kafka_conf_set(conf, "partitioner", "random", &err, err.count)
        case .hash: rd_kafka_conf_set(conf, "partitioner", "fnv1a", &err, err.count)
        case .murmur2: rd_kafka_conf_set(conf, "partitioner", "murmur2_random", &err, err.count)
        case .roundrobin:
            // librdkafka otherwise keeps a keyless message's partition for 10 ms (sticky).
            rd_kafka_conf_set(conf, "sticky.partitioning.linger.ms", "0", &err, err.count)
            let tc = rd_kafka_conf_get_default_topic_conf(conf)
            rd_kafka_topic_conf_set_opaque(tc, Unmanaged.passUnretained(roundRobin).toOpaque())
            rd_kafka_topic_conf_set_partitioner_cb(tc, KafkaProducer.roundRobinPartitioner)
        }
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(callbacks).toOpaque())
        rd_kafka_conf_set_dr_msg_cb(conf, KafkaDelivery.reportCallback)
        rd_kafka_conf_set_error_cb(conf) { rk, code, reason, opaque in
            guard let opaque else { return }
            Unmanaged<Callbacks>.fromOpaque(opaque).takeUnretainedValue()
                .error(rd_kafka_resp_err_t(rawValue: code), reason.map { String(cString: $0) } ?? "", handle: rk)
        }
        rd_kafka_conf_set_log_cb(conf) { rk, level, facility, message in
            guard let rk, let opaque = rd_kafka_opaque(rk) else { return }
            let logger = Unmanaged<Callbacks>.fromOpaque(opaque).takeUnretainedValue().logger
            let text = "librdkafka \(facility.map { String(cString: $0) } ?? ""): \(message.map { String(cString: $0) } ?? "")"
            // syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug.
            if level <= 3 { logger.error("\(text)") } else if level == 4 { logger.warning("\(text)") } else { logger.debug("\(text)") }
        }
        guard let rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &err, err.count) else {
            rd_kafka_conf_destroy(conf)
            throw FlushError("librdkafka cannot create the producer: \(text())")
        }
        handle = rk
        startThread(name: "kafka-poll") { [self] in
            while polling.load(ordering: .acquiring) { rd_kafka_poll(handle, 100) }
            pollThreadDone.open()
        }
    }

    /// Partition after partition, whether its leader is known yet or not (a message waits in its
    /// partition's queue until it is), as sarama's round-robin partitioner.
    static let roundRobinPartitioner: @convention(c) (OpaquePointer?, UnsafeRawPointer?, Int, Int32, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Int32 = {
        _, _, _, count, opaque, _ in
        guard count > 0, let opaque else { return 0 }
        let rr = Unmanaged<RoundRobin>.fromOpaque(opaque).takeUnretainedValue()
        return Int32(rr.next.add(1, ordering: .relaxed).oldValue % UInt32(count))
    }

    /// The handle of `name`, created on first use.
    func topic(_ name: String) -> OpaquePointer? {
        topics.withLock { t in
            if let h = t[name] { return h }
            guard let h = rd_kafka_topic_new(handle, name, nil) else { return nil }
            t[name] = h
            return h
        }
    }

    /// Produces every message of `request` and waits for their delivery reports.
    func send(_ request: KafkaRequest, headers: [(String, String)]) async -> SendOutcome<KafkaRequest> {
        let msgs = request.messages
        let handles = msgs.topics.map { topic($0) }
        let delivery = KafkaDelivery(request)
        let base = UnsafeRawPointer(msgs.buffer.base)
        var k = 0
        var cancelledAt: Int?
        while k < request.messageCount {
            let i = request.index(k)
            let m = msgs.messages[i]
            guard let rkt = handles[Int(m.topic)] else {
                delivery.willProduce()
                delivery.notProduced(i, RD_KAFKA_RESP_ERR__INVALID_ARG)
                k += 1
                continue
            }
            let hdrs = KafkaProducer.makeHeaders(headers)
            delivery.willProduce()
            let err = sluice_rdk_produce(handle, rkt, base + m.valueOffset, m.valueLength,
                                         m.keyOffset < 0 ? nil : base + m.keyOffset, m.keyLength, hdrs, delivery.opaque(k))
            if err == RD_KAFKA_RESP_ERR_NO_ERROR {
                k += 1
                continue
            }
            if let hdrs { rd_kafka_headers_destroy(hdrs) }
            if err == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                // Backpressure: the poll thread drains reports meanwhile; the same message again.
                delivery.notProduced(i, nil)
                if Task.isCancelled { cancelledAt = k; break }
                try? await Task.sleep(for: .milliseconds(2))
                continue
            }
            delivery.notProduced(i, err)
            k += 1
        }
        delivery.close()
        let complete = await delivery.wait()
        var failed = delivery.failures
        if let c = cancelledAt {
            for k2 in c..<request.messageCount { failed.append((request.index(k2), RD_KAFKA_RESP_ERR__QUEUE_FULL)) }
        }
        guard complete else {
            return .retry(after: nil, reason: "shutting down before every delivery report came")
        }
        return KafkaProducer.outcome(request, failed)
    }

    /// The outcome of a send from its failed messages.
    static func outcome(_ request: KafkaRequest, _ failed: [(index: Int, error: rd_kafka_resp_err_t)]) -> SendOutcome<KafkaRequest> {
        if failed.isEmpty { return .delivered }
        var retry: [Int] = []
        var rejected = 0
        var firstPermanent: rd_kafka_resp_err_t?
        var firstRetriable: rd_kafka_resp_err_t?
        for f in failed {
            if KafkaErrors.isPermanent(f.error) {
                rejected += 1
                if firstPermanent == nil { firstPermanent = f.error }
            } else {
                retry.append(f.index)
                if firstRetriable == nil { firstRetriable = f.error }
            }
        }
        let total = request.messageCount
        if rejected == total, let e = firstPermanent {
            return .rejected(reason: "\(rejected) message(s): \(KafkaErrors.describe(e))")
        }
        if retry.count == total, let e = firstRetriable {
            return .retry(after: nil, reason: "\(retry.count) message(s) not delivered: \(KafkaErrors.describe(e))")
        }
        retry.sort()
        let reason = [firstPermanent.map { "\(rejected) refused: \(KafkaErrors.describe($0))" },
                      firstRetriable.map { "\(retry.count) to send again: \(KafkaErrors.describe($0))" }]
            .compactMap { $0 }.joined(separator: "; ")
        return .partial(retry: request.only(retry), rejected: rejected, reason: reason)
    }

    /// The static headers of one message (owned by it once produced), nil when there are none.
    static func makeHeaders(_ headers: [(String, String)]) -> OpaquePointer? {
        guard !headers.isEmpty, let h = rd_kafka_headers_new(headers.count) else { return nil }
        for (k, v) in headers { _ = rd_kafka_header_add(h, k, -1, v, v.utf8.count) }
        return h
    }

    /// Delivers what is still queued within the settings' flush timeout, drops the rest (their
    /// batches were not acknowledged, so they are read again on the next start) and destroys the
    /// producer. Blocking librdkafka calls run on a thread of their own.
    func close() async {
        polling.store(false, ordering: .releasing)
        await pollThreadDone.wait()
        let ms = Int32(KafkaSettings.millis(settings.flushTimeout, minimum: 0)) ?? 10_000
        let logger = callbacks.logger
        await runOnDedicatedThread(name: "kafka-close") { [self] in
            let topicHandles = topics.withLock { t in
                defer { t = [:] }
                return Array(t.values)
            }
            let err = rd_kafka_flush(handle, ms)
            let left = rd_kafka_outq_len(handle)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR && left > 0 {
                logger.warning("Kafka: messages still queued at stop are dropped here; their data is read again on the next start.",
                               metadata: ["messages": "\(left)"])
            }
            // Purged messages get a report (serving them frees their deliveries).
            rd_kafka_purge(handle, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
            for _ in 0..<50 where rd_kafka_outq_len(handle) > 0 { rd_kafka_poll(handle, 100) }
            rd_kafka_poll(handle, 0)
            for t in topicHandles { rd_kafka_topic_destroy(t) }
            rd_kafka_destroy(handle)
        }
    }
}

/// The producer a Kafka flusher sends with: created at start (or at the first send when that
/// failed), and replaced after a fatal error (the old one is closed on the side).
final class KafkaProducerSlot: @unchecked Sendable {
    let settings: KafkaSettings
    let logger: Logger
    private let current = Mutex<KafkaProducer?>(nil)

    init(settings: KafkaSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// The producer, created if there is none or the last one failed fatally.
    func get() throws(FlushError) -> KafkaProducer {
        var retired: KafkaProducer?
        let p: KafkaProducer = try current.withLock { (c: inout KafkaProducer?) throws(FlushError) -> KafkaProducer in
            if let p = c, !p.isFatal { return p }
            retired = c
            let p = try KafkaProducer(settings: settings, logger: logger)
            c = p
            return p
        }
        if let retired { Task { await retired.close() } }
        return p
    }

    func start() throws(FlushError) { _ = try get() }

    func send(_ request: KafkaRequest, headers: [(String, String)]) async -> SendOutcome<KafkaRequest> {
        let p: KafkaProducer
        do { p = try get() } catch { return .retry(after: nil, reason: error.description) }
        return await p.send(request, headers: headers)
    }

    func close() async {
        let p = current.withLock { c in
            defer { c = nil }
            return c
        }
        await p?.close()
    }
}
