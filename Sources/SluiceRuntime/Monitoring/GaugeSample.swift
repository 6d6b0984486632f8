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
        "resource_limit_paused": "1 while reading is paused to stay under mem_usage_limit or cpu_usage_limit.",
    ]
}
