import Synchronization

/// Counters of one pipeline (names follow `component_*_total` conventions in the stats output).
public final class PipelineMetrics: Sendable {
    public let eventsIn = Atomic<Int>(0)
    public let bytesIn = Atomic<Int>(0)
    public let eventsOut = Atomic<Int>(0)
    public let bytesOut = Atomic<Int>(0)
    /// Lines longer than the read buffer, emitted in pieces.
    public let linesSplit = Atomic<Int>(0)
    /// Events dropped on purpose (filters); never by accident.
    public let eventsDropped = Atomic<Int>(0)
    public let flushErrors = Atomic<Int>(0)
    public let filesOpened = Atomic<Int>(0)
    public let filesClosed = Atomic<Int>(0)
    public let truncations = Atomic<Int>(0)
    public let rotations = Atomic<Int>(0)
    public let readErrors = Atomic<Int>(0)

    public init() {}

    public func snapshot() -> [(String, Int)] {
        [
            ("events_in", eventsIn.load(ordering: .relaxed)),
            ("bytes_in", bytesIn.load(ordering: .relaxed)),
            ("events_out", eventsOut.load(ordering: .relaxed)),
            ("bytes_out", bytesOut.load(ordering: .relaxed)),
            ("lines_split", linesSplit.load(ordering: .relaxed)),
            ("events_dropped", eventsDropped.load(ordering: .relaxed)),
            ("flush_errors", flushErrors.load(ordering: .relaxed)),
            ("files_opened", filesOpened.load(ordering: .relaxed)),
            ("files_closed", filesClosed.load(ordering: .relaxed)),
            ("truncations", truncations.load(ordering: .relaxed)),
            ("rotations", rotations.load(ordering: .relaxed)),
            ("read_errors", readErrors.load(ordering: .relaxed)),
        ]
    }
}
