import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import SwiftProtobuf
import Synchronization

/// How to reach a CRI runtime.
public struct CRIClientConfig: Sendable {
    /// The runtime's Unix socket (a `unix://` prefix is accepted).
    public var socketPath: String
    /// Deadline of each unary call (a runtime that accepts and never answers fails after this).
    public var callTimeout: Duration
    /// containerd's state dir (holds `io.containerd.runtime.v2.task/k8s.io/<id>/rootfs`); nil:
    /// the socket's directory, which is right for `/run/containerd/containerd.sock` and
    /// `/run/k3s/containerd/containerd.sock`.
    public var stateDir: String?
    /// Prefix for reading host paths from this process (`/proc/<pid>/mounts`, the state dir).
    public var hostRoot: String
    /// containerd namespace of the CRI plugin (`containerd-namespace` header on containerd's own services).
    public var containerdNamespace: String
    /// Reconnect backoff of the gRPC connection.
    public var reconnectBackoffInitial: Duration
    public var reconnectBackoffMax: Duration

    public init(
        socketPath: String, callTimeout: Duration = .seconds(5), stateDir: String? = nil, hostRoot: String = "/",
        containerdNamespace: String = "k8s.io", reconnectBackoffInitial: Duration = .milliseconds(100),
        reconnectBackoffMax: Duration = .seconds(5)
    ) {
        self.socketPath = CRISocket.stripScheme(socketPath)
        self.callTimeout = callTimeout
        self.stateDir = stateDir
        self.hostRoot = hostRoot
        self.containerdNamespace = containerdNamespace
        self.reconnectBackoffInitial = reconnectBackoffInitial
        self.reconnectBackoffMax = reconnectBackoffMax
    }

    /// The containerd state dir in effect, as a host path (without the host-root prefix):
    /// explicit, else the socket's directory.
    public var effectiveStateDir: String {
        if let s = stateDir, !s.isEmpty { return s }
        guard let slash = socketPath.lastIndex(of: "/") else { return "." }
        let dir = String(socketPath[..<slash])
        return CRIRootfs.stripHostRoot(dir.isEmpty ? "/" : dir, hostRoot)
    }
}

/// A CRI v1 client (containerd, CRI-O) over the runtime's Unix socket, plus containerd's
/// snapshots and events services on the same socket.
///
/// Every method is a single request with a deadline (`callTimeout`); `unavailable` is retried
/// (3 attempts) by the service config — containerd's server makes swift-nio-http2 close the
/// connection about every 190 calls, and the call in flight fails with `unavailable`.
///
/// The connection runs while `runConnections()` does; `CRIClient.with(config) { client in ... }`
/// does that for the duration of its body.
public final class CRIClient: Sendable {
    public typealias Transport = HTTP2ClientTransport.Posix

    public let config: CRIClientConfig
    public let grpc: GRPCClient<Transport>
    /// Generated clients, for calls this type does not wrap (the tests' kubelet uses them).
    public let runtime: Runtime_V1_RuntimeService.Client<Transport>
    public let images: Runtime_V1_ImageService.Client<Transport>
    public let snapshots: Containerd_Services_Snapshots_V1_Snapshots.Client<Transport>
    public let events: Containerd_Services_Events_V1_Events.Client<Transport>
    public let containers: Containerd_Services_Containers_V1_Containers.Client<Transport>

    /// Service names the retry policy covers.
    public static let serviceNames = [
        "runtime.v1.RuntimeService", "runtime.v1.ImageService",
        "containerd.services.snapshots.v1.Snapshots", "containerd.services.events.v1.Events",
        "containerd.services.containers.v1.Containers",
    ]

    /// Retry on `unavailable`, 3 attempts, for every service used (mandatory with containerd).
    public static func serviceConfig() -> ServiceConfig {
        let retry = RetryPolicy(
            maxAttempts: 3, initialBackoff: .milliseconds(20), maxBackoff: .milliseconds(500),
            backoffMultiplier: 2, retryableStatusCodes: [.unavailable])
        let method = MethodConfig(
            names: serviceNames.map { MethodConfig.Name(service: $0) },
            // Fail fast while the channel has no connection (a runtime that is down is noticed
            // at once); `withDeadline` retries `unavailable` a few times more over ~0.75 s, which
            // covers the channel reconnecting after a drop.
            waitForReady: false, executionPolicy: .retry(retry))
        return ServiceConfig(methodConfig: [method])
    }

    public init(config: CRIClientConfig) throws {
        self.config = config
        let transportConfig = HTTP2ClientTransport.Posix.Config.defaults { c in
            c.backoff = .init(
                initial: config.reconnectBackoffInitial, max: config.reconnectBackoffMax, multiplier: 1.6, jitter: 0.2)
            // containerd's default keepalive policy punishes pings more often than every 5 min: none.
            c.connection.keepalive = nil
        }
        let transport = try HTTP2ClientTransport.Posix(
            target: .unixDomainSocket(path: config.socketPath),
            transportSecurity: .plaintext,
            config: transportConfig,
            serviceConfig: Self.serviceConfig())
        grpc = GRPCClient(transport: transport)
        runtime = Runtime_V1_RuntimeService.Client(wrapping: grpc)
        images = Runtime_V1_ImageService.Client(wrapping: grpc)
        snapshots = Containerd_Services_Snapshots_V1_Snapshots.Client(wrapping: grpc)
        events = Containerd_Services_Events_V1_Events.Client(wrapping: grpc)
        containers = Containerd_Services_Containers_V1_Containers.Client(wrapping: grpc)
    }

    /// Maintains the connection until `shutdown()` (or cancellation).
    public func runConnections() async throws {
        try await grpc.runConnections()
    }

    /// Lets calls in flight finish, then stops `runConnections()`.
    public func shutdown() {
        grpc.beginGracefulShutdown()
    }

    /// Runs `body` with a connected client; the connection is shut down when `body` returns or
    /// throws (cancelled, not awaited: a connection that will not close cannot hold the caller).
    public static func with<Result: Sendable>(
        _ config: CRIClientConfig, _ body: (CRIClient) async throws -> Result
    ) async throws -> Result {
        let client = try CRIClient(config: config)
        let connections = Task { try? await client.runConnections() }
        defer {
            client.shutdown()
            connections.cancel()
        }
        return try await body(client)
    }

    /// Call options for unary calls: the deadline.
    public var unaryOptions: CallOptions {
        var o = CallOptions.defaults
        o.timeout = config.callTimeout
        return o
    }

    /// `containerd-namespace` for containerd's own services.
    public var containerdMetadata: Metadata {
        var m = Metadata()
        m.addString(config.containerdNamespace, forKey: "containerd-namespace")
        return m
    }

    /// Runs one call under `callTimeout` (plus a little slack): when that passes the call is
    /// cancelled and the caller gets `deadlineExceeded` at once, whether or not the call stops.
    /// `unavailable` is tried again up to 4 times (50, 100, 200, 400 ms apart) within that time,
    /// on top of the service config's retry policy.
    ///
    /// grpc-swift's own deadline does not fire while the call waits for a connection that never
    /// becomes ready (a runtime that accepts the socket and never speaks HTTP/2), so the wrapper
    /// is what bounds every call.
    public func withDeadline<T: Sendable>(_ call: @escaping @Sendable () async throws -> T) async throws -> T {
        let limit = config.callTimeout + .milliseconds(100)
        let gate = CRIOnceResult<T>()
        let work = Task {
            var attempt = 0
            while true {
                do {
                    gate.resume(.success(try await call()))
                    return
                } catch let e as RPCError where e.code == .unavailable && attempt < 4 && !Task.isCancelled {
                    // The connection dropped (containerd's server provokes that now and then) and
                    // the channel is reconnecting: try again shortly.
                    attempt += 1
                    do { try await Task.sleep(for: .milliseconds(25 << attempt)) } catch { gate.resume(.failure(e)); return }
                } catch {
                    gate.resume(.failure(error))
                    return
                }
            }
        }
        let timer = Task {
            try await Task.sleep(for: limit)
            gate.resume(.failure(RPCError(
                code: .deadlineExceeded,
                message: "no answer within \(limit) (the runtime accepted the connection but did not answer)")))
            work.cancel()
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { gate.wait($0) }
        } onCancel: {
            gate.resume(.failure(CancellationError()))
            work.cancel()
        }
    }

    // MARK: - CRI calls

    public func version() async throws -> Runtime_V1_VersionResponse {
        var req = Runtime_V1_VersionRequest()
        req.version = "v1"
        return try await withDeadline { [runtime, unaryOptions, req] in try await runtime.version(req, options: unaryOptions) }
    }

    public func listContainers() async throws -> [Runtime_V1_Container] {
        try await withDeadline { [runtime, unaryOptions] in
            try await runtime.listContainers(Runtime_V1_ListContainersRequest(), options: unaryOptions).containers
        }
    }

    public func listPodSandboxes() async throws -> [Runtime_V1_PodSandbox] {
        try await withDeadline { [runtime, unaryOptions] in
            try await runtime.listPodSandbox(Runtime_V1_ListPodSandboxRequest(), options: unaryOptions).items
        }
    }

    public func containerStatus(id: String, verbose: Bool = true) async throws -> Runtime_V1_ContainerStatusResponse {
        var req = Runtime_V1_ContainerStatusRequest()
        req.containerID = id
        req.verbose = verbose
        return try await withDeadline { [runtime, unaryOptions, req] in try await runtime.containerStatus(req, options: unaryOptions) }
    }

    public func podSandboxStatus(id: String, verbose: Bool = true) async throws -> Runtime_V1_PodSandboxStatusResponse {
        var req = Runtime_V1_PodSandboxStatusRequest()
        req.podSandboxID = id
        req.verbose = verbose
        return try await withDeadline { [runtime, unaryOptions, req] in try await runtime.podSandboxStatus(req, options: unaryOptions) }
    }

    /// CRI `GetContainerEvents`: calls `handler` for each event until the stream ends (returns)
    /// or fails (throws; `unimplemented` from runtimes without it, e.g. containerd 1.6).
    public func containerEvents(
        _ handler: @escaping @Sendable (Runtime_V1_ContainerEventResponse) async throws -> Void
    ) async throws {
        try await runtime.getContainerEvents(Runtime_V1_GetEventsRequest()) { response in
            for try await event in response.messages {
                try await handler(event)
            }
        }
    }

    // MARK: - containerd's own services

    /// Mounts of a snapshot (containerd's snapshots service, namespace `k8s.io`).
    public func snapshotMounts(snapshotter: String, key: String) async throws -> [Containerd_Types_Mount] {
        var req = Containerd_Services_Snapshots_V1_MountsRequest()
        req.snapshotter = snapshotter
        req.key = key
        return try await withDeadline { [snapshots, containerdMetadata, unaryOptions, req] in
            try await snapshots.mounts(req, metadata: containerdMetadata, options: unaryOptions).mounts
        }
    }

    /// A container's record in containerd's metadata store (namespace `k8s.io`): there from the
    /// moment the CRI plugin creates the container, before the CRI itself answers for it.
    public func containerdContainer(id: String) async throws -> Containerd_Services_Containers_V1_Container {
        var req = Containerd_Services_Containers_V1_GetContainerRequest()
        req.id = id
        return try await withDeadline { [containers, containerdMetadata, unaryOptions, req] in
            try await containers.get(req, metadata: containerdMetadata, options: unaryOptions).container
        }
    }

    /// The container as its containerd record describes it (see `CRIContainerRecord`), with its
    /// rootfs upper dir from the snapshot. nil when the record is not a CRI container's.
    public func containerInfoFromRecord(id: String, runtime kind: ContainerRuntimeKind) async throws -> ContainerInfo? {
        let record = try await containerdContainer(id: id)
        guard var info = CRIContainerRecord.containerInfo(record, runtime: kind) else { return nil }
        if !info.isSandbox, let upper = await upperDirFromSnapshot(snapshotter: record.snapshotter, key: record.snapshotKey) {
            info.upperDir = upper
        }
        return info
    }

    /// (a) of the rootfs search: the `upperdir=` of the snapshot's overlay mount (for a bind
    /// mount, e.g. the native snapshotter, its source). nil when containerd does not say.
    public func upperDirFromSnapshot(snapshotter: String, key: String) async -> String? {
        guard !snapshotter.isEmpty, !key.isEmpty,
              let mounts = try? await snapshotMounts(snapshotter: snapshotter, key: key) else { return nil }
        for m in mounts where m.type == "overlay" {
            if let u = CRIRootfs.upperDir(fromOptions: m.options) { return u }
        }
        for m in mounts where m.type == "bind" || m.options.contains("bind") || m.options.contains("rbind") {
            if m.source.hasPrefix("/") { return m.source }
        }
        return nil
    }

    /// containerd's event stream (all namespaces; the envelope names its namespace and topic).
    /// Calls `handler` for each envelope until the stream ends or fails.
    public func containerdEvents(
        _ handler: @escaping @Sendable (Containerd_Types_Envelope) async throws -> Void
    ) async throws {
        try await events.subscribe(Containerd_Services_Events_V1_SubscribeRequest()) { response in
            for try await envelope in response.messages {
                try await handler(envelope)
            }
        }
    }

    // MARK: - Container facts

    /// A pod sandbox's facts (verbose status): metadata, labels, IP, log directory, pid.
    public func sandbox(id: String) async throws -> CRISandbox {
        let resp = try await podSandboxStatus(id: id)
        return CRISandbox(status: resp.status, verbose: CRIVerboseSandboxInfo.parse(resp.info))
    }

    /// Everything about one container: verbose status (pid, env, mounts, snapshot), its pod
    /// (from `sandbox`, which the caller caches), log path and rootfs.
    public func containerInfo(
        id: String, listed: Runtime_V1_Container? = nil, sandbox: CRISandbox?, runtime kind: ContainerRuntimeKind
    ) async throws -> ContainerInfo {
        let resp = try await containerStatus(id: id)
        let verbose = CRIVerboseContainerInfo.parse(resp.info)
        var info = CRIMapping.containerInfo(
            status: resp.status, verbose: verbose, listed: listed, sandbox: sandbox, runtime: kind)
        await resolveRootfs(&info, verbose: verbose)
        return info
    }

    /// Fills `upperDir` and, while running, `mergedDir`: (a) snapshots service, (b)
    /// `/proc/<pid>/mounts`, (c) the state dir's bundle rootfs / the spec's absolute root.
    public func resolveRootfs(_ info: inout ContainerInfo, verbose: CRIVerboseContainerInfo?) async {
        let hostRoot = config.hostRoot
        var merged = ""
        if let root = verbose?.runtimeSpec?.root?.path, root.hasPrefix("/") {
            merged = root
        } else if info.runtime != .crio {
            let bundle = CRIRootfs.containerdBundleRootfs(
                stateDir: config.effectiveStateDir, namespace: config.containerdNamespace, id: info.id)
            if CRIRootfs.isDirectory(CRIRootfs.join(hostRoot, bundle)) { merged = bundle }
        }
        var upper: String?
        if info.runtime != .crio, let v = verbose, let snapshotter = v.snapshotter, let key = v.snapshotKey {
            upper = await upperDirFromSnapshot(snapshotter: snapshotter, key: key)
        }
        if upper == nil, info.pid > 0, info.state == .running {
            upper = CRIRootfs.upperDirFromProc(pid: info.pid, hostRoot: hostRoot)
        }
        if upper == nil, !merged.isEmpty {
            upper = CRIRootfs.upperDirFromMergedDir(merged, hostRoot: hostRoot) ?? merged
        }
        info.upperDir = upper ?? ""
        info.mergedDir = info.state == .running ? merged : ""
    }

    /// One container's facts with its pod's (verbose status, then the sandbox it names): for a
    /// container just learned of, without waiting for a listing. Without its pod, the level is
    /// `identified` (pod labels unknown).
    public func containerInfoWithPod(id: String, runtime kind: ContainerRuntimeKind) async throws -> ContainerInfo {
        let resp = try await containerStatus(id: id)
        let verbose = CRIVerboseContainerInfo.parse(resp.info)
        var sandbox: CRISandbox? = nil
        if let sid = verbose?.sandboxID, !sid.isEmpty { sandbox = try? await self.sandbox(id: sid) }
        var info = CRIMapping.containerInfo(status: resp.status, verbose: verbose, listed: nil, sandbox: sandbox, runtime: kind)
        if sandbox == nil { info.metadataLevel = .identified }
        await resolveRootfs(&info, verbose: verbose)
        return info
    }

    /// One-shot listing: every sandbox and container with full facts (no caching; for
    /// `sluice explain` and tests). Containers that vanish while being read are left out.
    public func listAll(runtime kind: ContainerRuntimeKind) async throws -> [ContainerInfo] {
        let sandboxes = try await listPodSandboxes()
        let containers = try await listContainers()
        var byID: [String: CRISandbox] = [:]
        var out: [ContainerInfo] = []
        for s in sandboxes {
            do {
                let sb = try await sandbox(id: s.id)
                byID[s.id] = sb
                out.append(sb.containerInfo(runtime: kind))
            } catch let e as RPCError where e.code == .notFound {
                continue
            }
        }
        for c in containers {
            do {
                out.append(try await containerInfo(id: c.id, listed: c, sandbox: byID[c.podSandboxID], runtime: kind))
            } catch let e as RPCError where e.code == .notFound {
                continue
            }
        }
        return out
    }
}

/// The first result wins; resumes a continuation exactly once, whichever comes first.
final class CRIOnceResult<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var result: Result<T, any Error>?
        var resumed = false
    }
    private let state = Mutex(State())

    func wait(_ continuation: CheckedContinuation<T, any Error>) {
        let ready: Result<T, any Error>? = state.withLock { s in
            if let r = s.result, !s.resumed {
                s.resumed = true
                return r
            }
            s.continuation = continuation
            return nil
        }
        if let ready { continuation.resume(with: ready) }
    }

    func resume(_ result: Result<T, any Error>) {
        let c: CheckedContinuation<T, any Error>? = state.withLock { s in
            guard s.result == nil else { return nil }
            s.result = result
            guard let c = s.continuation, !s.resumed else { return nil }
            s.resumed = true
            s.continuation = nil
            return c
        }
        c?.resume(with: result)
    }
}
