import SluiceSystem
import Logging
import Synchronization

/// Docker as a container source: list + inspect → `registry.resync`, then the `/events` stream
/// (create / start / restart / rename / die → inspect right away + upsert; destroy → remove),
/// with a full re-sync after every (re)connect and every `resyncInterval`.
///
/// Events of different containers are handled concurrently, those of one container in order.
///
/// Failures never leave `run`: Docker absent (socket missing, connection refused) is logged once at
/// info level per absence and looked for again every `absentPollInterval`; errors (HTTP errors,
/// malformed replies, timeouts) are logged with the error and retried with exponential backoff from
/// `initialBackoff` to `maxBackoff`; a malformed event line is logged and skipped. Cancelling the
/// task that runs `run` stops it promptly and shuts its HTTP client down.
public struct DockerSource: ContainerSource {
    public var kind: ContainerRuntimeKind { .docker }
    public var endpoint: DockerEndpoint
    public var resyncInterval: Duration
    public var requestTimeout: Duration
    public var connectTimeout: Duration
    public var initialBackoff: Duration
    public var maxBackoff: Duration
    public var absentPollInterval: Duration
    /// Inspect calls in flight at once during a re-sync.
    public var inspectConcurrency: Int
    /// Where the host's `/` is (dockerd's state files are read under it; see `DockerDiskState`).
    public var hostRoot: String = "/"
    public var logger: Logger

    public init(
        endpoint: DockerEndpoint = .unix(path: "/var/run/docker.sock"),
        resyncInterval: Duration = .seconds(300),
        requestTimeout: Duration = .seconds(10),
        connectTimeout: Duration = .seconds(3),
        initialBackoff: Duration = .milliseconds(250),
        maxBackoff: Duration = .seconds(30),
        absentPollInterval: Duration = .seconds(1),
        inspectConcurrency: Int = 8,
        logger: Logger
    ) {
        self.endpoint = endpoint
        self.resyncInterval = resyncInterval
        self.requestTimeout = requestTimeout
        self.connectTimeout = connectTimeout
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.absentPollInterval = absentPollInterval
        self.inspectConcurrency = max(1, inspectConcurrency)
        self.logger = logger
    }

    /// From `--docker-host` (`option`), else `DOCKER_HOST`, else `unix:///var/run/docker.sock`.
    public init(host option: String?, environment: [String: String], logger: Logger) throws(DockerError) {
        self.init(endpoint: try DockerEndpoint.resolve(option: option, environment: environment), logger: logger)
    }

    public func run(registry: ContainerRegistry) async {
        let client = DockerClient(endpoint: endpoint, connectTimeout: connectTimeout, requestTimeout: requestTimeout)
        let writer = DockerRegistryWriter(registry: registry)
        var logger = self.logger
        logger[metadataKey: "docker_host"] = "\(endpoint)"
        var backoff = initialBackoff
        var reportedAbsent = false
        while !Task.isCancelled {
            let health = DockerSessionHealth()
            let sessionStart = Sys.monotonicNanos()
            // A session that synced and then lasted a while was healthy: its end (daemon restarted, stream
            // closed) is retried at once from the initial backoff. One that failed fast keeps backing off.
            var healthy: Bool { health.synced && Sys.monotonicNanos() - sessionStart >= 10_000_000_000 }
            var wait = backoff
            do {
                try await session(client: client, writer: writer, health: health, logger: logger, reportedAbsent: &reportedAbsent)
            } catch is CancellationError {
                break
            } catch let error as DockerError {
                if Task.isCancelled { break }
                if healthy { backoff = initialBackoff; wait = backoff }
                switch error {
                case .unavailable(_, let reason):
                    if !reportedAbsent {
                        logger.info("Docker not available (will keep trying in the background)", metadata: ["reason": "\(reason)"])
                        reportedAbsent = true
                    } else {
                        logger.debug("Docker still not available", metadata: ["reason": "\(reason)"])
                    }
                    // Looking again is cheap (a stat, or a refused local connect): no backoff, so a daemon
                    // that comes (back) is found within `absentPollInterval`.
                    wait = absentPollInterval
                case .eventsStreamEnded:
                    logger.info("Docker events stream ended; reconnecting", metadata: ["retry_in_s": "\(DockerClient.seconds(wait))"])
                default:
                    logger.warning("Docker error; retrying", metadata: ["error": "\(error)", "retry_in_s": "\(DockerClient.seconds(wait))"])
                }
            } catch {
                if Task.isCancelled { break }
                if healthy { backoff = initialBackoff; wait = backoff }
                logger.warning("Docker error; retrying", metadata: ["error": "\(error)", "retry_in_s": "\(DockerClient.seconds(wait))"])
            }
            if wait == backoff { backoff = min(backoff * 2, maxBackoff) }
            do { try await Task.sleep(for: wait) } catch { break }
        }
        do { try await client.shutdown() } catch { logger.debug("The HTTP client did not shut down cleanly.", metadata: ["error": "\(error)"]) }
    }

    // MARK: - One connection

    private func session(client: DockerClient, writer: DockerRegistryWriter, health: DockerSessionHealth,
                         logger: Logger, reportedAbsent: inout Bool) async throws {
        let version = try await client.version()
        var disk: DockerDiskState? = nil
        do {
            let info = try await client.info()
            if let root = info.dockerRootDir, root.hasPrefix("/") {
                disk = DockerDiskState(rootDir: root, storageDriver: info.driver ?? "", defaultLogDriver: info.loggingDriver ?? "json-file", hostRoot: hostRoot)
            }
        } catch {
            logger.info("Docker GET /info failed: new containers are known from inspect only", metadata: ["error": "\(error)"])
        }
        let diskState = disk
        let stream = try await client.events()
        logger.info("Docker connected", metadata: ["version": "\(version.version ?? "?")", "api": "\(version.apiVersion ?? "?")"])
        reportedAbsent = false
        let resyncInterval = self.resyncInterval
        let concurrency = self.inspectConcurrency
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Events first: the stream is open before the list is taken, so nothing between the two is lost,
            // and events are applied while the (re)sync runs.
            group.addTask {
                try await Self.followEvents(stream, client: client, writer: writer, disk: diskState, logger: logger)
            }
            group.addTask {
                while true {
                    let started = Sys.monotonicNanos()
                    let count = try await Self.resync(client: client, writer: writer, concurrency: concurrency)
                    health.synced = true
                    logger.debug("Docker re-sync done", metadata: [
                        "containers": "\(count)", "ms": "\(Double(Sys.monotonicNanos() - started) / 1e6)",
                    ])
                    try await Task.sleep(for: resyncInterval)
                }
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    /// List + inspect each → `registry.resync`. Returns the number of containers.
    static func resync(client: DockerClient, writer: DockerRegistryWriter, concurrency: Int) async throws -> Int {
        writer.beginResync()
        do {
            let listed = try await client.listContainers(all: true)
            let seenAt = Sys.monotonicNanos()
            let infos = try await inspectAll(listed.map(\.id), client: client, concurrency: concurrency)
            let present: [ContainerInfo] = infos.compactMap { _, info in
                guard var info else { return nil }  // removed between list and inspect
                info.discoveredAt = seenAt
                return info
            }
            writer.finishResync(present)
            return present.count
        } catch {
            writer.abortResync()
            throw error
        }
    }

    /// Inspects `ids` with at most `concurrency` calls in flight; results in the order of `ids`
    /// (nil: the container no longer exists). An inspect that fails is retried once.
    static func inspectAll(_ ids: [String], client: DockerClient, concurrency: Int) async throws -> [(String, ContainerInfo?)] {
        if ids.count == 1 { return [(ids[0], try await inspectRetrying(ids[0], client: client))] }
        var results = [ContainerInfo?](repeating: nil, count: ids.count)
        try await withThrowingTaskGroup(of: (Int, ContainerInfo?).self) { group in
            var next = 0
            while next < ids.count && next < concurrency {
                let i = next, id = ids[i]
                group.addTask { (i, try await inspectRetrying(id, client: client)) }
                next += 1
            }
            while let (i, info) = try await group.next() {
                results[i] = info
                if next < ids.count {
                    let j = next, id = ids[j]
                    group.addTask { (j, try await inspectRetrying(id, client: client)) }
                    next += 1
                }
            }
        }
        return Array(zip(ids, results))
    }

    static func inspectRetrying(_ id: String, client: DockerClient) async throws -> ContainerInfo? {
        do {
            return try await client.inspect(id: id)
        } catch let e as DockerError {
            if case .unavailable = e { throw e }
            try await Task.sleep(for: .milliseconds(50))
            return try await client.inspect(id: id)
        }
    }

    /// Reads the event stream and hands each container's events to a worker task of that container:
    /// containers are handled concurrently (an inspect that dockerd answers slowly, as it does for a
    /// dying container, never delays another container's start), each container's events in order,
    /// coalesced while its worker is busy (only the latest action is carried out next).
    static func followEvents(_ stream: DockerEventStream, client: DockerClient, writer: DockerRegistryWriter,
                             disk: DockerDiskState? = nil, logger: Logger) async throws {
        let queue = DockerContainerQueues()
        // Containers already read from disk (once each, at their first create/start event).
        var readFromDisk = Set<String>()
        try await withThrowingDiscardingTaskGroup { group in
            for try await batch in stream {
                for bad in batch.malformed {
                    logger.warning("ignoring malformed Docker event", metadata: ["error": "\(bad)"])
                }
                for event in batch.events {
                    if let t = event.type, t != "container" { continue }
                    guard let id = event.containerID else { continue }
                    let verb = event.verb
                    guard DockerClient.containerActions.contains(verb) else { continue }
                    if let disk, verb == "create" || verb == "start", readFromDisk.insert(id).inserted,
                       var info = disk.containerInfo(id: id) {
                        // Known at once from dockerd's files; the inspect below confirms and completes it.
                        info.discoveredAt = batch.receivedAt
                        logger.debug("Docker container read from dockerd's files", metadata: [
                            "container_id": "\(id)", "event": "\(verb)", "log_path": "\(info.logPath)", "upper_dir": "\(info.upperDir)"])
                        writer.upsert(info)
                    }
                    if verb == "destroy" { readFromDisk.remove(id) }
                    let action: DockerContainerQueues.Action = verb == "destroy" ? .remove : .inspect(receivedAt: batch.receivedAt)
                    if queue.submit(id, action) {
                        group.addTask {
                            try await work(id, queue: queue, client: client, writer: writer, logger: logger)
                        }
                    }
                }
            }
            throw DockerError.eventsStreamEnded
        }
    }

    /// The worker of one container: carries out its queued actions until none is left.
    static func work(_ id: String, queue: DockerContainerQueues, client: DockerClient, writer: DockerRegistryWriter,
                     logger: Logger) async throws {
        while let action = queue.next(id) {
            switch action {
            case .remove:
                writer.remove(id: id)
            case .inspect(let receivedAt):
                let start = Sys.monotonicNanos()
                let info = try await inspectRetrying(id, client: client)
                let took = Sys.monotonicNanos() - start
                if took > 20_000_000 {
                    logger.debug("slow Docker inspect", metadata: [
                        "container_id": "\(id)", "inspect_ms": "\(Double(took) / 1e6)",
                        "queued_ms": "\(Double(start - receivedAt) / 1e6)",
                    ])
                }
                if var info {
                    info.discoveredAt = receivedAt
                    writer.upsert(info)
                } else {
                    writer.remove(id: id)  // gone before we could look
                }
            }
        }
    }
}

/// Per-container queues of the event workers: at most one worker per container, and at most one
/// action waiting behind it (a newer event replaces an older waiting one; an inspect keeps the
/// earliest receive time).
final class DockerContainerQueues: Sendable {
    enum Action: Sendable, Equatable {
        case inspect(receivedAt: Int64)
        case remove
    }
    private let state = Mutex<[String: Action?]>([:])  // id → waiting action (nil: worker busy, nothing waits)

    /// Queues `action`; true when the caller must start a worker for `id`.
    func submit(_ id: String, _ action: Action) -> Bool {
        state.withLock { st in
            if let waiting = st[id] {
                if case .inspect(let earlier)? = waiting, case .inspect = action {
                    st[id] = .some(.inspect(receivedAt: earlier))
                } else {
                    st[id] = .some(action)
                }
                return false
            }
            st[id] = .some(action)
            return true
        }
    }

    /// The next action for `id`'s worker; nil (and the worker must end) when nothing waits.
    func next(_ id: String) -> Action? {
        state.withLock { st in
            guard let waiting = st[id] else { return nil }
            guard let action = waiting else {
                st[id] = nil
                return nil
            }
            st[id] = .some(nil)
            return action
        }
    }

}

/// Per-session flag shared by the session's tasks: a re-sync succeeded (the connection is healthy,
/// so the next failure starts again from the initial backoff).
final class DockerSessionHealth: Sendable {
    private let state = Mutex(false)
    var synced: Bool {
        get { state.withLock { $0 } }
        set { state.withLock { $0 = newValue } }
    }
}

/// Serialises what Docker tells the registry, so that a re-sync never undoes an event applied while
/// the re-sync was collecting its list: events seen during a re-sync are replayed over its result.
/// Each report is made under one lock together with that bookkeeping (the registry's methods are
/// synchronous), so the order the registry sees is the order decided here.
/// Also carries pod labels from a dockershim sandbox (whose labels are the pod's) to the pod's
/// other containers.
final class DockerRegistryWriter: Sendable {
    let registry: ContainerRegistry
    private struct State {
        var resyncLog: [(id: String, info: ContainerInfo?)]?
        var podLabelsByUID: [String: [String: String]] = [:]
    }
    private let state = Mutex(State())

    init(registry: ContainerRegistry) {
        self.registry = registry
    }

    func upsert(_ info: ContainerInfo) {
        state.withLock { st in
            let info = Self.enrich(info, &st.podLabelsByUID)
            st.resyncLog?.append((info.id, info))
            registry.upsert(info)
        }
    }

    func remove(id: String) {
        state.withLock { st in
            st.resyncLog?.append((id, nil))
            registry.remove(id: id, source: .docker)
        }
    }

    func beginResync() {
        state.withLock { $0.resyncLog = [] }
    }

    func abortResync() {
        state.withLock { $0.resyncLog = nil }
    }

    func finishResync(_ listed: [ContainerInfo]) {
        state.withLock { st in
            var present: [String: ContainerInfo] = [:]
            var order: [String] = []
            for info in listed where present.updateValue(info, forKey: info.id) == nil { order.append(info.id) }
            for (id, info) in st.resyncLog ?? [] {
                if let info {
                    if present.updateValue(info, forKey: id) == nil { order.append(id) }
                } else {
                    present[id] = nil
                }
            }
            st.resyncLog = nil
            st.podLabelsByUID = [:]
            for id in order {
                if let info = present[id], info.isSandbox { _ = Self.enrich(info, &st.podLabelsByUID) }
            }
            let result = order.compactMap { present[$0].map { Self.enrich($0, &st.podLabelsByUID) } }
            registry.resync(source: .docker, present: result)
        }
    }

    /// Sandboxes record their pod labels; other containers of the pod without pod labels get them.
    private static func enrich(_ info: ContainerInfo, _ podLabelsByUID: inout [String: [String: String]]) -> ContainerInfo {
        guard var k8s = info.kubernetes, !k8s.podUID.isEmpty else { return info }
        if info.isSandbox {
            if !k8s.podLabels.isEmpty { podLabelsByUID[k8s.podUID] = k8s.podLabels }
            return info
        }
        guard k8s.podLabels.isEmpty, let labels = podLabelsByUID[k8s.podUID] else { return info }
        k8s.podLabels = labels
        var out = info
        out.kubernetes = k8s
        return out
    }
}
