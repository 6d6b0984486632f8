import SluiceConfig

/// A flusher's `Match`: which batches it receives, in the incumbent's syntax and semantics
/// (LoongCollector's router): `{Type: event_type, Value: log | metric | trace}` selects by the kind
/// of the batch's events (Sluice's are logs); `{Type: tag, Key: K, Value: V, DiscardingTag: false}`
/// selects batches whose tag K equals V exactly, and with `DiscardingTag` removes that tag from what
/// this flusher receives. A flusher without `Match` receives every batch; a batch that no flusher
/// selects is dropped and counted (`pipeline_unrouted_events_total`), and its source position moves on.
public enum FlusherRoute: Sendable, Equatable {
    case eventType(String)
    case tag(key: String, value: String, discardingTag: Bool)

    /// The `Match` key of every flusher's spec.
    public static let matchField = FieldSpec(
        name: "Match", type: .any,
        doc: "Routing: `{Type: event_type, Value: log|metric|trace}` or `{Type: tag, Key: K, Value: V, DiscardingTag: false}` (the batch's tag K equals V; DiscardingTag removes it from what this flusher receives). Without it the flusher receives everything; a batch no flusher selects is dropped, counted (`pipeline_unrouted_events_total`) and its source position moves on.",
        defaultValue: nil)

    /// Reads `Match` of a flusher's entry; nil when it has none.
    public static func from(_ flusher: ConfigObject) throws(ConfigError) -> FlusherRoute? {
        guard let m = try flusher.object("Match") else { return nil }
        guard let type = try m.string("Type") else { throw m.error(at: nil, "Type is required (event_type or tag)") }
        switch type {
        case "event_type":
            guard let v = try m.string("Value") else { throw m.error(at: nil, "Value is required (log, metric or trace)") }
            guard ["log", "metric", "trace"].contains(v) else { throw m.error(at: "Value", "\"\(v)\" is not log, metric or trace") }
            return .eventType(v)
        case "tag":
            guard let k = try m.string("Key"), !k.isEmpty else { throw m.error(at: nil, "Key is required (the tag's name)") }
            guard let v = try m.string("Value") else { throw m.error(at: nil, "Value is required (the tag's value)") }
            return .tag(key: k, value: v, discardingTag: try m.bool("DiscardingTag") ?? false)
        default:
            throw m.error(at: "Type", "\"\(type)\" is not event_type or tag")
        }
    }

    /// Whether this flusher receives `batch`.
    public func selects(_ batch: EventBatch) -> Bool {
        switch self {
        case .eventType(let kind): return kind == "log" && !batch.events.isEmpty
        // A missing tag reads as "" (as the incumbent's GetTag).
        case .tag(let key, let value, _): return (batch.tags.first(where: { $0.key == key })?.value ?? "") == value
        }
    }

    /// The batch as this flusher receives it (`DiscardingTag`).
    public func adapt(_ batch: EventBatch) -> EventBatch {
        guard case .tag(let key, _, true) = self else { return batch }
        var b = batch
        b.tags.removeAll { $0.key == key }
        return b
    }
}
