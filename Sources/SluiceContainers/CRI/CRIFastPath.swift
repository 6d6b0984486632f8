import GRPCCore
import Logging
import SluiceSystem
import Synchronization

// The fast paths: a container is published as soon as containerd tells of it (its task event,
// its task bundle, its containerd record), before the CRI listing shows it.

/// A call to the runtime a fast path asks for, run beside the event stream as a child task of
/// the session (see `CRISource.runFastPaths`).
enum CRIFastPathJob: Sendable {
    /// `CRISource.containerCreated`: read the container's containerd record (learned of `at`).
    case containerCreated(id: String, at: Int64)
    /// `CRISource.fetchNow`: ask the CRI for the container's status.
    case fetchNow(id: String, discoveredAt: Int64, notFoundRetries: Int)
}

/// Containers the fast path announced, by id, with when.
final class CRIAnnounced: Sendable {
    let entries = Mutex<[String: (info: ContainerInfo, at: Int64)]>([:])
}

extension CRISource {
    /// Runs the fast paths' jobs as they are queued, each in a child task of this one (so of the
    /// session): they wait on the runtime and retry without holding up the event stream or one
    /// another. Returns when the session ends (cancelled), once the jobs under way have ended.
    func runFastPaths(_ jobs: AsyncStream<CRIFastPathJob>, client: CRIClient, kind: ContainerRuntimeKind,
                      registry: ContainerRegistry) async {
        await withDiscardingTaskGroup { group in
            for await job in jobs {
                group.addTask {
                    switch job {
                    case .containerCreated(let id, let at):
                        await self.containerCreated(id: id, at: at, client: client, kind: kind, registry: registry)
                    case .fetchNow(let id, let discoveredAt, let notFoundRetries):
                        await self.fetchNow(id: id, client: client, kind: kind, registry: registry,
                                            discoveredAt: discoveredAt, notFoundRetries: notFoundRetries)
                    }
                }
            }
        }
    }

    /// A task was created: publish what its bundle says at once (the CRI status follows).
    /// Then asks the CRI for this one container at once, not waiting for the next listing (its
    /// labels, log path and pod; the listing may come too late for a Job deleted within a second):
    /// queued on `fastPaths` (`fetchNow`).
    func taskCreated(_ e: Containerd_Events_TaskCreate, kind: ContainerRuntimeKind, registry: ContainerRegistry,
                     fastPaths: AsyncStream<CRIFastPathJob>.Continuation) {
        guard let info = CRITaskBundle.containerInfo(e, hostRoot: options.hostRoot, runtime: kind) else {
            logger.debug("A task was created that is not a CRI container.", metadata: ["container.id": "\(e.containerID)", "task.bundle": "\(e.bundle)"])
            return
        }
        let now = Sys.monotonicNanos()
        // Known already (the CRI answered first): the bundle still adds the pod uid and the
        // rootfs, which join it to the pod log dir's entry.
        guard Self.announce(info, registry: registry, announced: announced, at: now) else { return }
        logger.debug("Task created.", metadata: ["container.id": "\(info.id)", "known.from": "\(info.metadataLevel == .bare ? "the event (bundle gone already)" : "its bundle")", "container.upper_dir": "\(info.upperDir)"])
        if info.isSandbox { return }
        fastPaths.yield(.fetchNow(id: info.id, discoveredAt: now, notFoundRetries: 0))
    }

    /// A task bundle appeared in containerd's state dir: the container is known at once.
    func bundleAppeared(_ info: ContainerInfo, registry: ContainerRegistry) {
        logger.debug("A task bundle appeared.", metadata: ["container.id": "\(info.id)"])
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

    /// containerd created a container (at `now`, when its event came): its record (labels, spec,
    /// CRI metadata) and snapshot say whose it is, where it logs and where its rootfs is, before
    /// it starts. Read at once, beside the event stream; the CRI status follows with the listing.
    /// Tried 3 times, 50 and 100 ms apart.
    func containerCreated(id: String, at now: Int64, client: CRIClient, kind: ContainerRuntimeKind, registry: ContainerRegistry) async {
        var attempt = 0
        while true {
            do {
                let began = Sys.monotonicNanos()
                guard let info = try await client.containerInfoFromRecord(id: id, runtime: kind) else { return }
                let took = Sys.monotonicNanos() - began
                if took > 100_000_000 { logger.debug("Reading a containerd record was slow.", metadata: ["container.id": "\(id)", "took.ms": "\(took / 1_000_000)"]) }
                if info.isSandbox { return }
                logger.debug("Container created; known from its containerd record.", metadata: ["container.id": "\(id)", "container.log_path": "\(info.logPath)", "container.upper_dir": "\(info.upperDir)"])
                Self.announce(info, registry: registry, announced: announced, at: now)
                return
            } catch {
                attempt += 1
                if attempt < 3 && !Task.isCancelled {
                    logger.debug("Reading a containerd record failed; retrying.", metadata: ["container.id": "\(id)", "error": "\(Self.describe(error))", "retry.in_ms": "\(50 * attempt)"])
                    try? await Task.sleep(for: .milliseconds(50 * attempt))
                    continue
                }
                logger.debug("A containerd record could not be read; the task event and the listing will tell.", metadata: ["container.id": "\(id)", "error": "\(Self.describe(error))"])
                return
            }
        }
    }

    /// Asks the CRI for one container just announced by an event, at once and beside the
    /// listing, and publishes it: a container created is known with its log path, labels, pod
    /// and rootfs before it even starts. The CRI plugin may answer NotFound for a moment after
    /// containerd's own event: asked again after 20, 40, 80, 160 ms (up to `notFoundRetries` times).
    func fetchNow(id: String, client: CRIClient, kind: ContainerRuntimeKind, registry: ContainerRegistry,
                  discoveredAt: Int64, notFoundRetries: Int) async {
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
                logger.debug("A container status right after its event failed; the listing will tell.", metadata: ["container.id": "\(id)", "error": "\(Self.describe(error))"])
                return
            }
        }
    }
}
