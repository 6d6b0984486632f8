#if canImport(Glibc)
import Glibc
#endif
import Logging
import SluiceConfig
import SluiceCore
import SluiceFiles
import Synchronization

/// Which containers a container input follows and what it reads from each.
public struct ContainerSelection: Sendable {
    public var filters: ContainerFilters
    public var externalEnvTag: [String: String]
    public var externalK8sLabelTag: [String: String]
    public init(filters: ContainerFilters, externalEnvTag: [String: String] = [:], externalK8sLabelTag: [String: String] = [:]) {
        self.filters = filters
        self.externalEnvTag = externalEnvTag
        self.externalK8sLabelTag = externalK8sLabelTag
    }
}

/// What to follow in each selected container.
public enum ContainerFileKind: Sendable {
    /// The container's stdout/stderr log file (runtime format, detected).
    case stdio(ignoreStdout: Bool, ignoreStderr: Bool)
    /// Files inside the container, by patterns of in-container paths.
    case files(patterns: [String], maxDepth: Int, exclusions: PathExclusions)
}

/// A container input: a `FileInput` whose targets follow the container registry. A container is
/// followed the moment discovery reports it (the kubelet pod log dir reports a new container within
/// milliseconds), its files opened and held, so a container that exits and is deleted right away
/// is still read to its end. A container that existed when the input started is read from its last
/// TailSizeKB; one that appears later from offset 0.
public final class ContainerInput: Input, Sendable {
    let files: FileInput
    let registry: ContainerRegistry
    let hostPaths: HostPaths
    let selection: ContainerSelection
    let kind: ContainerFileKind
    let logger: Logger
    let startedAt: Int64

    public init(name: String, options: FileInputOptions, selection: ContainerSelection, kind: ContainerFileKind,
                discovery: ContainerDiscovery, context: PluginContext, checkpoints: CheckpointTable) throws {
        var o = options
        o.filePaths = []
        files = try FileInput(options: o, context: context, checkpoints: checkpoints)
        files.inputName = name
        registry = discovery.registry
        hostPaths = discovery.hostPaths
        self.selection = selection
        self.kind = kind
        logger = context.logger
        startedAt = ContainerInput.monotonicNow()
    }

    static func monotonicNow() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    public func requestStop() { files.requestStop() }

    public func run(sink: any BatchSink) async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.follow() }
            try? await files.run(sink: sink)
            group.cancelAll()
        }
    }

    /// Keeps the file input's targets in step with the registry.
    private func follow() async {
        var live: [String: ContainerInfo] = [:]
        var lastTargets: [String: String] = [:]
        for await event in registry.subscribe() {
            if Task.isCancelled { return }
            switch event {
            case .added(let c): live[ContainerInput.key(c)] = c
            case .updated(let old, let c):
                // The key may change (a log path learned later): drop the entry under the old one.
                live[ContainerInput.key(old)] = nil
                live[ContainerInput.key(c)] = c
            case .removed(let c): live[ContainerInput.key(c)] = nil
            }
            var targets: [WatchTarget] = []
            for c in live.values where selection.filters.matches(c) {
                targets.append(contentsOf: self.targets(for: c))
            }
            // Only push when something changed (keys or tags).
            var now: [String: String] = [:]
            for t in targets { now[t.key] = t.tags.map { "\($0.key)=\($0.value)" }.joined(separator: "\u{1}") + "|" + t.patterns.map(\.original).joined(separator: ",") }
            if now != lastTargets {
                lastTargets = now
                files.setDynamicTargets(targets)
            }
        }
    }

    static func key(_ c: ContainerInfo) -> String {
        !c.logPath.isEmpty ? "log:" + c.logPath : "id:" + c.id
    }

    func targets(for c: ContainerInfo) -> [WatchTarget] {
        let tags = containerTags(c, externalEnvTag: selection.externalEnvTag, externalK8sLabelTag: selection.externalK8sLabelTag)
            .map { EventTag($0.0, $0.1) }
        let existedBefore = c.discoveredAt != 0 && c.discoveredAt < startedAt
        switch kind {
        case .stdio(let ignoreStdout, let ignoreStderr):
            guard !c.logPath.isEmpty, let p = try? PathPattern(hostPaths.hostPath(c.logPath)) else { return [] }
            var t = WatchTarget(key: ContainerInput.key(c), patterns: [p], tags: tags, format: .auto, existedBefore: existedBefore, omitPathTag: true)
            t.ignoreStdout = ignoreStdout
            t.ignoreStderr = ignoreStderr
            return [t]
        case .files(let patterns, let maxDepth, let exclusions):
            var out: [WatchTarget] = []
            for (i, pattern) in patterns.enumerated() {
                guard let inside = try? PathPattern(pattern, maxDepth: maxDepth),
                      let hostBase = hostPaths.hostPath(containerPath: inside.baseDirectory, in: c) else { continue }
                let rest = pattern.dropFirst(inside.baseDirectory == "/" ? 1 : inside.baseDirectory.count + 1)
                let hostPattern = (hostBase.hasSuffix("/") ? hostBase : hostBase + "/") + rest
                guard let p = try? PathPattern(hostPattern, maxDepth: maxDepth) else { continue }
                out.append(WatchTarget(key: ContainerInput.key(c) + "#\(i)", patterns: [p], exclusions: PathExclusions(fileNames: exclusions.fileNames),
                                       tags: tags, format: nil, existedBefore: existedBefore,
                                       pathRewrite: (host: hostBase, container: inside.baseDirectory)))
            }
            return out
        }
    }
}

/// Specs and option parsing of the container inputs.
public enum ContainerInputConfig {
    static let commonFields: [FieldSpec] = [
        FieldSpec(name: "TailSizeKB", type: .int, doc: "Containers that existed when the pipeline started are read from the last TailSizeKB KiB of their log; containers that start later are read from offset 0, always.", defaultValue: "1024"),
        FieldSpec(name: "FlushTimeoutSecs", type: .double, doc: "A held partial line is emitted after this many seconds without new data.", defaultValue: "60"),
        FieldSpec(name: "Multiline", type: .object(fields: [], allowUnknown: true), doc: "Multiline grouping.", defaultValue: nil,
                  status: .acceptedNotYetEffective(reason: "multiline arrives with the processors")),
        FieldSpec(name: "KeepingSourceWhenParseFail", type: .bool, doc: "Keep a line that is not a runtime record as it is (Sluice always does).", defaultValue: "true"),
        FieldSpec(name: "IgnoreParseWarning", type: .bool, doc: "Do not warn about lines that are not runtime records.", defaultValue: "false"),
        FieldSpec(name: "CollectContainersFlag", type: .bool, doc: "iLogtail internal flag.", defaultValue: "false",
                  status: .acceptedNotYetEffective(reason: "containers are always collected through discovery")),
    ] + ContainerTagFields.spec

    /// `input_container_stdio`.
    public static let stdioSpec = PluginSpec(
        type: "input_container_stdio", kind: .input,
        summary: "Collects the stdout and stderr of matching containers (Docker json-file and CRI logs, partial lines joined per stream), with their Kubernetes metadata; short-lived containers are followed from the moment discovery sees them.",
        fields: [
            FieldSpec(name: "IgnoringStdout", type: .bool, doc: "Skip stdout.", defaultValue: "false"),
            FieldSpec(name: "IgnoringStderr", type: .bool, doc: "Skip stderr.", defaultValue: "false"),
            FieldSpec(name: "MaxLogSize", type: .int, doc: "Largest joined line in bytes; past it the joined part is emitted and counted.", defaultValue: "524288"),
            ContainerFilters.fieldSpec,
        ] + commonFields)

    /// `service_docker_stdout`: the older stdout input, its own parameter names, the same input.
    public static let dockerStdoutSpec = PluginSpec(
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
            FieldSpec(name: "BeginLineRegex", type: .string, doc: "Multiline start pattern.", defaultValue: nil,
                      status: .acceptedNotYetEffective(reason: "multiline arrives with the processors")),
            FieldSpec(name: "BeginLineTimeoutMs", type: .int, doc: "Multiline timeout.", defaultValue: "3000",
                      status: .acceptedNotYetEffective(reason: "multiline arrives with the processors")),
            FieldSpec(name: "BeginLineCheckLength", type: .int, doc: "Multiline check length.", defaultValue: "10240",
                      status: .acceptedNotYetEffective(reason: "multiline arrives with the processors")),
            FieldSpec(name: "CloseUnChangedSec", type: .int, doc: "Close an unchanged log after this many seconds.", defaultValue: "60"),
        ])

    /// Options of either stdout input.
    public static func stdio(_ c: ConfigObject, type: String, globals: GlobalParameters) throws(ConfigError) -> (FileInputOptions, ContainerSelection, ContainerFileKind) {
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
        }
        if let f = try c.double("FlushTimeoutSecs") { o.flushTimeoutSecs = max(0, f) }
        if let m = try c.int("MaxLogSize") {
            guard m >= 1024 else { throw c.error(at: "MaxLogSize", "must be at least 1024 bytes") }
            o.maxLogSize = m
        }
        let tags = try ContainerTagFields.from(c)
        return (o, ContainerSelection(filters: filters, externalEnvTag: tags.externalEnvTag, externalK8sLabelTag: tags.externalK8sLabelTag),
                .stdio(ignoreStdout: ignoreOut, ignoreStderr: ignoreErr))
    }

    /// `input_file` with `EnableContainerDiscovery: true`: FilePaths inside the matched containers.
    public static func containerFiles(_ c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> (FileInputOptions, ContainerSelection, ContainerFileKind) {
        let base = try FileInput.options(from: c, maxReadBufferSize: globals.maxReadBufferSize,
                                         forceReleaseDeletedFileFdTimeoutSec: globals.forceReleaseDeletedFileFdTimeoutSec, allowContainerDiscovery: true)
        let filters = try c.object("ContainerFilters").map { o throws(ConfigError) in try ContainerFilters.from(o) } ?? .none
        let tags = try ContainerTagFields.from(c)
        return (base, ContainerSelection(filters: filters, externalEnvTag: tags.externalEnvTag, externalK8sLabelTag: tags.externalK8sLabelTag),
                .files(patterns: base.filePaths, maxDepth: base.maxDirSearchDepth, exclusions: base.exclusions))
    }
}
