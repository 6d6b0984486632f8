/// Kubernetes identity of a container as the runtime shows it: from the `io.kubernetes.*` labels
/// the kubelet puts on every container, or from the Docker name pattern
/// `k8s_<container>_<pod>_<namespace>_<uid>_<restart>` (dockershim / cri-dockerd).
public enum KubernetesNames {
    /// `io.kubernetes.pod.name`.
    public static let podNameLabel = "io.kubernetes.pod.name"
    /// `io.kubernetes.pod.namespace`.
    public static let podNamespaceLabel = "io.kubernetes.pod.namespace"
    /// `io.kubernetes.pod.uid`.
    public static let podUIDLabel = "io.kubernetes.pod.uid"
    /// `io.kubernetes.container.name` (`POD` on dockershim sandboxes).
    public static let containerNameLabel = "io.kubernetes.container.name"
    /// The restart count; a kubelet *annotation*, which dockershim / cri-dockerd store as the
    /// label `annotation.io.kubernetes.container.restartCount`. Both spellings are read.
    public static let restartCountLabels = ["io.kubernetes.container.restartCount", "annotation.io.kubernetes.container.restartCount"]
    /// `io.kubernetes.docker.type`: `podsandbox` or `container` (dockershim / cri-dockerd).
    public static let dockerTypeLabel = "io.kubernetes.docker.type"
    /// `io.cri-containerd.kind`: `sandbox` or `container` (containerd's own labels).
    public static let containerdKindLabel = "io.cri-containerd.kind"

    /// Names from the `io.kubernetes.*` labels; nil unless the pod name and namespace are both there.
    /// Pod labels are not among a container's labels (they live on the sandbox), so `podLabels` is
    /// empty; see ``podLabels(fromSandboxLabels:)``.
    public static func fromDockerLabels(_ labels: [String: String]) -> KubernetesInfo? {
        guard let pod = labels[podNameLabel], !pod.isEmpty,
              let namespace = labels[podNamespaceLabel], !namespace.isEmpty else { return nil }
        let restart = restartCountLabels.lazy.compactMap { labels[$0].flatMap { Int($0) } }.first ?? 0
        return KubernetesInfo(namespace: namespace, podName: pod, podUID: labels[podUIDLabel] ?? "",
                              containerName: labels[containerNameLabel] ?? "", restartCount: restart)
    }

    /// Names from a Docker container name `k8s_<container>_<pod>_<namespace>_<uid>_<restart>`
    /// (a leading `/` is allowed, and so is a further `_<suffix>` that dockershim adds on a name
    /// conflict). Nil when the name does not follow the pattern.
    public static func fromDockerName(_ name: String) -> KubernetesInfo? {
        var text = Substring(name)
        if text.hasPrefix("/") { text = text.dropFirst() }
        let parts = text.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count >= 6, parts[0] == "k8s", let restart = Int(parts[5]), restart >= 0,
              !parts[1].isEmpty, !parts[2].isEmpty, !parts[3].isEmpty, !parts[4].isEmpty else { return nil }
        return KubernetesInfo(namespace: String(parts[3]), podName: String(parts[2]), podUID: String(parts[4]),
                              containerName: String(parts[1]), restartCount: restart)
    }

    /// Whether the labels or name say the container is a pod sandbox (pause container):
    /// `io.kubernetes.docker.type=podsandbox`, `io.cri-containerd.kind=sandbox`, container name
    /// label `POD`, or a Docker name `k8s_POD_…`.
    public static func isSandbox(labels: [String: String], name: String = "") -> Bool {
        if labels[dockerTypeLabel] == "podsandbox" || labels[containerdKindLabel] == "sandbox" { return true }
        if labels[containerNameLabel] == "POD" { return true }
        return fromDockerName(name)?.containerName == "POD"
    }

    /// The identity of a Docker (or static-file) container: from the labels when they name the pod,
    /// else from the name pattern; the missing parts of the labels' answer are filled from the name.
    public static func fromDocker(labels: [String: String], name: String) -> (kubernetes: KubernetesInfo?, isSandbox: Bool) {
        let sandbox = isSandbox(labels: labels, name: name)
        let fromName = fromDockerName(name)
        guard var info = fromDockerLabels(labels) else { return (fromName, sandbox) }
        if let fromName {
            if info.podUID.isEmpty { info.podUID = fromName.podUID }
            if info.containerName.isEmpty { info.containerName = fromName.containerName }
            if info.restartCount == 0 { info.restartCount = fromName.restartCount }
        }
        return (info, sandbox)
    }

    /// Pod labels from the labels of a pod's sandbox (the kubelet gives the sandbox the pod's labels
    /// plus its own `io.kubernetes.*` ones): everything except keys starting with `io.kubernetes.`,
    /// `annotation.` and `io.cri-containerd.`.
    public static func podLabels(fromSandboxLabels labels: [String: String]) -> [String: String] {
        labels.filter { key, _ in
            !key.hasPrefix("io.kubernetes.") && !key.hasPrefix("annotation.") && !key.hasPrefix("io.cri-containerd.")
        }
    }
}
