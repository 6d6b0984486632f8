import Glibc
import Foundation
import SluiceTesting
import Testing

/// The incumbent's own example pipelines (reference `ilogtail-processors-flushers.md` §6, copied
/// verbatim) validate and run unchanged in the real binary, with the outcomes §6.6 describes.
/// Only the absolute paths are moved under the scenario's directory (the prefix `/home/…` or
/// `/root/…` becomes `<root>/home/…`). Here the Kafka flushers of §6.1 and §6.4 are replaced by
/// `flusher_file` to check the processors' output; KafkaDeliveryTests runs them against a broker.
enum IncumbentExamples {
    /// §6.1: Go processors → flusher_kafka_v2 (multi-line Java logs). LC example_config/user_contrib/java-springboot-logback.md.
    static let javaLogback = #"""
    enable: true
    inputs:
      - Type: input_file
        FilePaths: 
          - /home/tomcat/logs/app/app.*.ing
    processors:
      - Type: processor_split_log_regex
        SplitRegex: \d+-\d+-\d+\s\d+:\d+:\d+\.\d+\|.*
        SplitKey: content
        PreserveOthers: true
      - Type: processor_split_char
        SourceKey: content
        SplitSep: "|"
        SplitKeys:
          - timestamp
          - uuid
          - level
          - method
          - class_line
          - thread
          - message
          - exception
      - Type: processor_split_char
        SourceKey: class_line
        SplitSep: ":"
        SplitKeys:
          - class
          - line
      - Type: processor_add_fields
        Fields:
          service: logtail-example-app
        IgnoreIfExist: false
    flushers:
      - Type: flusher_kafka_v2
        Brokers:
            - 192.168.0.101:9092
            - 192.168.0.102:9092
            - 192.168.0.103:9092
        Topic: APP_LOG
    """#

    /// §6.2: native regex parser → flusher_file. LC test/benchmark/local/test_cases/performance_file_to_file_loongcollector/loongcollector.yaml.
    static let nativeRegex = #"""
    enable: true
    inputs:
      - Type: input_file
        FilePaths: 
          - /home/loongcollector/*.log
    processors:
      - Type: processor_parse_regex_native
        SourceKey: content
        Regex: ^([^ ]*) ([^ ]*) ([^ ]*) \[([^\]]*)\] "(\S+) ([^\"]*) (\S*)" ([^ ]*) ([^ ]*) "([^\"]*)" "([^\"]*)"
        Keys:
          - ip
          - ident
          - auth
          - timestamp
          - method
          - request
          - http_version
          - response_code
          - bytes
          - referrer
          - user_agent
    flushers:
      - Type: flusher_file
        FilePath: /home/loongcollector/test.out
    """#

    /// §6.3: Go regex + Go filter → flusher_stdout. LC test/benchmark/local/test_cases/performance_file_to_file_loongcollectorcgo/loongcollector.yaml (no trailing newline).
    static let goRegexFilter = #"""
    enable: true
    inputs:
      - Type: input_file
        FilePaths: 
          - /home/loongcollector/*.log
    processors:
      - Type: processor_regex
        SourceKey: content
        Regex: ^([^ ]*) ([^ ]*) ([^ ]*) \[([^\]]*)\] "(\S+) ([^\"]*) (\S*)" ([^ ]*) ([^ ]*) "([^\"]*)" "([^\"]*)"
        Keys:
          - ip
          - ident
          - auth
          - timestamp
          - method
          - request
          - http_version
          - response_code
          - bytes
          - referrer
          - user_agent
      - Type: processor_filter_regex
        Include:
          user_agent: ^no-agent$
    flushers:
      - Type: flusher_stdout
        OnlyStdout: false
        FileName: /home/loongcollector/test.out
        MaxSize: 10485760
    """#

    /// §6.4: native JSON parser → flusher_kafka_native. LC test/e2e/test_cases/flusher_kafka_native_dynamic_topic/case.feature.
    static let nativeJSON = #"""
    enable: true
    inputs:
      - Type: input_file
        FilePaths:
          - "/root/test/**/dynamic_input.log"
        MaxDirSearchDepth: 10
        TailingAllMatchedFiles: true
    processors:
      - Type: processor_parse_json_native
        SourceKey: content
        KeepingSourceWhenParseSucceed: true
    flushers:
      - Type: flusher_kafka_native
        Brokers: ["kafka:29092"]
        Topic: "app-%{content.service}"
        Version: "2.8.0"
        BulkFlushFrequency: 0
        BulkMaxSize: 2048
        MaxMessageBytes: 5242880
        QueueBufferingMaxKbytes: 1048576
        QueueBufferingMaxMessages: 100000
        RequiredAcks: 1
        Timeout: 30000
        MessageTimeoutMs: 300000
        MaxRetries: 3
        RetryBackoffMs: 100
    """#

    /// `text` with its absolute paths moved under `root`.
    static func rooted(_ text: String, _ root: String) -> String {
        var t = text
        for prefix in ["/home/tomcat/", "/home/loongcollector/", "/root/test/"] {
            t = t.replacingOccurrences(of: prefix, with: root + prefix)
        }
        return t
    }

    /// `text` with its `flushers:` section replaced by one `flusher_file` writing to `output`.
    static func withFileFlusher(_ text: String, output: String) -> String {
        let head = text.components(separatedBy: "\nflushers:\n")[0]
        return head + "\nflushers:\n  - Type: flusher_file\n    FilePath: \(output)\n"
    }

    /// Lines of the nginx log of §6.2 / §6.3 and what becomes of them.
    static let curl = #"10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET /index.html HTTP/1.1" 200 612 "-" "curl/7.88.1""#
    static let noAgent = #"10.0.0.2 - bob [10/Oct/2023:13:55:37 +0000] "POST /api/v1/items HTTP/1.1" 201 31 "http://example.com/" "no-agent""#
    static let garbage = "not an access log line"
    /// Matches the pattern as a prefix only: a search finds it, a full match does not.
    static let noAgentTrailing = #"10.0.0.3 - - [10/Oct/2023:13:55:38 +0000] "GET / HTTP/1.0" 404 0 "-" "no-agent" trailing"#
}

extension E2E {
    @Test("§6.1-§6.4 validate verbatim (the Kafka flushers of §6.1 and §6.4 included); §6.1/§6.4 also with flusher_file for their Kafka flusher")
    func incumbentExamplesValidate() throws {
        let s = E2EScenario("examples-validate")
        defer { s.cleanup() }
        let dir = s.dir("configs")
        for (name, text) in [("6.1", IncumbentExamples.javaLogback), ("6.2", IncumbentExamples.nativeRegex), ("6.3", IncumbentExamples.goRegexFilter),
                             ("6.4", IncumbentExamples.nativeJSON)] {
            writeFile(dir + "/\(name).yaml", text)
            let r = try runSluice(["validate", dir + "/\(name).yaml"], in: s.root)
            #expect(r.code == 0, "§\(name): \(r.out) \(r.err)")
        }
        for (name, text) in [("6.1", IncumbentExamples.javaLogback), ("6.4", IncumbentExamples.nativeJSON)] {
            writeFile(dir + "/\(name)-file.yaml", IncumbentExamples.withFileFlusher(text, output: "/tmp/out.jsonl"))
            let replaced = try runSluice(["validate", dir + "/\(name)-file.yaml"], in: s.root)
            #expect(replaced.code == 0, "§\(name) with flusher_file: \(replaced.out) \(replaced.err)")
        }
    }

    @Test("§6.2 native regex → flusher_file: lines the anchored regex does not match whole are dropped; fields then tags")
    func incumbentExampleNativeRegex() throws {
        let s = E2EScenario("example-6.2")
        defer { s.cleanup() }
        let dir = s.dir("home/loongcollector")
        let out = dir + "/test.out"
        s.writePipeline("nginx", IncumbentExamples.rooted(IncumbentExamples.nativeRegex, s.root))
        try s.startAndWait()
        let E = IncumbentExamples.self
        writeFile(dir + "/access.log", [E.curl, E.garbage, E.noAgent, E.noAgentTrailing, "end"].map { $0 + "\n" }.joined())
        #expect(waitForLines(out, 2))
        sleepMs(settleMs)
        let lines = readLines(out)
        note("§6.2 output:\n" + lines.joined(separator: "\n"))
        #expect(lines.count == 2)
        let records = readJSONLines(out)
        #expect(records.map { $0["ip"] as? String } == ["10.0.0.1", "10.0.0.2"])
        if lines.count == 2 {
            #expect(lines[0].hasPrefix(#"{"ip":"10.0.0.1","ident":"-","auth":"-","timestamp":"10/Oct/2023:13:55:36 +0000","method":"GET","request":"/index.html","http_version":"HTTP/1.1","response_code":"200","bytes":"612","referrer":"-","user_agent":"curl/7.88.1","__path__":"\#(dir)/access.log","__hostname__":"e2e-host","__time__":"#), "\(lines[0])")
            #expect(records[1]["auth"] as? String == "bob" && records[1]["user_agent"] as? String == "no-agent")
            #expect(records.allSatisfy { $0["content"] == nil }, "the source is removed after a successful parse")
        }
        let stats = readStats(s.statsFile)
        note("§6.2 stats: discarded parse_failure = \(statValue(stats, "discarded_events.parse_failure") ?? -1)")
    }

    @Test("§6.3 Go regex (search) + Go filter → flusher_stdout with FileName: only user_agent no-agent passes, a prefix match included")
    func incumbentExampleGoRegexFilter() throws {
        let s = E2EScenario("example-6.3")
        defer { s.cleanup() }
        let dir = s.dir("home/loongcollector")
        let out = dir + "/test.out"
        s.writePipeline("nginx", IncumbentExamples.rooted(IncumbentExamples.goRegexFilter, s.root))
        let p = try s.startAndWait()
        let E = IncumbentExamples.self
        writeFile(dir + "/access.log", [E.curl, E.garbage, E.noAgent, E.noAgentTrailing, "end"].map { $0 + "\n" }.joined())
        #expect(waitForLines(out, 2))
        sleepMs(settleMs)
        let lines = readLines(out)
        note("§6.3 \(out):\n" + lines.joined(separator: "\n"))
        #expect(lines.count == 2)
        let records = readJSONLines(out)
        // curl's line was parsed and filtered out; the garbage line and "end" did not match, kept
        // `content` (KeepSourceIfParseError) and failed the Include filter (no user_agent).
        #expect(records.map { $0["ip"] as? String } == ["10.0.0.2", "10.0.0.3"])
        #expect(records.allSatisfy { $0["user_agent"] as? String == "no-agent" && $0["content"] == nil })
        #expect(p.stdout.isEmpty, "OnlyStdout: false with FileName: nothing on standard output")
    }

    @Test("§6.4 native JSON (KeepingSourceWhenParseSucceed) → flusher_file: content kept next to the fields; invalid JSON dropped")
    func incumbentExampleNativeJSON() throws {
        let s = E2EScenario("example-6.4")
        defer { s.cleanup() }
        let out = s.path("out/out.jsonl")
        s.writePipeline("json", IncumbentExamples.withFileFlusher(IncumbentExamples.rooted(IncumbentExamples.nativeJSON, s.root), output: out))
        try s.startAndWait()
        let deep = s.dir("root/test/a/b/c")
        writeFile(deep + "/dynamic_input.log", #"{"service":"billing","n":1}"# + "\n" + "not json\n" + #"{"service":"auth","ok":true}"# + "\n")
        writeFile(s.dir("root/test") + "/dynamic_input.log", #"{"other":"x"}"# + "\n")
        #expect(waitForLines(out, 3))
        sleepMs(settleMs)
        let lines = readLines(out)
        note("§6.4 output:\n" + lines.joined(separator: "\n"))
        let records = readJSONLines(out)
        #expect(records.count == 3)
        let byContent = Dictionary(records.map { (($0["content"] as? String) ?? "", $0) }, uniquingKeysWith: { a, _ in a })
        #expect(byContent[#"{"service":"billing","n":1}"#]?["service"] as? String == "billing")
        #expect(byContent[#"{"service":"auth","ok":true}"#]?["service"] as? String == "auth")
        #expect(byContent[#"{"other":"x"}"#]?["other"] as? String == "x")
        #expect(byContent["not json"] == nil, "a line that fails to parse is dropped (KeepingSourceWhenParseFail is false)")
        #expect(records.allSatisfy { ($0["__path__"] as? String)?.hasSuffix("/dynamic_input.log") == true })
    }

    @Test("§6.1 Java logback → flusher_file: split_log_regex, split_char twice (rest in _split_preserve_), add_fields; with Multiline a stack trace stays in its record")
    func incumbentExampleJavaLogback() throws {
        let s = E2EScenario("example-6.1")
        defer { s.cleanup() }
        let out = s.path("out/out.jsonl")
        let dir = s.dir("home/tomcat/logs/app")
        let yaml = IncumbentExamples.withFileFlusher(IncumbentExamples.rooted(IncumbentExamples.javaLogback, s.root), output: out)
        s.writePipeline("java", yaml)
        try s.startAndWait()
        let log = [
            "2024-01-02 10:00:00.123|u1|INFO|get|com.example.A:12|main|started|",
            "2024-01-02 10:00:01.456|u2|ERROR|get|com.example.A:20|main|failed|java.lang.NullPointerException",
            "\tat com.example.A.get(A.java:20)",
            "2024-01-02 10:00:02.789|u3|INFO|get|com.example.B:7|worker-1|done|none|extra|more",
        ]
        writeFile(dir + "/app.2024-01-02.ing", log.map { $0 + "\n" }.joined())
        // As in LoongCollector, input_file without Multiline hands one line per event, so the
        // split has nothing to split: 4 events, the stack trace line on its own.
        #expect(waitForLines(out, 4))
        sleepMs(settleMs)
        let lines = readLines(out)
        note("§6.1 output:\n" + lines.joined(separator: "\n"))
        let records = readJSONLines(out)
        #expect(records.count == 4)
        if records.count == 4 {
            // A trailing `|` gives no empty last part in processor_split_char: no `exception`.
            #expect(lines[0].hasPrefix(#"{"timestamp":"2024-01-02 10:00:00.123","uuid":"u1","level":"INFO","method":"get","thread":"main","message":"started","class":"com.example.A","line":"12","service":"logtail-example-app","__path__":"#), "\(lines[0])")
            #expect(records[1]["exception"] as? String == "java.lang.NullPointerException")
            #expect(records[2]["timestamp"] as? String == "\tat com.example.A.get(A.java:20)", "a line without `|` fills the first key only")
            #expect(records[3]["exception"] as? String == "none" && records[3]["_split_preserve_"] as? String == "extra|more")
            #expect(records.allSatisfy { $0["service"] as? String == "logtail-example-app" && $0["content"] == nil && $0["class_line"] == nil })
        }

        // The same pipeline with the record's start as the input's Multiline StartPattern: the
        // stack trace joins its record and lands in `exception`.
        let joined = s.path("out/joined.jsonl")
        let withMultiline = IncumbentExamples.withFileFlusher(IncumbentExamples.rooted(IncumbentExamples.javaLogback, s.root), output: joined)
            .replacingOccurrences(of: "app.*.ing\n", with: "app.*.ing\n    Multiline:\n      StartPattern: '\\d+-\\d+-\\d+\\s\\d+:\\d+:\\d+\\.\\d+\\|.*'\n    FlushTimeoutSecs: 1\n")
        s.removePipeline("java")
        s.writePipeline("java-ml", withMultiline)
        #expect(waitForLines(joined, 3, timeout: 30))
        sleepMs(settleMs)
        let jl = readJSONLines(joined)
        note("§6.1 with Multiline:\n" + readLines(joined).joined(separator: "\n"))
        #expect(jl.count == 3)
        #expect(jl.first { $0["uuid"] as? String == "u2" }?["exception"] as? String == "java.lang.NullPointerException\n\tat com.example.A.get(A.java:20)")
    }
}

/// The lines of a file (without their newlines).
func readLines(_ path: String) -> [String] {
    String(decoding: readFileRegion(path), as: UTF8.self).split(separator: "\n").map(String.init)
}
