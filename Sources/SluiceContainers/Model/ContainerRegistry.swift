import Logging
import Synchronization
import SluiceSystem

/// A change in the set of known containers, as ``ContainerRegistry/subscribe()`` delivers it.
public enum ContainerEvent: Sendable {
    /// A container became known (or came back after being removed).
    case added(ContainerInfo)
    /// Something about a live container changed. `old` is what subscribers were told last.
    case updated(old: ContainerInfo, new: ContainerInfo)
    /// The container is gone; its metadata stays available to `lookup` for the grace period.
    case removed(ContainerInfo)
}

/// What Sluice knows of every container on the node, merged from all sources (Docker, CRI, the
/// kubelet pod log directory, the static container file), with diffs for subscribers.
///
/// ## Merging
/// A report is merged into an existing entry found, in this order, by runtime id (when both have
/// one), by log path, or by Kubernetes identity (pod uid, container name, restart count). Entries
/// whose ids are both non-empty and differ are never merged. When a report matches two entries
/// (for example the pod-log entry by log path and the CRI entry by id), they are joined into one.
///
/// Fields a report does not know (empty string, zero, `nil`, empty map or list, state `.unknown`)
/// never overwrite known ones. Reports from the pod log directory (``ContainerRuntimeKind/podLogs``)
/// only fill fields nobody else has set: the runtime's view wins. One exception: a report with
/// state `.exited` also sets `pid` (to the 0 runtimes report for a stopped container).
/// `isSandbox` is sticky: once any source says so, the container stays flagged.
/// Every log path any source reported is remembered, so ``lookup(logPath:)`` and
/// ``removeByLogPath(_:source:)`` work with the Docker path as well as the pod-log path.
///
/// ## Removal rule
/// Each entry remembers which sources report it. `remove`, `removeByLogPath` and a `resync` that no
/// longer lists it withdraw that one source; the container is removed only when no source reports it
/// any more. So a container whose log file is still in the pod log directory stays live after the
/// runtime deleted it (its logs are still being read), and one the runtime still lists stays live
/// after its log file was deleted. A withdrawal by a source that never reported the container is
/// ignored. A removed container keeps its metadata for `gracePeriodSeconds`; a later report that
/// matches it brings it back (with `.added`).
///
/// All methods are synchronous and cheap (one lock); events are delivered in order.
public final class ContainerRegistry: Sendable {
    /// The event type of ``subscribe()`` (also available as the top-level ``SluiceContainers/ContainerEvent``).
    public typealias ContainerEvent = SluiceContainers.ContainerEvent

    /// How long a removed container's metadata is kept, in nanoseconds of ``clock``.
    public let gracePeriodNanos: Int64
    /// The clock removal times are taken from (nanoseconds; the default is CLOCK_MONOTONIC).
    public let clock: @Sendable () -> Int64
    private let logger: Logger
    private let state = Mutex(State())

    /// A registry whose clock is CLOCK_MONOTONIC.
    ///
    /// - Parameters:
    ///   - gracePeriodSeconds: how long a removed container stays available to `lookup` (default 10 min).
    ///   - logger: where additions and removals are logged (at debug level).
    public convenience init(gracePeriodSeconds: Double = 600, logger: Logger) {
        self.init(gracePeriodSeconds: gracePeriodSeconds, logger: logger, clock: { Sys.monotonicNanos() })
    }

    /// A registry with an injected clock (for tests): `clock` returns nanoseconds, and `expire(now:)`
    /// takes values of the same clock.
    public init(gracePeriodSeconds: Double = 600, logger: Logger, clock: @escaping @Sendable () -> Int64) {
        self.gracePeriodNanos = Sys.nanos(seconds: gracePeriodSeconds)
        self.logger = logger
        self.clock = clock
    }

    deinit {
        let continuations = state.withLock { state in
            let all = Array(state.subscribers.values)
            state.subscribers.removeAll()
            return all
        }
        for continuation in continuations { continuation.finish() }
    }

    // MARK: - Reports from sources

    /// A source reports the facts it has about one container (its kind is `info.runtime`); they
    /// are merged with what other sources know (see the type's documentation).
    public func upsert(_ info: ContainerInfo) {
        let now = clock()
        let events = state.withLock { state in
            var events: [ContainerEvent] = []
            _ = state.upsert(info, reporter: info.runtime, now: now, events: &events)
            state.publish(events)
            return events
        }
        log(events)
    }

    /// The container with runtime id `id` was destroyed / deleted, says `source` (the same kind
    /// the source puts in `runtime` of its reports).
    ///
    /// The container is removed when no other source still reports it; its metadata is then kept
    /// for the grace period.
    public func remove(id: String, source: ContainerRuntimeKind) {
        guard !id.isEmpty else { return }
        let now = clock()
        let events = state.withLock { state in
            var events: [ContainerEvent] = []
            if let key = state.byID[id] { state.withdraw(key: key, source: source, now: now, events: &events) }
            state.publish(events)
            return events
        }
        log(events)
    }

    /// The container whose log file is `path` is gone, says `source` (the pod log directory source
    /// uses this when a log file is deleted). Same rule as ``remove(id:source:)``.
    public func removeByLogPath(_ path: String, source: ContainerRuntimeKind) {
        guard !path.isEmpty else { return }
        let now = clock()
        let events = state.withLock { state in
            var events: [ContainerEvent] = []
            if let key = state.byLogPath[path] { state.withdraw(key: key, source: source, now: now, events: &events) }
            state.publish(events)
            return events
        }
        log(events)
    }

    /// The complete list of containers `source` knows now: each is upserted (with `source` as its
    /// reporter), and every live container `source` reported before but does not list now is
    /// withdrawn for `source` (as by ``remove(id:source:)``).
    public func resync(source: ContainerRuntimeKind, present: [ContainerInfo]) {
        let now = clock()
        let events = state.withLock { state in
            state.synced.insert(source.rawValue)
            var events: [ContainerEvent] = []
            var seen = Set<Int>()
            for info in present {
                seen.insert(state.upsert(info, reporter: source, now: now, events: &events))
            }
            let stale = state.entries
                .filter { $0.value.removedAt == nil && $0.value.reporters.contains(source) && !seen.contains($0.key) }
                .map(\.key).sorted()
            for key in stale {
                state.withdraw(key: key, source: source, now: now, events: &events)
            }
            state.publish(events)
            return events
        }
        log(events)
    }

    // MARK: - Queries

    /// The sources that have completed at least one full listing (connected to their runtime, or
    /// read their directory or file): what `/readyz` reports for discovery.
    public var syncedSources: [String] {
        state.withLock { $0.synced.sorted() }
    }

    /// Entries in each index (tests: nothing stays behind once its entry is gone).
    var indexSizes: [Int] {
        state.withLock { s in [s.entries.count, s.byID.count, s.byLogPath.count, s.byPod.count, s.byPodName.count] }
    }

    /// The live containers, in the order they became known.
    public func snapshot() -> [ContainerInfo] {
        state.withLock { state in state.liveSorted().map(\.info) }
    }

    /// The container with runtime id `id`, live or removed within the grace period.
    public func lookup(id: String) -> ContainerInfo? {
        guard !id.isEmpty else { return nil }
        return state.withLock { state in state.byID[id].flatMap { state.entries[$0]?.info } }
    }

    /// The container whose log file is `logPath` (as the runtime or the pod log directory names it,
    /// without the host-root prefix), live or removed within the grace period.
    public func lookup(logPath: String) -> ContainerInfo? {
        guard !logPath.isEmpty else { return nil }
        return state.withLock { state in state.byLogPath[logPath].flatMap { state.entries[$0]?.info } }
    }

    /// Whether a container found by ``lookup(id:)`` / ``lookup(logPath:)`` has been removed
    /// (false for live or unknown containers).
    public func isRemoved(id: String) -> Bool {
        state.withLock { state in state.byID[id].flatMap { state.entries[$0]?.removedAt } != nil }
    }

    /// A stream of changes: first `.added` for every live container (in the order they became
    /// known), then every change as it happens. The stream is unbounded and ends when the consumer
    /// stops iterating (or the registry is deallocated).
    public func subscribe() -> AsyncStream<ContainerEvent> {
        let (stream, continuation) = AsyncStream<ContainerEvent>.makeStream(bufferingPolicy: .unbounded)
        let id = state.withLock { state in
            let id = state.nextSubscriber
            state.nextSubscriber += 1
            for entry in state.liveSorted() { continuation.yield(.added(entry.info)) }
            state.subscribers[id] = continuation
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { state in state.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    // MARK: - Grace period

    /// Forgets removed containers whose grace period has passed at `now` (nanoseconds of ``clock``).
    public func expire(now: Int64) {
        let grace = gracePeriodNanos
        let dropped = state.withLock { state in
            let old = state.entries.filter { entry in
                guard let removedAt = entry.value.removedAt else { return false }
                return now - removedAt >= grace
            }.map(\.key)
            for key in old { state.drop(key: key) }
            return old.count
        }
        if dropped > 0 {
            logger.debug("Forgot removed containers past their grace period.", metadata: ["containers.count": "\(dropped)"])
        }
    }

    /// ``expire(now:)`` at the registry clock's current time.
    public func expire() { expire(now: clock()) }

    /// Calls ``expire()`` every `intervalSeconds` until the task is cancelled.
    public func runExpiry(intervalSeconds: Double = 30) async {
        let interval = Duration.milliseconds(Int64(max(0.01, intervalSeconds) * 1000))
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { return }
            expire()
        }
    }

    // MARK: - Logging

    private func log(_ events: [ContainerEvent]) {
        guard logger.logLevel <= .debug else { return }
        for event in events {
            switch event {
            case .added(let info):
                logger.debug("Container added.", metadata: info.logMetadata)
            case .updated(_, let info):
                logger.debug("Container updated.", metadata: info.logMetadata)
            case .removed(let info):
                logger.debug("Container removed.", metadata: info.logMetadata)
            }
        }
    }
}

extension ContainerInfo {
    var logMetadata: Logger.Metadata {
        var metadata: Logger.Metadata = ["container.id": "\(id)", "container.runtime": "\(runtime.rawValue)"]
        if !name.isEmpty { metadata["container.name"] = "\(name)" }
        if !logPath.isEmpty { metadata["container.log_path"] = "\(logPath)" }
        if let k8s = kubernetes {
            metadata["k8s.namespace"] = "\(k8s.namespace)"
            metadata["k8s.pod"] = "\(k8s.podName)"
            metadata["k8s.container"] = "\(k8s.containerName)"
        }
        return metadata
    }
}

// MARK: - State (under the lock)

private struct PodKey: Hashable {
    var uid: String
    var container: String
    var restart: Int

    init?(_ info: ContainerInfo) {
        guard let k8s = info.kubernetes, !k8s.podUID.isEmpty, !k8s.containerName.isEmpty else { return nil }
        uid = k8s.podUID
        container = k8s.containerName
        restart = k8s.restartCount
    }
}

private struct PodName: Hashable {
    var uid: String
    var container: String
}

private struct Entry {
    var info: ContainerInfo
    /// The sources that currently report the container.
    var reporters: Set<ContainerRuntimeKind>
    /// Every log path a source reported for it.
    var logPaths: Set<String>
    /// Clock time of removal; nil while live.
    var removedAt: Int64?
}

private struct State {
    var entries: [Int: Entry] = [:]
    /// Sources that completed at least one full listing.
    var synced: Set<String> = []
    var nextKey = 0
    var byID: [String: Int] = [:]
    var byLogPath: [String: Int] = [:]
    var byPod: [PodKey: Int] = [:]
    var byPodName: [PodName: Set<Int>] = [:]
    var subscribers: [Int: AsyncStream<ContainerEvent>.Continuation] = [:]
    var nextSubscriber = 0

    func liveSorted() -> [Entry] {
        entries.filter { $0.value.removedAt == nil }.sorted { $0.key < $1.key }.map(\.value)
    }

    func publish(_ events: [ContainerEvent]) {
        guard !events.isEmpty else { return }
        for continuation in subscribers.values {
            for event in events { continuation.yield(event) }
        }
    }

    /// The entries `info` belongs to, best first: by id, then log path, then pod identity; all
    /// mutually compatible (no two different non-empty ids).
    func candidates(for info: ContainerInfo) -> [Int] {
        var found: [Int] = []
        var mergedID = info.id
        func consider(_ key: Int?) {
            guard let key, let entry = entries[key], !found.contains(key) else { return }
            let id = entry.info.id
            guard id.isEmpty || mergedID.isEmpty || id == mergedID else { return }
            if mergedID.isEmpty { mergedID = id }
            found.append(key)
        }
        if !info.id.isEmpty { consider(byID[info.id]) }
        if !info.logPath.isEmpty { consider(byLogPath[info.logPath]) }
        if let pod = PodKey(info) {
            consider(byPod[pod])
            // A restart count not known on one side (-1): the same pod and container name, the
            // entry of the latest restart that has no other id yet.
            let named = (byPodName[PodName(uid: pod.uid, container: pod.container)] ?? [])
                .compactMap { key -> (Int, Int)? in
                    guard let e = entries[key], let k = e.info.kubernetes, e.removedAt == nil else { return nil }
                    guard pod.restart < 0 || k.restartCount < 0 else { return nil }
                    guard e.info.id.isEmpty || info.id.isEmpty else { return nil }
                    return (key, k.restartCount)
                }
            if let best = named.max(by: { ($0.1, $0.0) < ($1.1, $1.0) }) { consider(best.0) }
        }
        return found
    }

    /// Merges a report into the registry; returns the key of the entry it ended up in.
    mutating func upsert(_ incoming: ContainerInfo, reporter: ContainerRuntimeKind, now: Int64, events: inout [ContainerEvent]) -> Int {
        let found = candidates(for: incoming)
        // The oldest live entry is kept (removed ones are joined into it), else the oldest.
        let primary = found.filter { entries[$0]?.removedAt == nil }.min() ?? found.min()
        guard let primaryKey = primary, var entry = entries[primaryKey] else {
            var info = incoming
            if info.discoveredAt == 0 { info.discoveredAt = now }
            let key = nextKey
            nextKey += 1
            var entry = Entry(info: info, reporters: [reporter], logPaths: [], removedAt: nil)
            if !info.logPath.isEmpty { entry.logPaths.insert(info.logPath) }
            entries[key] = entry
            index(key)
            events.append(.added(info))
            return key
        }
        let before = entry.info
        let wasLive = entry.removedAt == nil
        // Join the other matching entries into the primary one.
        var absorbed: [ContainerInfo] = []
        for key in found where key != primaryKey {
            guard let other = entries[key] else { continue }
            unindex(key)
            entries[key] = nil
            entry.info = ContainerMerge.merged(entry.info, with: other.info, fillOnly: true)
            entry.logPaths.formUnion(other.logPaths)
            if other.removedAt == nil {
                entry.reporters.formUnion(other.reporters)
                absorbed.append(other.info)
            }
        }
        entry.info = ContainerMerge.merged(entry.info, with: incoming, fillOnly: reporter == .podLogs)
        entry.reporters.insert(reporter)
        if !incoming.logPath.isEmpty { entry.logPaths.insert(incoming.logPath) }
        entry.removedAt = nil
        // Out of the indexes under what it was (a restart count learned late changes its pod
        // key: the old key would stay behind for ever), then in under what it is.
        unindex(primaryKey)
        entries[primaryKey] = entry
        index(primaryKey)
        let after = entry.info
        if wasLive {
            if after != before { events.append(.updated(old: before, new: after)) }
        } else {
            events.append(.added(after))
        }
        for old in absorbed where old != after {
            events.append(.updated(old: old, new: after))
        }
        return primaryKey
    }

    /// `source` no longer reports the entry; removes it when nobody does.
    mutating func withdraw(key: Int, source: ContainerRuntimeKind, now: Int64, events: inout [ContainerEvent]) {
        guard var entry = entries[key], entry.removedAt == nil, entry.reporters.contains(source) else { return }
        entry.reporters.remove(source)
        if entry.reporters.isEmpty {
            entry.removedAt = now
            events.append(.removed(entry.info))
        }
        entries[key] = entry
    }

    /// Forgets an entry altogether.
    mutating func drop(key: Int) {
        unindex(key)
        entries[key] = nil
    }

    mutating func index(_ key: Int) {
        guard let entry = entries[key] else { return }
        if !entry.info.id.isEmpty { byID[entry.info.id] = key }
        for path in entry.logPaths { byLogPath[path] = key }
        if let pod = PodKey(entry.info) {
            byPod[pod] = key
            byPodName[PodName(uid: pod.uid, container: pod.container), default: []].insert(key)
        }
    }

    mutating func unindex(_ key: Int) {
        guard let entry = entries[key] else { return }
        if !entry.info.id.isEmpty, byID[entry.info.id] == key { byID[entry.info.id] = nil }
        for path in entry.logPaths where byLogPath[path] == key { byLogPath[path] = nil }
        if let pod = PodKey(entry.info) {
            if byPod[pod] == key { byPod[pod] = nil }
            let name = PodName(uid: pod.uid, container: pod.container)
            byPodName[name]?.remove(key)
            if byPodName[name]?.isEmpty == true { byPodName[name] = nil }
        }
    }
}

/// The field-by-field merge rule of the registry.
enum ContainerMerge {
    /// `current` updated with what `report` knows. With `fillOnly`, only fields `current` does not
    /// know are taken.
    static func merged(_ current: ContainerInfo, with report: ContainerInfo, fillOnly: Bool) -> ContainerInfo {
        var out = current
        func take<T>(_ field: WritableKeyPath<ContainerInfo, T>, known: (T) -> Bool) {
            let value = report[keyPath: field]
            guard known(value) else { return }
            if fillOnly && known(out[keyPath: field]) { return }
            out[keyPath: field] = value
        }
        let nonEmpty: (String) -> Bool = { !$0.isEmpty }
        let nonZero: (Int64) -> Bool = { $0 != 0 }
        take(\.id, known: nonEmpty)
        take(\.name, known: nonEmpty)
        take(\.image, known: nonEmpty)
        take(\.state, known: { $0 != .unknown })
        if !fillOnly && report.state == .exited {
            out.pid = report.pid
        } else {
            take(\.pid, known: { $0 != 0 })
        }
        take(\.createdAt, known: nonZero)
        take(\.startedAt, known: nonZero)
        take(\.finishedAt, known: nonZero)
        take(\.ip, known: nonEmpty)
        take(\.labels, known: { !$0.isEmpty })
        take(\.env, known: { !$0.isEmpty })
        take(\.logPath, known: nonEmpty)
        take(\.upperDir, known: nonEmpty)
        take(\.mergedDir, known: nonEmpty)
        take(\.mounts, known: { !$0.isEmpty })
        if let theirs = report.kubernetes {
            if var mine = out.kubernetes {
                func takeK8s<T>(_ field: WritableKeyPath<KubernetesInfo, T>, known: (T) -> Bool) {
                    let value = theirs[keyPath: field]
                    guard known(value) else { return }
                    if fillOnly && known(mine[keyPath: field]) { return }
                    mine[keyPath: field] = value
                }
                takeK8s(\.namespace, known: nonEmpty)
                takeK8s(\.podName, known: nonEmpty)
                takeK8s(\.podUID, known: nonEmpty)
                takeK8s(\.containerName, known: nonEmpty)
                takeK8s(\.restartCount, known: { $0 > 0 })
                // -1: not known yet (a report read from the runtime's state, which has no attempt).
                if mine.restartCount < 0 && theirs.restartCount >= 0 { mine.restartCount = theirs.restartCount }
                takeK8s(\.podLabels, known: { !$0.isEmpty })
                out.kubernetes = mine
            } else {
                out.kubernetes = theirs
            }
        }
        out.isSandbox = current.isSandbox || report.isSandbox
        out.metadataLevel = max(current.metadataLevel, report.metadataLevel)
        if report.runtime != .podLogs && (out.runtime == .podLogs || !fillOnly) {
            out.runtime = report.runtime
        }
        if report.discoveredAt != 0 && (out.discoveredAt == 0 || report.discoveredAt < out.discoveredAt) {
            out.discoveredAt = report.discoveredAt
        }
        return out
    }
}
