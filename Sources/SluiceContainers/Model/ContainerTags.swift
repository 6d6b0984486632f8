import SluiceConfig

/// The tags a container gives the events read from it.
///
/// - `_container_name_`: the Kubernetes container name for a Kubernetes container, else the runtime
///   name (as iLogtail does).
/// - `_container_id_`: the runtime id.
/// - `_image_name_`, `_container_ip_`.
/// - `_pod_name_`, `_namespace_`, `_pod_uid_`: only for Kubernetes containers (as iLogtail).
/// - then `ExternalEnvTag` (env var → tag name) and `ExternalK8sLabelTag` (pod label → tag name),
///   each for the variables / labels the container has, in tag-name order.
///
/// Tags whose value is empty (not known) are left out rather than sent empty, so an event never
/// claims, say, an empty IP. The order is fixed (the list above), so equal containers give equal
/// tag lists.
public func containerTags(_ c: ContainerInfo, externalEnvTag: [String: String], externalK8sLabelTag: [String: String]) -> [(String, String)] {
    var tags: [(String, String)] = []
    func add(_ key: String, _ value: String) {
        if !value.isEmpty { tags.append((key, value)) }
    }
    let k8s = c.kubernetes
    add("_container_name_", k8s.map(\.containerName).flatMap { $0.isEmpty ? nil : $0 } ?? c.name)
    add("_container_id_", c.id)
    add("_image_name_", c.image)
    if let k8s {
        add("_pod_name_", k8s.podName)
        add("_namespace_", k8s.namespace)
        add("_pod_uid_", k8s.podUID)
    }
    add("_container_ip_", c.ip)
    for (variable, tag) in externalEnvTag.sorted(by: { ($0.value, $0.key) < ($1.value, $1.key) }) {
        if let value = c.env[variable], !tag.isEmpty { tags.append((tag, value)) }
    }
    if let labels = k8s?.podLabels {
        for (label, tag) in externalK8sLabelTag.sorted(by: { ($0.value, $0.key) < ($1.value, $1.key) }) {
            if let value = labels[label], !tag.isEmpty { tags.append((tag, value)) }
        }
    }
    return tags
}

/// The config fields beside `ContainerFilters` that add container tags.
public enum ContainerTagFields {
    /// `ExternalEnvTag` and `ExternalK8sLabelTag`.
    public static let spec: [FieldSpec] = [
        FieldSpec(name: "ExternalEnvTag", type: .stringMap,
                  doc: "Container environment variable → tag name: each event of the container gets the tag with the variable's value (when the container has the variable)."),
        FieldSpec(name: "ExternalK8sLabelTag", type: .stringMap,
                  doc: "Pod label → tag name: each event of the container gets the tag with the label's value (when the pod has the label)."),
    ]

    /// Reads both maps from a plugin's config (absent maps are empty).
    public static func from(_ c: ConfigObject) throws(ConfigError) -> (externalEnvTag: [String: String], externalK8sLabelTag: [String: String]) {
        (try c.stringMap("ExternalEnvTag") ?? [:], try c.stringMap("ExternalK8sLabelTag") ?? [:])
    }
}
