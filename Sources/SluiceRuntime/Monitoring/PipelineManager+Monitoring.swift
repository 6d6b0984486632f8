import SluiceContainers
import SluiceCore
import SluiceSystem

// What the daemon reports about itself: the gauges of `/metrics` and the stats file, `/readyz`,
// and what a drain could not deliver.
extension PipelineManager {
    /// The daemon's state now, one sample per series.
    public func gaugeSamples() -> [GaugeSample] {
        let (running, metrics, lastPersisted) = state.withLock { s in (s.running, s.metrics, s.lastPersisted) }
        var out: [GaugeSample] = [
            GaugeSample("process_resident_memory_bytes", [], Double(ProcessUsage.residentBytes())),
            GaugeSample("process_open_fds", [], Double(ProcessUsage.openDescriptors())),
            GaugeSample("pipelines_running", [], Double(running.count)),
            GaugeSample("resource_limit_paused", [("limit", "mem_usage_limit")], governor.isPausedForMemory ? 1 : 0),
            GaugeSample("resource_limit_paused", [("limit", "cpu_usage_limit")], governor.isPausedForCPU ? 1 : 0),
            GaugeSample("resource_limit_stale_releases", [], Double(governor.staleReleases.load(ordering: .relaxed))),
        ]
        let now = Sys.monotonicNanos()
        for (name, m) in metrics.sorted(by: { $0.key < $1.key }) where running[name] != nil {
            out.append(GaugeSample("files_open", [("pipeline", name)], Double(m.filesOpen)))
            if let t = lastPersisted[name] {
                out.append(GaugeSample("checkpoint_age_seconds", [("pipeline", name)], Double(now - t) / 1e9))
            }
        }
        for (_, r) in running.sorted(by: { $0.key < $1.key }) {
            for (id, bytes) in r.pipeline.queuedBytes {
                out.append(GaugeSample("component_queue_bytes", id.labels, Double(bytes)))
            }
            for case let (id, b)? in r.pipeline.buffers {
                let u = b.usage
                let l = id.labels
                out.append(GaugeSample("component_buffer_bytes", l, Double(u.bytes)))
                out.append(GaugeSample("component_buffer_events", l, Double(u.events)))
                out.append(GaugeSample("component_buffer_frames", l, Double(u.frames)))
                out.append(GaugeSample("component_buffer_segments", l, Double(u.segments)))
                out.append(GaugeSample("component_buffer_oldest_age_seconds", l, u.oldestWallNanos > 0 ? Double(Sys.wallNanos() - u.oldestWallNanos) / 1e9 : 0))
                out.append(GaugeSample("component_buffer_corrupt_frames", l, Double(b.corruptFrames.load(ordering: .relaxed))))
                out.append(GaugeSample("component_buffer_truncated_bytes", l, Double(b.truncatedBytes.load(ordering: .relaxed))))
                out.append(GaugeSample("component_buffer_dropped_events", l, Double(b.droppedEvents.load(ordering: .relaxed))))
                out.append(GaugeSample("component_buffer_fsyncs", l, Double(b.fsyncs.load(ordering: .relaxed))))
                out.append(GaugeSample("component_buffer_write_errors", l, Double(b.writeErrors.load(ordering: .relaxed))))
            }
            for c in r.pipeline.components where c.component.kind == "flusher" {
                let l = c.component.labels
                out.append(GaugeSample("component_buffered_events", l, Double(c.bufferedEvents.load(ordering: .relaxed))))
                out.append(GaugeSample("component_buffered_bytes", l, Double(c.bufferedBytes.load(ordering: .relaxed))))
                out.append(GaugeSample("component_in_flight_requests", l, Double(c.inFlight.load(ordering: .relaxed))))
            }
        }
        if discoveryIsStarted {
            var counts: [String: Int] = [:]
            for c in discovery.registry.snapshot() {
                counts["\(c.runtime.rawValue)\u{0}\(c.metadataLevel)", default: 0] += 1
            }
            for (key, n) in counts.sorted(by: { $0.key < $1.key }) {
                let parts = key.split(separator: "\u{0}", omittingEmptySubsequences: false)
                out.append(GaugeSample("containers_known", [("runtime", String(parts[0])), ("metadata_level", String(parts[1]))], Double(n)))
            }
            let synced = Set(discovery.registry.syncedSources)
            for source in discovery.sources {
                let kind = source.kind.rawValue
                out.append(GaugeSample("discovery_sources_synced", [("source", kind)], synced.contains(kind) ? 1 : 0))
            }
        }
        return out
    }

    /// Ready: the config was read and applied, every pipeline it defines runs, and container
    /// discovery (where a pipeline uses it) has completed a listing from at least one source.
    public func readiness() -> Readiness {
        let (reconciled, notRunning) = state.withLock { s in (s.reconciled, s.notRunning) }
        var reasons: [String] = []
        if !reconciled { reasons.append("the pipeline config has not been loaded yet") }
        for (name, why) in notRunning.sorted(by: { $0.key < $1.key }) { reasons.append("pipeline \(name) is not running: \(why)") }
        if discoveryIsStarted && discovery.registry.syncedSources.isEmpty {
            reasons.append("container discovery has not listed containers from any source yet (\(discovery.sources.map(\.kind.rawValue).joined(separator: ", ")))")
        }
        return Readiness(ready: reasons.isEmpty, reasons: reasons)
    }

    /// Files whose acknowledged position is short of their size now.
    func unreadFiles() -> [(path: String, position: Int64, size: Int64)] {
        let tables = state.withLock { $0.tables }
        var out: [(path: String, position: Int64, size: Int64)] = []
        for (_, t) in tables.sorted(by: { $0.key < $1.key }) {
            for e in t.entries {
                guard case .success(let st) = Sys.stat(e.path), st.dev == e.dev, st.inode == e.inode, st.size > e.offset else { continue }
                out.append((e.path, e.offset, st.size))
            }
        }
        return out
    }
}

/// A JSON number for a gauge (integers without a fraction).
func jsonNumber(_ v: Double) -> String {
    v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
}
