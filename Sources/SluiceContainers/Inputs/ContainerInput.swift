import Glibc
import Logging
import SluiceConfig
import SluiceCore
import SluiceFiles
import Synchronization
import SluiceSystem

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
    /// Containers the runtime started before this (Unix nanoseconds) existed before the input:
    /// their logs are read from their last TailSizeKB. The previous run's last saved checkpoint
    /// when there is one (a container started while Sluice was stopped is new: read whole),
    /// else this start.
    let existedBeforeWall: Int64

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
        startedAt = Sys.monotonicNanos()
        existedBeforeWall = checkpoints.previousRunLastSaved ?? Sys.wallNanos()
    }

    /// Whether `c` existed before the input started (see `existedBeforeWall`): by the runtime's
    /// start time when known. Discovery starts with the first container input, so a container's
    /// discovery time is always after the input's start: it counts only when the runtime gives no
    /// start time.
    static func existedBefore(_ c: ContainerInfo, wall: Int64, monotonic: Int64) -> Bool {
        if c.startedAt > 0 { return c.startedAt < wall }
        return c.discoveredAt != 0 && c.discoveredAt < monotonic
    }

    public func requestStop() { files.requestStop() }
    public func requestDrain() { files.requestDrain() }

    public func run(sink: any BatchSink) async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.follow() }
            try? await files.run(sink: sink)
            group.cancelAll()
        }
    }

    /// How long a container's files are held unread waiting for its metadata (or for what its
    /// filters need) before they are read with what is known.
    static let holdLimitNanos: Int64 = 3_000_000_000

    /// Keeps the file input's targets in step with the registry.
    ///
    /// A container known only in part (the pod log dir saw its log file before the runtime said
    /// anything) is followed at once, its files opened and held, but read only once its metadata
    /// is complete enough for the tags (id and image; labels too when ExternalK8sLabelTag asks for
    /// them) and for the filters to decide, so every event carries every tag and nothing of a
    /// container the filters reject is read. After `holdLimitNanos` it is read with what is known.
    private func follow() async {
        let (events, feed) = AsyncStream<ContainerEvent?>.makeStream(bufferingPolicy: .unbounded)
        let registry = self.registry
        let forward = Task {
            for await e in registry.subscribe() { feed.yield(e) }
            feed.finish()
        }
        // Re-checks held containers against the hold limit.
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                feed.yield(nil)
            }
        }
        defer {
            forward.cancel()
            ticker.cancel()
        }
        let needed: MetadataLevel = selection.externalK8sLabelTag.isEmpty ? .identified : .complete
        var state = FollowState(needed: needed)
        for await event in events {
            if Task.isCancelled { return }
            let now = Sys.monotonicNanos()
            switch event {
            case .added(let c)?:
                let key = ContainerInput.key(c)
                state.departing[key] = nil
                state.live[key] = c
                evaluate(key, &state, now)
            case .updated(let old, let c)?:
                // The key may change (a log path learned later): drop the entry under the old one.
                let oldKey = ContainerInput.key(old), key = ContainerInput.key(c)
                state.live[key] = c
                evaluate(key, &state, now)
                if oldKey != key {
                    state.live[oldKey] = nil
                    state.departing[oldKey] = nil
                    // Files held under the old key: adopted by the new key's targets (same paths)
                    // if it is followed, else let go unread, never drained (it may be rejected).
                    if state.held.contains(oldKey) && state.targets[key] == nil {
                        state.discarded[oldKey] = (old, now + 5_000_000_000)
                    }
                    evaluate(oldKey, &state, now)
                }
            case .removed(let c)?:
                let key = ContainerInput.key(c)
                state.live[key] = nil
                if state.held.contains(key) { state.departing[key] = (c, nil) }
                evaluate(key, &state, now)
            case nil:
                // Timer: the containers whose state depends on time.
                let keys = state.held.union(state.departing.keys).union(state.discarded.keys)
                if keys.isEmpty { continue }
                for key in keys { evaluate(key, &state, now) }
            }
            if state.changed {
                state.changed = false
                files.setDynamicTargets(state.targets.values.flatMap { $0.targets })
            }
        }
    }

    /// What `follow` keeps between events: the containers, and the targets computed for each.
    struct FollowState {
        let needed: MetadataLevel
        var live: [String: ContainerInfo] = [:]
        /// Removed while still held: followed (held) until decided, then kept released for 2 s so
        /// the file input surely sees the release (it applies only the latest target set) before
        /// the target goes and its files are drained.
        var departing: [String: (info: ContainerInfo, releasedAt: Int64?)] = [:]
        /// Rejected after being held: a `discard` target for 5 s, so its held files are let go unread.
        var discarded: [String: (info: ContainerInfo, until: Int64)] = [:]
        /// Containers whose targets hold their files unread.
        var held = Set<String>()
        /// Per container key: its targets and a fingerprint of them.
        var targets: [String: (targets: [WatchTarget], fingerprint: String)] = [:]
        var changed = false
        init(needed: MetadataLevel) { self.needed = needed }
    }

    /// Recomputes one container's targets.
    private func evaluate(_ key: String, _ s: inout FollowState, _ now: Int64) {
        if let d = s.departing[key], let released = d.releasedAt, now - released > 2_000_000_000 { s.departing[key] = nil }
        if let d = s.discarded[key], now > d.until { s.discarded[key] = nil }
        var out: [WatchTarget] = []
        var nowHeld = false
        if let c = s.live[key] ?? s.departing[key]?.info {
            let waited = c.discoveredAt > 0 && now - c.discoveredAt >= ContainerInput.holdLimitNanos
            var selected = true
            var hold = false
            switch selection.filters.decide(c) {
            case .rejected: selected = false
            case .undecided:
                if waited { selected = selection.filters.matches(c) } else { hold = true }
            case .selected:
                hold = c.metadataLevel < s.needed && !waited
            }
            if selected {
                if s.departing[key] != nil && !hold && s.departing[key]?.releasedAt == nil { s.departing[key]?.releasedAt = now }
                out = targets(for: c)
                if hold && !out.isEmpty {
                    nowHeld = true
                    for i in out.indices { out[i].hold = true }
                }
                s.discarded[key] = nil
            } else {
                if s.held.contains(key) { s.discarded[key] = (c, now + 5_000_000_000) }
                s.departing[key] = nil
            }
        }
        if out.isEmpty, let d = s.discarded[key] {
            out = targets(for: d.info)
            for i in out.indices { out[i].discard = true }
        }
        let wasHeld = s.held.contains(key)
        if nowHeld { s.held.insert(key) } else { s.held.remove(key) }
        if wasHeld != nowHeld {
            let level = (s.live[key] ?? s.departing[key]?.info).map { "\($0.metadataLevel)" } ?? "gone"
            logger.debug(nowHeld ? "Holding a container's files until its metadata is known." : "Container's files released.",
                         metadata: ["container.key": "\(key)", "metadata.level": "\(level)", "targets": "\(out.count)", "discard": "\(s.discarded[key] != nil)"])
        }
        let fingerprint = out.map { t in
            t.key + "|\(t.generation)|" + t.tags.map { "\($0.key)=\($0.value)" }.joined(separator: "\u{1}") + "|" + t.patterns.map(\.original).joined(separator: ",")
                + (t.hold ? "|hold" : "") + (t.discard ? "|discard" : "")
        }.joined(separator: "\n")
        if out.isEmpty {
            if s.targets.removeValue(forKey: key) != nil { s.changed = true }
        } else if s.targets[key]?.fingerprint != fingerprint {
            s.targets[key] = (out, fingerprint)
            s.changed = true
        }
    }

    static func key(_ c: ContainerInfo) -> String {
        !c.logPath.isEmpty ? "log:" + c.logPath : "id:" + c.id
    }

    func targets(for c: ContainerInfo) -> [WatchTarget] {
        var out = targetsIgnoringState(for: c)
        // The container's life steps: each makes the file input look at its directories again.
        var h = Hasher()
        h.combine(c.state.rawValue)
        h.combine(c.startedAt)
        h.combine(c.finishedAt)
        let generation = h.finalize()
        for i in out.indices { out[i].generation = generation }
        return out
    }

    /// `ExcludeFilePaths` and `ExcludeDirs` are paths inside the container: on the host they are
    /// where the container's mounts or rootfs put them (one that is nowhere on the host excludes
    /// nothing there). `ExcludeFiles` are names, the same everywhere.
    static func hostExclusions(_ e: PathExclusions, of c: ContainerInfo, hostPaths: HostPaths) -> PathExclusions {
        PathExclusions(filePaths: e.filePaths.compactMap { hostPaths.hostPath(containerPath: $0, in: c) },
                       fileNames: e.fileNames,
                       directories: e.directories.compactMap { hostPaths.hostPath(containerPath: $0, in: c) })
    }

    private func targetsIgnoringState(for c: ContainerInfo) -> [WatchTarget] {
        let tags = files.options.tagKeys.renamingContainerTags(
            containerTags(c, externalEnvTag: selection.externalEnvTag, externalK8sLabelTag: selection.externalK8sLabelTag)
                .map { EventTag($0.0, $0.1) })
        let existedBefore = ContainerInput.existedBefore(c, wall: existedBeforeWall, monotonic: startedAt)
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
                out.append(WatchTarget(key: ContainerInput.key(c) + "#\(i)", patterns: [p], exclusions: ContainerInput.hostExclusions(exclusions, of: c, hostPaths: hostPaths),
                                       tags: tags, format: nil, existedBefore: existedBefore,
                                       pathRewrite: (host: hostBase, container: inside.baseDirectory)))
            }
            return out
        }
    }
}
