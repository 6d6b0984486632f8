import SluiceConfig
import SluiceCore
import SluiceRegex

/// `PathTagsRegex` of `input_file` (Sluice's own; iLogtail has no such option): a regular
/// expression searched in a file's path whose named groups become tags of every batch read from
/// that file. It serves the "independent storage" layout, where Jobs write to a shared volume
/// under `SubPathExpr: logs/$(POD_NAMESPACE)_$(POD_NAME)_$(POD_IP)_$(NODE_IP)_$(NODE_NAME)`:
///
///     PathTagsRegex: /logs/(?<_namespace_>[^_/]+)_(?<_pod_name_>[^_/]+)_(?<_pod_ip_>[^_/]+)_(?<_node_ip_>[^_/]+)_(?<_node_name_>[^/]+)/
///
/// gives those files the tags a discovered container's files carry.
///
/// - Compiled once on PCRE2 (Go's RE2 flavour as the Go processors use it: a search, unanchored
///   unless the pattern anchors; `$` only at the very end). `(?<name>…)`, `(?P<name>…)` and
///   `(?'name'…)` all name a group; at least one named group is required.
/// - Matched against the path as `__path__` shows it (inside the container for files found with
///   `EnableContainerDiscovery`), once per file: when it is opened, renamed or re-tagged, never
///   per line.
/// - A path that does not match gets no extra tag; a named group that took no part gives no tag.
///   A tag from the path replaces a tag of the same name the input already gives (e.g. a
///   container's `_namespace_`).
public struct PathTagsRegex: Sendable {
    public let regex: RegexPattern

    /// Compiles `pattern`; a bad pattern, or one without a named group, is an error message.
    public static func compile(_ pattern: String) -> Result<PathTagsRegex, PathTagsError> {
        let r: RegexPattern
        do { r = try RegexPattern(pattern, anchoring: .search, syntax: [.dollarEndOnly]) } catch {
            return .failure(PathTagsError(description: error.description))
        }
        guard !r.namedGroups.isEmpty else {
            return .failure(PathTagsError(description: "\"\(pattern)\" has no named group (`(?<name>…)`), so it would give no tag"))
        }
        return .success(PathTagsRegex(regex: r))
    }

    public init(regex: RegexPattern) {
        self.regex = regex
    }

    /// The tags `path` gives, in the order of the groups in the pattern.
    public func tags(for path: String) -> [EventTag] {
        let bytes = Array(path.utf8)
        let m = RegexMatcher(for: [regex])
        guard m.match(regex, bytes) == .matched else { return [] }
        var out: [EventTag] = []
        out.reserveCapacity(regex.namedGroups.count)
        for g in regex.namedGroups {
            guard let r = m.range(g.number) else { continue }
            // Duplicate names (not allowed without (?J)) cannot occur; keep the first anyway.
            if out.contains(where: { $0.key == g.name }) { continue }
            out.append(EventTag(g.name, String(decoding: bytes[r], as: UTF8.self)))
        }
        return out
    }
}

/// Why a `PathTagsRegex` cannot be used.
public struct PathTagsError: Error, Sendable, CustomStringConvertible {
    public var description: String
}
