import SluiceConfig
import SluiceContainers
import SluiceCore
import SluiceFlushers
import SluiceProcessors

/// Every plugin type Sluice knows, one line each (`register(FlusherFile.self)`): its spec (for
/// validation and docs), the pure reading of its options, and its initialiser.
public struct PluginRegistry: Sendable {
    /// One plugin type, type-erased.
    public struct Entry: Sendable {
        public let spec: PluginSpec
        /// `P.options(from:globals:)`.
        let options: @Sendable (ConfigObject, GlobalParameters) throws(ConfigError) -> any Sendable
        let makeInput: (@Sendable (any Sendable, PluginContext) throws -> any Input)?
        let makeProcessor: (@Sendable (any Sendable, PluginContext) throws -> any Processor)?
        let makeFlusher: (@Sendable (any Sendable, PluginContext) throws -> any Flusher)?
        /// An input's options given the pipeline's first processor type (`AdaptsToFirstProcessor`).
        var adaptToFirstProcessor: (@Sendable (any Sendable, String) -> any Sendable)? = nil
    }

    public private(set) var inputs: [String: Entry] = [:]
    public private(set) var processors: [String: Entry] = [:]
    public private(set) var flushers: [String: Entry] = [:]

    public init() {}

    private static func inputEntry<P: InputPlugin>(_ p: P.Type) -> Entry {
        Entry(spec: P.spec, options: { c, g throws(ConfigError) in try P.options(from: c, globals: g) },
              makeInput: { o, ctx in try P(options: o as! P.Options, context: ctx) }, makeProcessor: nil, makeFlusher: nil)
    }

    public mutating func register<P: InputPlugin>(_ p: P.Type) {
        inputs[P.spec.type] = Self.inputEntry(p)
    }

    public mutating func register<P: AdaptsToFirstProcessor>(_ p: P.Type) {
        var e = Self.inputEntry(p)
        e.adaptToFirstProcessor = { o, first in P.options(o as! P.Options, firstProcessor: first) }
        inputs[P.spec.type] = e
    }

    public mutating func register<P: ProcessorPlugin>(_ p: P.Type) {
        processors[P.spec.type] = Entry(spec: P.spec, options: { c, g throws(ConfigError) in try P.options(from: c, globals: g) },
                                        makeInput: nil, makeProcessor: { o, ctx in try P(options: o as! P.Options, context: ctx) }, makeFlusher: nil)
    }

    public mutating func register<P: FlusherPlugin>(_ p: P.Type) {
        // Every flusher may have a disk buffer: one field, added here.
        var spec = P.spec
        spec.fields.append(DiskBufferOptions.field)
        flushers[P.spec.type] = Entry(spec: spec, options: { c, g throws(ConfigError) in try P.options(from: c, globals: g) },
                                      makeInput: nil, makeProcessor: nil, makeFlusher: { o, ctx in try P(options: o as! P.Options, context: ctx) })
    }

    public var catalog: PluginCatalog {
        PluginCatalog(inputs.values.map(\.spec) + processors.values.map(\.spec) + flushers.values.map(\.spec))
    }

    /// The plugins of this build of Sluice.
    public static let standard: PluginRegistry = {
        var r = PluginRegistry()
        r.register(InputFile.self)
        r.register(InputContainerStdio.self)
        r.register(ServiceDockerStdout.self)
        r.register(ProcessorParseRegexNative.self)
        r.register(ProcessorParseJsonNative.self)
        r.register(ProcessorParseDelimiterNative.self)
        r.register(ProcessorFilterRegexNative.self)
        r.register(ProcessorDesensitizeNative.self)
        r.register(ProcessorParseTimestampNative.self)
        r.register(ProcessorParseApsaraNative.self)
        r.register(ProcessorRegex.self)
        r.register(ProcessorJson.self)
        r.register(ProcessorGrok.self)
        r.register(ProcessorStrptime.self)
        r.register(ProcessorAddFields.self)
        r.register(ProcessorDrop.self)
        r.register(ProcessorRename.self)
        r.register(ProcessorFilterRegex.self)
        r.register(ProcessorSplitChar.self)
        r.register(ProcessorSplitString.self)
        r.register(ProcessorSplitLogRegex.self)
        r.register(FlusherFile.self)
        r.register(FlusherStdout.self)
        r.register(FlusherBlackhole.self)
        r.register(FlusherHttp.self)
        r.register(FlusherElasticsearch.self)
        r.register(FlusherLoki.self)
        r.register(FlusherClickhouse.self)
        r.register(FlusherOtlp.self)
        r.register(FlusherKafkaV2.self)
        r.register(FlusherKafkaNative.self)
        return r
    }()

    /// Loads and fully checks one pipeline file without starting anything: syntax, keys, types,
    /// and every plugin's own options. Returns the document with each plugin's typed options (what
    /// building takes: the config is parsed once), or every error found.
    public func validate(file: String, globals: GlobalParameters) throws(ConfigErrors) -> ValidatedPipeline {
        let doc = try PipelineLoader.load(file: file, catalog: catalog)
        return try validate(doc, globals: globals)
    }

    /// `validate(file:globals:)` of a file's bytes already read.
    public func validate(bytes: [UInt8], file: String, globals: GlobalParameters) throws(ConfigErrors) -> ValidatedPipeline {
        try validate(try PipelineLoader.load(bytes: bytes, file: file, catalog: catalog), globals: globals)
    }

    /// Checks every plugin's options of an already loaded document.
    public func validate(_ doc: PipelineDocument, globals: GlobalParameters) throws(ConfigErrors) -> ValidatedPipeline {
        var errors: [ConfigError] = []
        func check(_ list: [PluginInstanceConfig], _ table: [String: Entry], routed: Bool = false) -> [ValidatedPipeline.Plugin] {
            var out: [ValidatedPipeline.Plugin] = []
            for inst in list {
                guard let e = table[inst.type] else { continue }
                do throws(ConfigError) {
                    let options = try e.options(inst.config, globals)
                    let route = routed ? try FlusherRoute.from(inst.config) : nil
                    let buffer = routed ? try DiskBufferOptions.from(inst.config) : nil
                    out.append(ValidatedPipeline.Plugin(config: inst, entry: e, options: options, route: route, buffer: buffer))
                } catch {
                    errors.append(error)
                }
            }
            return out
        }
        var ins = check(doc.inputs, inputs)
        if let first = doc.processors.first?.type {
            ins = ins.map { p in
                guard let adapt = p.entry.adaptToFirstProcessor else { return p }
                var q = p
                q.options = adapt(p.options, first)
                return q
            }
        }
        let v = ValidatedPipeline(document: doc, inputs: ins, processors: check(doc.processors, processors),
                                  flushers: check(doc.flushers, flushers, routed: true))
        if !errors.isEmpty { throw ConfigErrors(errors: errors) }
        return v
    }
}

/// A pipeline document whose plugins' options have been read and checked.
public struct ValidatedPipeline: Sendable {
    public struct Plugin: Sendable {
        public let config: PluginInstanceConfig
        let entry: PluginRegistry.Entry
        var options: any Sendable
        /// A flusher's `Match` (nil: it receives everything).
        public var route: FlusherRoute? = nil
        /// A flusher's `Buffer` (nil: none).
        public var buffer: DiskBufferOptions? = nil
        public var type: String { config.type }
        /// Builds this processor from its checked options (nil when the plugin is not a processor).
        public func makeProcessor(context: PluginContext) throws -> (any Processor)? {
            try entry.makeProcessor?(options, context)
        }
    }
    public let document: PipelineDocument
    public let inputs: [Plugin]
    public let processors: [Plugin]
    public let flushers: [Plugin]
    public var name: String { document.name }
    public var warnings: [ConfigError] { document.warnings }
}

extension PluginRegistry {
    /// The configuration reference, from the same specs that validation uses.
    public func referenceMarkdown() -> String {
        var s = "# Sluice configuration reference\n\n"
        s += "Generated by `sluice docs` from the plugin specs that `sluice validate` checks against; do not edit by hand.\n\n"
        s += "## Pipeline files\n\n"
        s += "One pipeline per `.yaml`, `.yml` or `.json` file, in iLogtail / LoongCollector's format: top-level keys `enable` (default true), `global`, `inputs`, `processors`, `aggregators`, `flushers`; each plugin is a map with `Type` and PascalCase parameters. Unknown keys and wrong value types are errors that name file, line, column and key path. `global` keys are accepted; all but `PipelineMetaTagKey` with a warning (they have no effect in Sluice). `PipelineMetaTagKey` is the incumbent's map from a host tag's logical key to its name: `HOST_NAME` (`__hostname__`, added unless the map gives `\"\"`) and `HOST_IP` (`__host_ip__`: the DaemonSet's `_node_ip_`, else the first up, non-loopback IPv4 interface); `\"\"` leaves the tag out, `__default__` keeps the default name, anything else renames it. **Unlike the open-source incumbent**, Sluice adds `__host_ip__` only when the map names `HOST_IP`. `HOST_ID`, `CLOUD_PROVIDER`, `AGENT_TAG` (the incumbent's enterprise build) add nothing (a warning).\n\n"
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
