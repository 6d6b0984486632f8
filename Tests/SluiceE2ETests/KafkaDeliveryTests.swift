import Foundation
import Glibc
import SluiceTesting
import Testing

private let runningInCI = ProcessInfo.processInfo.environment["CI"] == "true"
private let noidaInstalled = FileManager.default.fileExists(atPath: TestServer.serversDir + "/noida/noida_db/noida-db")

/// The Kafka flushers through the real binary against a Kafka-protocol broker running here
/// (noida-db: Debian's librdkafka 2.0.2 speaks to it; Tansu needs librdkafka ≥ 2.16). The
/// incumbent's §6.1 and §6.4 pipelines run unchanged but for their broker address and paths, and
/// `kill -9` while producing loses nothing. What counts is what a consumer reads back.
@Suite("Kafka delivery end to end", .serialized, .timeLimit(.minutes(10)),
       .enabled(if: noidaInstalled || runningInCI, "noida-db is not unpacked (scripts/install-deps.sh does it): skipped"))
struct KafkaDeliveryTests {
    /// Reads `topic` until it holds `count` messages (or `timeout` passes).
    func readBack(_ k: TestServer, _ topic: String, count: Int, timeout: Double = 30) -> [KafkaRecord] {
        var records: [KafkaRecord] = []
        _ = waitUntil(timeout: timeout, pollMs: 500) {
            records = KafkaTestConsumer.readAll(brokers: k.address, topic: topic, timeout: 5) ?? []
            return records.count >= count
        }
        return records
    }

    func json(_ r: KafkaRecord) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(r.value)) as? [String: Any]) ?? [:]
    }

    @Test("§6.1 Java logback → flusher_kafka_v2 (verbatim but the brokers): one custom_single message per record on APP_LOG")
    func incumbentExampleJavaLogbackToKafka() throws {
        let k = try #require(try TestServer.kafka(), "noida-db is installed by scripts/install-deps.sh")
        defer { k.stop() }
        let s = E2EScenario("kafka-6.1")
        defer { s.cleanup() }
        let dir = s.dir("home/tomcat/logs/app")
        let yaml = IncumbentExamples.rooted(IncumbentExamples.javaLogback, s.root)
            .replacingOccurrences(of: "        - 192.168.0.101:9092\n        - 192.168.0.102:9092\n        - 192.168.0.103:9092\n", with: "        - \(k.address)\n")
        try #require(!yaml.contains("192.168."), "the example's brokers are replaced by the local one")
        s.writePipeline("java", yaml)
        try s.startAndWait()
        let log = [
            "2024-01-02 10:00:00.123|u1|INFO|get|com.example.A:12|main|started|",
            "2024-01-02 10:00:01.456|u2|ERROR|get|com.example.A:20|main|failed|java.lang.NullPointerException",
            "2024-01-02 10:00:02.789|u3|INFO|get|com.example.B:7|worker-1|done|none|extra|more",
        ]
        writeFile(dir + "/app.2024-01-02.ing", log.map { $0 + "\n" }.joined())
        let records = readBack(k, "APP_LOG", count: 3)
        sleepMs(settleMs)
        let all = KafkaTestConsumer.readAll(brokers: k.address, topic: "APP_LOG") ?? records
        note("§6.1 on Kafka:\n" + all.map(\.text).joined(separator: "\n"))
        #expect(all.count == 3)
        let docs = all.map(json)
        let contents = docs.compactMap { $0["contents"] as? [String: Any] }
        #expect(contents.count == 3 && contents.allSatisfy { $0["service"] as? String == "logtail-example-app" })
        #expect(Set(contents.compactMap { $0["uuid"] as? String }) == ["u1", "u2", "u3"])
        #expect(contents.first { $0["uuid"] as? String == "u3" }?["_split_preserve_"] as? String == "extra|more")
        #expect(docs.allSatisfy { (($0["tags"] as? [String: Any])?["log.file.path"] as? String)?.hasSuffix("app.2024-01-02.ing") == true && $0["time"] is Int })
        #expect(all.allSatisfy { $0.key == nil }, "random partitioner: no key, as the incumbent")
        #expect(p(s) == 0)
    }

    @Test("§6.4 native JSON → flusher_kafka_native (verbatim but the brokers): topic app-<service>, value the JSON line")
    func incumbentExampleNativeJSONToKafka() throws {
        let k = try #require(try TestServer.kafka(), "noida-db is installed by scripts/install-deps.sh")
        defer { k.stop() }
        let s = E2EScenario("kafka-6.4")
        defer { s.cleanup() }
        let dir = s.dir("root/test/a/b")
        let yaml = IncumbentExamples.rooted(IncumbentExamples.nativeJSON, s.root).replacingOccurrences(of: "[\"kafka:29092\"]", with: "[\"\(k.address)\"]")
        try #require(yaml.contains(k.address))
        s.writePipeline("json", yaml)
        try s.startAndWait()
        let lines = [#"{"service":"web","msg":"w1"}"#, #"{"service":"db","msg":"d1"}"#, #"{"service":"web","msg":"w2"}"#, #"{"msg":"none"}"#, "not json"]
        writeFile(dir + "/dynamic_input.log", lines.map { $0 + "\n" }.joined())
        let web = readBack(k, "app-web", count: 2)
        let db = readBack(k, "app-db", count: 1)
        let missing = readBack(k, "app-content.service", count: 1)
        note("§6.4 on Kafka: app-web \(web.map(\.text)), app-db \(db.map(\.text)), app-content.service \(missing.map(\.text))")
        #expect(web.count == 2 && db.count == 1 && missing.count == 1)
        #expect(Set(web.compactMap { json($0)["msg"] as? String }) == ["w1", "w2"])
        // The flusher_file line: fields, the kept source, tags, __time__; ending with a newline.
        let w = json(web.first!)
        #expect(w["content"] as? String == #"{"service":"web","msg":"w1"}"# || w["content"] as? String == #"{"service":"web","msg":"w2"}"#)
        #expect((w["__path__"] as? String)?.hasSuffix("dynamic_input.log") == true && w["__time__"] is Int)
        #expect(web.allSatisfy { $0.value.last == 0x0A })
        #expect(p(s) == 0)
    }

    /// Stops the scenario's sluice with SIGTERM: its exit code.
    func p(_ s: E2EScenario) -> Int32? { s.process?.stop() }

    @Test("flusher_kafka_v2: kill -9 while producing 1 M lines; every line in the topic afterwards")
    func killNineWhileProducing() throws {
        let k = try #require(try TestServer.kafka(), "noida-db is installed by scripts/install-deps.sh")
        defer { k.stop() }
        let total = ProcessInfo.processInfo.environment["SLUICE_E2E_KAFKA_LINES"].flatMap { Int($0) } ?? 1_000_000
        let s = E2EScenario("k9-kafka")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        s.writePipeline("kafka", """
            inputs:
              - Type: input_file
                FilePaths: [\(logs)/*.log]
            flushers:
              - Type: flusher_kafka_v2
                Brokers: [\(k.address)]
                Topic: k9
                Compression: lz4
            """)
        let lines = NumberedLines(prefix: "k9-", digits: 8, lineLength: 100)
        func count() -> Int { KafkaTestConsumer.count(brokers: k.address, topic: "k9", timeout: 2) ?? 0 }
        let t0 = monotonicSeconds()
        let r = try NetworkDeliveryTests.killNineWhileDelivering(s, lines: lines, total: total, logs: logs, progress: count, complete: { count() >= total })
        let (killed, restartS) = (r.killedAt, r.restartS)
        let records = KafkaTestConsumer.readAll(brokers: k.address, topic: "k9", timeout: 120) ?? []
        var counts = [UInt8](repeating: 0, count: total)
        for r in records { NetworkDeliveryTests.numbers(in: r.value, prefix: "k9-", digits: 8, into: &counts) }
        let distinct = counts.reduce(0) { $0 + ($1 > 0 ? 1 : 0) }
        let missing = counts.firstIndex(of: 0)
        note(String(format: "kafka kill -9: %d lines; killed with %d messages in the topic; afterwards %d messages, %d distinct lines, %d duplicated; %.1f s in all, %.1f s after the restart",
                    total, killed, records.count, distinct, records.count - distinct, monotonicSeconds() - t0, restartS))
        #expect(distinct == total, "every line in the topic (first missing: \(missing.map(String.init) ?? "none"))")
        // Duplicates only from requests not yet acknowledged at the kill: 4 requests of at most
        // 4 MiB of input, each up to one read batch (512 KiB) over.
        let bound = 4 * ((4 << 20) + (512 << 10)) / 100
        #expect(records.count - distinct <= bound, "duplicates \(records.count - distinct) within the unacknowledged requests (\(bound))")
    }
}
