#if canImport(Glibc)
import SluiceSystem
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import GRPCCore
import Logging
import Synchronization

/// Container discovery from a CRI runtime (containerd, CRI-O).
///
/// - Resolves the socket (`--cri-socket`, `CONTAINERD_SOCK_PATH`, the defaults); while there is
///   none, says so once at info level and looks again every `absentRecheckInterval`.
/// - On connecting: `Version` (runtime name → kind), a full listing → `registry.resync`.
/// - Then keeps up: the CRI `GetContainerEvents` stream where the runtime has it (a full re-list
///   every `resyncInterval` as a safety net); otherwise (containerd 1.6: `unimplemented`) a
///   re-list every `pollInterval`, woken at once by containerd's own event stream when there is
///   one. A re-list fetches status only for containers (and pods) that are new or changed.
/// - A runtime that answers with errors, hangs (call deadline), or drops the connection is
///   reported with its error and retried with exponential backoff; entries already in the
///   registry stay until the next successful listing. `run` never throws and returns promptly
///   when cancelled.
public final class CRISource: ContainerSource {
    public struct Options: Sendable {
        /// `--cri-socket`; nil: `CONTAINERD_SOCK_PATH` from `environment`, else the first default that exists.
        public var socketPath: String?
        /// Where `CONTAINERD_SOCK_PATH` is looked up; nil: this process's environment.
        public var environment: [String: String]?
        /// Host root prefix for finding default sockets and reading host paths.
        public var hostRoot: String
        /// containerd state dir (nil: the socket's directory).
        public var stateDir: String?
        /// Re-list interval without a CRI event stream (the incumbent's docker_config_update_interval).
        public var pollInterval: Duration
        /// Full re-list interval while the CRI event stream works.
        public var resyncInterval: Duration
        /// Deadline of each unary call.
        public var callTimeout: Duration
        /// How often to look for a socket that is absent.
        public var absentRecheckInterval: Duration
        /// Backoff after a failed session: doubles from `backoffInitial` up to `backoffMax`.
        public var backoffInitial: Duration
        public var backoffMax: Duration
        /// Use event streams (CRI, then containerd's); false: poll only.
        public var useEvents: Bool

        public init(
            socketPath: String? = nil, environment: [String: String]? = nil, hostRoot: String = "/",
            stateDir: String? = nil, pollInterval: Duration = .seconds(1), resyncInterval: Duration = .seconds(30),
            callTimeout: Duration = .seconds(5), absentRecheckInterval: Duration = .seconds(2),
            backoffInitial: Duration = .milliseconds(500), backoffMax: Duration = .seconds(30), useEvents: Bool = true
        ) {
            self.socketPath = socketPath
            self.environment = environment
            self.hostRoot = hostRoot
            self.stateDir = stateDir
            self.pollInterval = pollInterval
            self.resyncInterval = resyncInterval
            self.callTimeout = callTimeout
            self.absentRecheckInterval = absentRecheckInterval
            self.backoffInitial = backoffInitial
            self.backoffMax = backoffMax
            self.useEvents = useEvents
        }

        var socketEnvironment: [String: String] {
            if let e = environment { return e }
            guard let v = getenv(CRISocket.environmentVariable) else { return [:] }
            return [CRISocket.environmentVariable: String(cString: v)]
        }
    }

    /// How the source keeps up with the runtime.
    public enum Mode: String, Sendable {
        case disconnected
        /// CRI GetContainerEvents + periodic re-list.
        case criEvents
        /// Poll every `pollInterval`, woken early by containerd's event stream.
        case containerdEventsAndPoll
        /// Poll every `pollInterval`.
        case poll
    }

    /// What the source is doing, for `sluice explain` and tests.
    public struct Status: Sendable {
        public var socketPath: String?
        public var connected: Bool = false
        public var mode: Mode = .disconnected
        public var runtimeName: String = ""
        public var runtimeVersion: String = ""
        /// Sessions started (connection attempts that found a socket).
        public var sessions: Int = 0
        /// Sessions that ended with an error.
        public var failures: Int = 0
        public var lastError: String?
        /// Times the absence of a socket was reported (once per absence).
        public var absentReports: Int = 0
        /// Successful listings.
        public var syncs: Int = 0
    }

    public let options: Options
    private let logger: Logger
    private let state: Mutex<(kind: ContainerRuntimeKind, status: Status)>
    /// Containers learned from containerd's `/tasks/create` (see `CRITaskBundle`) that the CRI
    /// listing has not shown yet, with when: kept in the registry by the re-lists until listed
    /// (or for 15 s, for a container deleted before any listing saw it).
    private let announced = CRIAnnounced()

    public var kind: ContainerRuntimeKind { state.withLock { $0.kind } }
    public var status: Status { state.withLock { $0.status } }

    public init(options: Options = Options(), logger: Logger = Logger(label: "sluice.containers.cri")) {
        self.options = options
        self.logger = logger
        let path = CRISocket.resolve(
            explicit: options.socketPath, environment: options.socketEnvironment, hostRoot: options.hostRoot)
        state = Mutex((kind: CRISocket.kind(forSocketPath: path ?? ""), status: Status(socketPath: path)))
    }

    public func run(registry: ContainerRegistry) async {
        var backoff = options.backoffInitial
        var reportedAbsent = false
        while !Task.isCancelled {
            let path = CRISocket.resolve(
                explicit: options.socketPath, environment: options.socketEnvironment, hostRoot: options.hostRoot)
            guard let path, CRIRootfs.exists(path) else {
                if !reportedAbsent {
                    reportedAbsent = true
                    let looked = path.map { [$0] } ?? CRISocket.defaultCandidates.map { CRIRootfs.join(options.hostRoot, $0) }
                    logger.info("no CRI runtime socket (looked for \(looked.joined(separator: ", "))); will keep looking in the background")
                    state.withLock { $0.status.absentReports += 1; $0.status.connected = false; $0.status.mode = .disconnected }
                }
                try? await Task.sleep(for: options.absentRecheckInterval)
                continue
            }
            if reportedAbsent {
                logger.info("CRI runtime socket \(path) appeared")
                reportedAbsent = false
            }
            state.withLock {
                $0.status.socketPath = path
                $0.status.sessions += 1
                if $0.kind != .crio && $0.kind != .containerd { $0.kind = CRISocket.kind(forSocketPath: path) }
            }
            var synced = false
            logger.debug("CRI session \(status.sessions) to \(path) starting")
            do {
                try await session(path: path, registry: registry, onSynced: { synced = true })
                if Task.isCancelled { break }
            } catch {
                if Task.isCancelled { break }
                let message = Self.describe(error)
                state.withLock {
                    $0.status.failures += 1
                    $0.status.lastError = message
                    $0.status.connected = false
                    $0.status.mode = .disconnected
                }
                if synced { backoff = options.backoffInitial }
                if CRIRootfs.exists(path) {
                    logger.warning("CRI runtime at \(path): \(message); retrying in \(Self.format(backoff))")
                } else {
                    logger.info("CRI runtime at \(path) went away (\(message))")
                }
            }
            state.withLock { $0.status.connected = false; $0.status.mode = .disconnected }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, options.backoffMax)
        }
        state.withLock { $0.status.connected = false; $0.status.mode = .disconnected }
    }

    /// Stream ended by the runtime (it is shutting down): reconnect.
    struct StreamEnded: Error, CustomStringConvertible {
        var description: String { "event stream closed by the runtime" }
    }

    private func session(path: String, registry: ContainerRegistry, onSynced: () -> Void) async throws {
        let config = CRIClientConfig(
            socketPath: path, callTimeout: options.callTimeout, stateDir: options.stateDir, hostRoot: options.hostRoot)
        let options = self.options
        let logger = self.logger
        try await CRIClient.with(config) { client in
            let version = try await client.version()
            let kind = state.withLock { s in
                if let k = CRISocket.kind(runtimeName: version.runtimeName) { s.kind = k }
                s.status.connected = true
                s.status.runtimeName = version.runtimeName
                s.status.runtimeVersion = version.runtimeVersion
                return s.kind
            }
            logger.info("connected to \(version.runtimeName) \(version.runtimeVersion) (CRI \(version.runtimeApiVersion)) at \(path)")

            let announced = self.announced
            let syncer = CRISyncer(client: client, kind: kind, registry: registry, logger: logger, announced: { listed in
                let now = Sys.monotonicNanos()
                return announced.entries.withLock { a in
                    for (id, e) in a where listed.contains(id) || now - e.at > 15_000_000_000 { a[id] = nil }
                    return a.values.map(\.info)
                }
            })
            try await syncer.sync()
            state.withLock { $0.status.syncs += 1 }
            onSynced()

            let (wake, wakeUp) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
            let interval = CRILockedBox(options.useEvents ? options.resyncInterval : options.pollInterval)
            if !options.useEvents { state.withLock { $0.status.mode = .poll } }

            try await withThrowingTaskGroup(of: Void.self) { group in
                // Re-list on every wake-up, one at a time, at most every 200 ms: containerd's
                // event stream wakes it for every step of every container, and a busy node's
                // runtime is slowed by back-to-back listings. New containers do not wait for it
                // (the task-create fast path publishes them at once).
                group.addTask {
                    for await _ in wake {
                        try await syncer.sync()
                        self.state.withLock { $0.status.syncs += 1 }
                        try await Task.sleep(for: .milliseconds(200))
                    }
                }
                // Timer: the poll (or safety-net resync) interval.
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: interval.get())
                        wakeUp.yield()
                    }
                }
                if kind == .containerd {
                    // New tasks' bundles, straight from containerd's state dir (see CRITaskDirWatcher).
                    let taskDir = CRIRootfs.join(options.hostRoot, "\(config.effectiveStateDir)/io.containerd.runtime.v2.task/\(config.containerdNamespace)")
                    let watcher = CRITaskDirWatcher(directory: taskDir, logger: logger) { info in
                        self.bundleAppeared(info, registry: registry)
                    }
                    group.addTask { await watcher.run() }
                }
                if options.useEvents {
                    group.addTask {
                        // Its own connection: containerd's server makes the client drop a busy
                        // connection now and then (see CRIClient), which would cut the stream.
                        try await CRIClient.with(config) { streamClient in
                            try await self.followEvents(
                                client: streamClient, kind: kind, runtimeName: version.runtimeName,
                                namespace: config.containerdNamespace, registry: registry, fetchClient: client, wakeUp: wakeUp, interval: interval)
                        }
                    }
                }
                // Any child ending ends the session: an error, or a stream the runtime closed.
                defer { group.cancelAll() }
                _ = try await group.next()
                if !Task.isCancelled { throw StreamEnded() }
            }
        }
    }

    /// Follows the CRI event stream, else containerd's, waking the sync loop on every change.
    /// A stream that drops is resubscribed at once (with a re-list to cover the gap); three drops
    /// in a row without an event or a second of life end the session. Without any stream it
    /// sets the poll interval and waits to be cancelled.
    private func followEvents(
        client: CRIClient, kind: ContainerRuntimeKind, runtimeName: String, namespace: String,
        registry: ContainerRegistry, fetchClient: CRIClient, wakeUp: AsyncStream<Void>.Continuation, interval: CRILockedBox<Duration>
    ) async throws {
        var useCRI = true
        var dropsInARow = 0
        while !Task.isCancelled {
            let began = Sys.monotonicNanos()
            let gotEvent = CRILockedBox(false)
            var failure: (any Error)? = nil
            do {
                if useCRI {
                    state.withLock { $0.status.mode = .criEvents }
                    try await client.containerEvents { _ in
                        gotEvent.set(true)
                        wakeUp.yield()
                    }
                } else if kind == .containerd {
                    state.withLock { $0.status.mode = .containerdEventsAndPoll }
                    try await client.containerdEvents { envelope in
                        guard envelope.namespace == namespace,
                              envelope.topic.hasPrefix("/tasks/") || envelope.topic.hasPrefix("/containers/") else { return }
                        gotEvent.set(true)
                        if let id = CRITaskBundle.containerCreated(envelope) {
                            self.containerCreated(id: id, client: fetchClient, kind: kind, registry: registry)
                        } else if let created = CRITaskBundle.taskCreate(envelope) {
                            self.taskCreated(created, client: fetchClient, kind: kind, registry: registry)
                        }
                        wakeUp.yield()
                    }
                } else {
                    state.withLock { $0.status.mode = .poll }
                    try await Task.sleep(for: .seconds(365 * 86400))
                    continue
                }
            } catch let e as RPCError where e.code == .unimplemented {
                if useCRI {
                    useCRI = false
                    interval.set(options.pollInterval)
                    wakeUp.yield()
                    logger.info("\(runtimeName) has no CRI GetContainerEvents: listing every \(Self.format(options.pollInterval))")
                } else {
                    logger.debug("\(runtimeName) has no containerd event stream either: polling only")
                    state.withLock { $0.status.mode = .poll }
                    try await Task.sleep(for: .seconds(365 * 86400))
                }
                continue
            } catch {
                if Task.isCancelled { return }
                failure = error
            }
            // The stream ended or dropped: resubscribe, and re-list what may have been missed.
            let lived = Sys.monotonicNanos() - began
            dropsInARow = gotEvent.get() || lived >= 1_000_000_000 ? 1 : dropsInARow + 1
            if dropsInARow >= 3 { throw failure ?? StreamEnded() }
            logger.debug("event stream ended (\(failure.map(Self.describe) ?? "closed")); resubscribing")
            wakeUp.yield()
            try await Task.sleep(for: .milliseconds(50 * dropsInARow))
        }
    }

    /// A task was created: publish what its bundle says at once (the CRI status follows).
    /// Then asks the CRI for this one container at once, not waiting for the next listing (its
    /// labels, log path and pod; the listing may come too late for a Job deleted within a second).
    private func taskCreated(_ e: Containerd_Events_TaskCreate, client: CRIClient, kind: ContainerRuntimeKind, registry: ContainerRegistry) {
        guard let info = CRITaskBundle.containerInfo(e, hostRoot: options.hostRoot, runtime: kind) else {
            logger.debug("task \(e.containerID) created: not a CRI container (bundle \(e.bundle))")
            return
        }
        let now = Sys.monotonicNanos()
        // Known already (the CRI answered first): the bundle still adds the pod uid and the
        // rootfs, which join it to the pod log dir's entry.
        guard Self.announce(info, registry: registry, announced: announced, at: now) else { return }
        logger.debug("task created: container \(info.id) (\(info.metadataLevel == .bare ? "bundle gone already" : "from its bundle"), upper dir \(info.upperDir.isEmpty ? "unknown" : info.upperDir))")
        if info.isSandbox { return }
        fetchNow(id: info.id, client: client, kind: kind, registry: registry, discoveredAt: now, notFoundRetries: 0)
    }

    /// A task bundle appeared in containerd's state dir: the container is known at once.
    private func bundleAppeared(_ info: ContainerInfo, registry: ContainerRegistry) {
        logger.debug("container \(info.id): its task bundle appeared")
        Self.announce(info, registry: registry, announced: announced, at: Sys.monotonicNanos())
    }

    /// Publishes a container learned before the CRI listing shows it (fast paths). Not known yet:
    /// it is discovered now and kept in the re-lists' results until listed (`announced`); returns
    /// true. Known already: its report is merged in, with the state left to the CRI; returns false.
    @discardableResult
    static func announce(_ report: ContainerInfo, registry: ContainerRegistry, announced: CRIAnnounced, at now: Int64) -> Bool {
        var info = report
        if let known = registry.lookup(id: info.id) {
            info.discoveredAt = known.discoveredAt > 0 ? min(known.discoveredAt, now) : now
            info.state = .unknown
            registry.upsert(info)
            return false
        }
        info.discoveredAt = now
        announced.entries.withLock { $0[info.id] = (info, now) }
        registry.upsert(info)
        return true
    }

    /// containerd created a container: its record (labels, spec, CRI metadata) and snapshot say
    /// whose it is, where it logs and where its rootfs is, before it starts. Read at once, beside
    /// the event stream; the CRI status follows with the listing.
    private func containerCreated(id: String, client: CRIClient, kind: ContainerRuntimeKind, registry: ContainerRegistry) {
        let now = Sys.monotonicNanos()
        let logger = self.logger
        let announced = self.announced
        Task {
            var attempt = 0
            while true {
            do {
                let began = Sys.monotonicNanos()
                guard let info = try await client.containerInfoFromRecord(id: id, runtime: kind) else { return }
                let took = Sys.monotonicNanos() - began
                if took > 100_000_000 { logger.debug("container \(id): reading its containerd record took \(took / 1_000_000) ms") }
                if info.isSandbox { return }
                logger.debug("container \(id) created: known from its containerd record (log \(info.logPath), upper dir \(info.upperDir))")
                CRISource.announce(info, registry: registry, announced: announced, at: now)
                return
            } catch {
                attempt += 1
                if attempt < 3 && !Task.isCancelled {
                    logger.debug("container \(id): reading its containerd record failed (\(CRISource.describe(error))); again in \(50 * attempt) ms")
                    try? await Task.sleep(for: .milliseconds(50 * attempt))
                    continue
                }
                logger.debug("container \(id): its containerd record could not be read: \(CRISource.describe(error)); the task event and the listing will tell")
                return
            }
            }
        }
    }

    /// Asks the CRI for one container just announced by an event, at once and beside the
    /// listing, and publishes it: a container created is known with its log path, labels, pod
    /// and rootfs before it even starts. The CRI plugin may answer NotFound for a moment after
    /// containerd's own event: asked again after 20, 40, 80, 160 ms (up to `notFoundRetries` times).
    private func fetchNow(id: String, client: CRIClient, kind: ContainerRuntimeKind, registry: ContainerRegistry,
                          discoveredAt: Int64, notFoundRetries: Int) {
        let logger = self.logger
        let announced = self.announced
        Task {
            var tries = 0
            while true {
                do {
                    var full = try await client.containerInfoWithPod(id: id, runtime: kind)
                    if full.isSandbox { return }
                    if let known = registry.lookup(id: id), known.discoveredAt > 0 {
                        full.discoveredAt = min(known.discoveredAt, discoveredAt)
                    } else {
                        full.discoveredAt = discoveredAt
                    }
                    announced.entries.withLock { $0[id] = (full, discoveredAt) }
                    registry.upsert(full)
                    return
                } catch let e as RPCError where e.code == .notFound && tries < notFoundRetries {
                    tries += 1
                    try? await Task.sleep(for: .milliseconds(20 << min(tries - 1, 3)))
                } catch {
                    logger.debug("container \(id): status right after its event failed: \(CRISource.describe(error)); the listing will tell")
                    return
                }
            }
        }
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? RPCError {
            var s = "\(e.code): \(e.message)"
            if let cause = e.cause { s += " (\(cause))" }
            return s
        }
        return "\(error)"
    }

    static func format(_ d: Duration) -> String {
        let (s, atto) = d.components
        let ms = s * 1000 + atto / 1_000_000_000_000_000
        return ms % 1000 == 0 ? "\(ms / 1000) s" : "\(ms) ms"
    }
}

/// Containers the fast path announced, by id, with when.
final class CRIAnnounced: Sendable {
    let entries = Mutex<[String: (info: ContainerInfo, at: Int64)]>([:])
}

/// A value behind a lock, shareable between tasks.
final class CRILockedBox<Value: Sendable>: Sendable {
    private let lock: Mutex<Value>
    init(_ value: Value) { lock = Mutex(value) }
    func get() -> Value { lock.withLock { $0 } }
    func set(_ value: Value) { lock.withLock { $0 = value } }
}

/// Keeps the last listing and the facts fetched for it; re-fetches only what is new or changed.
/// Used by one task at a time (the session's sync loop).
final class CRISyncer: @unchecked Sendable {
    // @unchecked: confined to the session's sync loop; the initial sync runs before that loop starts.
    private struct SandboxEntry {
        var fingerprint: String
        var sandbox: CRISandbox
        var info: ContainerInfo
        var version: Int
        var complete: Bool
    }
    private struct ContainerEntry {
        var fingerprint: String
        var info: ContainerInfo
        var complete: Bool
    }

    let client: CRIClient
    let kind: ContainerRuntimeKind
    let registry: ContainerRegistry
    let logger: Logger
    private var sandboxes: [String: SandboxEntry] = [:]
    private var containers: [String: ContainerEntry] = [:]
    private var nextVersion = 0
    private var warned = Set<String>()
    /// Containers announced by the fast path and not listed yet (given the ids listed now).
    let announced: @Sendable (Set<String>) -> [ContainerInfo]

    init(client: CRIClient, kind: ContainerRuntimeKind, registry: ContainerRegistry, logger: Logger,
         announced: @escaping @Sendable (Set<String>) -> [ContainerInfo] = { _ in [] }) {
        self.announced = announced
        self.client = client
        self.kind = kind
        self.registry = registry
        self.logger = logger
    }

    /// Errors that mean the connection, not the object, is at fault: end the session.
    static func isConnectionError(_ error: any Error) -> Bool {
        guard let e = error as? RPCError else { return !(error is DecodingError) }
        switch e.code {
        case .notFound, .invalidArgument, .failedPrecondition, .internalError, .unknown, .outOfRange, .dataLoss:
            return false
        default:
            return true
        }
    }

    func sync() async throws {
        let listedSandboxes = try await client.listPodSandboxes()
        let listedContainers = try await client.listContainers()
        let now = Sys.monotonicNanos()

        var seen = Set<String>()
        for s in listedSandboxes {
            seen.insert(s.id)
            let fp = "\(s.state.rawValue)|\(s.createdAt)|\(s.metadata.attempt)"
            if let e = sandboxes[s.id], e.fingerprint == fp, e.complete { continue }
            var sandbox: CRISandbox
            var complete = true
            do {
                sandbox = try await client.sandbox(id: s.id)
            } catch let e as RPCError where e.code == .notFound {
                seen.remove(s.id)
                continue
            } catch {
                if Self.isConnectionError(error) { throw error }
                warnOnce(s.id, "pod sandbox \(s.id): status failed: \(CRISource.describe(error)); using its list entry")
                sandbox = CRISandbox(
                    id: s.id, name: s.metadata.name, namespace: s.metadata.namespace, uid: s.metadata.uid,
                    attempt: Int(s.metadata.attempt), ready: s.state == .sandboxReady, createdAt: s.createdAt,
                    labels: s.labels, annotations: s.annotations)
                complete = false
            }
            var info = sandbox.containerInfo(runtime: kind)
            info.discoveredAt = sandboxes[s.id]?.info.discoveredAt ?? firstLearned(s.id, now)
            nextVersion += 1
            sandboxes[s.id] = SandboxEntry(fingerprint: fp, sandbox: sandbox, info: info, version: nextVersion, complete: complete)
        }
        for id in sandboxes.keys where !seen.contains(id) { sandboxes[id] = nil }

        seen.removeAll(keepingCapacity: true)
        // Containers not known yet first: a short Job's metadata must not wait behind the
        // re-check of every other container.
        let ordered = listedContainers.filter { containers[$0.id] == nil } + listedContainers.filter { containers[$0.id] != nil }
        for c in ordered {
            seen.insert(c.id)
            let sb = sandboxes[c.podSandboxID]
            let fp = "\(c.state.rawValue)|\(c.createdAt)|\(c.metadata.attempt)|\(sb?.version ?? -1)"
            if let e = containers[c.id], e.fingerprint == fp, e.complete { continue }
            var info: ContainerInfo
            var complete = true
            do {
                info = try await client.containerInfo(id: c.id, listed: c, sandbox: sb?.sandbox, runtime: kind)
            } catch let e as RPCError where e.code == .notFound {
                seen.remove(c.id)
                continue
            } catch {
                if Self.isConnectionError(error) { throw error }
                warnOnce(c.id, "container \(c.id): status failed: \(CRISource.describe(error)); using its list entry")
                var status = Runtime_V1_ContainerStatus()
                status.id = c.id
                status.metadata = c.metadata
                status.state = c.state
                status.createdAt = c.createdAt
                status.image = c.image
                status.labels = c.labels
                info = CRIMapping.containerInfo(status: status, verbose: nil, listed: c, sandbox: sb?.sandbox, runtime: kind)
                info.metadataLevel = .identified
                complete = false
            }
            info.discoveredAt = containers[c.id]?.info.discoveredAt ?? firstLearned(c.id, now)
            let isNew = containers[c.id] == nil
            containers[c.id] = ContainerEntry(fingerprint: fp, info: info, complete: complete)
            // Published at once, not at the end of the pass (the resync below only confirms it).
            if isNew { registry.upsert(info) }
        }
        for id in containers.keys where !seen.contains(id) { containers[id] = nil }

        var present: [ContainerInfo] = []
        present.reserveCapacity(sandboxes.count + containers.count)
        for e in sandboxes.values { present.append(e.info) }
        for e in containers.values { present.append(e.info) }
        present.append(contentsOf: announced(Set(containers.keys).union(sandboxes.keys)))
        registry.resync(source: kind, present: present)
    }

    /// When Sluice first learned of `id`: what the registry already says (another source, or an
    /// earlier session), else now.
    private func firstLearned(_ id: String, _ now: Int64) -> Int64 {
        if let t = registry.lookup(id: id)?.discoveredAt, t > 0 { return min(t, now) }
        return now
    }

    private func warnOnce(_ id: String, _ message: @autoclosure () -> String) {
        if warned.insert(id).inserted {
            logger.warning("\(message())")
        } else {
            logger.debug("\(message())")
        }
    }
}
