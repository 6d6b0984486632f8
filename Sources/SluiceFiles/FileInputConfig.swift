import SluiceConfig
import SluiceCore

/// Options of `input_file`, already validated.
public struct FileInputOptions: Sendable {
    public var filePaths: [String]
    public var maxDirSearchDepth: Int = 0
    public var exclusions = PathExclusions()
    /// First sight of a file that existed before the pipeline started: read only its last TailSizeKB.
    public var tailSizeKB: Int = 1024
    /// An unterminated last line is emitted after this many seconds without new data.
    public var flushTimeoutSecs: Double = 60
    /// "utf8" or "gbk".
    public var fileEncoding: String = "utf8"
    /// Idle files (read to their end, unchanged) are closed after this and reopened on change.
    public var closeUnusedReaderIntervalSec: Double = 60
    /// Most descriptors held for files that still exist; idle ones beyond it are closed first.
    public var maxOpenFiles: Int = 512
    /// Full rescan of the patterns (fallback for missed inotify events), seconds.
    public var rescanIntervalSec: Double = 5
    /// Size check of open files (fallback for missed modify events), seconds.
    public var pollIntervalSec: Double = 1
    /// A deleted or rotated-away file read to its end is let go after this many idle seconds.
    public var releaseDrainedAfterSec: Double = 5
    /// Close a deleted file after this many seconds even if not read to its end; < 0: never.
    public var forceReleaseDeletedFileFdTimeoutSec: Int = -1
    /// Read buffer and largest single event.
    public var maxReadBufferSize: Int = 512 * 1024
    /// Tags added to every batch besides `__path__` and `__hostname__`.
    public var extraTags: [EventTag] = []
    /// Use inotify (tests turn it off to exercise the polling fallback).
    public var useInotify = true
    /// Runtime log format of the pipeline's own files (`ContainerLogFormat`); nil: plain lines.
    public var containerLogFormat: ContainerLogFormat?
    /// Largest joined record of a runtime log (`MaxLogSize`).
    public var maxLogSize: Int = 512 * 1024
    /// Multiline grouping (`Multiline`), nil: one line, one event. Plain lines are grouped per
    /// file, runtime logs per stream after their partial records are joined.
    public var multiline: MultilineOptions?
    /// `PathTagsRegex` (Sluice's own): named groups of a search in the file's path become tags.
    public var pathTags: PathTagsRegex?
    /// Names of the path and inode tags and of the offset field (`Tags`, `FileOffsetKey`, ...).
    public var tagKeys = FileTagKeys()

    public init(filePaths: [String]) {
        self.filePaths = filePaths
    }

    /// The incumbent's "first processor JSON": when a pipeline's first processor parses JSON
    /// (`processor_parse_json_native`, `processor_json`), plain files are read as whole JSON
    /// objects, an object spread over lines being one event, whatever `Multiline` says
    /// (LoongCollector's InputFile picks its JSON reader before any custom pattern). Runtime logs
    /// (`ContainerLogFormat`) are records already and keep their reading.
    public mutating func adapt(toFirstProcessor type: String) {
        guard containerLogFormat == nil, type == "processor_parse_json_native" || type == "processor_json" else { return }
        var m = MultilineOptions(mode: .json, unmatched: multiline?.unmatched ?? .singleLine)
        m.flushTimeoutSecs = multiline?.flushTimeoutSecs
        multiline = m
    }
}

extension FileInputOptions {
    /// The parameters of `input_file` about files, as iLogtail users write them (the plugin type
    /// `InputFile` adds the container ones). The reference docs and `sluice validate` both come
    /// from these specs.
    public static let fields: [FieldSpec] = [
            FieldSpec(name: "FilePaths", type: .stringList, doc: "Absolute path patterns (at most 10). `*` and `?` match within a name; `**` stands for 0 to MaxDirSearchDepth directories.", defaultValue: nil),
            FieldSpec(name: "MaxDirSearchDepth", type: .int, doc: "How many directories `**` may stand for (0–1000). Symbolic links to directories are followed, except one that leads back to a directory the walk came down through (a cycle), which is not walked again.", defaultValue: "0"),
            FieldSpec(name: "ExcludeFilePaths", type: .stringList, doc: "Absolute path globs of files to skip.", defaultValue: "[]"),
            FieldSpec(name: "ExcludeFiles", type: .stringList, doc: "File name globs to skip.", defaultValue: "[]"),
            FieldSpec(name: "ExcludeDirs", type: .stringList, doc: "Directory globs (absolute); files anywhere below a match are skipped.", defaultValue: "[]"),
            FieldSpec(name: "FileEncoding", type: .string, doc: "`utf8` or `gbk` (converted to UTF-8).", defaultValue: "utf8"),
            FieldSpec(name: "TailSizeKB", type: .int, doc: "A file that existed before the pipeline started, seen for the first time with no checkpoint, is read from its last TailSizeKB KiB (from the next line start). Files that appear while Sluice runs are always read from offset 0, and so is a file at a path the checkpoints name for another file (it replaced that one while Sluice was stopped: rotated away, or deleted and created again).", defaultValue: "1024"),
            FieldSpec(name: "FlushTimeoutSecs", type: .double, doc: "An unterminated last line (or a pending multiline group) is emitted once the file has had no new data for this many seconds, counted from its last write (its modification time): at once at the end of a file written longer ago than that.", defaultValue: "60"),
            FieldSpec(name: "PreservedDirDepth", type: .int, doc: "iLogtail: how deep below the base directory an idle directory stays watched. Sluice watches every directory the patterns reach while it exists.", defaultValue: "-1",
                      status: .acceptedNotYetEffective(reason: "every directory the patterns reach is watched while it exists")),
            FieldSpec(name: "AllowingCollectingFilesInRootDir", type: .bool, doc: "iLogtail: allow FilePaths in `/`. Sluice always does.", defaultValue: "false"),
            FieldSpec(name: "EnableExactlyOnce", type: .int, doc: "iLogtail's exactly-once concurrency. Sluice's checkpoints already move only on acknowledgement (at-least-once, duplicates only after a crash).", defaultValue: "0",
                      status: .acceptedNotYetEffective(reason: "checkpoints are always acknowledgement-driven")),
            FieldSpec(name: "EnableContainerDiscovery", type: .bool, doc: "Treat FilePaths as paths inside the containers ContainerFilters matches: each maps through the container's mounts (longest destination prefix) or its rootfs upper dir; events get the container's tags and `__path__` as seen inside it.", defaultValue: "false"),
            FieldSpec(name: "ContainerLogFormat", type: .string, doc: "Read the files as container runtime logs: `auto` (detected per file: `{` → Docker json-file, else CRI), `docker_json` or `cri`. Partial records are joined per stream; events get the runtime's time and `_source_` (stdout/stderr). Absent: plain lines.", defaultValue: nil),
            FieldSpec(name: "MaxLogSize", type: .int, doc: "With ContainerLogFormat: the largest joined record in bytes; past it the joined part is emitted (and counted).", defaultValue: "524288"),
            FieldSpec(name: "PathTagsRegex", type: .string, doc: "Sluice's own (iLogtail has no such option): a regular expression (PCRE2, searched, unanchored unless it anchors; `(?<name>…)` or `(?P<name>…)`) matched once per file against its path as `__path__` shows it; each named group that takes part becomes a tag of every event from that file, replacing a tag of the same name. For Jobs that write to a shared volume under `SubPathExpr: logs/$(POD_NAMESPACE)_$(POD_NAME)_$(POD_IP)_$(NODE_IP)_$(NODE_NAME)`: `/logs/(?<_namespace_>[^_/]+)_(?<_pod_name_>[^_/]+)_(?<_pod_ip_>[^_/]+)_(?<_node_ip_>[^_/]+)_(?<_node_name_>[^/]+)/` gives them the tags of a discovered container. A path that does not match gets no extra tag. At least one named group is required.", defaultValue: nil),
            FieldSpec(name: "Multiline", type: .object(fields: MultilineOptions.fields), doc: "Multiline grouping, per file (per stream with ContainerLogFormat, after partial records are joined): lines joined with `\\n` into one event by the incumbent's rules. A pending group waits up to FlushTimeoutSecs for more lines and is bounded by `max_read_buffer_size` (past it: emitted, flagged, counted); the checkpoint never passes its first byte, so a restart reads it again whole.", defaultValue: nil),
        ] + sharedFields

    /// The keys `input_container_stdio` takes as `input_file` does: the incumbent's reader and
    /// container keys (LoongCollector's FileReaderOptions, `AllowingIncludedByMultiConfigs`,
    /// ContainerDiscoveryOptions' `CollectingContainersMeta`), with what Sluice does with each, and
    /// the tag keys (`FileTagKeys`). `readSharedKeys` reads them.
    public static let sharedFields: [FieldSpec] = [
        FieldSpec(name: "CloseUnusedReaderIntervalSec", type: .double, doc: "A file read to its end and unchanged this long has its descriptor closed; it is reopened on change.", defaultValue: "60"),
        FieldSpec(name: "TailingAllMatchedFiles", type: .bool, doc: "iLogtail: also read files that existed before the config. Sluice always reads every matched file (TailSizeKB applies).", defaultValue: "false"),
        FieldSpec(name: "RotatorQueueSize", type: .int, doc: "iLogtail: rotated files remembered per path. Sluice follows every rotated file until it is drained.", defaultValue: "20",
                  status: .acceptedNotYetEffective(reason: "rotated files are followed until drained, without a limit")),
        FieldSpec(name: "AllowingIncludedByMultiConfigs", type: .bool, doc: "iLogtail: let several configs read the same file (by default the incumbent gives a file to one config only). Sluice always reads a file in every pipeline that matches it, each with its own checkpoint.", defaultValue: "false"),
        FieldSpec(name: "ReadDelaySkipThresholdBytes", type: .int, doc: "iLogtail: skip ahead when a file's unread part exceeds this many bytes (0: never).", defaultValue: "0",
                  status: .acceptedNotYetEffective(reason: "Sluice never skips the unread part of a file that falls behind")),
        FieldSpec(name: "ReadDelayAlertThresholdBytes", type: .int, doc: "iLogtail: raise an alarm when a file's unread part exceeds this many bytes.", defaultValue: "209715200",
                  status: .acceptedNotYetEffective(reason: "no alarm is raised for a file that falls behind")),
        FieldSpec(name: "CollectingContainersMeta", type: .bool, doc: "iLogtail: also send the matched containers' metadata as a stream of its own. Sluice puts the container's tags on every event instead.", defaultValue: "false",
                  status: .acceptedNotYetEffective(reason: "no separate container-metadata stream; container tags are on every event")),
    ] + FileTagKeys.fields

    /// Reads the keys of `sharedFields` that take effect: `CloseUnusedReaderIntervalSec` and the
    /// tag keys.
    public mutating func readSharedKeys(_ c: ConfigObject) throws(ConfigError) {
        if let f = try c.double("CloseUnusedReaderIntervalSec") {
            guard f >= 0 else { throw c.error(at: "CloseUnusedReaderIntervalSec", "must be ≥ 0") }
            closeUnusedReaderIntervalSec = f
        }
        tagKeys = try FileTagKeys.from(c)
    }

    /// Reads and checks the file options of an `input_file` (no side effects).
    public static func from(_ c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> FileInputOptions {
        guard let paths = try c.stringList("FilePaths"), !paths.isEmpty else {
            throw c.error(at: c.has("FilePaths") ? "FilePaths" : nil, "FilePaths is required and must list at least one path")
        }
        guard paths.count <= 10 else { throw c.error(at: "FilePaths", "at most 10 paths are allowed, found \(paths.count)") }
        var o = FileInputOptions(filePaths: paths)
        if let d = try c.int("MaxDirSearchDepth") {
            guard (0...1000).contains(d) else { throw c.error(at: "MaxDirSearchDepth", "must be between 0 and 1000, found \(d)") }
            o.maxDirSearchDepth = d
        }
        for (i, p) in paths.enumerated() {
            do { _ = try PathPattern(p, maxDepth: o.maxDirSearchDepth) } catch {
                throw c.error(at: "FilePaths", "entry \(i): \(error)")
            }
        }
        o.exclusions = PathExclusions(filePaths: try c.stringList("ExcludeFilePaths") ?? [],
                                      fileNames: try c.stringList("ExcludeFiles") ?? [],
                                      directories: try c.stringList("ExcludeDirs") ?? [])
        if let e = try c.string("FileEncoding") {
            guard ["utf8", "utf-8", "gbk"].contains(e.lowercased()) else {
                throw c.error(at: "FileEncoding", "unsupported encoding \"\(e)\" (supported: utf8, gbk)")
            }
            o.fileEncoding = e.lowercased()
        }
        if let t = try c.int("TailSizeKB") {
            guard t >= 0 else { throw c.error(at: "TailSizeKB", "must be ≥ 0, found \(t)") }
            o.tailSizeKB = t
        }
        if let f = try c.double("FlushTimeoutSecs") {
            guard f >= 0 else { throw c.error(at: "FlushTimeoutSecs", "must be ≥ 0") }
            o.flushTimeoutSecs = f
        }
        try o.readSharedKeys(c)
        if let f = try c.string("ContainerLogFormat") {
            guard let fmt = ContainerLogFormat(rawValue: f) else {
                throw c.error(at: "ContainerLogFormat", "unknown format \"\(f)\" (known: auto, docker_json, cri)")
            }
            o.containerLogFormat = fmt
        }
        if let m = try c.int("MaxLogSize") {
            guard m >= 1024 else { throw c.error(at: "MaxLogSize", "must be at least 1024 bytes") }
            o.maxLogSize = m
        }
        if let m = try c.object("Multiline") {
            o.multiline = try MultilineOptions.from(m, allowJSON: o.containerLogFormat == nil)
        }
        if let p = try c.string("PathTagsRegex"), !p.isEmpty {
            switch PathTagsRegex.compile(p) {
            case .success(let r): o.pathTags = r
            case .failure(let e): throw c.error(at: "PathTagsRegex", e.description)
            }
        }
        o.maxReadBufferSize = globals.maxReadBufferSize
        o.forceReleaseDeletedFileFdTimeoutSec = globals.forceReleaseDeletedFileFdTimeoutSec
        return o
    }
}

extension PluginServices {
    /// The pipeline's checkpoint table (the runtime provides it to inputs that read files).
    public var checkpoints: CheckpointTable? {
        get { self[CheckpointTable.self] }
        set { self[CheckpointTable.self] = newValue }
    }

    /// The checkpoint table, or an error that says it is missing.
    public func requireCheckpoints() throws -> CheckpointTable {
        guard let t = checkpoints else { throw MissingService(name: "checkpoint table") }
        return t
    }
}
