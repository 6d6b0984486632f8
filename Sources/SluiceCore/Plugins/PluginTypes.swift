import SluiceConfig

/// A plugin type, as a Swift type named the PascalCase of its iLogtail type (`flusher_file` →
/// `FlusherFile`): its spec (validation and docs), and a pure reading of its options that
/// `sluice validate` reports and building takes, so a config is parsed once.
public protocol PluginType {
    associatedtype Options: Sendable
    static var spec: PluginSpec { get }
    /// Reads and checks the options. No side effects: no files, threads or sockets.
    static func options(from config: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options
}

public protocol InputPlugin: PluginType, Input {
    init(options: Options, context: PluginContext) throws
}

/// An input whose reading depends on the pipeline's first processor (`input_file` reads whole
/// JSON objects when that processor parses JSON, as the incumbent does).
public protocol AdaptsToFirstProcessor: InputPlugin {
    static func options(_ options: Options, firstProcessor type: String) -> Options
}

public protocol ProcessorPlugin: PluginType, Processor {
    init(options: Options, context: PluginContext) throws
}

public protocol FlusherPlugin: PluginType, Flusher {
    init(options: Options, context: PluginContext) throws
}

/// The `Options` of a plugin with no parameters of its own.
public struct NoOptions: Sendable, Equatable {
    public init() {}
}
