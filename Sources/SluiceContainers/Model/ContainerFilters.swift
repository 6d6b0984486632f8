import Foundation
import SluiceConfig
import SluiceRegex

/// A regular expression of a container filter, compiled once, matched by *search* (unanchored
/// unless the pattern anchors itself), like Go's `regexp.MatchString` that iLogtail uses.
///
/// Compiled and run on PCRE2 (``RegexPattern``, JIT where possible) in Go's RE2 flavour: `$`
/// matches only at the very end. A bad pattern is reported with PCRE2's message and offset.
/// Filters are evaluated once per container and pipeline, never per log line; matchers are
/// borrowed from a pool, so a filter is shared by every thread.
public struct FilterRegex: Sendable, CustomStringConvertible {
    /// The pattern as written.
    public let pattern: String
    private let compiled: RegexPattern
    private let matchers: RegexMatcherPool

    /// Compiles `pattern`; throws a ``ContainerFilterError`` whose `reason` says what is wrong.
    public init(_ pattern: String) throws(ContainerFilterError) {
        do {
            compiled = try RegexPattern(pattern, anchoring: .search, syntax: [.dollarEndOnly])
        } catch {
            throw ContainerFilterError(field: "", key: nil, pattern: pattern, reason: "\(error.message) at offset \(error.offset)")
        }
        matchers = RegexMatcherPool(for: [compiled])
        self.pattern = pattern
    }

    /// Whether the pattern matches anywhere in `text`.
    public func search(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return matchers.withMatcher { $0.match(compiled, bytes) == .matched }
    }

    /// The pattern.
    public var description: String { pattern }
}

/// An invalid regular expression in a container filter.
public struct ContainerFilterError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The filter field, e.g. `K8sPodRegex` or `IncludeEnv`.
    public var field: String
    /// The map key for map fields (`IncludeEnv: {APP: "^web"}` → `APP`), nil for the regex fields.
    public var key: String?
    /// The pattern as written.
    public var pattern: String
    /// What is wrong with it, e.g. `expected ')'`.
    public var reason: String

    /// Creates an error; see the properties.
    public init(field: String, key: String?, pattern: String, reason: String) {
        self.field = field
        self.key = key
        self.pattern = pattern
        self.reason = reason
    }

    /// E.g. `IncludeEnv.APP: invalid regular expression "^web(": expected ')'`.
    public var description: String {
        let location = key.map { "\(field).\($0)" } ?? field
        return "\(location.isEmpty ? "" : location + ": ")invalid regular expression \(quoted(pattern)): \(reason)"
    }
}

/// `ContainerFilters` of `input_file` / `input_container_stdio` / `service_docker_stdout`, with
/// iLogtail's semantics, exactly:
///
/// - `K8sNamespaceRegex`, `K8sPodRegex`, `K8sContainerRegex`: regex search on the Kubernetes
///   namespace, pod name and container name (empty strings for a container outside Kubernetes).
/// - `IncludeK8sLabel` / `ExcludeK8sLabel` (pod labels), `IncludeEnv` / `ExcludeEnv` (container
///   environment), `IncludeContainerLabel` / `ExcludeContainerLabel` (runtime labels): maps of key →
///   value. An entry matches when the key is present and the value is empty (key present), starts
///   with `^` (a regex searched in the value) or equals the value exactly. The entries of one
///   Include map are OR'ed: one match is enough (an empty Include map accepts everything). Any
///   Exclude entry that matches rejects the container.
/// - The categories (container labels, env, Kubernetes) are AND'ed.
/// - Sandbox (pause) containers never match.
/// - Environment variables Kubernetes injects for services are ignored by the env filters: names
///   `KUBERNETES_*`, `*_SERVICE_HOST`, `*_SERVICE_PORT*` and `*_PORT*` (so an application's own
///   `HTTP_PORT` is ignored as well, as in iLogtail).
public struct ContainerFilters: Sendable {
    /// How one map entry matches a value.
    public enum ValueMatch: Sendable, CustomStringConvertible {
        /// Empty value in the config: the key only has to be present.
        case present
        /// The value must equal this exactly.
        case exact(String)
        /// The value starts with `^`: a regex searched in the value.
        case regex(FilterRegex)

        /// Parses a config value: `""` → present, `^…` → regex, else exact.
        public init(_ value: String) throws(ContainerFilterError) {
            if value.isEmpty {
                self = .present
            } else if value.hasPrefix("^") {
                self = .regex(try FilterRegex(value))
            } else {
                self = .exact(value)
            }
        }

        /// Whether `value` (the container's, nil when the key is absent) matches.
        public func matches(_ value: String?) -> Bool {
            guard let value else { return false }
            switch self {
            case .present: return true
            case .exact(let expected): return value == expected
            case .regex(let regex): return regex.search(value)
            }
        }

        /// The value as written in the config.
        public var description: String {
            switch self {
            case .present: return ""
            case .exact(let value): return value
            case .regex(let regex): return regex.pattern
            }
        }
    }

    /// One entry of an Include / Exclude map.
    public struct Rule: Sendable, CustomStringConvertible {
        /// The label or env var name.
        public var key: String
        /// How its value must match.
        public var value: ValueMatch

        /// A rule for `key`.
        public init(key: String, value: ValueMatch) {
            self.key = key
            self.value = value
        }

        /// `key=value`, or `key` alone for a presence rule.
        public var description: String {
            if case .present = value { return key }
            return "\(key)=\(value)"
        }
    }

    /// `K8sNamespaceRegex`; nil when not set (an empty string is not set).
    public let k8sNamespaceRegex: FilterRegex?
    /// `K8sPodRegex`; nil when not set.
    public let k8sPodRegex: FilterRegex?
    /// `K8sContainerRegex`; nil when not set.
    public let k8sContainerRegex: FilterRegex?
    /// `IncludeK8sLabel` (pod labels), in config order.
    public let includeK8sLabel: [Rule]
    /// `ExcludeK8sLabel` (pod labels).
    public let excludeK8sLabel: [Rule]
    /// `IncludeEnv`.
    public let includeEnv: [Rule]
    /// `ExcludeEnv`.
    public let excludeEnv: [Rule]
    /// `IncludeContainerLabel` (runtime labels).
    public let includeContainerLabel: [Rule]
    /// `ExcludeContainerLabel` (runtime labels).
    public let excludeContainerLabel: [Rule]

    /// Filters that accept every container except sandboxes.
    public static let none = ContainerFilters(nothing: ())

    private init(nothing: Void) {
        k8sNamespaceRegex = nil
        k8sPodRegex = nil
        k8sContainerRegex = nil
        includeK8sLabel = []
        excludeK8sLabel = []
        includeEnv = []
        excludeEnv = []
        includeContainerLabel = []
        excludeContainerLabel = []
    }

    /// Filters from values as they appear in a config (empty regex strings mean "not set"; map
    /// entries are used in key order). Throws for an invalid regular expression.
    public init(
        k8sNamespaceRegex: String = "", k8sPodRegex: String = "", k8sContainerRegex: String = "",
        includeK8sLabel: [String: String] = [:], excludeK8sLabel: [String: String] = [:],
        includeEnv: [String: String] = [:], excludeEnv: [String: String] = [:],
        includeContainerLabel: [String: String] = [:], excludeContainerLabel: [String: String] = [:]
    ) throws(ContainerFilterError) {
        func sorted(_ map: [String: String]) -> [(String, String)] { map.sorted { $0.key < $1.key } }
        try self.init(pairs: [
            "K8sNamespaceRegex": .regex(k8sNamespaceRegex), "K8sPodRegex": .regex(k8sPodRegex),
            "K8sContainerRegex": .regex(k8sContainerRegex),
            "IncludeK8sLabel": .map(sorted(includeK8sLabel)), "ExcludeK8sLabel": .map(sorted(excludeK8sLabel)),
            "IncludeEnv": .map(sorted(includeEnv)), "ExcludeEnv": .map(sorted(excludeEnv)),
            "IncludeContainerLabel": .map(sorted(includeContainerLabel)),
            "ExcludeContainerLabel": .map(sorted(excludeContainerLabel)),
        ])
    }

    private enum RawField {
        case regex(String)
        case map([(String, String)])
    }

    private init(pairs: [String: RawField]) throws(ContainerFilterError) {
        func regex(_ field: String) throws(ContainerFilterError) -> FilterRegex? {
            guard case .regex(let pattern)? = pairs[field], !pattern.isEmpty else { return nil }
            do {
                return try FilterRegex(pattern)
            } catch {
                throw ContainerFilterError(field: field, key: nil, pattern: pattern, reason: error.reason)
            }
        }
        func rules(_ field: String) throws(ContainerFilterError) -> [Rule] {
            guard case .map(let entries)? = pairs[field] else { return [] }
            var out: [Rule] = []
            for (key, value) in entries {
                do {
                    out.append(Rule(key: key, value: try ValueMatch(value)))
                } catch {
                    throw ContainerFilterError(field: field, key: key, pattern: value, reason: error.reason)
                }
            }
            return out
        }
        k8sNamespaceRegex = try regex("K8sNamespaceRegex")
        k8sPodRegex = try regex("K8sPodRegex")
        k8sContainerRegex = try regex("K8sContainerRegex")
        includeK8sLabel = try rules("IncludeK8sLabel")
        excludeK8sLabel = try rules("ExcludeK8sLabel")
        includeEnv = try rules("IncludeEnv")
        excludeEnv = try rules("ExcludeEnv")
        includeContainerLabel = try rules("IncludeContainerLabel")
        excludeContainerLabel = try rules("ExcludeContainerLabel")
    }

    /// Whether nothing is filtered (only sandboxes are rejected).
    public var isEmpty: Bool {
        k8sNamespaceRegex == nil && k8sPodRegex == nil && k8sContainerRegex == nil
            && includeK8sLabel.isEmpty && excludeK8sLabel.isEmpty && includeEnv.isEmpty && excludeEnv.isEmpty
            && includeContainerLabel.isEmpty && excludeContainerLabel.isEmpty
    }

    // MARK: - Matching

    /// Whether the container is selected.
    public func matches(_ c: ContainerInfo) -> Bool {
        explain(c) == nil
    }

    /// Selected, not selected, or not known yet: a rule reads metadata the container's entry does
    /// not have yet (labels before the runtime's API answered, env before its spec was read).
    public enum Decision: Sendable, Equatable { case selected, rejected, undecided }

    public func decide(_ c: ContainerInfo) -> Decision {
        let reason = explain(c)
        if reason == nil && c.metadataLevel == .complete { return .selected }
        if c.isSandbox { return .rejected }
        // Names are known from `located` on: a name rule that fails then settles it.
        if c.metadataLevel == .bare { return .undecided }
        let k8s = c.kubernetes
        if let r = k8sNamespaceRegex, !r.search(k8s?.namespace ?? "") { return .rejected }
        if let r = k8sPodRegex, !r.search(k8s?.podName ?? "") { return .rejected }
        if let r = k8sContainerRegex, !r.search(k8s?.containerName ?? "") { return .rejected }
        let readsLabels = !includeK8sLabel.isEmpty || !excludeK8sLabel.isEmpty || !includeContainerLabel.isEmpty || !excludeContainerLabel.isEmpty
        let readsEnv = !includeEnv.isEmpty || !excludeEnv.isEmpty
        if readsLabels && c.metadataLevel < .complete { return .undecided }
        if readsEnv && c.metadataLevel < .identified { return .undecided }
        return reason == nil ? .selected : .rejected
    }

    /// Nil when the container is selected, else why not, e.g.
    /// `namespace "kube-system" does not match K8sNamespaceRegex ^default$`.
    public func explain(_ c: ContainerInfo) -> String? {
        if c.isSandbox { return "sandbox (pause) container: never matched" }

        // Kubernetes.
        let k8s = c.kubernetes
        let suffix = k8s == nil ? " (not a Kubernetes container)" : ""
        if let regex = k8sNamespaceRegex, !regex.search(k8s?.namespace ?? "") {
            return "namespace \(quoted(k8s?.namespace ?? "")) does not match K8sNamespaceRegex \(regex.pattern)\(suffix)"
        }
        if let regex = k8sPodRegex, !regex.search(k8s?.podName ?? "") {
            return "pod \(quoted(k8s?.podName ?? "")) does not match K8sPodRegex \(regex.pattern)\(suffix)"
        }
        if let regex = k8sContainerRegex, !regex.search(k8s?.containerName ?? "") {
            return "container \(quoted(k8s?.containerName ?? "")) does not match K8sContainerRegex \(regex.pattern)\(suffix)"
        }
        if let reason = Self.check(k8s?.podLabels ?? [:], include: includeK8sLabel, exclude: excludeK8sLabel,
                                   what: "pod label", includeName: "IncludeK8sLabel", excludeName: "ExcludeK8sLabel") {
            return reason + suffix
        }
        // Container labels.
        if let reason = Self.check(c.labels, include: includeContainerLabel, exclude: excludeContainerLabel,
                                   what: "container label", includeName: "IncludeContainerLabel",
                                   excludeName: "ExcludeContainerLabel") {
            return reason
        }

        // Environment, without the service variables Kubernetes injects.
        if !includeEnv.isEmpty || !excludeEnv.isEmpty {
            let env = c.env.filter { !Self.isKubernetesServiceEnv($0.key) }
            if let reason = Self.check(env, include: includeEnv, exclude: excludeEnv, what: "env",
                                       includeName: "IncludeEnv", excludeName: "ExcludeEnv") {
                return reason
            }
        }

        return nil
    }

    /// iLogtail's `isMapLabelsMatch`: one Include entry must match (when there are any), no
    /// Exclude entry may match.
    private static func check(_ values: [String: String], include: [Rule], exclude: [Rule],
                              what: String, includeName: String, excludeName: String) -> String? {
        if !include.isEmpty && !include.contains(where: { $0.value.matches(values[$0.key]) }) {
            let wanted = include.map { describe($0) }.joined(separator: ", ")
            return "no \(includeName) entry matches (wanted \(wanted))"
        }
        if let hit = exclude.first(where: { $0.value.matches(values[$0.key]) }) {
            return "\(what) \(hit.key)=\(quoted(values[hit.key] ?? "")) matches \(excludeName) \(describe(hit))"
        }
        return nil
    }

    private static func describe(_ rule: Rule) -> String {
        switch rule.value {
        case .present: return "\(rule.key) (present)"
        case .exact(let value): return "\(rule.key)=\(quoted(value))"
        case .regex(let regex): return "\(rule.key)~\(regex.pattern)"
        }
    }

    /// Whether an env var is one Kubernetes injects for services, which the env filters ignore:
    /// `KUBERNETES_*`, `*_SERVICE_HOST`, `*_SERVICE_PORT*`, `*_PORT*`.
    public static func isKubernetesServiceEnv(_ name: String) -> Bool {
        name.hasPrefix("KUBERNETES_") || name.hasSuffix("_SERVICE_HOST") || name.contains("_SERVICE_PORT")
            || name.contains("_PORT")
    }

    // MARK: - Config

    /// The fields of the `ContainerFilters` object.
    public static let spec: [FieldSpec] = [
        FieldSpec(name: "K8sNamespaceRegex", type: .string,
                  doc: "Regular expression searched (unanchored unless it anchors itself) in the Kubernetes namespace; a container outside Kubernetes has an empty namespace."),
        FieldSpec(name: "K8sPodRegex", type: .string,
                  doc: "Regular expression searched in the Kubernetes pod name."),
        FieldSpec(name: "K8sContainerRegex", type: .string,
                  doc: "Regular expression searched in the Kubernetes container name."),
        FieldSpec(name: "IncludeK8sLabel", type: .stringMap,
                  doc: "Pod labels of which at least one must match: an empty value means the label is present, a value starting with ^ is a regular expression, anything else must be equal."),
        FieldSpec(name: "ExcludeK8sLabel", type: .stringMap,
                  doc: "Pod labels any of which rejects the container when it matches (same value rules as IncludeK8sLabel)."),
        FieldSpec(name: "IncludeEnv", type: .stringMap,
                  doc: "Container environment variables of which at least one must match (same value rules as IncludeK8sLabel). Variables Kubernetes injects for services (KUBERNETES_*, *_SERVICE_HOST, *_SERVICE_PORT*, *_PORT*) are ignored."),
        FieldSpec(name: "ExcludeEnv", type: .stringMap,
                  doc: "Container environment variables any of which rejects the container when it matches."),
        FieldSpec(name: "IncludeContainerLabel", type: .stringMap,
                  doc: "Container (runtime) labels of which at least one must match (same value rules as IncludeK8sLabel).",
                  aliases: ["IncludeLabel"]),
        FieldSpec(name: "ExcludeContainerLabel", type: .stringMap,
                  doc: "Container (runtime) labels any of which rejects the container when it matches.",
                  aliases: ["ExcludeLabel"]),
    ]

    /// The `ContainerFilters` field itself, for a plugin's spec.
    public static let fieldSpec = FieldSpec(
        name: "ContainerFilters", type: .object(fields: spec),
        doc: "Which containers to collect from: categories (container labels, env, Kubernetes) must all pass; sandbox containers never match.")

    /// Reads a `ContainerFilters` object. An invalid regular expression is an error at its value.
    public static func from(_ c: ConfigObject) throws(ConfigError) -> ContainerFilters {
        var pairs: [String: RawField] = [:]
        for field in spec {
            let names = [field.name] + field.aliases
            guard let name = names.first(where: { c.has($0) }) else { continue }
            switch field.type {
            case .stringMap:
                pairs[field.name] = .map(try c.stringPairs(name) ?? [])
            default:
                pairs[field.name] = .regex(try c.string(name) ?? "")
            }
        }
        do {
            return try ContainerFilters(pairs: pairs)
        } catch {
            let name = ([error.field] + (spec.first { $0.name == error.field }?.aliases ?? [])).first { c.has($0) } ?? error.field
            let message = "invalid regular expression \(quoted(error.pattern)): \(error.reason)"
            if let key = error.key, let entry = c.node(name)?.entries?.first(where: { $0.key == key }) {
                throw ConfigError(file: c.file, location: entry.value.location,
                                  keyPath: KeyPath.appending(key, to: c.keyPath(of: name)), message: message)
            }
            throw c.error(at: name, message)
        }
    }
}

/// `"text"` with quotes and backslashes escaped.
private func quoted(_ text: String) -> String {
    var out = "\""
    for ch in text {
        switch ch {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        default: out.append(ch)
        }
    }
    return out + "\""
}
