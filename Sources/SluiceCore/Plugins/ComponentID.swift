/// Which plugin instance of which pipeline: the labels every metric and log line of a component
/// carries (`pipeline`, `component_kind`, `component_type`, `component_id`).
public struct ComponentID: Sendable, Hashable, CustomStringConvertible {
    public var pipeline: String
    /// `input`, `processor`, `flusher`.
    public var kind: String
    /// The plugin type, e.g. `flusher_http`.
    public var type: String
    /// Position in its section.
    public var index: Int

    public init(pipeline: String, kind: String, type: String, index: Int) {
        self.pipeline = pipeline
        self.kind = kind
        self.type = type
        self.index = index
    }

    /// The section key and index, e.g. `flushers[1]`.
    public var id: String { "\(kind)s[\(index)]" }
    public var description: String { "\(pipeline)/\(id) (\(type))" }
}

extension ComponentID {
    /// The labels of the component's series in `/metrics`.
    public var labels: [(String, String)] {
        [("pipeline", pipeline), ("component_kind", kind), ("component_type", type), ("component_id", id)]
    }
}
