import SluiceConfig
import SluiceCore
import SluiceFiles

/// `input_file`: files on this host, or, with `EnableContainerDiscovery`, files inside the
/// containers its `ContainerFilters` select (mapped through their mounts or rootfs).
public final class InputFile: InputPlugin, AdaptsToFirstProcessor {
    public static let spec = PluginSpec(
        type: "input_file", kind: .input,
        summary: "Tails files on this host or inside containers: rotation, truncation and deletion handled, checkpoints moved only on acknowledgement.",
        fields: FileInputOptions.fields + [ContainerFilters.fieldSpec] + ContainerTagFields.spec)

    public enum Options: Sendable {
        /// Files on this host.
        case host(FileInputOptions)
        /// `EnableContainerDiscovery: true`: FilePaths inside the selected containers.
        case containers(ContainerInputOptions)
    }

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        if try c.bool("EnableContainerDiscovery") == true {
            return .containers(try ContainerInputConfig.containerFiles(c, globals: globals))
        }
        return .host(try FileInputOptions.from(c, globals: globals))
    }

    public static func options(_ options: Options, firstProcessor type: String) -> Options {
        switch options {
        case .host(var o):
            o.adapt(toFirstProcessor: type)
            return .host(o)
        case .containers(var o):
            o.files.adapt(toFirstProcessor: type)
            return .containers(o)
        }
    }

    let input: any Input
    public init(options: Options, context: PluginContext) throws {
        switch options {
        case .host(let o):
            input = try FileInput(options: o, context: context, checkpoints: try context.services.requireCheckpoints())
        case .containers(let o):
            input = try ContainerInput(type: Self.spec.type, options: o, context: context)
        }
    }
    public func run(sink: any BatchSink) async throws { try await input.run(sink: sink) }
    public func requestStop() { input.requestStop() }
    public func requestDrain() { input.requestDrain() }
}
