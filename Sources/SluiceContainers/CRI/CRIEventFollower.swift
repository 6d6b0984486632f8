import GRPCCore
import Logging
import SluiceSystem
import Synchronization

extension CRISource {
    /// Follows the CRI event stream, else containerd's, waking the sync loop on every change.
    /// A stream that drops is resubscribed at once (with a re-list to cover the gap); three drops
    /// in a row without an event or a second of life end the session. Without any stream it
    /// sets the poll interval and waits to be cancelled.
    /// containerd's events of new containers and tasks also feed the fast paths (see
    /// CRIFastPath.swift): their calls to the runtime are queued on `fastPaths`, run by the session.
    func followEvents(
        client: CRIClient, kind: ContainerRuntimeKind, runtimeName: String, namespace: String,
        registry: ContainerRegistry, fastPaths: AsyncStream<CRIFastPathJob>.Continuation, wakeUp: AsyncStream<Void>.Continuation
    ) async throws {
        var useCRI = true
        var dropsInARow = 0
        while !Task.isCancelled {
            let began = Sys.monotonicNanos()
            let gotEvent = Mutex(false)
            var failure: (any Error)? = nil
            do {
                if useCRI {
                    state.withLock { $0.status.mode = .criEvents }
                    try await client.containerEvents { _ in
                        gotEvent.withLock { $0 = true }
                        wakeUp.yield()
                    }
                } else if kind == .containerd {
                    state.withLock { $0.status.mode = .containerdEventsAndPoll }
                    try await client.containerdEvents { envelope in
                        guard envelope.namespace == namespace,
                              envelope.topic.hasPrefix("/tasks/") || envelope.topic.hasPrefix("/containers/") else { return }
                        gotEvent.withLock { $0 = true }
                        if let id = CRITaskBundle.containerCreated(envelope) {
                            fastPaths.yield(.containerCreated(id: id, at: Sys.monotonicNanos()))
                        } else if let created = CRITaskBundle.taskCreate(envelope) {
                            self.taskCreated(created, kind: kind, registry: registry, fastPaths: fastPaths)
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
                    listInterval.withLock { $0 = options.pollInterval }
                    wakeUp.yield()
                    logger.info("The runtime has no CRI GetContainerEvents; listing on a timer.", metadata: ["cri.runtime": "\(runtimeName)", "poll.interval": "\(Self.format(options.pollInterval))"])
                } else {
                    logger.debug("The runtime has no containerd event stream either; polling only.", metadata: ["cri.runtime": "\(runtimeName)"])
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
            dropsInARow = gotEvent.withLock { $0 } || lived >= 1_000_000_000 ? 1 : dropsInARow + 1
            if dropsInARow >= 3 { throw failure ?? StreamEnded() }
            logger.debug("The event stream ended; resubscribing.", metadata: ["reason": "\(failure.map(Self.describe) ?? "closed")"])
            wakeUp.yield()
            try await Task.sleep(for: .milliseconds(50 * dropsInARow))
        }
    }
}
