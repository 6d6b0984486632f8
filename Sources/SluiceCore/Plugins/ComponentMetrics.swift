import CoreMetrics
import Synchronization

/// Counters of one component, in the field's names (`component_received_events_total`, ...),
/// labelled with its `ComponentID`. Each counter is kept twice: an atomic that the stats file
/// reads, and a swift-metrics counter that whatever metrics backend the daemon bootstrapped
/// exports. Updated once per batch or request, never per event.
public final class ComponentMetrics: Sendable {
    public let component: ComponentID

    public let receivedEvents: Count
    public let receivedBytes: Count
    public let sentEvents: Count
    public let sentBytes: Count
    /// Requests by outcome.
    public let requestsDelivered: Count
    public let requestsRetried: Count
    public let requestsRejected: Count
    public let requestsPartial: Count
    /// Failed sends and failed builds.
    public let errors: Count
    /// Events given up at the shutdown deadline (read again on the next start).
    public let abandonedEvents: Count
    /// Values a processor could not parse (whatever then happened to the event).
    public let parseFailures: Count
    /// Multiline groups cut at `max_read_buffer_size` before their end was seen (an input's).
    public let multilineTruncatedGroups: Count
    /// A runtime log's partial records joined past `MaxLogSize` (emitted in parts), and its lines
    /// that were not runtime records (passed on as stdout content) (an input's).
    public let containerLogOversizedJoins: Count
    public let containerLogUnparsedLines: Count
    /// Requests being sent right now.
    public let inFlight = Atomic<Int>(0)
    /// Events and input bytes a flusher holds: taken from its queue and not finished yet (being
    /// gathered into a request, sent, or waiting for a retry).
    public let bufferedEvents = Atomic<Int>(0)
    public let bufferedBytes = Atomic<Int>(0)
    private let discarded: Mutex<[String: Count]>

    public typealias Count = MetricCount

    let dimensions: [(String, String)]

    public init(component: ComponentID) {
        self.component = component
        let d = component.labels
        dimensions = d
        receivedEvents = Count("component_received_events_total", dimensions: d)
        receivedBytes = Count("component_received_bytes_total", dimensions: d)
        sentEvents = Count("component_sent_events_total", dimensions: d)
        sentBytes = Count("component_sent_bytes_total", dimensions: d)
        requestsDelivered = Count("component_requests_total", dimensions: d + [("outcome", "delivered")])
        requestsRetried = Count("component_requests_total", dimensions: d + [("outcome", "retry")])
        requestsRejected = Count("component_requests_total", dimensions: d + [("outcome", "rejected")])
        requestsPartial = Count("component_requests_total", dimensions: d + [("outcome", "partial")])
        errors = Count("component_errors_total", dimensions: d)
        abandonedEvents = Count("component_abandoned_events_total", dimensions: d)
        parseFailures = Count("component_parse_failures_total", dimensions: d)
        multilineTruncatedGroups = Count("component_multiline_truncated_groups_total", dimensions: d)
        containerLogOversizedJoins = Count("component_container_log_oversized_joins_total", dimensions: d)
        containerLogUnparsedLines = Count("component_container_log_unparsed_lines_total", dimensions: d)
        discarded = Mutex([:])
    }

    /// Events dropped on purpose or refused by a destination, by reason (`rejected`,
    /// `retry_limit`, `filtered`, `parse_failure`, ...): `component_discarded_events_total{reason}`.
    public func discarded(_ n: Int, reason: String) {
        guard n > 0 else { return }
        let c = discarded.withLock { m -> Count in
            if let c = m[reason] { return c }
            let c = Count("component_discarded_events_total", dimensions: dimensions + [("reason", reason)])
            m[reason] = c
            return c
        }
        c.add(n)
    }

    /// Discarded events by reason.
    public var discardedByReason: [String: Int] {
        discarded.withLock { m in m.mapValues(\.current) }
    }

    /// Name → value of every counter, for the stats file.
    public func snapshot() -> [(String, Int)] {
        var out: [(String, Int)] = [
            ("received_events", receivedEvents.current), ("received_bytes", receivedBytes.current),
            ("sent_events", sentEvents.current), ("sent_bytes", sentBytes.current),
            ("requests_delivered", requestsDelivered.current), ("requests_retried", requestsRetried.current),
            ("requests_rejected", requestsRejected.current), ("requests_partial", requestsPartial.current),
            ("errors", errors.current), ("abandoned_events", abandonedEvents.current), ("parse_failures", parseFailures.current),
            ("multiline_truncated_groups", multilineTruncatedGroups.current),
            ("container_log_oversized_joins", containerLogOversizedJoins.current),
            ("container_log_unparsed_lines", containerLogUnparsedLines.current),
            ("in_flight", inFlight.load(ordering: .relaxed)),
            ("buffered_events", bufferedEvents.load(ordering: .relaxed)), ("buffered_bytes", bufferedBytes.load(ordering: .relaxed)),
        ]
        for (r, v) in discardedByReason.sorted(by: { $0.key < $1.key }) { out.append(("discarded_events.\(r)", v)) }
        return out
    }
}
