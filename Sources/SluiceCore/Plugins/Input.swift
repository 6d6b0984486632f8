/// Where an input delivers its batches. `send` may block the calling thread (backpressure) and
/// returns false when the pipeline is stopping: the batch was not taken and will not be acknowledged.
/// The batch is consumed: an input that hands over its last reference lets the processors rewrite
/// the batch's arena, events and fields in place (a second reference would make each of them a copy).
public protocol BatchSink: Sendable {
    func send(_ batch: consuming EventBatch) -> Bool
    /// `send`, calling `waiting` on the sending thread about every 200 ms while the batch waits
    /// for room (a flusher's queue is full): the input's chance to do what must not wait behind
    /// the destination (open the files of a container that may be gone, and its log deleted,
    /// before the destination is back).
    func send(_ batch: consuming EventBatch, waiting: () -> Void) -> Bool
}

extension BatchSink {
    public func send(_ batch: consuming EventBatch, waiting: () -> Void) -> Bool { send(batch) }
}

/// An input produces batches. It runs its own thread(s) so blocking reads never starve the
/// cooperative pool. `run` returns after `requestStop()` was called and the input has let go of
/// everything (its last batch handed to the sink or abandoned).
public protocol Input: AnyObject, Sendable {
    func run(sink: any BatchSink) async throws
    func requestStop()
    /// Hands the sink everything there is to read now (files to their end, held-back partial
    /// lines and multiline groups), then lets `run` return as `requestStop` does. An input with
    /// no end to read to just stops.
    func requestDrain()
}

extension Input {
    public func requestDrain() { requestStop() }
}

/// A processor transforms a whole batch in place (parse, filter, mask). It runs on the input's thread.
public protocol Processor: Sendable {
    func process(_ batch: inout EventBatch)
}
