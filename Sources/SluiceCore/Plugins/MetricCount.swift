import CoreMetrics
import Synchronization

/// One counter kept twice: an atomic that the stats file and the tests read, and its swift-metrics
/// twin that the metrics backend the daemon bootstrapped (Prometheus) exports. Both move together
/// in `add`, so `/metrics` and the stats file never disagree.
public final class MetricCount: Sendable {
    public let name: String
    private let value = Atomic<Int>(0)
    private let counter: Counter

    public init(_ name: String, dimensions: [(String, String)]) {
        self.name = name
        counter = Counter(label: name, dimensions: dimensions)
    }

    public func add(_ n: Int) {
        guard n != 0 else { return }
        value.add(n, ordering: .relaxed)
        counter.increment(by: n)
    }

    public var current: Int { value.load(ordering: .relaxed) }
}
