/// `global.PipelineMetaTagKey`: which of the host's tags a pipeline's events carry, and under what
/// name [LC core/plugin/processor/inner/ProcessorTagNative.cpp `addTagIfRequired`]. A map from a
/// logical key to a tag name: `""` leaves the tag out, `__default__` keeps its default name, any
/// other value renames it; a logical key not in the map gets its default treatment.
///
/// - `HOST_NAME`: `__hostname__`, added by default.
/// - `HOST_IP`: `__host_ip__`. The open-source incumbent adds it by default; **Sluice adds it only
///   when the map names it** (every event would otherwise carry one more tag most backends already
///   have as the host name, and golden outputs of migrated pipelines rarely show it).
/// - `HOST_ID`, `CLOUD_PROVIDER`, `AGENT_TAG`: the incumbent's enterprise build only; accepted with
///   a warning, no tag.
public struct PipelineMetaTagKeys: Sendable, Equatable {
    public var names: [String: String] = [:]

    public static let key = "PipelineMetaTagKey"
    public static let defaultName = "__default__"
    /// The logical keys Sluice adds, with their default tag names and whether they are added when
    /// the map does not name them.
    public static let known: [(logical: String, tag: String, byDefault: Bool)] = [
        ("HOST_NAME", "__hostname__", true),
        ("HOST_IP", "__host_ip__", false),
    ]
    public static let enterpriseOnly = ["HOST_ID", "CLOUD_PROVIDER", "AGENT_TAG"]

    public init(names: [String: String] = [:]) {
        self.names = names
    }

    /// Reads `PipelineMetaTagKey` from a pipeline's `global` mapping: an error when it is not a map
    /// of strings; a warning for each logical key that adds nothing here.
    public static func read(from global: ConfigObject) throws(ConfigError) -> (PipelineMetaTagKeys, [ConfigError]) {
        guard let pairs = try global.stringPairs(key) else { return (PipelineMetaTagKeys(), []) }
        var warnings: [ConfigError] = []
        var names: [String: String] = [:]
        for (logical, name) in pairs {
            names[logical] = name
            if known.contains(where: { $0.logical == logical }) { continue }
            let message = enterpriseOnly.contains(logical)
                ? "\(logical): the incumbent's enterprise build only; no tag is added"
                : "\(logical): unknown logical key, ignored (known: \(known.map(\.logical).joined(separator: ", ")))"
            warnings.append(global.error(at: key, message))
        }
        return (PipelineMetaTagKeys(names: names), warnings)
    }

    /// The tag name for `logical` (one of `known`), or nil when the tag is left out.
    public func tagName(_ logical: String) -> String? {
        guard let k = PipelineMetaTagKeys.known.first(where: { $0.logical == logical }) else { return nil }
        guard let name = names[logical] else { return k.byDefault ? k.tag : nil }
        if name.isEmpty { return nil }
        return name == PipelineMetaTagKeys.defaultName ? k.tag : name
    }

    /// The host tags, in order (host name, then host IP): name and value. `hostIP` is asked only
    /// when the IP tag is added.
    public func tags(hostname: String, hostIP: () -> String?) -> [(name: String, value: String)] {
        var out: [(name: String, value: String)] = []
        if let n = tagName("HOST_NAME") { out.append((n, hostname)) }
        if let n = tagName("HOST_IP") { out.append((n, hostIP() ?? "")) }
        return out
    }
}
