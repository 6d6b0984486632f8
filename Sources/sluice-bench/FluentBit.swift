// --fluent-bit PATH: Fluent Bit's equivalent of each scenario, run on the same warm inputs, into the same
// receivers, verified the same way. `tail` reads the files from their start (no DB: no checkpoint file), the
// unparsed line under `content` (`Key content`); `file` writes `Format plain` (one JSON object per record, the same
// shape the verifier reads from Sluice's flusher_file). Stock buffers (Buffer_Chunk_Size / Buffer_Max_Size 32k),
// Flush 1 s, Grace 1 s.

/// Fluent Bit's regex multiline parser of the `multiline` scenario: a line starting with a date opens a record,
/// any other line continues it.
let fluentBitMultilineParser = """
[MULTILINE_PARSER]
    name          java_bench
    type          regex
    flush_timeout 1000
    rule      "start_state"   "/^\\d{4}-\\d{2}-\\d{2} /"          "cont"
    rule      "cont"          "/^(?!\\d{4}-\\d{2}-\\d{2} )/"      "cont"

"""

/// The nginx pattern with named groups (Onigmo), the tail kept as `content` as in the Sluice scenario.
let fluentBitNginxRegex = #"^(?<ip>[^ ]*) (?<ident>[^ ]*) (?<auth>[^ ]*) \[(?<timestamp>[^\]]*)\] "(?<method>\S+) (?<request>[^\"]*) (?<http_version>\S*)" (?<response_code>[^ ]*) (?<bytes>[^ ]*) "(?<referrer>[^\"]*)" "(?<user_agent>[^\"]*)" (?<content>.*)$"#

/// Fluent Bit has no delimiter parser: the CSV lines through a regex (a quoted agent keeps its quotes).
let fluentBitCSVRegex = #"^(?<ip>[^,]*),(?<user>[^,]*),(?<time>[^,]*),(?<method>[^,]*),(?<path>[^,]*),(?<protocol>[^,]*),(?<status>[^,]*),(?<bytes>[^,]*),(?<referer>[^,]*),(?<agent>"[^"]*"|[^,]*),(?<content>.*)$"#

func fluentBitConfig(_ spec: ScenarioSpec, _ ds: Dataset, inDir: String, outDir: String, port: Int)
    -> (main: String, parsers: String)? {
    guard spec.fluentBit else { return nil }
    var parsers = ""
    var service = ""
    var input = """
    [INPUT]
        Name              tail
        Path              \(inDir)/*.log
        Read_from_Head    On
        Refresh_Interval  1
        Key               content

    """
    switch spec.name {
    case "plain-file", "plain-blackhole", "many-files", "http", "elasticsearch", "loki", "loki-json", "otlp":
        break
    case "http-buffer":
        // Fluent Bit's disk buffer: filesystem chunks, with fsync and checksums on (its defaults have
        // neither), so it keeps what it buffers as Sluice's does.
        input += "    storage.type      filesystem\n"
        service += "    storage.path      \(outDir)/fb-storage\n    storage.sync      full\n    storage.checksum  on\n"
    case "multiline":
        parsers += fluentBitMultilineParser
        input += "    multiline.parser  java_bench\n"
    case "json":
        parsers += "[PARSER]\n    Name   json_bench\n    Format json\n\n"
        input += "    Parser            json_bench\n"
    case "nginx-regex":
        parsers += "[PARSER]\n    Name   nginx_bench\n    Format regex\n    Regex  \(fluentBitNginxRegex)\n\n"
        input += "    Parser            nginx_bench\n"
    case "delimiter":
        parsers += "[PARSER]\n    Name   csv_bench\n    Format regex\n    Regex  \(fluentBitCSVRegex)\n\n"
        input += "    Parser            csv_bench\n"
    case "timestamp":
        parsers += "[PARSER]\n    Name   csv_bench\n    Format regex\n    Regex  \(fluentBitCSVRegex)\n"
            + "    Time_Key    time\n    Time_Format %d/%b/%Y:%H:%M:%S %z\n    Time_Keep   On\n\n"
        input += "    Parser            csv_bench\n"
    default:
        return nil
    }
    if ds.spec.format != nil { return nil }
    let output: String
    switch spec.flusher {
    case .file:
        output = """
        [OUTPUT]
            Name    file
            Match   *
            Path    \(outDir)
            File    out.jsonl
            Format  plain

        """
    case .blackhole:
        output = "[OUTPUT]\n    Name  null\n    Match *\n"
    case .http:
        output = """
        [OUTPUT]
            Name    http
            Match   *
            Host    127.0.0.1
            Port    \(port)
            URI     /
            Format  json_lines

        """
    case .elasticsearch:
        output = """
        [OUTPUT]
            Name                es
            Match               *
            Host                127.0.0.1
            Port                \(port)
            Index               bench
            Suppress_Type_Name  On

        """
    case .loki:
        output = """
        [OUTPUT]
            Name         loki
            Match        *
            Host         127.0.0.1
            Port         \(port)
            Labels       job=bench
            line_format  json

        """
    case .otlp:
        output = """
        [OUTPUT]
            Name         opentelemetry
            Match        *
            Host         127.0.0.1
            Port         \(port)
            Logs_uri     /v1/logs

        """
    default:
        return nil
    }
    let main = """
    [SERVICE]
        Flush        1
        Grace        1
        Log_Level    warn
    \(service)
    """ + input + "\n" + output
    return (main, parsers.isEmpty ? "[PARSER]\n    Name dummy_bench\n    Format json\n" : parsers)
}
