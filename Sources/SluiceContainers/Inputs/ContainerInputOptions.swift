import SluiceConfig
import SluiceCore
import SluiceFiles
import SluiceRegex

/// A container input's options: how to read (the file options), which containers, what in each.
public struct ContainerInputOptions: Sendable {
    public var files: FileInputOptions
    public var selection: ContainerSelection
    public var kind: ContainerFileKind
    public init(files: FileInputOptions, selection: ContainerSelection, kind: ContainerFileKind) {
        self.files = files
        self.selection = selection
        self.kind = kind
    }
}

/// Starts the daemon's container discovery on first use (a daemon with no container pipeline
/// asks no runtime). The runtime provides it to container inputs.
public struct DiscoveryProvider: Sendable {
    public let discovery: @Sendable () -> ContainerDiscovery
    public init(_ discovery: @escaping @Sendable () -> ContainerDiscovery) { self.discovery = discovery }
}

extension PluginServices {
    public var discovery: DiscoveryProvider? {
        get { self[DiscoveryProvider.self] }
        set { self[DiscoveryProvider.self] = newValue }
    }
}

/// A plugin type that is a container input (`input_container_stdio`, `service_docker_stdout`):
/// runs and stops its `ContainerInput`.
public protocol ContainerInputPlugin: InputPlugin {
    var input: ContainerInput { get }
}

extension ContainerInputPlugin {
    public func run(sink: any BatchSink) async throws { try await input.run(sink: sink) }
    public func requestStop() { input.requestStop() }
    public func requestDrain() { input.requestDrain() }
}

extension ContainerInput {
    /// A container input for a plugin's context: its checkpoint table and discovery from the services.
    convenience init(type: String, options: ContainerInputOptions, context: PluginContext) throws {
        guard let d = context.services.discovery else { throw MissingService(name: "container discovery") }
        try self.init(name: type, options: options.files, selection: options.selection, kind: options.kind,
                      discovery: d.discovery(), context: context, checkpoints: try context.services.requireCheckpoints())
    }
}

/// Specs and option parsing of the container inputs.
public enum ContainerInputConfig {
    /// What a container input is built from.
    public typealias Options = ContainerInputOptions

    public static let commonFields: [FieldSpec] = [
        FieldSpec(name: "TailSizeKB", type: .int, doc: "Containers the runtime started before the pipeline started are read from the last TailSizeKB KiB of their log (after a restart: started before the previous run last saved its checkpoints, so a container started while Sluice was stopped is read whole); containers that start later are read from offset 0, always.", defaultValue: "1024"),
        FieldSpec(name: "FlushTimeoutSecs", type: .double, doc: "A held partial line, a runtime record still waiting for its next piece (a CRI `P` line, a Docker line without `\\n`: emitted flagged, a later piece starts a record of its own), or a pending multiline group is emitted once the log has had no new data for this many seconds, counted from its last write (its modification time): at once at the end of a log written longer ago than that.", defaultValue: "60"),
        FieldSpec(name: "Multiline", type: .object(fields: MultilineOptions.fields), doc: "Multiline grouping per container stream (stdout and stderr apart), after the runtime's partial lines are joined: lines joined with `\\n` into one event by the incumbent's rules (`custom` mode; the event keeps its first line's time). A pending group waits up to FlushTimeoutSecs and is bounded by `max_read_buffer_size`; the checkpoint never passes its first line.", defaultValue: nil),
        FieldSpec(name: "KeepingSourceWhenParseFail", type: .bool, doc: "Keep a line that is not a runtime record as it is (Sluice always does).", defaultValue: "true"),
        FieldSpec(name: "IgnoreParseWarning", type: .bool, doc: "Do not warn about lines that are not runtime records.", defaultValue: "false"),
        FieldSpec(name: "CollectContainersFlag", type: .bool, doc: "iLogtail internal flag.", defaultValue: "false",
                  status: .acceptedNotYetEffective(reason: "containers are always collected through discovery")),
    ] + ContainerTagFields.spec

    /// Options of either stdout input.
    public static func stdio(_ c: ConfigObject, type: String, globals: GlobalParameters) throws(ConfigError) -> ContainerInputOptions {
        var o = FileInputOptions(filePaths: [])
        o.maxReadBufferSize = globals.maxReadBufferSize
        o.forceReleaseDeletedFileFdTimeoutSec = globals.forceReleaseDeletedFileFdTimeoutSec
        let filters: ContainerFilters
        var ignoreOut = false, ignoreErr = false
        if type == "service_docker_stdout" {
            filters = try ContainerFilters.from(c)
            ignoreOut = !(try c.bool("Stdout") ?? true)
            ignoreErr = !(try c.bool("Stderr") ?? true)
            if let off = try c.int("StartLogMaxOffset") { o.tailSizeKB = max(0, off / 1024) } else { o.tailSizeKB = 128 }
            if let s = try c.int("CloseUnChangedSec") { o.closeUnusedReaderIntervalSec = Double(max(0, s)) }
        } else {
            filters = try c.object("ContainerFilters").map { o throws(ConfigError) in try ContainerFilters.from(o) } ?? .none
            ignoreOut = try c.bool("IgnoringStdout") ?? false
            ignoreErr = try c.bool("IgnoringStderr") ?? false
            if let t = try c.int("TailSizeKB") {
                guard t >= 0 else { throw c.error(at: "TailSizeKB", "must be ≥ 0") }
                o.tailSizeKB = t
            }
            try o.readSharedKeys(c)
        }
        if let f = try c.double("FlushTimeoutSecs") { o.flushTimeoutSecs = max(0, f) }
        if type == "service_docker_stdout" {
            if let p = try c.string("BeginLineRegex") {
                let re: RegexPattern?
                do { re = try MultilineOptions.compile(p) } catch { throw c.error(at: "BeginLineRegex", error.description) }
                if let re {
                    var m = MultilineOptions(start: re)
                    let t = try c.int("BeginLineTimeoutMs") ?? 3000
                    guard t >= 0 else { throw c.error(at: "BeginLineTimeoutMs", "must be ≥ 0") }
                    m.flushTimeoutSecs = Double(t) / 1000
                    let n = try c.int("BeginLineCheckLength") ?? 10240
                    guard n > 0 else { throw c.error(at: "BeginLineCheckLength", "must be > 0") }
                    m.checkLength = n
                    o.multiline = m
                }
            }
        } else if let m = try c.object("Multiline") {
            o.multiline = try MultilineOptions.from(m, allowJSON: false)
        }
        if let m = try c.int("MaxLogSize") {
            guard m >= 1024 else { throw c.error(at: "MaxLogSize", "must be at least 1024 bytes") }
            o.maxLogSize = m
        }
        let tags = try ContainerTagFields.from(c)
        return ContainerInputOptions(files: o, selection: ContainerSelection(filters: filters, externalEnvTag: tags.externalEnvTag, externalK8sLabelTag: tags.externalK8sLabelTag),
                                     kind: .stdio(ignoreStdout: ignoreOut, ignoreStderr: ignoreErr))
    }

    /// `input_file` with `EnableContainerDiscovery: true`: FilePaths inside the matched containers.
    public static func containerFiles(_ c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> ContainerInputOptions {
        let base = try FileInputOptions.from(c, globals: globals)
        let filters = try c.object("ContainerFilters").map { o throws(ConfigError) in try ContainerFilters.from(o) } ?? .none
        let tags = try ContainerTagFields.from(c)
        return ContainerInputOptions(files: base, selection: ContainerSelection(filters: filters, externalEnvTag: tags.externalEnvTag, externalK8sLabelTag: tags.externalK8sLabelTag),
                                     kind: .files(patterns: base.filePaths, maxDepth: base.maxDirSearchDepth, exclusions: base.exclusions))
    }
}
