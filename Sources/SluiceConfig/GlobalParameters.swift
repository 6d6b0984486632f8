/// One daemon-wide parameter: its iLogtail name (also the environment variable read), default,
/// documentation and whether Sluice uses it yet.
public struct GlobalParameterSpec: Sendable {
    /// The kind of value the parameter takes.
    public enum ValueKind: Sendable, Equatable {
        case integer
        case number
    }

    /// The iLogtail name, which is also the environment variable, e.g. `max_read_buffer_size`.
    public var name: String
    /// The default as text, e.g. `"524288"`.
    public var defaultValue: String
    /// The unit of the value, e.g. `"bytes"`, `"MB"`, `"s"`; `""` for a plain count.
    public var unit: String
    /// One or two sentences for the docs.
    public var doc: String
    public var status: FieldStatus
    public var valueKind: ValueKind
    /// The smallest accepted value.
    public var minimum: Double
    /// The largest accepted value.
    public var maximum: Double

    public init(
        name: String, defaultValue: String, unit: String = "", doc: String, status: FieldStatus = .supported,
        valueKind: ValueKind = .integer, minimum: Double, maximum: Double
    ) {
        self.name = name
        self.defaultValue = defaultValue
        self.unit = unit
        self.doc = doc
        self.status = status
        self.valueKind = valueKind
        self.minimum = minimum
        self.maximum = maximum
    }
}

/// The daemon's global parameters, iLogtail's instance parameters, read from environment
/// variables of the same names (e.g. `mem_usage_limit=1024`).
public struct GlobalParameters: Sendable, Equatable {
    /// `cpu_usage_limit`: soft CPU limit in cores.
    public var cpuUsageLimit: Double = 2.0
    /// `mem_usage_limit`: soft memory limit in MB; sizes the queues.
    public var memUsageLimitMB: Int = 2048
    /// `max_bytes_per_sec`: rate limit of bytes read by all inputs together, per second; 0 = unlimited.
    public var maxBytesPerSec: Int = 0
    /// `send_request_concurrency`: concurrent sends.
    public var sendRequestConcurrency: Int = 15
    /// `process_thread_count`: threads running each pipeline's processors (per file, in order).
    public var processThreadCount: Int = 1
    /// `docker_config_update_interval`: container discovery poll interval, seconds.
    public var dockerConfigUpdateIntervalSec: Int = 1
    /// `max_docker_config_update_times`: container config updates allowed per 180 s.
    public var maxDockerConfigUpdateTimes: Int = 10
    /// `force_release_deleted_file_fd_timeout`: close a deleted file after this many seconds even
    /// if not read to the end; -1 turns this off.
    public var forceReleaseDeletedFileFdTimeoutSec: Int = -1
    /// `max_read_buffer_size`: read buffer size in bytes, also the largest single event.
    public var maxReadBufferSize: Int = 524_288
    /// `checkpoint_flush_interval_ms`: how often acknowledged offsets are persisted (Sluice's own).
    public var checkpointFlushIntervalMs: Int = 200

    /// Sidecar env tags: `LOONG_ENV_TAGS` or `ALIYUN_LOG_ENV_TAGS` (`_pod_name_|_pod_ip_|...`) name
    /// environment variables; each becomes a tag (its name, its value) on every event.
    public var envTags: [EnvTag] = []

    /// A tag from the environment: the variable's name and value.
    public struct EnvTag: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    /// `buffer_file_path`: where flushers' disk buffers are kept (`<it>/<pipeline>/<flusher id>`);
    /// nil: each flusher's state directory under `--data-dir`.
    public var bufferFilePath: String?

    /// The variables that list env tags, newest name first (LoongCollector, then iLogtail).
    public static let envTagVariables = ["LOONG_ENV_TAGS", "ALIYUN_LOG_ENV_TAGS"]

    /// All defaults.
    public init() {}

    /// The parameters, their defaults and docs, in the order of the docs table.
    public static let specs: [GlobalParameterSpec] = [
        GlobalParameterSpec(
            name: "cpu_usage_limit", defaultValue: "2.0", unit: "cores",
            doc: "Soft CPU limit of the daemon: CPU time is budgeted at this many cores (sampled every 100 ms); while the budget is overdrawn every input pauses reading, and processing and sending follow reading.",
            valueKind: .number, minimum: 0.01, maximum: 1024),
        GlobalParameterSpec(
            name: "mem_usage_limit", defaultValue: "2048", unit: "MB",
            doc: "Soft memory limit: the pipelines' queues are sized from it (1/256 each, 1 to 64 MiB), and every input pauses reading while RSS is above 90 % of it, until it is back under 80 %.",
            minimum: 16, maximum: 1_048_576),
        GlobalParameterSpec(
            name: "max_bytes_per_sec", defaultValue: "0", unit: "bytes/s",
            doc: "Rate limit of the bytes all inputs read together (which bounds what is sent); 0 means unlimited. iLogtail defaults to 25 MB/s for its own cloud sink; Sluice does not limit unless asked.",
            minimum: 0, maximum: Double(Int.max)),
        GlobalParameterSpec(
            name: "send_request_concurrency", defaultValue: "15",
            doc: "Requests each network flusher (flusher_http, flusher_elasticsearch, flusher_loki, flusher_clickhouse, flusher_otlp) keeps in flight when its own Concurrency is not set.",
            minimum: 1, maximum: 10_000),
        GlobalParameterSpec(
            name: "process_thread_count", defaultValue: "1",
            doc: "Threads that run each pipeline's processors. 1 runs them on the input's reader thread; above 1, a batch goes to the thread its file picks, so one file's lines keep their order and its checkpoint stays exact while different files are processed at once (each thread has its own processor instances). A pipeline without processors ignores it.",
            minimum: 1, maximum: 1024),
        GlobalParameterSpec(
            name: "docker_config_update_interval", defaultValue: "1", unit: "s",
            doc: "How often a CRI runtime without an event stream is polled for containers (iLogtail: 3 s). Docker is followed through its event stream and the kubelet pod log dir through inotify, within milliseconds, whatever this says.",
            minimum: 1, maximum: 86_400),
        GlobalParameterSpec(
            name: "max_docker_config_update_times", defaultValue: "10",
            doc: "Container config updates allowed per 180 s.",
            status: .acceptedNotYetEffective(reason: "Sluice does not rate-limit container config updates"),
            minimum: 1, maximum: 1_000_000),
        GlobalParameterSpec(
            name: "force_release_deleted_file_fd_timeout", defaultValue: "-1", unit: "s",
            doc: "Close a deleted file after this many seconds even if it was not read to the end; -1 turns this off.",
            minimum: -1, maximum: Double(Int32.max)),
        GlobalParameterSpec(
            name: "max_read_buffer_size", defaultValue: "524288", unit: "bytes",
            doc: "Size of a file reader's buffer, and so the largest single event; longer lines are split.",
            minimum: 1024, maximum: 1_073_741_824),
        GlobalParameterSpec(
            name: "checkpoint_flush_interval_ms", defaultValue: "200", unit: "ms",
            doc: "How often acknowledged file offsets are persisted (Sluice's own; iLogtail dumps every ~15 min).",
            minimum: 1, maximum: 3_600_000),
    ]

    /// Reads the parameters from `environment` (variables named as in ``specs``; other variables
    /// are ignored, and an empty value counts as unset).
    ///
    /// - Returns: the parameters and one warning per variable that is set but has no effect yet.
    /// - Throws: a ``ConfigError`` whose `file` is `"environment"` and `keyPath` the variable,
    ///   for the first value that is not a number or is out of range.
    public static func from(environment: [String: String]) throws(ConfigError) -> (GlobalParameters, warnings: [String]) {
        var parameters = GlobalParameters()
        var warnings: [String] = []
        for spec in specs {
            guard let raw = environment[spec.name] else { continue }
            let text = String(raw.trimmingSpaces)
            if text.isEmpty { continue }
            let value = try parse(text, spec: spec)
            parameters.set(spec.name, value)
            if case .acceptedNotYetEffective(let reason) = spec.status {
                warnings.append("\(spec.name)=\(text) is accepted but has no effect yet: \(reason)")
            }
        }
        if let path = environment["buffer_file_path"], !path.isEmpty { parameters.bufferFilePath = path }
        if let variable = envTagVariables.first(where: { !(environment[$0] ?? "").isEmpty }), let list = environment[variable] {
            for name in list.split(separator: "|").map({ String(String($0).trimmingSpaces) }) where !name.isEmpty {
                if parameters.envTags.contains(where: { $0.name == name }) { continue }
                let value = environment[name]
                if value == nil { warnings.append("\(variable) names \(name), which is not set; its tag is empty") }
                parameters.envTags.append(EnvTag(name, value ?? ""))
            }
        }
        return (parameters, warnings)
    }

    /// A value read from the environment.
    enum Value {
        case integer(Int)
        case number(Double)
    }

    static func parse(_ text: String, spec: GlobalParameterSpec) throws(ConfigError) -> Value {
        func fail(_ message: String) -> ConfigError {
            ConfigError(file: "environment", keyPath: spec.name, message: message)
        }
        func outOfRange() -> ConfigError {
            fail("\(text) is out of range (\(format(spec.minimum, spec)) to \(format(spec.maximum, spec)))")
        }
        switch spec.valueKind {
        case .integer:
            guard let integer = Int(text) else {
                if text.allSatisfy({ $0.isNumber || $0 == "-" || $0 == "+" }) { throw outOfRange() }
                throw fail("expected an integer, found \(ConfigScalar.quoted(text))")
            }
            guard Double(integer) >= spec.minimum, Double(integer) <= spec.maximum else { throw outOfRange() }
            return .integer(integer)
        case .number:
            guard let number = Double(text), number.isFinite else {
                throw fail("expected a number, found \(ConfigScalar.quoted(text))")
            }
            guard number >= spec.minimum, number <= spec.maximum else { throw outOfRange() }
            return .number(number)
        }
    }

    private static func format(_ value: Double, _ spec: GlobalParameterSpec) -> String {
        if value >= Double(Int.max) { return "\(Int.max)" }
        if spec.valueKind == .integer || value == value.rounded() { return "\(Int(value))" }
        return "\(value)"
    }

    private mutating func set(_ name: String, _ value: Value) {
        let integer: Int
        let number: Double
        switch value {
        case .integer(let i): integer = i; number = Double(i)
        case .number(let d): integer = Int(d); number = d
        }
        switch name {
        case "cpu_usage_limit": cpuUsageLimit = number
        case "mem_usage_limit": memUsageLimitMB = integer
        case "max_bytes_per_sec": maxBytesPerSec = integer
        case "send_request_concurrency": sendRequestConcurrency = integer
        case "process_thread_count": processThreadCount = integer
        case "docker_config_update_interval": dockerConfigUpdateIntervalSec = integer
        case "max_docker_config_update_times": maxDockerConfigUpdateTimes = integer
        case "force_release_deleted_file_fd_timeout": forceReleaseDeletedFileFdTimeoutSec = integer
        case "max_read_buffer_size": maxReadBufferSize = integer
        case "checkpoint_flush_interval_ms": checkpointFlushIntervalMs = integer
        default: break
        }
    }

    /// The docs table of the parameters: name, default, unit, status, description.
    public static func markdownTable() -> String {
        var lines = [
            "| name | default | unit | status | description |",
            "| --- | --- | --- | --- | --- |",
        ]
        for spec in specs {
            let status: String
            switch spec.status {
            case .supported: status = "supported"
            case .acceptedNotYetEffective(let reason): status = "accepted, no effect yet: \(reason)"
            }
            lines.append("| `\(spec.name)` | `\(spec.defaultValue)` | \(spec.unit.isEmpty ? "—" : spec.unit) | \(Markdown.cell(status)) | \(Markdown.cell(spec.doc)) |")
        }
        return lines.joined(separator: "\n")
    }
}
