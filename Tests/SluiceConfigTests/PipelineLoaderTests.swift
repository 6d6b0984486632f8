import Foundation
import Testing
import SluiceConfig
import SluiceSystem

@Suite("Valid documents")
struct ValidDocumentTests {
    @Test func validYAMLDocument() throws {
        let text = """
            enable: true
            inputs:
              - Type: input_file
                FilePaths:
                  - /var/log/app/*.log
                TailSizeKB: 2048
                FlushTimeoutSecs: 5
                FileEncoding: utf8
                ContainerFilters:
                  IncludeEnv:
                    APP: ""
                    TIER: 3
                    EMPTY:
                Multiline:
                  Mode: custom
                  StartPattern: '\\d+'
            processors:
              - Type: processor_parse_json_native
                SourceKey: content
            flushers:
              - Type: flusher_http
                Endpoint: http://localhost:9200
                Headers: {X-A: 1, X-B: b}
                Retry:
                  - MaxRetryTimes: 3
                Codes: [200, 204]
                Match: {Type: event_type, Condition: log}
              - Type: flusher_stdout
            """
        let doc = try load(text)
        #expect(doc.name == "app")
        #expect(doc.file == "/etc/sluice/pipelines/app.yaml")
        #expect(doc.enable)
        #expect(doc.global == nil)
        #expect(doc.warnings.isEmpty)
        #expect(doc.contentHash == PipelineFiles.contentHash(Array(text.utf8)))
        #expect(doc.aggregators.isEmpty)

        let input = try #require(doc.inputs.first)
        #expect(doc.inputs.count == 1)
        #expect(input.type == "input_file")
        #expect(input.index == 0)
        #expect(input.config.keyPath == "inputs[0]")
        #expect(input.config.keys == ["Type", "FilePaths", "TailSizeKB", "FlushTimeoutSecs", "FileEncoding", "ContainerFilters", "Multiline"])
        #expect(try input.config.stringList("FilePaths") == ["/var/log/app/*.log"])
        #expect(try input.config.int("TailSizeKB") == 2048)
        #expect(try input.config.double("FlushTimeoutSecs") == 5.0)
        // Not a finite number: an error at its key (an infinite wait would trap the conversion to nanoseconds).
        for v in [".inf", "-.inf", ".nan", "1e400"] {
            let c = try ConfigObject.parse(yaml: "FlushTimeoutSecs: \(v)", file: "t.yaml")
            #expect(throws: ConfigError.self, "FlushTimeoutSecs: \(v)") { try c.double("FlushTimeoutSecs") }
        }
        #expect(try input.config.string("FileEncoding") == "utf8")
        #expect(try input.config.int("MaxDirSearchDepth") == nil)
        #expect(!input.config.has("MaxDirSearchDepth"))

        let filters = try #require(try input.config.object("ContainerFilters"))
        #expect(filters.keyPath == "inputs[0].ContainerFilters")
        let pairs = try #require(try filters.stringPairs("IncludeEnv"))
        #expect(pairs.map(\.0) == ["APP", "TIER", "EMPTY"])
        #expect(pairs.map(\.1) == ["", "3", ""])
        #expect(try filters.stringMap("IncludeEnv") == ["APP": "", "TIER": "3", "EMPTY": ""])
        let multiline = try #require(try input.config.object("Multiline"))
        #expect(try multiline.string("StartPattern") == "\\d+")

        #expect(doc.processors.map(\.type) == ["processor_parse_json_native"])
        #expect(doc.flushers.map(\.type) == ["flusher_http", "flusher_stdout"])
        let http = doc.flushers[0].config
        // Written under the alias Endpoint, read under the field's name.
        #expect(try http.string("RemoteURL") == "http://localhost:9200")
        #expect(try http.string("Endpoint") == "http://localhost:9200")
        #expect(http.keyPath(of: "RemoteURL") == "flushers[0].Endpoint")
        #expect(try http.stringMap("Headers") == ["X-A": "1", "X-B": "b"])
        #expect(try http.intList("Codes") == [200, 204])
        let retries = try #require(try http.objectList("Retry"))
        #expect(retries.map(\.keyPath) == ["flushers[0].Retry[0]"])
        #expect(try retries[0].int("MaxRetryTimes") == 3)
        #expect(http.node("Match")?.entries?.map(\.key) == ["Type", "Condition"])
        #expect(doc.flushers[1].index == 1)
        #expect(doc.flushers[1].config.keyPath == "flushers[1]")
    }

    @Test func validJSONDocumentWithTabsAndNoSpaces() throws {
        let text = "{\n\t\"enable\": false,\n\t\"inputs\":[{\"Type\":\"input_file\",\"FilePaths\":[\"\\/a\\/*.log\", \"caf\\u00e9\"],\"TailSizeKB\":10}],\n\t\"flushers\": [\n\t\t{\"Type\": \"flusher_stdout\", \"OnlyStdout\": true}\n\t]\n}\n"
        let doc = try load(text, file: "conf/app.json")
        #expect(doc.name == "app")
        #expect(doc.enable == false)
        #expect(try doc.inputs[0].config.stringList("FilePaths") == ["/a/*.log", "café"])
        #expect(try doc.inputs[0].config.int("TailSizeKB") == 10)
        #expect(try doc.flushers[0].config.bool("OnlyStdout") == true)
        #expect(doc.flushers[0].config.location == SourceLocation(line: 5, column: 3))
    }

    @Test func jsonErrorsHaveLineAndColumn() {
        let text = "{\n  \"inputs\": [{\"Type\": \"input_file\", \"TailSizeKB\": \"10\"}],\n  \"flushers\": [{\"Type\": \"flusher_stdout\"}]\n}\n"
        #expect(errorLines(text, file: "app.json") == [
            "app.json:2:51: inputs[0].TailSizeKB: expected an integer, found \"10\" (a quoted string; write the number without quotes)",
        ])
    }

    @Test func nullValuesAreAbsent() throws {
        let doc = try load("""
            enable:
            inputs:
              - Type: input_file
                FilePaths: [/a.log]
                TailSizeKB: ~
                MaxDirSearchDepth:
            processors:
            \(minimalFlushers)
            """)
        #expect(doc.enable)
        #expect(doc.processors.isEmpty)
        let config = doc.inputs[0].config
        #expect(!config.has("TailSizeKB"))
        #expect(try config.int("TailSizeKB") == nil)
        #expect(!config.has("MaxDirSearchDepth"))
        #expect(config.keys == ["Type", "FilePaths"])
    }

    @Test func unknownFieldsAllowedWhereTheSpecSaysSo() throws {
        let doc = try load("""
            inputs:
              - Type: input_file
                FilePaths: [/a.log]
                Tags: {team: core, level: 3}
            flushers:
              - Type: flusher_custom
                Anything: [1, 2]
                Nested: {a: b}
            """)
        #expect(doc.flushers[0].config.keys == ["Type", "Anything", "Nested"])
        #expect(try doc.inputs[0].config.object("Tags")?.string("level") == "3")
    }

    @Test func disabledPipelineIsStillValidated() {
        #expect(errorLines("""
            enable: false
            inputs:
              - Type: input_file
                FilePath: [/a.log]
            \(minimalFlushers)
            """) == ["app.yaml:4:5: inputs[0].FilePath: unknown key (did you mean FilePaths?)"])
    }

    @Test func stringFieldsAcceptScalarsAsText() throws {
        let doc = try load("""
            inputs:
              - Type: input_file
                FilePaths: [/a.log, 42, true]
                FileEncoding: 8
            flushers:
              - Type: flusher_http
                RemoteURL: 9200
            """)
        #expect(try doc.inputs[0].config.stringList("FilePaths") == ["/a.log", "42", "true"])
        #expect(try doc.inputs[0].config.string("FileEncoding") == "8")
        #expect(try doc.flushers[0].config.string("RemoteURL") == "9200")
    }
}

@Suite("Errors")
struct ErrorTests {
    @Test func unknownKeyWithSuggestion() {
        let text = """
            enable: true
            global:
              StructureType: v2
            inputs:
              - Type: input_file
                FilePaths: [/var/log/*.log]
                FilePath: /var/log/app.log
            flushers:
              - Type: flusher_stdout
            """
        #expect(errorLines(text) == ["app.yaml:7:5: inputs[0].FilePath: unknown key (did you mean FilePaths?)"])
        // The structured error carries the same facts.
        do {
            _ = try PipelineLoader.parse(text: text, file: "/etc/sluice/pipelines/app.yaml", catalog: testCatalog)
            Issue.record("expected errors")
        } catch {
            #expect(error.errors == [ConfigError(file: "/etc/sluice/pipelines/app.yaml", line: 7, column: 5,
                                                 keyPath: "inputs[0].FilePath",
                                                 message: "unknown key (did you mean FilePaths?)")])
            #expect(error.description == "app.yaml:7:5: inputs[0].FilePath: unknown key (did you mean FilePaths?)")
        }
    }

    @Test func unknownKeyWithoutSuggestion() {
        #expect(errorLines("""
            inputs:
              - Type: input_mock
                Rate: 1
                Colour: blue
            \(minimalFlushers)
            """) == ["app.yaml:4:5: inputs[0].Colour: unknown key"])
    }

    @Test func caseInsensitiveSuggestion() {
        #expect(errorLines("""
            inputs:
              - Type: input_file
                filepaths: [/a.log]
            \(minimalFlushers)
            """) == ["app.yaml:3:5: inputs[0].filepaths: unknown key (did you mean FilePaths?)"])
    }

    @Test func unknownPluginType() {
        #expect(errorLines("""
            inputs:
              - Type: input_fille
            flushers:
              - Type: flusher_stdout
            """) == [
                "app.yaml:2:11: inputs[0].Type: unknown input type \"input_fille\" (did you mean input_file? known: input_container_stdio, input_file, input_mock)",
            ])
        #expect(errorLines("""
            inputs:
              - Type: kafka
            flushers:
              - Type: flusher_stdout
            """) == [
                "app.yaml:2:11: inputs[0].Type: unknown input type \"kafka\" (known: input_container_stdio, input_file, input_mock)",
            ])
    }

    @Test func pluginTypeInTheWrongSection() {
        #expect(errorLines("""
            inputs:
              - Type: input_mock
            flushers:
              - Type: processor_parse_json_native
            """) == [
                "app.yaml:4:11: flushers[0].Type: unknown flusher type \"processor_parse_json_native\" (known: flusher_custom, flusher_http, flusher_stdout); processor_parse_json_native is a processor, it belongs under processors",
            ])
    }

    @Test func badPluginEntries() {
        #expect(errorLines("""
            inputs:
              - input_file
              - FilePaths: [/a.log]
              - type: input_file
              - Type: 5
            processors: {Type: processor_parse_json_native}
            \(minimalFlushers)
            """) == [
                "app.yaml:2:5: inputs[0]: expected a mapping with Type, found \"input_file\"",
                "app.yaml:3:5: inputs[1]: missing Type (known input types: input_container_stdio, input_file, input_mock)",
                "app.yaml:4:5: inputs[2].type: unknown key (did you mean Type?)",
                "app.yaml:5:11: inputs[3].Type: expected a plugin type name, found 5",
                "app.yaml:6:13: processors: expected a list of processor plugins, found a mapping (a single mapping; write it as a list item, starting with \"- \")",
            ])
    }

    @Test func wrongValueTypes() {
        let text = """
            inputs:
              - Type: input_file
                FilePaths: /var/log/app.log
                TailSizeKB: abc
                MaxDirSearchDepth: "10"
                FlushTimeoutSecs: soon
                TailingAllMatchedFiles: yes
                ExcludeFilePaths: {a: b}
                Ports: [1, two, 3.5]
                FileEncoding: [utf8]
            flushers:
              - Type: flusher_stdout
            """
        #expect(errorLines(text) == [
            "app.yaml:3:16: inputs[0].FilePaths: expected a list of strings, found \"/var/log/app.log\" (a single value; write it as a list: [\"/var/log/app.log\"])",
            "app.yaml:4:17: inputs[0].TailSizeKB: expected an integer, found \"abc\"",
            "app.yaml:5:24: inputs[0].MaxDirSearchDepth: expected an integer, found \"10\" (a quoted string; write the number without quotes)",
            "app.yaml:6:23: inputs[0].FlushTimeoutSecs: expected a number, found \"soon\"",
            "app.yaml:7:29: inputs[0].TailingAllMatchedFiles: expected true or false, found yes (write true or false)",
            "app.yaml:8:23: inputs[0].ExcludeFilePaths: expected a list of strings, found a mapping",
            "app.yaml:9:16: inputs[0].Ports[1]: expected an integer, found \"two\"",
            "app.yaml:9:21: inputs[0].Ports[2]: expected an integer, found 3.5",
            "app.yaml:10:19: inputs[0].FileEncoding: expected a string, found a list",
        ])
    }

    @Test func moreWrongValueTypes() {
        #expect(errorLines("""
            enable: "no"
            inputs:
              - Type: input_file
                FilePaths: [/a.log, [nested], ~]
                TailSizeKB: 99999999999999999999999
                ContainerFilters: [a]
            flushers:
              - Type: flusher_http
                Headers: [a, b]
                Retry: {MaxRetryTimes: 1}
                Codes: 200
            """) == [
                "app.yaml:1:9: enable: expected true or false, found \"no\"",
                "app.yaml:4:25: inputs[0].FilePaths[1]: expected a string, found a list",
                "app.yaml:4:35: inputs[0].FilePaths[2]: expected a string, found null",
                "app.yaml:5:17: inputs[0].TailSizeKB: integer out of range: 99999999999999999999999",
                "app.yaml:6:23: inputs[0].ContainerFilters: expected a mapping, found a list",
                "app.yaml:9:14: flushers[0].Headers: expected a mapping of strings, found a list",
                "app.yaml:10:12: flushers[0].Retry: expected a list of mappings, found a mapping (a single mapping; write it as a list item, starting with \"- \")",
                "app.yaml:11:12: flushers[0].Codes: expected a list of integers, found 200 (a single value; write it as a list: [200])",
            ])
    }

    @Test func nestedUnknownKeysHaveFullPaths() {
        #expect(errorLines("""
            inputs:
              - Type: input_file
                FilePaths: [/a.log]
                ContainerFilters:
                  K8sNamespaceRgx: ^prod$
                  IncludeEnv:
                    A: [x]
                    io.k8s.name: [y]
            flushers:
              - Type: flusher_http
                Retry:
                  - MaxRetryTimes: 3
                  - MaxRetryTime: 4
                  - oops
            """) == [
                "app.yaml:5:7: inputs[0].ContainerFilters.K8sNamespaceRgx: unknown key (did you mean K8sNamespaceRegex?)",
                "app.yaml:7:12: inputs[0].ContainerFilters.IncludeEnv.A: expected a string, found a list",
                "app.yaml:8:22: inputs[0].ContainerFilters.IncludeEnv[\"io.k8s.name\"]: expected a string, found a list",
                "app.yaml:13:9: flushers[0].Retry[1].MaxRetryTime: unknown key (did you mean MaxRetryTimes?)",
                "app.yaml:14:9: flushers[0].Retry[2]: expected a mapping, found \"oops\"",
            ])
    }

    @Test func allErrorsOfAFileAreCollectedInDocumentOrder() {
        #expect(errorLines("""
            enabled: true
            inputs:
              - Type: input_file
                FilePaths: [/a.log]
                TailSizeKb: 10
            processors:
              - SourceKey: x
            flushers:
              - Type: flusher_stdout
                OnlyStdout: "yes"
            outputs: []
            Pipeline: x
            """) == [
                "app.yaml:1:1: enabled: unknown key (did you mean enable?)",
                "app.yaml:5:5: inputs[0].TailSizeKb: unknown key (did you mean TailSizeKB?)",
                "app.yaml:7:5: processors[0]: missing Type (known processor types: processor_parse_json_native)",
                "app.yaml:10:17: flushers[0].OnlyStdout: expected true or false, found \"yes\"",
                "app.yaml:11:1: outputs: unknown key (did you mean flushers?)",
                "app.yaml:12:1: Pipeline: unknown key (allowed: enable, global, inputs, processors, aggregators, flushers)",
            ])
    }

    /// The incumbent's `version` loads with a warning; its `extensions` are errors that say what
    /// Sluice takes instead (a flusher run without its ext_basicauth credentials would be refused).
    @Test func versionWarnsAndExtensionsSayWhatToUseInstead() throws {
        let doc = """
            version: v2
            inputs:
              - Type: input_file
                FilePaths: [/a.log]
            flushers:
              - Type: flusher_stdout
            """
        #expect(try load(doc).warnings.map(\.description) == ["app.yaml:1:1: version: has no effect in Sluice"])
        #expect(try load(doc + "\nextensions: []\n").warnings.count == 1)
        #expect(errorLines(doc + """

            extensions:
              - Type: ext_basicauth
                Username: u
              - Type: ext_default_encoder/prometheus
              - Type: ext_request_breaker
            """) == [
                "app.yaml:8:5: extensions[0]: extension ext_basicauth is not supported: put its Username and Password in the flusher's Authentication.PlainText",
                "app.yaml:10:5: extensions[1]: extension ext_default_encoder/prometheus is not supported: Sluice's flushers encode by their Convert",
                "app.yaml:11:5: extensions[2]: extension ext_request_breaker is not supported: Sluice has no extensions",
            ])
    }

    @Test func missingAndEmptySections() {
        #expect(errorLines("enable: false\n") == [
            "app.yaml: inputs: a pipeline needs at least one input",
            "app.yaml: flushers: a pipeline needs at least one flusher",
        ])
        #expect(errorLines("inputs: []\nflushers:\n") == [
            "app.yaml:1:9: inputs: a pipeline needs at least one input",
            "app.yaml:2:1: flushers: a pipeline needs at least one flusher",
        ])
    }

    @Test func exclusiveInputs() {
        #expect(errorLines("""
            inputs:
              - Type: input_mock
              - Type: input_file
                FilePaths: [/a.log]
              - Type: input_container_stdio
            \(minimalFlushers)
            """) == [
                "app.yaml:3:5: inputs[1]: input_file must be the only input of its pipeline (found 3 inputs)",
                "app.yaml:5:5: inputs[2]: input_container_stdio must be the only input of its pipeline (found 3 inputs)",
            ])
        // Two non-exclusive inputs are fine.
        #expect(errorLines("""
            inputs:
              - Type: input_mock
              - Type: input_mock
            \(minimalFlushers)
            """) == [])
    }

    @Test func fieldWrittenUnderNameAndAlias() {
        #expect(errorLines("""
            inputs:
              - Type: input_mock
            flushers:
              - Type: flusher_http
                RemoteURL: http://a
                Endpoint: http://b
            """) == ["app.yaml:6:5: flushers[0].Endpoint: same field as RemoteURL; write it only once"])
    }

    @Test func emptyFileAndNonMappingTopLevel() {
        let emptyMessage = "app.yaml: the file is empty; a pipeline needs inputs and flushers"
        #expect(errorLines("") == [emptyMessage])
        #expect(errorLines("# only a comment\n\n") == [emptyMessage])
        #expect(errorLines("- a\n- b\n") == ["app.yaml:1:1: the top level must be a mapping (with inputs and flushers), found a list"])
        #expect(errorLines("hello\n") == ["app.yaml:1:1: the top level must be a mapping (with inputs and flushers), found \"hello\""])
        #expect(errorLines("[]", file: "x.json") == ["x.json:1:1: the top level must be a mapping (with inputs and flushers), found a list"])
    }

    @Test func duplicateKeysAreAllReportedWithPaths() {
        #expect(errorLines("""
            inputs:
              - Type: input_file
                FilePaths: [/a.log]
                TailSizeKB: 1
                TailSizeKB: 2
                Colour: red
            flushers:
              - Type: flusher_stdout
            flushers:
              - Type: flusher_stdout
            """) == [
                "app.yaml:5:5: inputs[0].TailSizeKB: duplicate key (first defined at line 4, column 5)",
                "app.yaml:6:5: inputs[0].Colour: unknown key",
                "app.yaml:9:1: flushers: duplicate key (first defined at line 7, column 1)",
            ])
    }

    @Test func duplicateKeysInJSONOnOneLine() {
        let text = #"{"inputs":[{"Type":"input_mock","Type":"input_mock"}],"flushers":[{"Type":"flusher_stdout"}]}"#
        #expect(errorLines(text, file: "app.json") == [
            "app.json:1:33: inputs[0].Type: duplicate key (first defined at line 1, column 13)",
        ])
    }

    @Test func duplicateKeyRepeatedThreeTimes() {
        #expect(errorLines("""
            inputs:
              - Type: input_mock
                Rate: 1
                Rate: 2
                Rate: 3
            \(minimalFlushers)
            """) == [
                "app.yaml:4:5: inputs[0].Rate: duplicate key (first defined at line 3, column 5)",
                "app.yaml:5:5: inputs[0].Rate: duplicate key (first defined at line 3, column 5)",
            ])
    }

    @Test func duplicateKeyThatCannotBeRenamedIsStillReported() {
        // The first key is written with an escape, so its text is not the key: reported as Yams found it.
        #expect(errorLines("\"T\\u0079pe\": x\n\"Type\": y\n") == [
            "app.yaml:1:1: duplicate key \"Type\" (each key may appear only once in a mapping)",
        ])
    }

    @Test func controlCharactersAreRefused() {
        #expect(errorLines("inputs:\n  - Type: input_mock\u{01}\n") == [
            "app.yaml:2:21: invalid YAML: control characters are not allowed",
        ])
    }

    @Test func yamlSyntaxErrors() {
        #expect(errorLines("""
            inputs:
              - Type: input_file
                FilePaths: [/a.log
            flushers:
              - Type: flusher_stdout
            """) == [
                "app.yaml:4:9: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence at line 3, column 16)",
            ])
        #expect(errorLines("inputs:\n\t- Type: input_mock\n") == [
            "app.yaml:2:1: invalid YAML: found character that cannot start any token (while scanning for the next token at line 2, column 1)",
        ])
        #expect(errorLines("inputs: [\n", file: "/x/app.yaml") == [
            "app.yaml:2:1: invalid YAML: did not find expected node content (while parsing a flow node at line 2, column 1)",
        ])
    }

    @Test func jsonSyntaxError() {
        #expect(errorLines("{\n  \"inputs\": [}\n}\n", file: "app.json") == [
            "app.json:2:14: invalid JSON: did not find expected node content (while parsing a flow node at line 2, column 14)",
        ])
    }

    @Test func multipleDocumentsAreRefused() {
        #expect(errorLines("inputs: []\n---\nflushers: []\n") == [
            "app.yaml:2:1: invalid YAML: but found another document (expected a single document in the stream at line 1, column 1)",
        ])
    }
}

@Suite("Warnings")
struct WarningTests {
    @Test func notYetEffectiveFieldsAndGlobalKeys() throws {
        let doc = try load("""
            global:
              StructureType: v2
              InputIntervalMS: 5
              Foo: 1
            inputs:
              - Type: input_file
                FilePaths: [/a.log]
                EnableContainerDiscovery: true
            flushers:
              - Type: flusher_stdout
            """)
        #expect(doc.warnings.map(\.description) == [
            "app.yaml:2:3: global.StructureType: has no effect in Sluice",
            "app.yaml:3:3: global.InputIntervalMS: unknown global key, ignored (did you mean InputIntervalMs?)",
            "app.yaml:4:3: global.Foo: unknown global key, ignored",
            "app.yaml:8:5: inputs[0].EnableContainerDiscovery: accepted but has no effect yet: container discovery arrives in a later release",
        ])
        #expect(doc.global?.keys == ["StructureType", "InputIntervalMS", "Foo"])
        #expect(try doc.global?.string("StructureType") == "v2")
    }

    @Test func pipelineMetaTagKeyIsReadNotWarnedAbout() throws {
        let doc = try load("""
            global:
              PipelineMetaTagKey:
                HOST_NAME: host
                HOST_IP: __default__
                HOST_ID: x
                HOSTNAME: y
            inputs:
              - Type: input_file
                FilePaths: [/a.log]
            flushers:
              - Type: flusher_stdout
            """)
        #expect(doc.warnings.map(\.description).sorted() == [
            "app.yaml:3:5: global.PipelineMetaTagKey: HOSTNAME: unknown logical key, ignored (known: HOST_NAME, HOST_IP)",
            "app.yaml:3:5: global.PipelineMetaTagKey: HOST_ID: the incumbent's enterprise build only; no tag is added",
        ])
        let keys = doc.metaTagKeys
        #expect(keys.tagName("HOST_NAME") == "host" && keys.tagName("HOST_IP") == "__host_ip__")
        #expect(keys.tags(hostname: "n1", hostIP: { "10.0.0.1" }).map { "\($0.name)=\($0.value)" } == ["host=n1", "__host_ip__=10.0.0.1"])
        // The incumbent's rules: "" leaves a tag out, __default__ keeps its name, an absent key its
        // default (HOST_NAME added; HOST_IP, unlike the open-source incumbent, not).
        #expect(PipelineMetaTagKeys(names: ["HOST_NAME": ""]).tagName("HOST_NAME") == nil)
        #expect(PipelineMetaTagKeys(names: ["HOST_NAME": "__default__"]).tagName("HOST_NAME") == "__hostname__")
        #expect(PipelineMetaTagKeys().tags(hostname: "n1", hostIP: { Issue.record("IP looked up"); return nil }).map(\.name) == ["__hostname__"])
        #expect(PipelineMetaTagKeys(names: ["HOST_IP": "ip"]).tags(hostname: "n1", hostIP: { nil }).map { "\($0.name)=\($0.value)" } == ["__hostname__=n1", "ip="])
    }

    @Test func pipelineMetaTagKeyMustBeAMapOfStrings() {
        #expect(errorLines("""
            global:
              PipelineMetaTagKey: [HOST_NAME]
            inputs:
              - Type: input_mock
            \(minimalFlushers)
            """).count == 1)
    }

    @Test func globalMustBeAMapping() {
        #expect(errorLines("""
            global: [a]
            inputs:
              - Type: input_mock
            \(minimalFlushers)
            """) == ["app.yaml:1:9: global: expected a mapping, found a list"])
    }
}

@Suite("ConfigObject")
struct ConfigObjectTests {
    @Test func errorsAtKeys() throws {
        let doc = try load("""
            inputs:
              - Type: input_file
                FilePaths: [/a.log]
                TailSizeKB: 99999999
            \(minimalFlushers)
            """)
        let config = doc.inputs[0].config
        #expect(config.error(at: "TailSizeKB", "must be at most 1 GiB").description
            == "app.yaml:4:17: inputs[0].TailSizeKB: must be at most 1 GiB")
        #expect(config.error(at: nil, "needs FilePaths or a container").description
            == "app.yaml:2:5: inputs[0]: needs FilePaths or a container")
        #expect(config.error(at: "MaxDirSearchDepth", "required").description
            == "app.yaml:2:5: inputs[0].MaxDirSearchDepth: required")
    }

    @Test func typedAccessorsCheckTypes() throws {
        let object = try ConfigObject.parse(yaml: """
            Name: x
            Count: "3"
            Flag: yes
            List: a
            Map: {k: [1]}
            Ratio: 0.5
            Whole: 2
            Items: [{A: 1}, 2]
            """, file: "/tmp/t.yaml", keyPath: "inputs[0]")
        #expect(object.keys == ["Name", "Count", "Flag", "List", "Map", "Ratio", "Whole", "Items"])
        #expect(try object.string("Name") == "x")
        #expect(try object.double("Ratio") == 0.5)
        #expect(try object.double("Whole") == 2.0)
        #expect(throws: ConfigError(file: "/tmp/t.yaml", line: 2, column: 8, keyPath: "inputs[0].Count",
                                    message: "expected an integer, found \"3\" (a quoted string; write the number without quotes)")) {
            try object.int("Count")
        }
        #expect(throws: ConfigError(file: "/tmp/t.yaml", line: 3, column: 7, keyPath: "inputs[0].Flag",
                                    message: "expected true or false, found yes (write true or false)")) {
            try object.bool("Flag")
        }
        #expect(throws: ConfigError(file: "/tmp/t.yaml", line: 4, column: 7, keyPath: "inputs[0].List",
                                    message: "expected a list of strings, found \"a\" (a single value; write it as a list: [\"a\"])")) {
            try object.stringList("List")
        }
        #expect(throws: ConfigError(file: "/tmp/t.yaml", line: 5, column: 10, keyPath: "inputs[0].Map.k",
                                    message: "expected a string, found a list")) {
            try object.stringMap("Map")
        }
        #expect(throws: ConfigError(file: "/tmp/t.yaml", line: 6, column: 8, keyPath: "inputs[0].Ratio",
                                    message: "expected an integer, found 0.5")) {
            try object.int("Ratio")
        }
        #expect(throws: ConfigError(file: "/tmp/t.yaml", line: 8, column: 17, keyPath: "inputs[0].Items[1]",
                                    message: "expected a mapping, found 2")) {
            try object.objectList("Items")
        }
        #expect(throws: ConfigError(file: "/tmp/t.yaml", line: 1, column: 7, keyPath: "inputs[0].Name",
                                    message: "expected a mapping, found \"x\"")) {
            try object.object("Name")
        }
    }

    @Test func parseRefusesNonMappings() {
        #expect(throws: ConfigErrors([ConfigError(file: "<memory>", line: 1, column: 1, keyPath: "",
                                                  message: "expected a mapping, found a list")])) {
            try ConfigObject.parse(yaml: "[1]")
        }
    }

    @Test func pluginSpecCheckWorksOnAStandaloneObject() throws {
        let object = try ConfigObject.parse(yaml: "Type: input_file\nFilePaths: x\nEnableContainerDiscovery: false\n",
                                            file: "t.yaml", keyPath: "inputs[0]")
        let spec = try #require(testCatalog.spec(kind: .input, type: "input_file"))
        let (errors, warnings) = spec.check(object)
        #expect(errors.map(\.description) == [
            "t.yaml:2:12: inputs[0].FilePaths: expected a list of strings, found \"x\" (a single value; write it as a list: [\"x\"])",
        ])
        #expect(warnings.map(\.description) == [
            "t.yaml:3:1: inputs[0].EnableContainerDiscovery: accepted but has no effect yet: container discovery arrives in a later release",
        ])
    }
}

@Suite("Files")
struct FileTests {
    @Test func isPipelineFile() {
        #expect(PipelineFiles.isPipelineFile("app.yaml"))
        #expect(PipelineFiles.isPipelineFile("/etc/sluice/b.yml"))
        #expect(PipelineFiles.isPipelineFile("c.json"))
        #expect(PipelineFiles.isPipelineFile("D.YAML"))
        #expect(!PipelineFiles.isPipelineFile(".hidden.yaml"))
        #expect(!PipelineFiles.isPipelineFile("/x/.app.yaml.swp"))
        #expect(!PipelineFiles.isPipelineFile("app.yaml~"))
        #expect(!PipelineFiles.isPipelineFile("app.yaml.swp"))
        #expect(!PipelineFiles.isPipelineFile("app.txt"))
        #expect(!PipelineFiles.isPipelineFile("yaml"))
        #expect(!PipelineFiles.isPipelineFile(".yaml"))
        #expect(!PipelineFiles.isPipelineFile("/x/"))
    }

    @Test func pipelineNames() {
        #expect(PipelineFiles.pipelineName(of: "/x/app.yaml") == "app")
        #expect(PipelineFiles.pipelineName(of: "my.app.json") == "my.app")
        #expect(PipelineFiles.pipelineName(of: "b.YML") == "b")
    }

    @Test func loadReadsTheFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-config-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("web.yaml").path
        let text = "inputs:\n  - Type: input_mock\nflushers:\n  - Type: flusher_stdout\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))

        let doc = try PipelineLoader.load(file: path, catalog: testCatalog)
        #expect(doc.name == "web")
        #expect(doc.file == path)
        #expect(doc.contentHash == PipelineFiles.contentHash(Array(text.utf8)))

        // A change of content changes the hash.
        try Data((text + "# edited\n").utf8).write(to: URL(fileURLWithPath: path))
        let changed = try PipelineLoader.load(file: path, catalog: testCatalog)
        #expect(changed.contentHash != doc.contentHash)

        // Invalid UTF-8.
        let binary = directory.appendingPathComponent("bin.yaml").path
        try Data([0x66, 0xFF, 0xFE, 0x0A]).write(to: URL(fileURLWithPath: binary))
        #expect(throws: ConfigErrors([ConfigError(file: binary, message: "the file is not valid UTF-8 text")])) {
            try PipelineLoader.load(file: binary, catalog: testCatalog)
        }
    }

    @Test func loadReportsAMissingFile() {
        #expect(throws: ConfigErrors([ConfigError(file: "/nonexistent/missing.yaml",
                                                  message: "cannot read the file: No such file or directory")])) {
            try PipelineLoader.load(file: "/nonexistent/missing.yaml", catalog: testCatalog)
        }
    }

    @Test func contentHashIsFNV1a64() {
        #expect(PipelineFiles.contentHash([UInt8]()) == 0xcbf2_9ce4_8422_2325)
        #expect(PipelineFiles.contentHash(Array("a".utf8)) == 0xaf63_dc4c_8601_ec8c)
    }
}
