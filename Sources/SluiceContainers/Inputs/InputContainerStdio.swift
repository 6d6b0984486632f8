import SluiceConfig
import SluiceCore
import SluiceFiles

/// `input_container_stdio`: the stdout and stderr of the containers its filters select.
public final class InputContainerStdio: ContainerInputPlugin {
    /// `input_container_stdio`.
    public static let spec = PluginSpec(
        type: "input_container_stdio", kind: .input,
        summary: "Collects the stdout and stderr of matching containers (Docker json-file and CRI logs, partial lines joined per stream), with their Kubernetes metadata; short-lived containers are followed from the moment discovery sees them.",
        fields: [
            FieldSpec(name: "IgnoringStdout", type: .bool, doc: "Skip stdout.", defaultValue: "false"),
            FieldSpec(name: "IgnoringStderr", type: .bool, doc: "Skip stderr.", defaultValue: "false"),
            FieldSpec(name: "MaxLogSize", type: .int, doc: "Largest joined line in bytes; past it the joined part is emitted and counted.", defaultValue: "524288"),
            ContainerFilters.fieldSpec,
        ] + ContainerInputConfig.commonFields + FileInputOptions.sharedFields)


    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> ContainerInputOptions {
        try ContainerInputConfig.stdio(c, type: spec.type, globals: globals)
    }

    public let input: ContainerInput
    public init(options: ContainerInputOptions, context: PluginContext) throws {
        input = try ContainerInput(type: Self.spec.type, options: options, context: context)
    }
}
