#if canImport(Glibc)
import Glibc
#endif
import SluiceConfig
import SluiceCore

/// `flusher_stdout`: writes one JSON object per event per line to standard output.
public final class FlusherStdout: Flusher {
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
    let writer: ThreadedWriter

    public init(context: PluginContext, fd: Int32 = 1) {
        self.context = context
        writer = ThreadedWriter(name: "flusher_stdout", target: DescriptorTarget(fd: fd, label: "standard output"), logger: context.logger, metrics: context.metrics)
    }

    public func start() async throws {}

    public func flush(_ batch: EventBatch) async throws -> FlushResult {
        try await writer.submitJSONLines(batch)
    }

    public func stop(deadline: Double) async {
        await writer.finish(deadline: deadline)
    }
}

/// `flusher_blackhole`: discards every batch (acknowledging it). For benchmarks and tests.
public final class FlusherBlackhole: Flusher {
    public static let spec = PluginSpec(type: "flusher_blackhole", kind: .flusher, summary: "Discards events, acknowledging them (benchmarks, tests).", fields: [
        FieldSpec(name: "Match", type: .any, doc: "iLogtail routing condition for this flusher.", defaultValue: nil,
                  status: .acceptedNotYetEffective(reason: "routing is not implemented yet: every flusher receives every event")),
    ])
    public init() {}
    public func start() async throws {}
    public func flush(_ batch: EventBatch) async throws -> FlushResult { .delivered }
    public func stop(deadline: Double) async {}
}
