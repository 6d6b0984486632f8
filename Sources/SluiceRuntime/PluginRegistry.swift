import SluiceConfig
import SluiceContainers
import SluiceCore
import SluiceFiles
import SluiceFlushers

/// What building a pipeline's plugins may need besides their own config.
public struct BuildResources: Sendable {
    public var checkpoints: CheckpointTable
    public var globals: GlobalParameters
    /// The daemon's container discovery, started on first use.
    public var discovery: @Sendable () -> ContainerDiscovery
    public init(checkpoints: CheckpointTable, globals: GlobalParameters, discovery: @escaping @Sendable () -> ContainerDiscovery) {
        self.checkpoints = checkpoints
        self.globals = globals
        self.discovery = discovery
    }
}

/// Every plugin type Sluice knows: its spec (for validation and docs), a pure check of its
/// options, and how to build it. Adding a plugin means adding one entry here.
public struct PluginRegistry: Sendable {
    public struct InputEntry: Sendable {
        public var spec: PluginSpec
        public var check: @Sendable (ConfigObject, GlobalParameters) throws -> Void
        public var build: @Sendable (ConfigObject, PluginContext, BuildResources) throws -> any Input
    }
    public struct ProcessorEntry: Sendable {
        public var spec: PluginSpec
        public var check: @Sendable (ConfigObject, GlobalParameters) throws -> Void
        public var build: @Sendable (ConfigObject, PluginContext) throws -> any Processor
    }
    public struct FlusherEntry: Sendable {
        public var spec: PluginSpec
        public var check: @Sendable (ConfigObject, GlobalParameters) throws -> Void
        public var build: @Sendable (ConfigObject, PluginContext) throws -> any Flusher
    }

    public var inputs: [String: InputEntry] = [:]
    public var processors: [String: ProcessorEntry] = [:]
    public var flushers: [String: FlusherEntry] = [:]

    public var catalog: PluginCatalog {
        PluginCatalog(inputs.values.map(\.spec) + processors.values.map(\.spec) + flushers.values.map(\.spec))
    }

    /// The plugins of this build of Sluice.
    public static let standard: PluginRegistry = {
        var r = PluginRegistry()
        var fileSpec = FileInput.spec
        fileSpec.fields += [ContainerFilters.fieldSpec] + ContainerTagFields.spec
        r.inputs["input_file"] = InputEntry(
            spec: fileSpec,
            check: { c, g in
                if try c.bool("EnableContainerDiscovery") == true {
                    _ = try ContainerInputConfig.containerFiles(c, globals: g)
                } else {
                    _ = try FileInput.options(from: c, maxReadBufferSize: g.maxReadBufferSize, forceReleaseDeletedFileFdTimeoutSec: g.forceReleaseDeletedFileFdTimeoutSec)
                }
            },
            build: { c, ctx, res in
                if try c.bool("EnableContainerDiscovery") == true {
                    let (o, sel, kind) = try ContainerInputConfig.containerFiles(c, globals: res.globals)
                    return try ContainerInput(name: "input_file", options: o, selection: sel, kind: kind, discovery: res.discovery(), context: ctx, checkpoints: res.checkpoints)
                }
                let o = try FileInput.options(from: c, maxReadBufferSize: res.globals.maxReadBufferSize, forceReleaseDeletedFileFdTimeoutSec: res.globals.forceReleaseDeletedFileFdTimeoutSec)
                return try FileInput(options: o, context: ctx, checkpoints: res.checkpoints)
            })
        for spec in [ContainerInputConfig.stdioSpec, ContainerInputConfig.dockerStdoutSpec] {
            let type = spec.type
            r.inputs[type] = InputEntry(
                spec: spec,
                check: { c, g in _ = try ContainerInputConfig.stdio(c, type: type, globals: g) },
                build: { c, ctx, res in
                    let (o, sel, kind) = try ContainerInputConfig.stdio(c, type: type, globals: res.globals)
                    return try ContainerInput(name: type, options: o, selection: sel, kind: kind, discovery: res.discovery(), context: ctx, checkpoints: res.checkpoints)
                })
        }
        r.flushers["flusher_file"] = FlusherEntry(
            spec: FlusherFile.spec,
            check: { c, _ in _ = try FlusherFile.options(from: c) },
            build: { c, ctx in FlusherFile(options: try FlusherFile.options(from: c), context: ctx) })
        r.flushers["flusher_stdout"] = FlusherEntry(
            spec: FlusherStdout.spec, check: { _, _ in }, build: { _, ctx in FlusherStdout(context: ctx) })
        r.flushers["flusher_blackhole"] = FlusherEntry(
            spec: FlusherBlackhole.spec, check: { _, _ in }, build: { _, _ in FlusherBlackhole() })
        return r
    }()

    /// Loads and fully checks one pipeline file without starting anything: syntax, keys, types,
    /// and every plugin's own option checks. Returns the document or every error found.
    public func validate(file: String, globals: GlobalParameters) throws(ConfigErrors) -> PipelineDocument {
        let doc = try PipelineLoader.load(file: file, catalog: catalog)
        var errors: [ConfigError] = []
        func run(_ body: () throws -> Void, _ inst: PluginInstanceConfig) {
            do { try body() } catch let e as ConfigError { errors.append(e) } catch {
                errors.append(inst.config.error(at: nil, "\(error)"))
            }
        }
        for i in doc.inputs { if let e = inputs[i.type] { run({ try e.check(i.config, globals) }, i) } }
        for p in doc.processors { if let e = processors[p.type] { run({ try e.check(p.config, globals) }, p) } }
        for f in doc.flushers { if let e = flushers[f.type] { run({ try e.check(f.config, globals) }, f) } }
        if !errors.isEmpty { throw ConfigErrors(errors: errors) }
        return doc
    }
}

extension PluginRegistry {
    /// The configuration reference, from the same specs that validation uses.
    public func referenceMarkdown() -> String {
        var s = "# Sluice configuration reference\n\n"
        s += "Generated by `sluice docs` from the plugin specs that `sluice validate` checks against; do not edit by hand.\n\n"
        s += "## Pipeline files\n\n"
        s += "One pipeline per `.yaml`, `.yml` or `.json` file, in iLogtail / LoongCollector's format: top-level keys `enable` (default true), `global`, `inputs`, `processors`, `aggregators`, `flushers`; each plugin is a map with `Type` and PascalCase parameters. Unknown keys and wrong value types are errors that name file, line, column and key path. `global` keys are accepted with a warning (they have no effect in Sluice).\n\n"
        s += "## Global parameters\n\nRead from environment variables of these names.\n\n"
        s += GlobalParameters.markdownTable() + "\n\n"
        for (title, specs) in [("Inputs", inputs.values.map(\.spec)), ("Processors", processors.values.map(\.spec)), ("Flushers", flushers.values.map(\.spec))] {
            s += "## \(title)\n\n"
            if specs.isEmpty { s += "None in this version.\n\n"; continue }
            for spec in specs.sorted(by: { $0.type < $1.type }) { s += spec.markdown() + "\n" }
        }
        return s
    }
}
