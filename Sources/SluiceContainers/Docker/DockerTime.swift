import SluiceSystem

/// RFC 3339 timestamps as Docker writes them → Unix nanoseconds; Go's zero time
/// (`0001-01-01T00:00:00Z`), an empty string or anything unparsable → 0 ("unknown").
enum DockerTime {
    static func unixNanos(_ text: String?) -> Int64 {
        guard let text, !text.isEmpty else { return 0 }
        return RFC3339.parse(text) ?? 0
    }
}
