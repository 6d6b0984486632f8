#if canImport(Glibc)
import Glibc
#endif
import SluiceConfig
import SluiceCore

/// `flusher_stdout`: writes one JSON object per event per line to standard output.
public actor FlusherStdout: Flusher {
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

    let context: PluginContext
    let fd: Int32
    private var writer = ResumableWriter()
    private let encoder = JSONLineEncoder()

    public init(context: PluginContext, fd: Int32 = 1) {
        self.context = context
        self.fd = fd
    }

    public func start() async throws {}

    public func flush(_ batch: EventBatch) async throws {
        if !writer.hasPending {
            writer.reset()
            encoder.encode(batch, into: writer.buffer)
        }
        do {
            try writer.drain(to: fd)
        } catch {
            throw FlushError("cannot write to standard output: \(error)")
        }
        context.metrics.bytesOut.add(writer.buffer.count, ordering: .relaxed)
        writer.reset()
    }

    public func stop() async {}
}

/// `flusher_blackhole`: discards every batch (acknowledging it). For benchmarks and tests.
public final class FlusherBlackhole: Flusher {
    public static let spec = PluginSpec(type: "flusher_blackhole", kind: .flusher, summary: "Discards events, acknowledging them (benchmarks, tests).", fields: [
        FieldSpec(name: "Match", type: .any, doc: "iLogtail routing condition for this flusher.", defaultValue: nil,
                  status: .acceptedNotYetEffective(reason: "routing is not implemented yet: every flusher receives every event")),
    ])
    public init() {}
    public func start() async throws {}
    public func flush(_ batch: EventBatch) async throws {}
    public func stop() async {}
}
