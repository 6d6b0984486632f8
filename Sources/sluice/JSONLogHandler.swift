import Glibc
import Logging
import SluiceCore
import SluiceSystem

/// `--log-format json`: each of Sluice's own log lines as one JSON object on stderr —
/// `{"time":"2026-12-06T05:00:00.123456Z","level":"info","logger":"sluice","message":"...",` then the
/// metadata as string fields (`"pipeline":"app"`, ...)`}` — for log pipelines that parse JSON.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?,
             source: String, file: String, function: String, line: UInt) {
        var all = metadata
        if let p = metadataProvider { all.merge(p.get(), uniquingKeysWith: { _, new in new }) }
        if let m = explicit { all.merge(m, uniquingKeysWith: { _, new in new }) }
        let out = OutputBuffer(capacity: 256)
        func field(_ name: String, _ value: String, first: Bool = false) {
            out.append(first ? "{\"" : ",\"")
            append(name)
            out.append("\":\"")
            append(value)
            out.append("\"")
        }
        func append(_ s: String) {
            var s = s
            s.withUTF8 { JSONLineEncoder.appendEscaped($0.baseAddress ?? UnsafePointer(bitPattern: 1)!, $0.count, to: out) }
        }
        field("time", RFC3339.format(unixNanos: Sys.wallNanos()), first: true)
        field("level", level.rawValue)
        field("logger", label)
        field("message", message.description)
        for (k, v) in all.sorted(by: { $0.key < $1.key }) where !["time", "level", "logger", "message"].contains(k) {
            field(k, "\(v)")
        }
        out.append("}\n")
        _ = Sys.writeAll(2, UnsafeRawBufferPointer(out.bytes))
    }
}
