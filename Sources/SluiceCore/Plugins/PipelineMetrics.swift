/// Counters of one pipeline, labelled `pipeline`; exported as `pipeline_*_total` and
/// `file_*_total` series and written to the stats file under their short names.
public final class PipelineMetrics: Sendable {
    public let eventsIn: MetricCount
    public let bytesIn: MetricCount
    public let eventsOut: MetricCount
    public let bytesOut: MetricCount
    /// Lines longer than the read buffer, emitted in pieces.
    public let linesSplit: MetricCount
    /// Events dropped on purpose (filters); never by accident.
    public let eventsDropped: MetricCount
    /// Events no flusher's `Match` selected (dropped; counted in `eventsDropped` too).
    public let eventsUnrouted: MetricCount
    public let flushErrors: MetricCount
    public let filesOpened: MetricCount
    public let filesClosed: MetricCount
    public let truncations: MetricCount
    public let rotations: MetricCount
    public let readErrors: MetricCount

    /// The stats file's names, in its order.
    public static let names = ["events_in", "bytes_in", "events_out", "bytes_out", "lines_split", "events_dropped",
                               "events_unrouted", "flush_errors", "files_opened", "files_closed", "truncations", "rotations", "read_errors"]

    public init(pipeline: String = "") {
        let d = [("pipeline", pipeline)]
        eventsIn = MetricCount("pipeline_received_events_total", dimensions: d)
        bytesIn = MetricCount("pipeline_received_bytes_total", dimensions: d)
        eventsOut = MetricCount("pipeline_sent_events_total", dimensions: d)
        bytesOut = MetricCount("pipeline_sent_bytes_total", dimensions: d)
        linesSplit = MetricCount("pipeline_lines_split_total", dimensions: d)
        eventsDropped = MetricCount("pipeline_dropped_events_total", dimensions: d)
        eventsUnrouted = MetricCount("pipeline_unrouted_events_total", dimensions: d)
        flushErrors = MetricCount("pipeline_flush_errors_total", dimensions: d)
        filesOpened = MetricCount("file_opened_total", dimensions: d)
        filesClosed = MetricCount("file_closed_total", dimensions: d)
        truncations = MetricCount("file_truncations_total", dimensions: d)
        rotations = MetricCount("file_rotations_total", dimensions: d)
        readErrors = MetricCount("file_read_errors_total", dimensions: d)
    }

    /// Files open now (opened minus closed).
    public var filesOpen: Int { filesOpened.current - filesClosed.current }

    public func snapshot() -> [(String, Int)] {
        let all = [eventsIn, bytesIn, eventsOut, bytesOut, linesSplit, eventsDropped, eventsUnrouted, flushErrors,
                   filesOpened, filesClosed, truncations, rotations, readErrors]
        return zip(Self.names, all).map { ($0, $1.current) }
    }
}
