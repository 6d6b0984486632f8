import SluiceConfig
import SluiceCore
import SluiceFiles
import SluiceFlushers

/// What building a pipeline's plugins may need besides their own config.
public struct BuildResources: Sendable {
    public var checkpoints: CheckpointTable
    public var globals: GlobalParameters
    public init(checkpoints: CheckpointTable, globals: GlobalParameters) {
        self.checkpoints = checkpoints
        self.globals = globals
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
        r.inputs["input_file"] = InputEntry(
            spec: FileInput.spec,
            check: { c, g in
                _ = try FileInput.options(from: c, maxReadBufferSize: g.maxReadBufferSize, forceReleaseDeletedFileFdTimeoutSec: g.forceReleaseDeletedFileFdTimeoutSec)
            },
            build: { c, ctx, res in
                let o = try FileInput.options(from: c, maxReadBufferSize: res.globals.maxReadBufferSize, forceReleaseDeletedFileFdTimeoutSec: res.globals.forceReleaseDeletedFileFdTimeoutSec)
                return try FileInput(options: o, context: ctx, checkpoints: res.checkpoints)
            })
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
