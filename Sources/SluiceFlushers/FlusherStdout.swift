import Glibc
import SluiceConfig
import SluiceCore

/// `flusher_stdout`: writes one JSON object per event per line to standard output.
public final class FlusherStdout: FlusherPlugin, WriterFlusher {
    public static let spec = PluginSpec(
        type: "flusher_stdout", kind: .flusher,
        summary: "Writes events as JSON lines to standard output.",
        fields: [
            FieldSpec(name: "OnlyStdout", type: .bool, doc: "Write to standard output. Sluice always does; the key is accepted for iLogtail configs.", defaultValue: "true"),
            FieldSpec(name: "Tags", type: .bool, doc: "iLogtail: print tags. Sluice always prints the batch tags as fields.", defaultValue: "true",
                      status: .acceptedNotYetEffective(reason: "tags are always written")),
            FieldSpec(name: "KeyValuePairs", type: .bool, doc: "iLogtail: print key=value pairs instead of JSON.", defaultValue: "false",
                      status: .acceptedNotYetEffective(reason: "output is always JSON lines")),
            FieldSpec(name: "Match", type: .any, doc: "iLogtail routing condition for this flusher.", defaultValue: nil,
                      status: .acceptedNotYetEffective(reason: "routing is not implemented yet: every flusher receives every event")),
            FieldSpec(name: "FileName", type: .string, doc: "iLogtail: write to this file instead. Use flusher_file.", defaultValue: nil,
                      status: .acceptedNotYetEffective(reason: "use flusher_file to write to a file")),
        ])

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> NoOptions { NoOptions() }

    public let writer: ThreadedWriter
    /// One request per read batch at most (`max_read_buffer_size`), so a crash re-delivers at most
    /// one batch; requests in order, the next encoded while the current one is written.
    public let delivery: DeliveryOptions

    public convenience init(options: NoOptions, context: PluginContext) {
        self.init(fd: 1, maxRequestBytes: context.globals.maxReadBufferSize)
    }

    /// Writes to `fd` instead of standard output (tests).
    public init(fd: Int32, maxRequestBytes: Int = 512 * 1024) {
        writer = ThreadedWriter(name: "flusher_stdout", target: DescriptorTarget(fd: fd, label: "standard output"))
        delivery = DeliveryOptions(maxBytes: maxRequestBytes, concurrency: 1)
    }

    public func start() async throws {}

}

