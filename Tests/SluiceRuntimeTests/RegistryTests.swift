import SluiceConfig
import SluiceCore
@testable import SluiceRuntime
import Testing

/// The registry: one entry per plugin type, specs that say what the code does.
@Suite struct RegistryTests {
    /// What each plugin needs besides defaults to be valid.
    static let required: [String: String] = [
        "input_file": "FilePaths: [/var/log/*.log]\n",
        "flusher_file": "FilePath: /tmp/out.jsonl\n",
        "flusher_http": "RemoteURL: http://127.0.0.1:1/\n",
        "flusher_elasticsearch": "Addresses: [http://127.0.0.1:9200]\nIndex: logs\n",
        "flusher_loki": "URL: http://127.0.0.1:3100/loki/api/v1/push\nStaticLabels: {job: sluice}\n",
        "flusher_clickhouse": "Addresses: [127.0.0.1:8123]\nTable: logs\n",
        "flusher_otlp": "Logs: {Endpoint: 127.0.0.1:4317}\n",
        "flusher_kafka_v2": "Brokers: [127.0.0.1:9092]\nTopic: logs\n",
        "flusher_kafka_native": "Brokers: [127.0.0.1:9092]\nTopic: logs\n",
        "processor_parse_regex_native": "SourceKey: content\nRegex: (.*)\nKeys: [a]\n",
        "processor_parse_json_native": "SourceKey: content\n",
        "processor_parse_delimiter_native": "SourceKey: content\nSeparator: \",\"\nKeys: [a, b]\n",
        "processor_parse_apsara_native": "SourceKey: content\n",
        "processor_parse_timestamp_native": "SourceKey: t\nSourceFormat: \"%Y\"\n",
        "processor_desensitize_native": "SourceKey: content\nMethod: md5\nContentPatternBeforeReplacedString: a\nReplacedContentPattern: b\n",
        "processor_regex": "Regex: (.*)\nKeys: [a]\n",
        "processor_json": "SourceKey: content\n",
        "processor_grok": "Match: ['%{WORD:w}']\n",
        "processor_strptime": "Format: \"%Y\"\n",
        "processor_add_fields": "Fields: {a: b}\n",
        "processor_drop": "DropKeys: [a]\n",
        "processor_rename": "SourceKeys: [a]\nDestKeys: [b]\n",
        "processor_split_char": "SplitKeys: [a]\n",
        "processor_split_string": "SplitKeys: [a]\n",
    ]

    struct Case: CustomTestStringConvertible, Sendable {
        var type: String
        var field: String
        var defaultText: String
        var testDescription: String { "\(type).\(field) = \(defaultText)" }
    }

    /// Every documented default of a scalar or list field.
    static var cases: [Case] {
        let r = PluginRegistry.standard
        var out: [Case] = []
        for e in Array(r.inputs.values) + Array(r.processors.values) + Array(r.flushers.values) {
            for f in e.spec.fields {
                guard let d = f.defaultValue, f.status == .supported else { continue }
                switch f.type {
                case .string, .int, .double, .bool, .stringList, .intList: out.append(Case(type: e.spec.type, field: f.name, defaultText: d))
                default: continue
                }
            }
        }
        return out.sorted { ($0.type, $0.field) < ($1.type, $1.field) }
    }

    /// Writing a field's documented default gives the same options as leaving it out: every
    /// default is stated once, in the code, and the docs say the same.
    @Test(arguments: cases)
    func documentedDefaultIsTheCodesDefault(_ c: Case) throws {
        let r = PluginRegistry.standard
        let entry = try #require(r.inputs[c.type] ?? r.processors[c.type] ?? r.flushers[c.type])
        let base = Self.required[c.type] ?? ""
        func options(_ yaml: String) throws -> String {
            let obj = try ConfigObject.parse(yaml: yaml.isEmpty ? "{}" : yaml, file: "t.yaml", fields: entry.spec.fields)
            return String(describing: try entry.options(obj, GlobalParameters()))
        }
        let value = c.defaultText.hasPrefix("[") || Double(c.defaultText) != nil || ["true", "false"].contains(c.defaultText)
            ? c.defaultText : "'" + c.defaultText.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "''") + "'"
        let implicit = try options(base)
        let explicit = try options(base + "\(c.field): \(value)\n")
        #expect(implicit == explicit, "\(c.type).\(c.field): documented default \(c.defaultText) differs from the code's")
    }

    @Test func everyPluginIsRegisteredUnderItsOwnTypeName() {
        let r = PluginRegistry.standard
        for (type, e) in r.inputs { #expect(e.spec.type == type && e.spec.kind == .input) }
        for (type, e) in r.flushers { #expect(e.spec.type == type && e.spec.kind == .flusher) }
        #expect(Set(r.inputs.keys) == ["input_file", "input_container_stdio", "service_docker_stdout"])
        #expect(Set(r.flushers.keys).isSuperset(of: ["flusher_file", "flusher_stdout", "flusher_blackhole", "flusher_http", "flusher_elasticsearch",
                                                      "flusher_loki", "flusher_clickhouse"]))
        #expect(r.flushers.keys.allSatisfy { $0.hasPrefix("flusher_") })
    }

    @Test func validateReturnsTypedOptionsAndEveryError() throws {
        let r = PluginRegistry.standard
        let good = try PipelineLoader.parse(text: "inputs:\n  - Type: input_file\n    FilePaths: [/a/*.log]\nflushers:\n  - Type: flusher_file\n    FilePath: /tmp/x\n    MaxFiles: 3\n",
                                            file: "good.yaml", catalog: r.catalog)
        let v = try r.validate(good, globals: GlobalParameters())
        #expect(v.inputs.count == 1 && v.flushers.count == 1)
        #expect("\(v.flushers[0].options)".contains("maxFiles: 3"))
        let bad = try PipelineLoader.parse(text: "inputs:\n  - Type: input_file\n    FilePaths: []\nflushers:\n  - Type: flusher_file\n    FilePath: /tmp/x\n    MaxFiles: 5000\n",
                                           file: "bad.yaml", catalog: r.catalog)
        #expect(throws: ConfigErrors.self) { try r.validate(bad, globals: GlobalParameters()) }
        do { _ = try r.validate(bad, globals: GlobalParameters()) } catch {
            #expect(error.errors.count == 2, "both plugins' errors are reported: \(error)")
            #expect(error.errors.map(\.keyPath).contains("flushers[0].MaxFiles"))
        }
    }
}
