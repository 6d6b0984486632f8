import SluiceCore

/// A set of files an input follows with the same tags and format: the pipeline's own
/// `FilePaths`, or one container's log file / files inside one container.
public struct WatchTarget: Sendable {
    /// "" for the pipeline's own patterns; the container id for a container's files.
    public var key: String
    public var patterns: [PathPattern]
    public var exclusions: PathExclusions
    /// Tags of every batch read from these files (besides `__path__` and `__hostname__`).
    public var tags: [EventTag]
    /// Runtime log format of the files, or nil for plain lines.
    public var format: ContainerLogFormat?
    /// The files existed before the input started (TailSizeKB applies on first sight).
    public var existedBefore: Bool
    /// Report `__path__` as seen inside the container: host prefix → container prefix.
    public var pathRewrite: (host: String, container: String)?
    /// Do not tag `__path__` (container stdout).
    public var omitPathTag: Bool
    public var ignoreStdout = false
    public var ignoreStderr = false
    /// Files are opened and held (so nothing is lost if they are deleted) but not read yet: the
    /// container's metadata is still incomplete, or whether it is selected at all is not known.
    /// A held target that goes away is read like any other (to the end, then let go).
    public var hold = false
    /// The container was rejected while its files were held: let them go unread, open nothing.
    public var discard = false
    /// Changes when the container changes state (created, started, exited): its directories are
    /// scanned again then, whatever inotify said (an exited container's files are still there
    /// until it is removed).
    public var generation = 0

    public init(key: String, patterns: [PathPattern], exclusions: PathExclusions = PathExclusions(), tags: [EventTag] = [],
                format: ContainerLogFormat? = nil, existedBefore: Bool, pathRewrite: (host: String, container: String)? = nil, omitPathTag: Bool = false) {
        self.key = key
        self.patterns = patterns
        self.exclusions = exclusions
        self.tags = tags
        self.format = format
        self.existedBefore = existedBefore
        self.pathRewrite = pathRewrite
        self.omitPathTag = omitPathTag
    }

    func matches(_ path: String) -> Bool {
        patterns.contains { $0.matches(path: path) } && !exclusions.excludesFile(path)
    }
}
