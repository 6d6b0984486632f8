import GRPCCore
import Logging
import SluiceSystem

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
                warnOnce(s.id, "A pod sandbox status failed; using its list entry.", ["pod.sandbox_id": "\(s.id)", "error": "\(CRISource.describe(error))"])
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
                warnOnce(c.id, "A container status failed; using its list entry.", ["container.id": "\(c.id)", "error": "\(CRISource.describe(error))"])
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

    /// Warns the first time for `id`, then logs at debug level.
    private func warnOnce(_ id: String, _ message: Logger.Message, _ metadata: Logger.Metadata) {
        if warned.insert(id).inserted {
            logger.warning(message, metadata: metadata)
        } else {
            logger.debug(message, metadata: metadata)
        }
    }
}
