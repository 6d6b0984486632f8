import SluiceCore

/// The messages of one Kafka request, encoded once: every value and key in one buffer, each
/// message a topic number and two spans in it. The buffer is handed to librdkafka by reference
/// (no copy) and lives as long as a delivery of it is outstanding.
public final class KafkaMessages: @unchecked Sendable {
    public struct Message: Sendable {
        /// Index into `topics`.
        public var topic: UInt32
        public var valueOffset: Int
        public var valueLength: Int
        /// -1: no key.
        public var keyOffset: Int
        public var keyLength: Int
    }

    /// Values and keys.
    public let buffer: OutputBuffer
    /// The topics the messages go to, each once.
    public private(set) var topics: [String] = []
    public private(set) var messages: [Message] = []
    private var topicIndex: [String: UInt32] = [:]

    public init(capacity: Int) { buffer = OutputBuffer(capacity: capacity) }

    /// The number of `topic`, added on first use.
    public func topicNumber(_ topic: String) -> UInt32 {
        if topics.count == 1 && topics[0] == topic { return 0 }
        if let n = topicIndex[topic] { return n }
        let n = UInt32(topics.count)
        topics.append(topic)
        topicIndex[topic] = n
        return n
    }

    /// Records a message whose value (and key, if any) are in `buffer` at these places.
    public func add(topic: UInt32, value: Range<Int>, key: Range<Int>? = nil) {
        messages.append(Message(topic: topic, valueOffset: value.lowerBound, valueLength: value.count,
                                keyOffset: key?.lowerBound ?? -1, keyLength: key?.count ?? 0))
    }
}

/// A request of `flusher_kafka_v2`: the messages built from its batches, or (after a partial
/// failure) the ones of them still to send.
public struct KafkaRequest: FlushRequest {
    public let messages: KafkaMessages
    /// Indices of the messages to send; nil: all of them.
    public let pending: [Int]?
    public let eventCount: Int
    public let byteCount: Int

    public init(messages: KafkaMessages, events: Int) {
        self.messages = messages
        pending = nil
        eventCount = events
        byteCount = messages.messages.reduce(0) { $0 + $1.valueLength }
    }

    init(messages: KafkaMessages, pending: [Int]) {
        self.messages = messages
        self.pending = pending
        eventCount = pending.count
        byteCount = pending.reduce(0) { $0 + messages.messages[$1].valueLength }
    }

    /// How many messages a send of this request produces.
    public var messageCount: Int { pending?.count ?? messages.messages.count }

    /// The `k`-th message to send.
    @inline(__always) func index(_ k: Int) -> Int { pending?[k] ?? k }

    /// The same messages, only those at `indices`.
    func only(_ indices: [Int]) -> KafkaRequest { KafkaRequest(messages: messages, pending: indices) }
}
