import SluiceConfig
import SluiceCore

/// `flusher_blackhole`: discards every batch, delivering it at once. For benchmarks and tests.
public final class FlusherBlackhole: FlusherPlugin {
    public static let spec = PluginSpec(type: "flusher_blackhole", kind: .flusher, summary: "Discards events, acknowledging them (benchmarks, tests).", fields: [
        FlusherRoute.matchField,
    ])

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> NoOptions { NoOptions() }

    /// What a discarded request stood for (counted as sent).
    public struct Request: FlushRequest {
        public var byteCount: Int
        public var eventCount: Int
    }

    public let delivery = DeliveryOptions(maxBytes: 8 << 20, concurrency: 1)

    public init(options: NoOptions, context: PluginContext) {}
    public init() {}

    public func start() async throws {}
    public func makeRequest(_ batches: [EventBatch]) async throws(FlushError) -> Request {
        Request(byteCount: batches.reduce(0) { $0 + $1.inputBytes }, eventCount: batches.reduce(0) { $0 + $1.events.count })
    }
    public func send(_ request: Request) async -> SendOutcome<Request> { .delivered }
    public func stop() async {}
}
