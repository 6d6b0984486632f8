import Logging
import Synchronization
import Testing
@testable import SluiceContainers

/// A clock for the registry that moves only when told.
final class ModelManualClock: Sendable {
    private let value = Atomic<Int64>(1_000_000_000)
    var now: Int64 { value.load(ordering: .relaxed) }
    func advance(seconds: Double) { value.add(Int64(seconds * 1e9), ordering: .relaxed) }
}

/// Events of a registry, read in order. `events { ... }` returns exactly the events the actions
/// caused: a sentinel container is added (and withdrawn) after them to know where they end.
struct ModelEventLog {
    let registry: ContainerRegistry
    var iterator: AsyncStream<ContainerEvent>.AsyncIterator
    var sentinels = 0

    init(_ registry: ContainerRegistry) {
        self.registry = registry
        iterator = registry.subscribe().makeAsyncIterator()
    }

    mutating func next() async -> ContainerEvent? { await iterator.next() }

    mutating func events(_ actions: () -> Void = {}) async -> [ContainerEvent] {
        actions()
        sentinels += 1
        let id = "sentinel-\(sentinels)"
        registry.upsert(ContainerInfo(id: id, runtime: .static))
        var out: [ContainerEvent] = []
        while let event = await iterator.next() {
            if case .added(let info) = event, info.id == id { break }
            out.append(event)
        }
        registry.remove(id: id, source: .static)
        _ = await iterator.next()
        return out
    }
}

extension ContainerEvent {
    var modelKind: String {
        switch self {
        case .added: return "added"
        case .updated: return "updated"
        case .removed: return "removed"
        }
    }

    var modelInfo: ContainerInfo {
        switch self {
        case .added(let info), .removed(let info): return info
        case .updated(_, let info): return info
        }
    }
}

let modelTestLogger = Logger(label: "sluice.test.containers")

func modelPodLogReport(ns: String = "shop", pod: String = "web-1", uid: String = "uid-1", container: String = "app", restart: Int = 0) -> ContainerInfo {
    var info = ContainerInfo(id: "", runtime: .podLogs)
    info.logPath = "/var/log/pods/\(ns)_\(pod)_\(uid)/\(container)/\(restart).log"
    info.kubernetes = KubernetesInfo(namespace: ns, podName: pod, podUID: uid, containerName: container, restartCount: restart)
    return info
}

func modelCRIReport(id: String = "c1", logPath: String? = "/var/log/pods/shop_web-1_uid-1/app/0.log") -> ContainerInfo {
    var info = ContainerInfo(id: id, name: "app", image: "web:1", state: .running, runtime: .containerd)
    info.pid = 77
    info.logPath = logPath ?? ""
    info.ip = "10.0.0.9"
    info.kubernetes = KubernetesInfo(namespace: "shop", podName: "web-1", podUID: "uid-1", containerName: "app", restartCount: 0,
                                     podLabels: ["app": "web"])
    return info
}

@Suite struct ContainerRegistryTests {
    @Test func podLogsFirstThenCRIWithItsID() async throws {
        let registry = ContainerRegistry(logger: modelTestLogger)
        var log = ModelEventLog(registry)
        let first = await log.events { registry.upsert(modelPodLogReport()) }
        #expect(first.map(\.modelKind) == ["added"])
        #expect(first[0].modelInfo.id == "")
        #expect(first[0].modelInfo.discoveredAt > 0)

        let second = await log.events { registry.upsert(modelCRIReport()) }
        #expect(second.map(\.modelKind) == ["updated"])
        guard case .updated(let old, let new) = second[0] else { return }
        #expect(old.id == "")
        #expect(new.id == "c1")
        #expect(new.runtime == .containerd)
        #expect(new.image == "web:1")
        #expect(new.kubernetes?.podLabels == ["app": "web"])
        #expect(new.discoveredAt == old.discoveredAt)
        #expect(registry.snapshot().count == 1)
        #expect(registry.lookup(id: "c1") == new)
        #expect(registry.lookup(logPath: modelPodLogReport().logPath) == new)

        // The same facts again: nothing changes, no event. A source that knows less does not erase.
        var sparse = ContainerInfo(id: "c1", runtime: .containerd)
        sparse.state = .unknown
        #expect(await log.events {
            registry.upsert(modelCRIReport())
            registry.upsert(modelPodLogReport())
            registry.upsert(sparse)
        }.isEmpty)
        #expect(registry.lookup(id: "c1")?.image == "web:1")
    }

    @Test func criFirstThenPodLogsChangesNothing() async {
        let registry = ContainerRegistry(logger: modelTestLogger)
        var log = ModelEventLog(registry)
        #expect(await log.events { registry.upsert(modelCRIReport()) }.map(\.modelKind) == ["added"])
        #expect(await log.events { registry.upsert(modelPodLogReport()) }.isEmpty)
        #expect(registry.snapshot().count == 1)
        #expect(registry.snapshot()[0].runtime == .containerd)
    }

    @Test func podLogsNeverOverwriteTheRuntime() {
        let registry = ContainerRegistry(logger: modelTestLogger)
        var docker = ContainerInfo(id: "d1", name: "k8s_app_web-1_shop_uid-1_0", image: "web:1", state: .running, runtime: .docker)
        docker.logPath = "/var/lib/docker/containers/d1/d1-json.log"
        docker.kubernetes = KubernetesNames.fromDockerName(docker.name)
        registry.upsert(docker)
        registry.upsert(modelPodLogReport())  // merged by (uid, container, restart)
        let merged = registry.snapshot()
        #expect(merged.count == 1)
        #expect(merged[0].logPath == "/var/lib/docker/containers/d1/d1-json.log")
        #expect(merged[0].runtime == .docker)
        #expect(registry.lookup(logPath: modelPodLogReport().logPath)?.id == "d1")
        #expect(registry.lookup(logPath: docker.logPath)?.id == "d1")
    }

    @Test func dockerAndPodLogsRemovalRule() async {
        let registry = ContainerRegistry(logger: modelTestLogger)
        var log = ModelEventLog(registry)
        var docker = ContainerInfo(id: "d1", name: "k8s_app_web-1_shop_uid-1_0", image: "web:1", state: .running, runtime: .docker)
        docker.logPath = "/var/lib/docker/containers/d1/d1-json.log"
        docker.kubernetes = KubernetesNames.fromDockerName(docker.name)
        _ = await log.events {
            registry.upsert(modelPodLogReport())
            registry.upsert(docker)
        }
        // The runtime says it is gone but its log file is still there: still live.
        #expect(await log.events { registry.remove(id: "d1", source: .docker) }.isEmpty)
        #expect(registry.snapshot().count == 1)
        // A source that never reported it cannot remove it.
        #expect(await log.events { registry.remove(id: "d1", source: .containerd) }.isEmpty)
        // The log file goes too: removed.
        let removed = await log.events { registry.removeByLogPath(modelPodLogReport().logPath, source: .podLogs) }
        #expect(removed.map(\.modelKind) == ["removed"])
        #expect(removed.first?.modelInfo.id == "d1")
        #expect(registry.snapshot().isEmpty)
        #expect(registry.lookup(id: "d1")?.kubernetes?.podName == "web-1")
        #expect(registry.isRemoved(id: "d1"))
    }

    @Test func removalGracePeriodWithInjectedClock() async {
        let clock = ModelManualClock()
        let registry = ContainerRegistry(gracePeriodSeconds: 600, logger: modelTestLogger, clock: { clock.now })
        registry.upsert(modelCRIReport())
        clock.advance(seconds: 5)
        registry.remove(id: "c1", source: .containerd)
        #expect(registry.snapshot().isEmpty)
        #expect(registry.lookup(id: "c1")?.kubernetes?.namespace == "shop")
        clock.advance(seconds: 599)
        registry.expire()
        #expect(registry.lookup(id: "c1") != nil)
        #expect(registry.lookup(logPath: modelPodLogReport().logPath) != nil)
        clock.advance(seconds: 1)
        registry.expire(now: clock.now)
        #expect(registry.lookup(id: "c1") == nil)
        #expect(registry.lookup(logPath: modelPodLogReport().logPath) == nil)
    }

    /// A container first reported without its restart count (the task-dir watcher, the fast
    /// path), then with it: its old pod key leaves the index, and once it expires nothing is left.
    @Test func aRestartCountLearnedLateLeavesNoIndexEntryBehind() {
        let clock = ModelManualClock()
        let registry = ContainerRegistry(gracePeriodSeconds: 1, logger: modelTestLogger, clock: { clock.now })
        var early = modelCRIReport()
        early.kubernetes?.restartCount = -1
        registry.upsert(early)
        registry.upsert(modelCRIReport())
        #expect(registry.indexSizes == [1, 1, 1, 1, 1])
        registry.remove(id: "c1", source: .containerd)
        clock.advance(seconds: 2)
        registry.expire(now: clock.now)
        #expect(registry.indexSizes == [0, 0, 0, 0, 0])
    }

    @Test func subscribeStartsWithTheLiveContainersThenDiffs() async throws {
        let registry = ContainerRegistry(logger: modelTestLogger)
        registry.upsert(modelCRIReport(id: "a", logPath: "/a.log"))
        registry.upsert(modelCRIReport(id: "b", logPath: "/b.log"))
        registry.upsert(modelCRIReport(id: "gone", logPath: "/gone.log"))
        registry.remove(id: "gone", source: .containerd)
        var log = ModelEventLog(registry)
        let initial = [await log.next(), await log.next()].compactMap { $0 }
        #expect(initial.map(\.modelKind) == ["added", "added"])
        #expect(initial.map(\.modelInfo.id) == ["a", "b"])
        var changed = modelCRIReport(id: "a", logPath: "/a.log")
        changed.state = .exited
        changed.pid = 0
        let diffs = await log.events {
            registry.upsert(modelCRIReport(id: "c", logPath: "/c.log"))
            registry.upsert(changed)
            registry.remove(id: "b", source: .containerd)
        }
        #expect(diffs.map(\.modelKind) == ["added", "updated", "removed"])
        #expect(diffs.map(\.modelInfo.id) == ["c", "a", "b"])
        #expect(diffs[1].modelInfo.state == .exited)
        #expect(diffs[1].modelInfo.pid == 0)  // an exited report clears the pid
    }

    @Test func resyncWithdrawsWhatIsNoLongerListed() async {
        let registry = ContainerRegistry(logger: modelTestLogger)
        var log = ModelEventLog(registry)
        var a = ContainerInfo(id: "a", name: "a", runtime: .static)
        a.logPath = "/a.log"
        let b = ContainerInfo(id: "b", name: "b", runtime: .static)
        #expect(await log.events { registry.resync(source: .static, present: [a, b]) }.map(\.modelKind) == ["added", "added"])
        #expect(await log.events { registry.resync(source: .static, present: [a, b]) }.isEmpty)
        let diff = await log.events { registry.resync(source: .static, present: [b]) }
        #expect(diff.map(\.modelKind) == ["removed"])
        #expect(diff.first?.modelInfo.id == "a")
        // Re-listed within the grace period: back, as an addition.
        let back = await log.events { registry.resync(source: .static, present: [a, b]) }
        #expect(back.map(\.modelKind) == ["added"])
        #expect(registry.snapshot().map(\.id) == ["a", "b"])
    }

    @Test func sandboxesAreKeptButFlagged() {
        let registry = ContainerRegistry(logger: modelTestLogger)
        var pause = ContainerInfo(id: "p1", name: "k8s_POD_web-1_shop_uid-1_0", runtime: .docker)
        pause.isSandbox = true
        registry.upsert(pause)
        var later = ContainerInfo(id: "p1", name: "k8s_POD_web-1_shop_uid-1_0", image: "pause:3.9", runtime: .docker)
        later.isSandbox = false
        registry.upsert(later)
        #expect(registry.snapshot().count == 1)
        #expect(registry.snapshot()[0].isSandbox)
        #expect(!ContainerFilters.none.matches(registry.snapshot()[0]))
    }

    @Test func aReportMatchingTwoEntriesJoinsThem() async {
        let registry = ContainerRegistry(logger: modelTestLogger)
        var log = ModelEventLog(registry)
        var early = ContainerInfo(id: "c1", name: "app", runtime: .containerd)  // before ContainerStatus: no log path, no uid
        early.state = .created
        _ = await log.events {
            registry.upsert(modelPodLogReport())
            registry.upsert(early)
        }
        #expect(registry.snapshot().count == 2)
        let joined = await log.events { registry.upsert(modelCRIReport()) }
        #expect(registry.snapshot().count == 1)
        #expect(joined.allSatisfy { $0.modelKind == "updated" })
        #expect(Set(joined.compactMap { event -> String? in
            if case .updated(let old, _) = event { return old.id } else { return nil }
        }) == ["", "c1"])
        let only = registry.snapshot()[0]
        #expect(only.id == "c1")
        #expect(only.state == .running)
        #expect(registry.lookup(logPath: modelPodLogReport().logPath)?.id == "c1")
        // Withdrawing both sources removes the joined entry.
        let gone = await log.events {
            registry.remove(id: "c1", source: .containerd)
            registry.removeByLogPath(modelPodLogReport().logPath, source: .podLogs)
        }
        #expect(gone.map(\.modelKind) == ["removed"])
    }

    @Test func differentIDsAreNeverMerged() {
        let registry = ContainerRegistry(logger: modelTestLogger)
        registry.upsert(modelCRIReport(id: "x1"))
        registry.upsert(modelCRIReport(id: "x2"))  // same log path, different id
        #expect(registry.snapshot().map(\.id) == ["x1", "x2"])
        #expect(registry.lookup(logPath: modelCRIReport().logPath)?.id == "x2")
    }
}
