import Testing
import SluiceConfig

@Suite("Global parameters")
struct GlobalParametersTests {
    @Test func defaults() throws {
        let (parameters, warnings) = try GlobalParameters.from(environment: ["PATH": "/usr/bin"])
        #expect(parameters == GlobalParameters())
        #expect(warnings.isEmpty)
        #expect(parameters.cpuUsageLimit == 2.0)
        #expect(parameters.memUsageLimitMB == 2048)
        #expect(parameters.maxBytesPerSec == 0)
        #expect(parameters.sendRequestConcurrency == 15)
        #expect(parameters.processThreadCount == 1)
        #expect(parameters.dockerConfigUpdateIntervalSec == 1)
        #expect(parameters.maxDockerConfigUpdateTimes == 10)
        #expect(parameters.forceReleaseDeletedFileFdTimeoutSec == -1)
        #expect(parameters.maxReadBufferSize == 524_288)
        #expect(parameters.checkpointFlushIntervalMs == 200)
    }

    @Test func specsMatchTheDefaults() throws {
        #expect(GlobalParameters.specs.map(\.name) == [
            "cpu_usage_limit", "mem_usage_limit", "max_bytes_per_sec", "send_request_concurrency",
            "process_thread_count", "docker_config_update_interval", "max_docker_config_update_times",
            "force_release_deleted_file_fd_timeout", "max_read_buffer_size", "checkpoint_flush_interval_ms",
        ])
        let supported = GlobalParameters.specs.filter { $0.status == .supported }.map(\.name)
        #expect(Set(supported) == ["max_read_buffer_size", "force_release_deleted_file_fd_timeout",
                                   "checkpoint_flush_interval_ms", "max_bytes_per_sec", "mem_usage_limit",
                                   "docker_config_update_interval", "cpu_usage_limit", "send_request_concurrency", "process_thread_count"])
        // Every default in the table parses to the value of a fresh GlobalParameters.
        let environment = Dictionary(uniqueKeysWithValues: GlobalParameters.specs.map { ($0.name, $0.defaultValue) })
        #expect(try GlobalParameters.from(environment: environment).0 == GlobalParameters())
        #expect(GlobalParameters.specs.allSatisfy { !$0.doc.isEmpty })
    }

    @Test func goodValues() throws {
        let (parameters, warnings) = try GlobalParameters.from(environment: [
            "mem_usage_limit": "1024",
            "max_read_buffer_size": " 65536 ",
            "cpu_usage_limit": "1.5",
            "process_thread_count": "4",
            "force_release_deleted_file_fd_timeout": "30",
            "max_bytes_per_sec": "1048576",
            "checkpoint_flush_interval_ms": "",
            "HOME": "/root",
        ])
        #expect(parameters.memUsageLimitMB == 1024)
        #expect(parameters.maxReadBufferSize == 65536)
        #expect(parameters.cpuUsageLimit == 1.5)
        #expect(parameters.processThreadCount == 4)
        #expect(parameters.forceReleaseDeletedFileFdTimeoutSec == 30)
        #expect(parameters.maxBytesPerSec == 1_048_576)
        #expect(parameters.checkpointFlushIntervalMs == 200)  // empty counts as unset
        #expect(warnings == [])
    }

    @Test func badValues() {
        #expect(throws: ConfigError(file: "environment", keyPath: "max_read_buffer_size",
                                    message: "expected an integer, found \"512KB\"")) {
            try GlobalParameters.from(environment: ["max_read_buffer_size": "512KB"])
        }
        #expect(throws: ConfigError(file: "environment", keyPath: "cpu_usage_limit",
                                    message: "expected a number, found \"two\"")) {
            try GlobalParameters.from(environment: ["cpu_usage_limit": "two"])
        }
        #expect(throws: ConfigError(file: "environment", keyPath: "force_release_deleted_file_fd_timeout",
                                    message: "-5 is out of range (-1 to 2147483647)")) {
            try GlobalParameters.from(environment: ["force_release_deleted_file_fd_timeout": "-5"])
        }
        #expect(throws: ConfigError(file: "environment", keyPath: "mem_usage_limit",
                                    message: "99999999999999999999999 is out of range (16 to 1048576)")) {
            try GlobalParameters.from(environment: ["mem_usage_limit": "99999999999999999999999"])
        }
        #expect(throws: ConfigError(file: "environment", keyPath: "checkpoint_flush_interval_ms",
                                    message: "expected an integer, found \"1.5\"")) {
            try GlobalParameters.from(environment: ["checkpoint_flush_interval_ms": "1.5"])
        }
        do {
            _ = try GlobalParameters.from(environment: ["process_thread_count": "0"])
            Issue.record("expected an error")
        } catch {
            #expect(error.description == "environment: process_thread_count: 0 is out of range (1 to 1024)")
        }
    }

    @Test func markdownTable() {
        let table = GlobalParameters.markdownTable()
        let lines = table.split(separator: "\n")
        #expect(lines.count == 2 + GlobalParameters.specs.count)
        #expect(lines[0] == "| name | default | unit | status | description |")
        #expect(table.contains("| `max_read_buffer_size` | `524288` | bytes | supported | Size of a file reader's buffer, and so the largest single event; longer lines are split. |"))
        #expect(table.contains("| `process_thread_count` | `1` | — | supported | Threads that run each pipeline's processors. "))
        #expect(table.contains("| `max_docker_config_update_times` | `10` | — | accepted, no effect yet: "))
    }
}

@Suite("Docs and helpers")
struct HelperTests {
    @Test func pluginMarkdown() throws {
        let spec = try #require(testCatalog.spec(kind: .input, type: "input_file"))
        let text = spec.markdown()
        #expect(text.hasPrefix("### input_file (input)\n\nTails files.\n\n| field | type | default | description |\n| --- | --- | --- | --- |\n"))
        #expect(text.contains("| `FilePaths` | list of strings | — | Paths to read; `*` and `**` allowed. |"))
        #expect(text.contains("| `TailSizeKB` | integer | `1024` | Read at most this much of an existing file. |"))
        #expect(text.contains("| `FileEncoding` | string | `utf8` | utf8 \\| gbk \\| utf16 |"))
        #expect(text.contains("| `ContainerFilters.K8sNamespaceRegex` | string | — | Namespace regex. |"))
        #expect(text.contains("| `EnableContainerDiscovery` | boolean | — | Find files inside containers. **Accepted, no effect yet:** container discovery arrives in a later release. |"))

        let http = try #require(testCatalog.spec(kind: .flusher, type: "flusher_http"))
        #expect(http.markdown().contains("| `RemoteURL` | string | — | Where to send. Also accepted as `Endpoint`. |"))
        #expect(http.markdown().contains("| `Retry[].MaxRetryTimes` | integer | — | How often. |"))
        let field = try #require(http.field("Endpoint"))
        #expect(field.name == "RemoteURL")
        #expect(field.markdown() == "| `RemoteURL` | string | — | Where to send. Also accepted as `Endpoint`. |")

        let custom = try #require(testCatalog.spec(kind: .flusher, type: "flusher_custom"))
        #expect(custom.markdown() == "### flusher_custom (flusher)\n\nAnything goes.\n\nNo parameters besides `Type`.\n\nOther keys are accepted and passed to the plugin as they are.\n")
    }

    @Test func catalogLookups() {
        #expect(testCatalog.types(of: .input) == ["input_file", "input_container_stdio", "input_mock"])
        #expect(testCatalog.spec(kind: .flusher, type: "input_file") == nil)
        #expect(testCatalog.spec(kind: .input, type: "input_file")?.summary == "Tails files.")
        #expect(PluginKind.aggregator.sectionKey == "aggregators")
    }

    @Test func suggestions() {
        #expect(Suggestions.closest(to: "FilePath", in: ["Type", "FilePaths", "ExcludeFilePaths"]) == "FilePaths")
        #expect(Suggestions.closest(to: "filepaths", in: ["FilePaths"]) == "FilePaths")
        #expect(Suggestions.closest(to: "K8sNamespaceRgx", in: ["K8sPodRegex", "K8sNamespaceRegex"]) == "K8sNamespaceRegex")
        #expect(Suggestions.closest(to: "Foo", in: ["Bar", "Type"]) == nil)
        #expect(Suggestions.closest(to: "Max", in: ["MaxDirSearchDepth"]) == "MaxDirSearchDepth")
        #expect(Suggestions.closest(to: "TailSizeKBytes", in: ["TailSizeKB"]) == "TailSizeKB")
        #expect(Suggestions.levenshtein("kitten", "sitting") == 3)
        #expect(Suggestions.levenshtein("", "abc") == 3)
    }

    @Test func errorDescriptions() {
        #expect(ConfigError(file: "/a/b/app.yaml", line: 7, column: 5, keyPath: "inputs[0].FilePath", message: "unknown key").description
            == "app.yaml:7:5: inputs[0].FilePath: unknown key")
        #expect(ConfigError(file: "/a/b/app.yaml", keyPath: "inputs", message: "missing").description == "app.yaml: inputs: missing")
        #expect(ConfigError(file: "app.yaml", line: 3, message: "bad").description == "app.yaml:3: bad")
        #expect(ConfigError(file: "app.yaml", message: "empty").description == "app.yaml: empty")
        let errors = ConfigErrors([
            ConfigError(file: "a.yaml", line: 1, column: 1, message: "one"),
            ConfigError(file: "a.yaml", line: 2, column: 1, keyPath: "k", message: "two"),
        ])
        #expect(errors.description == "a.yaml:1:1: one\na.yaml:2:1: k: two")
    }

    @Test func keyPaths() {
        #expect(KeyPath.appending("inputs", to: "") == "inputs")
        #expect(KeyPath.appending(index: 2, to: "inputs") == "inputs[2]")
        #expect(KeyPath.appending("FilePaths", to: "inputs[2]") == "inputs[2].FilePaths")
        #expect(KeyPath.appending("io.kubernetes.pod.name", to: "x.IncludeK8sLabel") == "x.IncludeK8sLabel[\"io.kubernetes.pod.name\"]")
        #expect(KeyPath.appending("", to: "m") == "m[\"\"]")
    }
}

@Suite struct EnvTagTests {
    @Test func namedVariablesBecomeTagsInOrder() throws {
        let (g, warnings) = try GlobalParameters.from(environment: [
            "ALIYUN_LOG_ENV_TAGS": "_pod_name_| _pod_ip_ ||_pod_name_|_node_ip_", "_pod_name_": "p", "_pod_ip_": "10.0.0.1"])
        #expect(g.envTags == [.init("_pod_name_", "p"), .init("_pod_ip_", "10.0.0.1"), .init("_node_ip_", "")])
        #expect(warnings == ["ALIYUN_LOG_ENV_TAGS names _node_ip_, which is not set; its tag is empty"])
    }

    @Test func loongNameWinsAndEmptyMeansNone() throws {
        let (g, _) = try GlobalParameters.from(environment: ["LOONG_ENV_TAGS": "a", "ALIYUN_LOG_ENV_TAGS": "b", "a": "1", "b": "2"])
        #expect(g.envTags == [.init("a", "1")])
        let (h, _) = try GlobalParameters.from(environment: ["LOONG_ENV_TAGS": "", "ALIYUN_LOG_ENV_TAGS": "b", "b": "2"])
        #expect(h.envTags == [.init("b", "2")])
        let (none, w) = try GlobalParameters.from(environment: [:])
        #expect(none.envTags.isEmpty && w.isEmpty)
    }
}
