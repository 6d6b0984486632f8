import SluiceConfig
import SluiceCore
import SluiceRuntime

/// Runs processors the way a pipeline does, for golden tests: each processor's options are read
/// from YAML through the registry (the same validation `sluice validate` does), the lines become
/// one batch, and the result is the JSON lines `flusher_file` would write (tags and `__time__`
/// left out unless `tags` are given).
public struct ProcessorHarness {
    public let processors: [(any Processor, ComponentMetrics)]

    /// `yaml` is a list of processor configs, as under `processors:` in a pipeline file.
    public init(_ yaml: String, registry: PluginRegistry = .standard) throws {
        let doc = "inputs:\n  - Type: input_file\n    FilePaths: [/tmp/x.log]\nprocessors:\n" + yaml + "\nflushers:\n  - Type: flusher_blackhole\n"
        let validated = try registry.validate(bytes: Array(doc.utf8), file: "test.yaml", globals: GlobalParameters())
        var out: [(any Processor, ComponentMetrics)] = []
        for p in validated.processors {
            let ctx = testContext(kind: .processor, type: p.type)
            guard let made = try p.makeProcessor(context: ctx) else { continue }
            out.append((made, ctx.metrics))
        }
        processors = out
    }

    /// The batch after every processor.
    public func batch(_ lines: [String], tags: [EventTag] = [], observedNanos: Int64 = 1_700_000_000_000_000_000) -> EventBatch {
        batch(bytes: lines.map { Array($0.utf8) }, tags: tags, observedNanos: observedNanos)
    }

    /// The batch of lines given as bytes (a String cannot hold invalid UTF-8) after every processor.
    public func batch(bytes lines: [[UInt8]], tags: [EventTag] = [], observedNanos: Int64 = 1_700_000_000_000_000_000) -> EventBatch {
        var arena: [UInt8] = []
        var events: [LogEvent] = []
        for l in lines {
            events.append(LogEvent(content: Span(arena.count, l.count)))
            arena += l
        }
        var b = EventBatch(arena: arena, events: events, tags: tags, observedNanos: observedNanos, inputBytes: arena.count)
        for (p, m) in processors {
            m.receivedEvents.add(b.events.count)
            p.process(&b)
            m.sentEvents.add(b.events.count)
        }
        return b
    }

    /// The JSON lines of the batch after every processor, without the trailing `__time__`.
    public func run(_ lines: [String], tags: [EventTag] = []) -> [String] {
        run(bytes: lines.map { Array($0.utf8) }, tags: tags)
    }

    /// `run` of lines given as bytes.
    public func run(bytes lines: [[UInt8]], tags: [EventTag] = []) -> [String] {
        encode(batch(bytes: lines, tags: tags)).map { line in
            var bytes = Array(line.utf8)
            let marker = Array(",\"__time__\":".utf8)
            guard bytes.count >= marker.count else { return line }
            for start in stride(from: bytes.count - marker.count, through: 0, by: -1) where Array(bytes[start..<start + marker.count]) == marker {
                bytes.removeSubrange(start..<bytes.count)
                return String(decoding: bytes, as: UTF8.self) + "}"
            }
            return line
        }
    }

    /// What `flusher_file` writes for `batch`, one string per line.
    public func encode(_ batch: EventBatch) -> [String] {
        let out = OutputBuffer(capacity: 1024)
        JSONLineEncoder().encode(batch, into: out)
        let text = String(decoding: UnsafeBufferPointer(start: out.base, count: out.count), as: UTF8.self)
        return text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    /// The metrics of processor `i`.
    public func metrics(_ i: Int = 0) -> ComponentMetrics { processors[i].1 }
}
