/// One value of the daemon's state at one moment (files open, containers known, queue bytes,
/// RSS, ...): what `/metrics` exports as a gauge and the stats file writes under `gauges`.
public struct GaugeSample: Sendable {
    public var name: String
    public var labels: [(String, String)]
    public var value: Double

    public init(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        self.name = name
        self.labels = labels
        self.value = value
    }

    /// `name{a="x",b="y"}`: a stable key for one series.
    public var key: String {
        labels.isEmpty ? name : name + "{" + labels.map { "\($0.0)=\"\($0.1)\"" }.joined(separator: ",") + "}"
    }

    /// One line of help per gauge name, shown as `# HELP` in `/metrics`.
    public static let help: [String: String] = [
        "process_resident_memory_bytes": "Resident memory of the Sluice process.",
        "process_open_fds": "Open file descriptors of the Sluice process.",
        "files_open": "Files a pipeline holds open now.",
        "containers_known": "Live containers known, by the runtime that reported them and how much metadata is known.",
        "discovery_sources_synced": "1 when a container source has completed a full listing.",
        "component_queue_bytes": "Bytes waiting in a flusher's queue.",
        "component_buffered_events": "Events a flusher holds (being batched, sent or waiting for a retry).",
        "component_buffered_bytes": "Input bytes a flusher holds (being batched, sent or waiting for a retry).",
        "component_in_flight_requests": "Requests a flusher is sending now.",
        "checkpoint_age_seconds": "Seconds since a pipeline's checkpoints were last persisted.",
        "pipelines_running": "Pipelines running now.",
        "component_buffer_bytes": "Bytes of a flusher's disk buffer (segment files and appends waiting for their fsync).",
        "component_buffer_events": "Events in a flusher's disk buffer not yet acknowledged by the destination.",
        "component_buffer_frames": "Batches in a flusher's disk buffer not yet acknowledged by the destination.",
        "component_buffer_segments": "Segment files of a flusher's disk buffer.",
        "component_buffer_oldest_age_seconds": "Age of the oldest batch in a flusher's disk buffer not yet acknowledged.",
        "component_buffer_corrupt_frames": "Damaged batches found in a flusher's disk buffer (skipped) since start.",
        "component_buffer_truncated_bytes": "Bytes of unreadable tail cut off a flusher's disk buffer at start (a crash mid-write).",
        "component_buffer_dropped_events": "Events a flusher's full disk buffer dropped (WhenFull: drop_newest) since start.",
        "component_buffer_fsyncs": "fsyncs of a flusher's disk buffer since start.",
        "component_buffer_write_errors": "Failed writes or fsyncs of a flusher's disk buffer since start (disk full...).",
        "resource_limit_paused": "1 while reading is paused to stay under mem_usage_limit or cpu_usage_limit.",
    ]
}
