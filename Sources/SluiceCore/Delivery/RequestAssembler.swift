/// Gathers batches into one request under a flusher's limits (events, bytes, age). Pure: the
/// runner offers batches and asks whether the request is complete. A batch is never split; the
/// first batch is always taken, however large, and one that would cross a limit is left for the
/// next request.
public struct RequestAssembler: Sendable {
    public let maxEvents: Int
    public let maxBytes: Int
    public private(set) var batches: [EventBatch] = []
    public private(set) var events = 0
    public private(set) var bytes = 0

    public init(maxEvents: Int, maxBytes: Int) {
        self.maxEvents = max(1, maxEvents)
        self.maxBytes = max(1, maxBytes)
    }

    public init(_ o: DeliveryOptions) { self.init(maxEvents: o.maxEvents, maxBytes: o.maxBytes) }

    public var isEmpty: Bool { batches.isEmpty }
    /// No further batch can be taken.
    public var isFull: Bool { events >= maxEvents || bytes >= maxBytes }

    /// Takes `batch` if it fits (or is the first); false leaves it to the caller for the next request.
    public mutating func offer(_ batch: EventBatch) -> Bool {
        let e = batch.events.count
        let b = batch.inputBytes
        if !batches.isEmpty && (events + e > maxEvents || bytes + b > maxBytes) { return false }
        batches.append(batch)
        events += e
        bytes += b
        return true
    }

    /// The batches gathered so far; the assembler starts empty again.
    public mutating func take() -> [EventBatch] {
        defer { batches = []; events = 0; bytes = 0 }
        return batches
    }
}
