// The Job storm on a real containerd through CRI, with the test kubelet (Tests/.../CRI:
// CRIContainerd, TestKubelet): pod sandboxes with the kubelet's log layout under a pod log root,
// each pod deleted the way the kubelet does it 0.2 s after its container exited.
import Glibc
import Foundation
import SluiceTesting
import Synchronization
import Testing
@testable import SluiceContainers

/// Rung on every `/tasks/exit` of containerd's event stream: the driver's waiters then ask for
/// their container's status, instead of polling containerd every few ms (16 waiters polling every
/// 40 ms is 400 calls a second, load no kubelet puts on a runtime).
final class JSExitBell: Sendable {
    private let waiters = Mutex<[UUID: AsyncStream<Void>.Continuation]>([:])

    func ring() {
        waiters.withLock { w in for c in w.values { c.yield() } }
    }

    /// Returns when rung, or after `timeout`.
    func wait(upTo timeout: Duration) async {
        let (stream, cont) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = UUID()
        waiters.withLock { $0[id] = cont }
        defer { waiters.withLock { _ = $0.removeValue(forKey: id) } }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            cont.yield()
        }
        defer { timer.cancel() }
        for await _ in stream { return }
    }

    /// Follows containerd's events (own connection) until cancelled, ringing on task exits.
    func follow(socket: String) async {
        while !Task.isCancelled {
            try? await CRIClient.with(CRIClientConfig(socketPath: socket, callTimeout: .seconds(3))) { client in
                try await client.containerdEvents { envelope in
                    if envelope.topic == "/tasks/exit" { self.ring() }
                }
            }
            ring()
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}

struct JSContainerdRuntime: JSRuntime {
    let name = "containerd"
    let client: CRIClient
    let kubelet: TestKubelet
    let exits: JSExitBell

    /// A Job's pod: one container, `job`, running the Job's script.
    func startPod(_ job: JSJob) async throws -> CRIKubeletPod {
        try await kubelet.runPod(
            name: job.pod, namespace: job.namespace, uid: job.uid, labels: ["job-name": job.pod],
            containers: [CRIContainerSpec(name: jsContainerName, command: ["/bin/sh", "-c", job.script])])
    }

    /// Runs the Job; when the runtime fails a call (containerd closes busy connections now and
    /// then, and a retried RunPodSandbox / StartContainer then finds its first try done), the
    /// attempt is cleaned up and the Job run again under a new pod name (up to 3 attempts), so
    /// every Job's lines stay unique.
    func run(_ job: JSJob, deleteDelayMs: Int) async -> JSJobResult {
        var abandoned: [JSJob] = []
        var reasons: [String] = []
        var attemptJob = job
        for attempt in 0..<3 {
            if attempt > 0 {
                attemptJob.pod = "\(job.pod)-r\(attempt)"
                attemptJob.uid = UUID().uuidString.lowercased()
            }
            var r = await runOnce(attemptJob, deleteDelayMs: deleteDelayMs)
            if r.error == nil || attempt == 2 {
                r.abandoned = abandoned
                r.abandonReasons = reasons
                return r
            }
            abandoned.append(attemptJob)
            reasons.append(r.error ?? "")
        }
        fatalError("unreachable")
    }

    private func runOnce(_ job: JSJob, deleteDelayMs: Int) async -> JSJobResult {
        var r = JSJobResult(job: job)
        var pod: CRIKubeletPod?
        do {
            r.createCalled = jsWallNanos()
            let p = try await startPod(job)
            pod = p
            // The kubelet's timestamps are monotonic: carry them over to the wall clock.
            let offset = jsWallNanos() - jsMonoNanos()
            r.startCalled = p.containers[0].startCalled + offset
            r.startReturned = p.containers[0].started + offset
            r.containerID = p.containers[0].id
            // Wait for the exit: ContainerStatus on every task exit containerd reports, and every
            // 250 ms in any case (a call that fails or times out, as happens when containerd drops
            // a busy connection, is simply made again).
            let deadline = jsMonoNanos() + 120_000_000_000
            while true {
                if jsMonoNanos() > deadline { throw JSError("container \(r.containerID) did not exit within 120 s") }
                guard let st = try? await client.containerStatus(id: r.containerID, verbose: false).status else {
                    await exits.wait(upTo: .milliseconds(250))
                    continue
                }
                if st.state == .containerExited {
                    r.exitSeen = jsWallNanos()
                    r.startedAt = st.startedAt
                    r.finishedAt = st.finishedAt
                    r.exitCode = Int(st.exitCode)
                    break
                }
                await exits.wait(upTo: .milliseconds(250))
            }
        } catch {
            r.error = "\(error)"
            await removeLeftovers(of: job, pod: pod)
            return r
        }
        // Where its rootfs upper dir is (for the ground truth below).
        var upperDir: String?
        if let st = try? await client.containerStatus(id: r.containerID, verbose: true),
           let v = CRIVerboseContainerInfo.parse(st.info) {
            upperDir = await client.upperDirFromSnapshot(snapshotter: v.snapshotter ?? "", key: v.snapshotKey ?? "")
        }
        // Deleted 0.2 s after the exit (finished_at), or at once if that moment has passed.
        let due = (r.finishedAt > 0 ? r.finishedAt : jsWallNanos()) + Int64(deleteDelayMs) * 1_000_000
        let wait = due - jsWallNanos()
        if wait > 0 { try? await Task.sleep(for: .nanoseconds(wait)) }
        // Ground truth, read (not changed) just before the deletion.
        if let c = jsCountJobLines(pod!.containers[0].logPath, pod: job.pod, kinds: [.stdout, .stderr]) { r.runtimeWrote.merge(c) { $1 } }
        if let u = upperDir { r.runtimeWrote[.file] = jsCountJobLines(u + jsFileInContainer, pod: job.pod, kinds: [.file])?[.file] ?? 0 }
        r.deleteBegan = jsWallNanos()
        do {
            try await kubelet.deletePod(pod!)
        } catch {
            r.deleteError = "\(error)"
            await removeLeftovers(of: job, pod: pod)
        }
        r.deleted = jsWallNanos()
        return r
    }

    /// The kubelet's deletion, step by step and ignoring errors (for a pod whose creation or
    /// deletion failed half way): log files and symlinks, containers, sandboxes of that pod, log dir.
    func removeLeftovers(of job: JSJob, pod: CRIKubeletPod?) async {
        for _ in 0..<3 {
            for c in pod?.containers ?? [] {
                _ = try? await client.runtime.stopContainer(.with { $0.containerID = c.id; $0.timeout = 0 })
                unlink(c.logPath)
                unlink(c.symlink)
                _ = try? await client.runtime.removeContainer(.with { $0.containerID = c.id })
            }
            let sandboxes = (try? await client.listPodSandboxes())?.filter { $0.metadata.uid == job.uid } ?? []
            for sb in sandboxes {
                _ = try? await client.runtime.stopPodSandbox(.with { $0.podSandboxID = sb.id })
                _ = try? await client.runtime.removePodSandbox(.with { $0.podSandboxID = sb.id })
            }
            try? FileManager.default.removeItem(atPath: "\(kubelet.podLogRoot)/\(job.namespace)_\(job.pod)_\(job.uid)")
            let left = (try? await client.listPodSandboxes())?.contains { $0.metadata.uid == job.uid } ?? false
            if !left { return }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }
}

extension JobStormTests {
    @Test("Job storm on containerd (CRI, test kubelet): no line lost, duplicated or mislabelled; first line p99 ≤ 500 ms",
          .enabled(if: CRITestEnv.announced && CRITestEnv.canRunContainerd, CRITestEnv.skipReason), .timeLimit(.minutes(10)))
    func containerdJobStorm() async throws {
        try await runContainerdStorm(outage: false)
    }

    @Test("Job storm on containerd with the destination down for the whole storm and the disk buffer on: every deleted file released while it is down, then no line lost",
          .enabled(if: CRITestEnv.announced && CRITestEnv.canRunContainerd, CRITestEnv.skipReason), .timeLimit(.minutes(10)))
    func containerdJobStormWithOutage() async throws {
        try await runContainerdStorm(outage: true)
    }

    /// No disk buffer: the flusher's queue fills and holds the input back for the whole storm;
    /// each new Job's files are opened while it waits, so logs deleted meanwhile are read after.
    @Test("Job storm on containerd with the destination down for the whole storm and no disk buffer: the input held back, no line lost",
          .enabled(if: CRITestEnv.announced && CRITestEnv.canRunContainerd, CRITestEnv.skipReason), .timeLimit(.minutes(10)))
    func containerdJobStormWithOutageNoBuffer() async throws {
        try await runContainerdStorm(outage: true, diskBuffer: false)
    }

    /// The storm; with `outage`, the pipelines post to an HTTP destination (which writes what it
    /// takes to the outputs the tail reads) through a disk buffer, and the destination is down
    /// from the first Job until every Job is deleted.
    func runContainerdStorm(outage: Bool, diskBuffer: Bool = true) async throws {
        let settings = JSSettings.fromEnvironment()
        let t0 = jsMonoNanos()
        let daemon = try await CRIContainerd.start()
        jsSay("    [containerd] containerd pid \(daemon.pid ?? -1), up with the image in \(jsFmt(Double(jsMonoNanos() - t0) / 1e9, 2)) s; pod log root \(daemon.podLogRoot)")
        let scenario = E2EScenario("jobstorm-containerd")
        var sluice: SluiceProcess?
        var outputTail: JSOutputTail?
        do {
            let stdioOut = scenario.path("out/stdio.jsonl")
            let filesOut = scenario.path("out/files.jsonl")
            scenario.dir("out")
            let destination = outage ? JSHTTPDestination(outputs: ["/stdio": stdioOut, "/files": filesOut]) : nil
            try await destination?.start()
            defer { if let destination { Task { await destination.stop() } } }
            for p in jsPipelines(stdioOutput: stdioOut, filesOutput: filesOut, httpPort: destination?.port, diskBuffer: diskBuffer) { scenario.writePipeline(p.name, p.text) }
            // Without a buffer, queues of 1 MiB (the least: mem_usage_limit 256 MB / 256) fill
            // early in the storm, so the input waits in them while most Jobs come and go.
            let proc = try scenario.start(environment: outage && !diskBuffer ? ["mem_usage_limit": "256"] : [:], extraArguments: [
                "--cri-socket", daemon.socket, "--pod-log-dir", daemon.podLogRoot, "--host-root", "/",
                "--docker-host", "unix://" + scenario.path("no-docker.sock"),
            ], logLevel: settings.logLevel)
            sluice = proc
            let tail = JSOutputTail(paths: [stdioOut, filesOut])
            outputTail = tail
            let config = CRIClientConfig(socketPath: daemon.socket, callTimeout: .seconds(3))
            let bell = JSExitBell()
            let bellTask = Task { await bell.follow(socket: daemon.socket) }
            defer { bellTask.cancel() }
            let report = try await CRIClient.with(config) { client in
                let kubelet = TestKubelet(client: client, podLogRoot: daemon.podLogRoot, containersDir: daemon.containersDir)
                let runtime = JSContainerdRuntime(client: client, kubelet: kubelet, exits: bell)
                return try await jsStormAgainstSluice(
                    runtime: runtime, settings: settings, sluice: proc, scenario: scenario, tail: tail, stdioOutput: 0, filesOutput: 1,
                    outage: destination.map { d in JSOutage(down: { await d.stop() }, up: { try await d.start() }, buffered: diskBuffer) },
                    warmUp: { job in
                        let pod = try await runtime.startPod(job)
                        let counts = await jsWaitForWarmUp(job, tail: tail, timeout: 60)
                        try? await kubelet.deletePod(pod)
                        guard JSKind.allCases.allSatisfy({ (counts[$0] ?? 0) >= job.lines }) else {
                            throw JSError("""
                                the warm-up pod (up for 60 s) was not collected: lines seen per kind \(counts); sluice stderr (tail):
                                \(proc.stderr.suffix(3000))
                                """)
                        }
                    })
            }
            // Without a buffer the input waits in full queues for the whole outage; each Job's files
            // are opened while it waits. Before: 40 % of the lines lost (files opened only after the
            // wait, deleted by then), then 0.3-0.6 % in 2 of 4 runs (a gone file let go at a stale
            // end of file); now 0 in 6 of 6 runs.
            jsAssertTargets(report, latency: !outage)
        } catch {
            jsSay("    [containerd] failed: \(error)\n    --- sluice stderr (tail) ---\n\(sluice?.stderr.suffix(3000) ?? "")")
            outputTail?.stop()
            sluice?.stop(timeout: 10)
            await daemon.cleanup()
            jsKeepStderr(sluice, runtime: "containerd")
            scenario.cleanup()
            throw error
        }
        sluice?.stop(timeout: 10)
        await daemon.cleanup()
        jsKeepStderr(sluice, runtime: "containerd")
            scenario.cleanup()
    }
}
