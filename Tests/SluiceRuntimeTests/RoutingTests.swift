import Glibc
import SluiceConfig
import SluiceCore
import SluiceFiles
import SluiceRuntime
import SluiceSystem
import SluiceTesting
import Synchronization
import Testing

/// Flusher `Match` routing through whole pipelines: who receives what, and when a source position
/// may move (only once every flusher that selected a batch has finished it).
@Suite(.serialized) struct RoutingTests {
    @Test func tagAndEventTypeConditionsSelectAndDiscardingTagRemovesTheTag() async throws {
        let tmp = TempDir("sluice-route")
        defer { tmp.remove() }
        let logs = tmp.sub("logs"), out = tmp.sub("out")
        let h = InProcessPipeline(dataDir: tmp.sub("data"))
        try await h.start(yaml: """
            inputs:
              - Type: input_file
                FilePaths: [\(quoted(logs + "/*.log"))]
            flushers:
              - Type: flusher_file
                FilePath: \(quoted(out + "/all.jsonl"))
              - Type: flusher_file
                FilePath: \(quoted(out + "/a.jsonl"))
                Match: {Type: tag, Key: __path__, Value: \(quoted(logs + "/a.log"))}
              - Type: flusher_file
                FilePath: \(quoted(out + "/b.jsonl"))
                Match: {Type: tag, Key: __path__, Value: \(quoted(logs + "/b.log")), DiscardingTag: true}
              - Type: flusher_file
                FilePath: \(quoted(out + "/logs.jsonl"))
                Match: {Type: event_type, Value: log}
              - Type: flusher_file
                FilePath: \(quoted(out + "/metrics.jsonl"))
                Match: {Type: event_type, Value: metric}
            """)
        writeFile(logs + "/a.log", "a1\na2\n")
        writeFile(logs + "/b.log", "b1\n")
        #expect(waitUntil(timeout: 10) { countLines(out + "/all.jsonl") == 3 && countLines(out + "/logs.jsonl") == 3 })
        #expect(waitUntil(timeout: 10) { countLines(out + "/a.jsonl") == 2 && countLines(out + "/b.jsonl") == 1 })
        sleepMs(300)
        await h.stop()
        #expect(outputContents(out + "/a.jsonl") == ["a1", "a2"])
        #expect(outputContents(out + "/b.jsonl") == ["b1"])
        #expect(!String(decoding: readFileBytes(out + "/b.jsonl"), as: UTF8.self).contains("__path__"), "DiscardingTag removed the tag")
        #expect(String(decoding: readFileBytes(out + "/all.jsonl"), as: UTF8.self).contains("\"__path__\":\"\(logs)/b.log\""),
                "the tag is removed only for the flusher that asked")
        #expect(countLines(out + "/metrics.jsonl") == 0)
    }

    @Test func thePositionWaitsForEveryFlusherThatSelectedTheBatch() async throws {
        let tmp = TempDir("sluice-route-ack")
        defer { tmp.remove() }
        let logs = tmp.sub("logs"), out = tmp.sub("out")
        let h = InProcessPipeline(dataDir: tmp.sub("data"))
        let down = Mutex(true)
        let slow = ScriptedFlusher(delivery: DeliveryOptions(backoff: Backoff(initial: .milliseconds(10), maximum: .milliseconds(20)))) { _, _ in
            down.withLock { $0 } ? .retry(after: nil, reason: "down") : .delivered
        }
        h.flushers.put(slow, as: "slow")
        try await h.start(yaml: """
            inputs:
              - Type: input_file
                FilePaths: [\(quoted(logs + "/*.log"))]
            flushers:
              - Type: flusher_file
                FilePath: \(quoted(out + "/all.jsonl"))
              - Type: flusher_scripted
                Name: slow
                Match: {Type: tag, Key: __path__, Value: \(quoted(logs + "/a.log"))}
            """)
        writeFile(logs + "/a.log", "a1\n")
        writeFile(logs + "/b.log", "b1\n")
        let a = try fileIdentity(logs + "/a.log"), b = try fileIdentity(logs + "/b.log")
        #expect(waitUntil(timeout: 10) { countLines(out + "/all.jsonl") == 2 })
        // b.log went to the file flusher only: its position moves; a.log waits for the slow one.
        #expect(waitUntil(timeout: 10) { h.checkpoints?.lookup(b)?.offset == 3 })
        #expect(waitUntil(timeout: 2) { slow.sends >= 3 })
        #expect((h.checkpoints?.lookup(a)?.offset ?? 0) == 0, "a.log's position waits for the flusher that selected it")
        down.withLock { $0 = false }
        #expect(waitUntil(timeout: 10) { h.checkpoints?.lookup(a)?.offset == 3 })
        #expect(slow.delivered == ["a1"])
        await h.stop()
    }

    @Test func aBatchNoFlusherSelectsIsDroppedCountedAndAcknowledged() async throws {
        let tmp = TempDir("sluice-route-none")
        defer { tmp.remove() }
        let logs = tmp.sub("logs"), out = tmp.sub("out")
        let h = InProcessPipeline(dataDir: tmp.sub("data"))
        try await h.start(yaml: """
            inputs:
              - Type: input_file
                FilePaths: [\(quoted(logs + "/*.log"))]
            flushers:
              - Type: flusher_file
                FilePath: \(quoted(out + "/a.jsonl"))
                Match: {Type: tag, Key: __path__, Value: \(quoted(logs + "/a.log"))}
            """)
        writeFile(logs + "/a.log", "a1\n")
        writeFile(logs + "/c.log", "c1\nc2\n")
        let c = try fileIdentity(logs + "/c.log")
        #expect(waitUntil(timeout: 10) { countLines(out + "/a.jsonl") == 1 })
        #expect(waitUntil(timeout: 10) { h.checkpoints?.lookup(c)?.offset == 6 }, "an unrouted batch lets its position move")
        #expect(waitUntil(timeout: 5) { h.metrics.eventsUnrouted.current == 2 })
        await h.stop()
        #expect(outputContents(out + "/a.jsonl") == ["a1"])
    }

    @Test func badMatchIsAConfigErrorAtItsKey() throws {
        func errors(_ match: String) -> String {
            let yaml = "inputs:\n  - Type: input_file\n    FilePaths: [/tmp/x/*.log]\nflushers:\n  - Type: flusher_stdout\n    Match: \(match)\n"
            do {
                _ = try PluginRegistry.standard.validate(bytes: Array(yaml.utf8), file: "p.yaml", globals: GlobalParameters())
                return ""
            } catch {
                return error.errors.map(\.description).joined(separator: "\n")
            }
        }
        #expect(errors("{Type: tag, Key: a, Value: b}") == "")
        #expect(errors("{Type: event_type, Value: trace}") == "")
        #expect(errors("{Value: log}").contains("flushers[0].Match: Type is required"))
        #expect(errors("{Type: route}").contains("flushers[0].Match.Type: \"route\" is not event_type or tag"))
        #expect(errors("{Type: event_type, Value: logs}").contains("flushers[0].Match.Value: \"logs\" is not log, metric or trace"))
        #expect(errors("{Type: tag, Value: b}").contains("Key is required"))
        #expect(errors("tag").contains("flushers[0].Match: expected a mapping"))
    }
}

extension RoutingTests {
    /// The route's decisions on batches, without a pipeline.
    @Test func routeDecisions() {
        var batch = EventBatch(arena: Array("x".utf8), events: [LogEvent(content: Span(0, 1))], tags: [EventTag("k", "v"), EventTag("h", "n")],
                               observedNanos: 0, inputBytes: 1)
        #expect(FlusherRoute.tag(key: "k", value: "v", discardingTag: false).selects(batch))
        #expect(!FlusherRoute.tag(key: "k", value: "w", discardingTag: false).selects(batch))
        // As the incumbent's GetTag: a missing tag reads as "".
        #expect(FlusherRoute.tag(key: "missing", value: "", discardingTag: false).selects(batch))
        #expect(!FlusherRoute.tag(key: "missing", value: "v", discardingTag: false).selects(batch))
        #expect(FlusherRoute.eventType("log").selects(batch) && !FlusherRoute.eventType("metric").selects(batch))
        #expect(FlusherRoute.tag(key: "k", value: "v", discardingTag: true).adapt(batch).tags == [EventTag("h", "n")])
        #expect(FlusherRoute.tag(key: "k", value: "v", discardingTag: false).adapt(batch).tags.count == 2)
        batch.events = []
        #expect(!FlusherRoute.eventType("log").selects(batch))
    }
}
