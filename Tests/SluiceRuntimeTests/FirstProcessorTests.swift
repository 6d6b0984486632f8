import Foundation
import SluiceRuntime
import SluiceTesting
import Testing

/// The incumbent's "first processor JSON": `input_file` reads whole JSON objects (one event per
/// object, even spread over lines) when the pipeline's first processor parses JSON, and lines
/// otherwise.
@Suite(.serialized) struct FirstProcessorTests {
    static let text = """
        {"a": 1,
          "b": "x"}
        {"a": 2, "b": "y"}
        {"a": 3,
         "nested": {"c": [1,
           2]}}

        """

    func run(firstProcessor: String) async throws -> [[String: Any]] {
        let tmp = TempDir("sluice-first-json")
        defer { tmp.remove() }
        let logs = tmp.sub("logs"), out = tmp.sub("out") + "/out.jsonl"
        let h = InProcessPipeline(dataDir: tmp.sub("data"))
        try await h.start(yaml: """
            inputs:
              - Type: input_file
                FilePaths: [\(quoted(logs + "/*.log"))]
                Multiline: {StartPattern: 'never-matches-anything'}
            processors:
            \(firstProcessor)
            flushers:
              - Type: flusher_file
                FilePath: \(quoted(out))
            """)
        writeFile(logs + "/app.log", Self.text)
        _ = await eventually(10) { countLines(out) >= 3 }
        try await Task.sleep(for: .milliseconds(1500))
        await h.stop()
        return readJSONLines(out)
    }

    @Test func aJSONParserFirstReadsWholeObjects() async throws {
        let events = try await run(firstProcessor: "  - Type: processor_parse_json_native\n    SourceKey: content")
        #expect(events.count == 3, "one event per object: \(events)")
        // The native parser keeps values as text (the incumbent's), an object as compact JSON.
        #expect(events.map { $0["a"] as? String } == ["1", "2", "3"])
        #expect(events.first?["b"] as? String == "x")
        #expect(events.last?["nested"] as? String == #"{"c":[1,2]}"#)
        let extended = try await run(firstProcessor: "  - Type: processor_json\n    SourceKey: content\n    KeepSource: false")
        #expect(extended.count == 3, "processor_json first: one event per object too: \(extended)")
    }

    @Test func anotherFirstProcessorKeepsLines() async throws {
        // The same file with a regex parser first: its Multiline (whose start never matches) makes
        // every line its own unmatched event, as without the JSON rule.
        let events = try await run(firstProcessor: "  - Type: processor_parse_regex_native\n    SourceKey: content\n    Regex: '(.*)'\n    Keys: [line]")
        #expect(events.count == 6, "one event per line: \(events.count)")
    }
}
