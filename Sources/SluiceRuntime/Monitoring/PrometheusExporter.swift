import CoreMetrics
import Prometheus
import SluiceSystem
import Synchronization

/// The daemon's one metrics registry. Components count through swift-metrics (bootstrapped onto
/// this registry), so their counters land here with their labels; the gauges of the daemon's
/// state are set from a fresh sample at each scrape, and series that are gone (a stopped
/// pipeline's) are dropped. `render` gives the Prometheus text format.
public final class PrometheusExporter: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let gauges = Mutex<[String: Prometheus.Gauge]>([:])
    private let cpu: Prometheus.Counter
    private let cpuSeen = Mutex<Double>(0)

    public init() {
        registry = PrometheusCollectorRegistry()
        cpu = registry.makeCounter(descriptor: MetricNameDescriptor(
            metricName: "process_cpu_seconds_total", unitName: "", helpText: "User and system CPU time of the Sluice process."))
        let info = registry.makeGauge(descriptor: MetricNameDescriptor(
            metricName: "sluice_build_info", unitName: "", helpText: "Always 1; the version is a label."), labels: [("version", sluiceRuntimeVersion)])
        info.set(1.0)
    }

    /// Makes swift-metrics counters (every `MetricCount`) land in this registry. Once per process,
    /// before any component is built.
    public func bootstrap() {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    }

    /// The exposition text after setting every gauge from `samples`.
    public func render(_ samples: [GaugeSample]) -> [UInt8] {
        update(samples)
        return registry.emitToBuffer()
    }

    func update(_ samples: [GaugeSample]) {
        let now = ProcessUsage.cpuSeconds()
        let delta = cpuSeen.withLock { seen -> Double in
            defer { seen = max(seen, now) }
            return max(0, now - seen)
        }
        if delta > 0 { cpu.increment(by: delta) }
        gauges.withLock { known in
            var current: [String: Prometheus.Gauge] = [:]
            for s in samples {
                let key = s.key
                let g = known[key] ?? registry.makeGauge(
                    descriptor: MetricNameDescriptor(metricName: s.name, unitName: "", helpText: GaugeSample.help[s.name] ?? ""),
                    labels: s.labels)
                g.set(s.value)
                current[key] = g
            }
            for (key, g) in known where current[key] == nil { registry.unregisterGauge(g) }
            known = current
        }
    }
}

/// The version `sluice version` prints (the executable passes the same string).
public let sluiceRuntimeVersion = "0.1.0"
