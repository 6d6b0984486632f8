import Testing
import SluiceConfig

/// A small catalog shaped like the real plugins (the real specs live in the plugin modules).
let testCatalog = PluginCatalog([
    PluginSpec(type: "input_file", kind: .input, summary: "Tails files.", fields: [
        FieldSpec("FilePaths", .stringList, doc: "Paths to read; `*` and `**` allowed."),
        FieldSpec("ExcludeFilePaths", .stringList, doc: "Paths never read."),
        FieldSpec("MaxDirSearchDepth", .int, doc: "How deep `**` goes.", default: "0"),
        FieldSpec("TailSizeKB", .int, doc: "Read at most this much of an existing file.", default: "1024"),
        FieldSpec("FlushTimeoutSecs", .double, doc: "Flush an incomplete line after this.", default: "60"),
        FieldSpec("FileEncoding", .string, doc: "utf8 | gbk | utf16", default: "utf8"),
        FieldSpec("TailingAllMatchedFiles", .bool, doc: "Also read files that existed before.", default: "false"),
        FieldSpec("EnableContainerDiscovery", .bool, doc: "Find files inside containers.",
                  status: .acceptedNotYetEffective(reason: "container discovery arrives in a later release")),
        FieldSpec("ContainerFilters", .object(fields: [
            FieldSpec("K8sNamespaceRegex", .string, doc: "Namespace regex."),
            FieldSpec("IncludeEnv", .stringMap, doc: "Env vars to match."),
        ]), doc: "Which containers."),
        FieldSpec("Multiline", .object(fields: [
            FieldSpec("Mode", .string, doc: "custom | JSON", default: "custom"),
            FieldSpec("StartPattern", .string, doc: "Regex of a first line."),
        ]), doc: "Multiline grouping."),
        FieldSpec("Tags", .object(fields: [], allowUnknown: true), doc: "Free-form tags."),
        FieldSpec("Ports", .intList, doc: "Some integers."),
    ]),
    PluginSpec(type: "input_container_stdio", kind: .input, summary: "Container stdout.", fields: [
        FieldSpec("IgnoringStdout", .bool, doc: "Skip stdout.", default: "false"),
    ]),
    PluginSpec(type: "input_mock", kind: .input, summary: "Generates events.", fields: [
        FieldSpec("Rate", .int, doc: "Events per second."),
    ]),
    PluginSpec(type: "processor_parse_json_native", kind: .processor, summary: "Parses JSON.", fields: [
        FieldSpec("SourceKey", .string, doc: "The field to parse.", default: "content"),
    ]),
    PluginSpec(type: "flusher_stdout", kind: .flusher, summary: "Prints events.", fields: [
        FieldSpec("OnlyStdout", .bool, doc: "Never stderr."),
    ]),
    PluginSpec(type: "flusher_http", kind: .flusher, summary: "Sends over HTTP.", fields: [
        FieldSpec("RemoteURL", .string, doc: "Where to send.", aliases: ["Endpoint"]),
        FieldSpec("Headers", .stringMap, doc: "Extra headers."),
        FieldSpec("Retry", .objectList(fields: [
            FieldSpec("MaxRetryTimes", .int, doc: "How often."),
        ]), doc: "Retry policies."),
        FieldSpec("Codes", .intList, doc: "Status codes."),
        FieldSpec("Match", .any, doc: "Routing condition."),
    ]),
    PluginSpec(type: "flusher_custom", kind: .flusher, summary: "Anything goes.", fields: [], allowsUnknownFields: true),
])

/// Parses `yaml` and returns the error descriptions, or [] when it loads.
func errorLines(_ text: String, file: String = "/etc/sluice/pipelines/app.yaml") -> [String] {
    do {
        _ = try PipelineLoader.parse(text: text, file: file, catalog: testCatalog)
        return []
    } catch {
        return error.errors.map(\.description)
    }
}

/// Parses `yaml`, which must be valid.
func load(_ text: String, file: String = "/etc/sluice/pipelines/app.yaml") throws -> PipelineDocument {
    try PipelineLoader.parse(text: text, file: file, catalog: testCatalog)
}

/// The usual tail of a valid document, for tests about other parts.
let minimalFlushers = """
    flushers:
      - Type: flusher_stdout
    """
