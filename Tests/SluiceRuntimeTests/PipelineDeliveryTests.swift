import Glibc
import SluiceCore
import SluiceFiles
import SluiceRuntime
import SluiceSystem
import SluiceTesting
import Testing

/// The delivery contract through whole pipelines (a YAML pipeline, real files, real checkpoints).
@Suite(.serialized) struct PipelineDeliveryTests {
    func yaml(_ logs: String, flushers: String) -> String {
        "inputs:\n  - Type: input_file\n    FilePaths: [\(quoted(logs + "/*.log"))]\nflushers:\n" + flushers
    }

    @Test func aRejectedBatchLetsTheCheckpointMoveAndIsCounted() async throws {
        let tmp = TempDir("sluice-reject")
        defer { tmp.remove() }
        let logs = tmp.sub("logs")
        let h = InProcessPipeline(dataDir: tmp.sub("data"))
        let f = ScriptedFlusher(delivery: DeliveryOptions(backoff: Backoff(initial: .milliseconds(5)))) { _, r in
            r.lines.contains { $0.hasPrefix("bad") } ? .rejected(reason: "400 mapping error") : .delivered
        }
        h.flushers.put(f)
        try await h.start(yaml: yaml(logs, flushers: "  - Type: flusher_scripted\n"))
        writeFile(logs + "/a.log", "bad-1\nbad-2\n")
        let id = try fileIdentity(logs + "/a.log")
        #expect(waitUntil(timeout: 10) { h.checkpoints?.lookup(id)?.offset == 12 }, "the rejected batch moved the position")
        appendFile(logs + "/a.log", "good-1\n")
        #expect(waitUntil(timeout: 10) { f.delivered == ["good-1"] })
        #expect(waitUntil(timeout: 10) { h.checkpoints?.lookup(id)?.offset == 19 })
        let flusher = try #require(h.pipeline?.components.first { $0.component.kind == "flusher" })
        #expect(flusher.discardedByReason == ["rejected": 2])
        await h.stop()
    }

    @Test func theShutdownDeadlineAbandonsAndTheNextStartReadsAgain() async throws {
        let tmp = TempDir("sluice-deadline")
        defer { tmp.remove() }
        let logs = tmp.sub("logs")
        let data = tmp.sub("data")
        let down = InProcessPipeline(dataDir: data, shutdownTimeoutSeconds: 1)
        let refusing = ScriptedFlusher(delivery: DeliveryOptions(backoff: Backoff(initial: .milliseconds(20), maximum: .milliseconds(50)))) { _, _ in
            .retry(after: nil, reason: "backend down")
        }
        down.flushers.put(refusing)
        let pipeline = yaml(logs, flushers: "  - Type: flusher_scripted\n")
        try await down.start(yaml: pipeline)
        writeFile(logs + "/a.log", "l1\nl2\nl3\n")
        #expect(waitUntil(timeout: 10) { refusing.sends >= 3 })
        let t0 = monotonicSeconds()
        await down.stop()
        let took = monotonicSeconds() - t0
        #expect(took < 3, "stopped within the deadline (took \(took) s)")
        let id = try fileIdentity(logs + "/a.log")
        #expect((down.checkpoints?.lookup(id)?.offset ?? 0) == 0, "nothing acknowledged, the position stayed")
        #expect(down.lastComponents.first { $0.component.kind == "flusher" }?.abandonedEvents.current == 3)

        let up = InProcessPipeline(dataDir: data)
        let delivering = ScriptedFlusher()
        up.flushers.put(delivering)
        try await up.start(yaml: pipeline)
        #expect(waitUntil(timeout: 10) { delivering.delivered.count == 3 })
        sleepMs(300)
        #expect(delivering.delivered == ["l1", "l2", "l3"])
        await up.stop()
    }

    /// The same body against the pipeline in this process and against the real binary.
    func twoFlushersBothGetEverything(_ p: PipelineUnderTest, root: String) async throws {
        let logs = root + "/logs"
        makeDirectories(logs)
        let out1 = root + "/out/one.jsonl", out2 = root + "/out/two.jsonl"
        let pipeline = yaml(logs, flushers: "  - Type: flusher_file\n    FilePath: \(quoted(out1))\n  - Type: flusher_file\n    FilePath: \(quoted(out2))\n")
        try await p.start(yaml: pipeline)
        let n = 2000
        writeFile(logs + "/a.log", (0..<n).map { "line-\($0)\n" }.joined())
        #expect(waitUntil(timeout: 20) { countLines(out1) >= n && countLines(out2) >= n })
        await p.stop()
        appendFile(logs + "/a.log", "after-restart\n")
        try await p.start(yaml: pipeline)
        #expect(waitUntil(timeout: 20) { countLines(out1) >= n + 1 && countLines(out2) >= n + 1 })
        sleepMs(500)
        await p.stop()
        let expected = (0..<n).map { "line-\($0)" } + ["after-restart"]
        #expect(outputContents(out1) == expected)
        #expect(outputContents(out2) == expected)
    }

    @Test func twoFlushersInProcess() async throws {
        let tmp = TempDir("sluice-two")
        defer { tmp.remove() }
        try await twoFlushersBothGetEverything(InProcessPipeline(dataDir: tmp.sub("data")), root: tmp.path)
    }

    @Test func twoFlushersRealBinary() async throws {
        let s = E2EScenario("two-flushers")
        defer { s.cleanup() }
        try await twoFlushersBothGetEverything(BinaryPipeline(s), root: s.root)
    }
}
