import CRdKafka
import Synchronization

/// One send of a request, from the first produce to the last delivery report. Each produced
/// message carries a pointer to its slot (this delivery and the message's index) as its opaque;
/// the delivery-report callback, on the producer's poll thread, records the result there. When
/// the send has produced everything it will (`close`) and every report is in, the waiting send is
/// resumed.
///
/// librdkafka holds one reference (taken at `init`, dropped with the last report), so the slots
/// and the message buffer (values are passed by reference) outlive a send that returned early at
/// shutdown.
final class KafkaDelivery: @unchecked Sendable {
    struct Slot {
        var delivery: Unmanaged<KafkaDelivery>
        var index: Int
    }

    struct State {
        var outstanding = 0
        var closed = false
        var done = false
        var failures: [(index: Int, error: rd_kafka_resp_err_t)] = []
        var waiter: CheckedContinuation<Void, Never>?
    }

    let request: KafkaRequest
    let slots: UnsafeMutablePointer<Slot>
    private let state = Mutex(State())
    private var unmanaged: Unmanaged<KafkaDelivery>!

    init(_ request: KafkaRequest) {
        self.request = request
        slots = .allocate(capacity: max(1, request.messageCount))
        unmanaged = Unmanaged.passRetained(self)
        for k in 0..<request.messageCount { (slots + k).initialize(to: Slot(delivery: unmanaged, index: request.index(k))) }
    }

    deinit { slots.deallocate() }

    /// The opaque of the `k`-th message this send produces.
    func opaque(_ k: Int) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(slots + k) }

    /// A produce is about to be tried; undone by `notProduced` when librdkafka refuses it.
    func willProduce() { state.withLock { $0.outstanding += 1 } }

    /// librdkafka refused the message synchronously: `error` is its result (nil: not tried again,
    /// to be sent on the next try).
    func notProduced(_ index: Int, _ error: rd_kafka_resp_err_t?) {
        finishIfDone { s in
            s.outstanding -= 1
            if let error { s.failures.append((index, error)) }
        }
    }

    /// Everything that will be produced has been.
    func close() { finishIfDone { $0.closed = true } }

    /// A delivery report (on the poll thread).
    func report(_ index: Int, _ error: rd_kafka_resp_err_t) {
        finishIfDone { s in
            s.outstanding -= 1
            if error != RD_KAFKA_RESP_ERR_NO_ERROR { s.failures.append((index, error)) }
        }
    }

    private func finishIfDone(_ change: (inout State) -> Void) {
        let (waiter, finished): (CheckedContinuation<Void, Never>?, Bool) = state.withLock { s in
            change(&s)
            guard s.closed && s.outstanding == 0 && !s.done else { return (nil, false) }
            s.done = true
            defer { s.waiter = nil }
            return (s.waiter, true)
        }
        waiter?.resume()
        if finished { unmanaged.release() }
    }

    /// Waits until every report is in, or the task is cancelled (the shutdown deadline): true when
    /// every report is in.
    func wait() async -> Bool {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.done || Task.isCancelled { return true }
                    s.waiter = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            state.withLock { s in
                defer { s.waiter = nil }
                return s.waiter
            }?.resume()
        }
        return state.withLock { $0.done }
    }

    /// The failed messages so far: (index, error).
    var failures: [(index: Int, error: rd_kafka_resp_err_t)] { state.withLock { $0.failures } }

    /// The delivery-report callback of every Sluice producer.
    static let reportCallback: @convention(c) (OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?) -> Void = { _, message, _ in
        guard let m = message?.pointee, let opaque = m._private else { return }
        let slot = opaque.assumingMemoryBound(to: Slot.self).pointee
        slot.delivery.takeUnretainedValue().report(slot.index, m.err)
    }
}

/// What a Kafka error means for the message: sent again, or refused for good.
enum KafkaErrors {
    /// Errors that sending the same message again cannot fix: it is too large, malformed, or its
    /// topic does not exist (and the broker does not create topics) or cannot have that name.
    static let permanent: Set<Int32> = [
        RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE, RD_KAFKA_RESP_ERR_INVALID_MSG,
        RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE, RD_KAFKA_RESP_ERR_INVALID_RECORD, RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION,
        RD_KAFKA_RESP_ERR_UNSUPPORTED_COMPRESSION_TYPE, RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS,
        RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION, RD_KAFKA_RESP_ERR__INVALID_ARG,
    ].reduce(into: Set<Int32>()) { $0.insert($1.rawValue) }

    static func isPermanent(_ e: rd_kafka_resp_err_t) -> Bool { permanent.contains(e.rawValue) }

    /// `Broker: Message size too large (MSG_SIZE_TOO_LARGE)`.
    static func describe(_ e: rd_kafka_resp_err_t) -> String {
        "\(String(cString: rd_kafka_err2str(e))) (\(String(cString: rd_kafka_err2name(e))))"
    }
}
