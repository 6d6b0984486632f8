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
    // Options, Mode and Status: CRISourceOptions.swift. Following the event streams:
    // CRIEventFollower.swift. The fast paths (a container known before the listing shows it):
    // CRIFastPath.swift. The listing differ: CRISyncer.swift.

    public let options: Options
    let logger: Logger
    let state: Mutex<(kind: ContainerRuntimeKind, status: Status)>
    /// Containers learned from containerd's `/tasks/create` (see `CRITaskBundle`) that the CRI
    /// listing has not shown yet, with when: kept in the registry by the re-lists until listed
    /// (or for 15 s, for a container deleted before any listing saw it).
    let announced = CRIAnnounced()
    /// The current session's re-list interval: `resyncInterval` while the CRI event stream works,
    /// else `pollInterval` (the event follower lowers it). Read by the session's timer; sessions
    /// run one at a time.
    let listInterval: Mutex<Duration>

    public var kind: ContainerRuntimeKind { state.withLock { $0.kind } }
    public var status: Status { state.withLock { $0.status } }

    public init(options: Options = Options(), logger: Logger) {
        self.options = options
        self.logger = logger
        listInterval = Mutex(options.useEvents ? options.resyncInterval : options.pollInterval)
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
                    logger.info("No CRI runtime socket; will keep looking in the background.", metadata: ["cri.looked_for": "\(looked.joined(separator: ", "))"])
                    state.withLock { $0.status.absentReports += 1; $0.status.connected = false; $0.status.mode = .disconnected }
                }
                try? await Task.sleep(for: options.absentRecheckInterval)
                continue
            }
            if reportedAbsent {
                logger.info("The CRI runtime socket appeared.", metadata: ["cri.socket": "\(path)"])
                reportedAbsent = false
            }
            state.withLock {
                $0.status.socketPath = path
                $0.status.sessions += 1
                if $0.kind != .crio && $0.kind != .containerd { $0.kind = CRISocket.kind(forSocketPath: path) }
            }
            var synced = false
            logger.debug("CRI session starting.", metadata: ["cri.socket": "\(path)", "cri.session": "\(status.sessions)"])
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
                    logger.warning("CRI runtime at the socket failed; retrying.", metadata: ["cri.socket": "\(path)", "error": "\(message)", "retry.in": "\(Self.format(backoff))"])
                } else {
                    logger.info("The CRI runtime went away.", metadata: ["cri.socket": "\(path)", "error": "\(message)"])
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
            logger.info("Connected to the CRI runtime.", metadata: ["cri.runtime": "\(version.runtimeName) \(version.runtimeVersion)", "cri.api": "\(version.runtimeApiVersion)", "cri.socket": "\(path)"])

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
            listInterval.withLock { $0 = options.useEvents ? options.resyncInterval : options.pollInterval }
            if !options.useEvents { state.withLock { $0.status.mode = .poll } }

            try await withThrowingTaskGroup(of: Void.self) { group in
                // Re-list on every wake-up, one at a time, at most every 200 ms: containerd's
                // event stream wakes it for every step of every container, and a busy node's
                // runtime is slowed by back-to-back listings. New containers do not wait for it
                // (the task-create fast path publishes them at once).
                group.addTask {
                    try await Self.relist(on: wake, sync: {
                        try await syncer.sync()
                        self.state.withLock { $0.status.syncs += 1 }
                    }, failed: { error, inARow in
                        self.state.withLock { $0.status.relistFailures += 1 }
                        logger.warning("A re-list of the CRI runtime failed; the session goes on and retries it.", metadata: [
                            "cri.socket": "\(path)", "error": "\(Self.describe(error))", "failures.in_a_row": "\(inARow)"])
                    })
                }
                // Timer: the poll (or safety-net resync) interval.
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: self.listInterval.withLock { $0 })
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
                    // The fast paths' calls to the runtime (a new container's record, its CRI
                    // status), queued by the event follower: each runs as a child task of this
                    // one, on the session's connection, and ends with the session.
                    let (fastPathJobs, fastPaths) = AsyncStream<CRIFastPathJob>.makeStream()
                    group.addTask {
                        await self.runFastPaths(fastPathJobs, client: client, kind: kind, registry: registry)
                    }
                    group.addTask {
                        // Its own connection: containerd's server makes the client drop a busy
                        // connection now and then (see CRIClient), which would cut the stream.
                        try await CRIClient.with(config) { streamClient in
                            try await self.followEvents(
                                client: streamClient, kind: kind, runtimeName: version.runtimeName,
                                namespace: config.containerdNamespace, registry: registry, fastPaths: fastPaths, wakeUp: wakeUp)
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

    /// Consecutive failed re-lists that end the session (and reconnect).
    static let relistFailuresEndingSession = 3

    /// Re-lists on every wake-up, one at a time, at most every 200 ms. A re-list that fails (a
    /// runtime busy past the call deadline in a Job storm) is tried again after 1 s and does not
    /// end the session: the event stream, the task-bundle watcher and the fast paths, which catch
    /// containers that live for less than a second, go on meanwhile. Only
    /// `relistFailuresEndingSession` failures in a row end it (the error is thrown).
    static func relist(on wake: AsyncStream<Void>, retryAfter: Duration = .seconds(1),
                       sync: () async throws -> Void, failed: (any Error, Int) -> Void) async throws {
        var inARow = 0
        for await _ in wake {
            while true {
                do {
                    try await sync()
                    inARow = 0
                    break
                } catch {
                    try Task.checkCancellation()
                    inARow += 1
                    if inARow >= relistFailuresEndingSession { throw error }
                    failed(error, inARow)
                    try await Task.sleep(for: retryAfter)
                }
            }
            try await Task.sleep(for: .milliseconds(200))
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
