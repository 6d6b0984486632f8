extension PipelineLoader {
    /// The incumbent's `extensions`: Go plugins its flushers refer to (`ext_basicauth`, encoders,
    /// interceptors). Sluice has none. An empty list passes; each extension is an error that says
    /// what Sluice takes instead, so a pipeline that needs one is not run without it (a flusher
    /// without its credentials would have every request refused).
    static func extensionErrors(_ node: ConfigNode, keyPath: String, file: String) -> [ConfigError] {
        guard !node.isNull else { return [] }
        guard let items = node.list else { return [ValueReader.typeError(node, file: file, keyPath: keyPath, expected: "a list")] }
        return items.enumerated().map { i, item in
            let type = item.entries?.first { $0.key == "Type" }?.value.scalar?.text ?? ""
            let instead: String
            switch type.split(separator: "/").first.map(String.init) ?? type {
            case "ext_basicauth": instead = "put its Username and Password in the flusher's Authentication.PlainText"
            case "ext_default_encoder": instead = "Sluice's flushers encode by their Convert"
            default: instead = "Sluice has no extensions"
            }
            return ConfigError(file: file, location: item.location, keyPath: KeyPath.appending(index: i, to: keyPath),
                               message: "extension \(type.isEmpty ? "without a Type" : type) is not supported: \(instead)")
        }
    }
}
