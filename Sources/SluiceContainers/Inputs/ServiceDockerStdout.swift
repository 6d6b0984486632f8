import SluiceConfig
import SluiceCore

/// `service_docker_stdout`: iLogtail's older stdout input, with its own parameter names; the same
/// input as `input_container_stdio`.
public final class ServiceDockerStdout: ContainerInputPlugin {
    /// `service_docker_stdout`: the older stdout input, its own parameter names, the same input.
    public static let spec = PluginSpec(
        type: "service_docker_stdout", kind: .input,
        summary: "iLogtail's older stdout input; runs as input_container_stdio. Filters are written at the top of the plugin.",
        fields: ContainerFilters.spec + ContainerTagFields.spec + [
            FieldSpec(name: "Stdout", type: .bool, doc: "Collect stdout.", defaultValue: "true"),
            FieldSpec(name: "Stderr", type: .bool, doc: "Collect stderr.", defaultValue: "true"),
            FieldSpec(name: "StartLogMaxOffset", type: .int, doc: "For containers that existed at start: how far back from the end of the log to start, in bytes.", defaultValue: "131072"),
            FieldSpec(name: "MaxLogSize", type: .int, doc: "Largest joined line in bytes.", defaultValue: "524288"),
            FieldSpec(name: "FlushIntervalMs", type: .int, doc: "iLogtail: container discovery interval. Sluice discovers through events and the pod log dir.", defaultValue: "3000",
                      status: .acceptedNotYetEffective(reason: "discovery is event-driven")),
            FieldSpec(name: "ReadIntervalMs", type: .int, doc: "iLogtail: read interval. Sluice reads on inotify events.", defaultValue: "1000",
                      status: .acceptedNotYetEffective(reason: "reading is event-driven")),
            FieldSpec(name: "BeginLineRegex", type: .string, doc: "Multiline start pattern (prefix match at the line start, per stream, after partial lines are joined): a matching line opens an event, the lines that follow are appended with `\\n` until the next one.", defaultValue: nil),
            FieldSpec(name: "BeginLineTimeoutMs", type: .int, doc: "How long a pending multiline event waits for its next line.", defaultValue: "3000"),
            FieldSpec(name: "BeginLineCheckLength", type: .int, doc: "Only this many first bytes of a line are tested against BeginLineRegex.", defaultValue: "10240"),
            FieldSpec(name: "CloseUnChangedSec", type: .int, doc: "Close an unchanged log after this many seconds.", defaultValue: "60"),
        ])


    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> ContainerInputOptions {
        try ContainerInputConfig.stdio(c, type: spec.type, globals: globals)
    }

    public let input: ContainerInput
    public init(options: ContainerInputOptions, context: PluginContext) throws {
        input = try ContainerInput(type: Self.spec.type, options: options, context: context)
    }
}
