import SluiceConfig
import SluiceCore
import SluiceSystem

/// The incumbent's `Convert.Protocol`: the shape of each event's document.
public enum ConvertProtocol: String, Sendable, CaseIterable {
    /// `{"contents":{...},"tags":{...},"time":<s>}`, keys sorted (the default).
    case customSingle = "custom_single"
    /// One flat object: contents, then tags (overwriting), then `time`; keys sorted.
    case customSingleFlatten = "custom_single_flatten"
    /// Flat objects, one per line (flusher_http: one body per batch).
    case jsonline
}

/// `Convert`: protocol, encoding and renames, read once from a flusher's config.
public struct ConvertOptions: Sendable {
    public var `protocol`: ConvertProtocol = .customSingle
    /// Converted tag name → new name (`host.name: hostname`); an empty new name drops the tag.
    public var tagFieldsRename: [String: String] = [:]
    /// `contents`, `tags`, `time` → new top-level names.
    public var protocolFieldsRename: [String: String] = [:]
    /// flusher_loki with custom_single_flatten: the contents only, no tags.
    public var onlyContents = false
    /// Whether the agent runs in Kubernetes: container tags get `k8s.` names then (as the incumbent).
    public var kubernetes = Sys.environment("KUBERNETES_SERVICE_HOST") != nil

    public init(protocol p: ConvertProtocol = .customSingle) { self.protocol = p }

    /// The `Convert` field of a flusher's spec.
    public static func field(protocols: [ConvertProtocol], extra: [FieldSpec] = []) -> FieldSpec {
        FieldSpec(name: "Convert", type: .object(fields: [
            FieldSpec(name: "Protocol", type: .string, doc: "Document shape: \(protocols.map { "`\($0.rawValue)`" }.joined(separator: ", ")).", defaultValue: "custom_single"),
            FieldSpec(name: "Encoding", type: .string, doc: "Only `json`.", defaultValue: "json"),
            FieldSpec(name: "TagFieldsRename", type: .stringMap, doc: "Converted tag name → new name; an empty new name drops the tag.", defaultValue: nil),
            FieldSpec(name: "ProtocolFieldsRename", type: .stringMap, doc: "New names for `contents`, `tags`, `time`.", defaultValue: nil),
        ] + extra), doc: "How each event becomes a document (the incumbent's converter).", defaultValue: nil)
    }

    /// Reads `Convert` from `c`; a protocol outside `allowed` or an encoding other than json is an error.
    public static func read(_ c: ConfigObject, allowed: [ConvertProtocol]) throws(ConfigError) -> ConvertOptions {
        var o = ConvertOptions()
        guard let cv = try c.object("Convert") else { return o }
        if let p = try cv.string("Protocol"), !p.isEmpty {
            guard let proto = ConvertProtocol(rawValue: p), allowed.contains(proto) else {
                throw cv.error(at: "Protocol", "unsupported protocol \"\(p)\" (supported: \(allowed.map(\.rawValue).joined(separator: ", ")))")
            }
            o.protocol = proto
        }
        if let e = try cv.string("Encoding"), !e.isEmpty, e != "json" {
            throw cv.error(at: "Encoding", "unsupported encoding \"\(e)\" for \(o.protocol.rawValue) (supported: json)")
        }
        o.tagFieldsRename = try cv.stringMap("TagFieldsRename") ?? [:]
        o.protocolFieldsRename = try cv.stringMap("ProtocolFieldsRename") ?? [:]
        for k in o.protocolFieldsRename.keys where !["contents", "tags", "time"].contains(k) {
            throw cv.error(at: "ProtocolFieldsRename", "only contents, tags and time can be renamed, not \(k)")
        }
        if cv.has("OnlyContents") { o.onlyContents = try cv.bool("OnlyContents") ?? false }
        return o
    }

    /// The incumbent's fixed tag renames (`__path__` → `log.file.path`, ...), then `TagFieldsRename`;
    /// nil drops the tag.
    public func convertedTagName(_ key: String) -> String? {
        let base: String
        switch key {
        case "__path__": base = "log.file.path"
        case "__hostname__": base = "host.name"
        case "_node_ip_": base = "k8s.node.ip"
        case "_node_name_": base = "k8s.node.name"
        case "_namespace_": base = "k8s.namespace.name"
        case "_pod_name_": base = "k8s.pod.name"
        case "_pod_ip_": base = "k8s.pod.ip"
        case "_pod_uid_": base = "k8s.pod.uid"
        case "_container_name_": base = kubernetes ? "k8s.container.name" : "container.name"
        case "_container_ip_": base = kubernetes ? "k8s.container.ip" : "container.ip"
        case "_image_name_": base = kubernetes ? "k8s.container.image.name" : "container.image.name"
        case "__user_defined_id__", "__pack_id__": return nil
        case "__log_topic__": base = "log.topic"
        default:
            // `__tag__:<name>`: the name, converted as a tag of that name would be.
            if key.hasPrefix("__tag__:") && key.count > 8 { return convertedTagName(String(key.dropFirst(8))) }
            base = key
        }
        if let r = tagFieldsRename[base] { return r.isEmpty ? nil : r }
        return base
    }

    /// Tags that are contents in the incumbent's output (the container parser writes them as fields).
    public static func isContentTag(_ key: String) -> Bool { key == "_source_" || key == "_time_" }

    /// Content field names that the incumbent moves to tags.
    static let wellKnownTagNames: Set<String> = [
        "__path__", "__hostname__", "_node_ip_", "_node_name_", "_namespace_", "_pod_name_", "_pod_ip_", "_pod_uid_",
        "_container_name_", "_container_ip_", "_image_name_",
    ]

    func topName(_ k: String) -> String { protocolFieldsRename[k] ?? k }
}
