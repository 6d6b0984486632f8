import SluiceSystem

/// `${NAME}` references in a config string (credentials, header values), replaced with the value
/// of the environment variable `NAME`, as the incumbent does with `enable_env_ref_in_config`;
/// `${NAME:default}` gives `default` when NAME is not set. `$${` writes a literal `${`. A
/// reference without a default to a variable that is not set is an error, so a missing secret is
/// reported at validation, not sent as an empty password.
public enum EnvReference {
    /// `text` with every `${NAME}` replaced; throws the first name that is not set (or is malformed).
    public static func expand(_ text: String, environment: (String) -> String? = Sys.environment) throws(EnvReferenceError) -> String {
        guard text.contains("${") else { return text }
        var out = ""
        var rest = Substring(text)
        while let open = rest.range(of: "${") {
            if open.lowerBound > rest.startIndex, rest[rest.index(before: open.lowerBound)] == "$" {
                // `$${` → a literal `${`.
                out += rest[..<rest.index(before: open.lowerBound)]
                out += "${"
                rest = rest[open.upperBound...]
                continue
            }
            out += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].firstIndex(of: "}") else {
                throw EnvReferenceError(message: "unclosed ${ in \"\(text)\"")
            }
            let inner = rest[open.upperBound..<close]
            // `${NAME:default}`: the default when NAME is not set (it may be empty).
            let colon = inner.firstIndex(of: ":")
            let name = String(inner[..<(colon ?? inner.endIndex)])
            let fallback = colon.map { String(inner[inner.index(after: $0)...]) }
            guard !name.isEmpty, name.allSatisfy({ $0 == "_" || $0.isLetter || $0.isNumber }) else {
                throw EnvReferenceError(message: "\"${\(inner)}\" is not an environment variable reference")
            }
            guard let value = environment(name) ?? fallback else {
                throw EnvReferenceError(message: "the environment variable \(name) is not set")
            }
            out += value
            rest = rest[rest.index(after: close)...]
        }
        out += rest
        return out
    }
}

public struct EnvReferenceError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

extension ConfigObject {
    /// A string value with its `${NAME}` references expanded (see ``EnvReference``); an unset
    /// variable is an error at the key.
    public func expandedString(_ key: String) throws(ConfigError) -> String? {
        guard let s = try string(key) else { return nil }
        do { return try EnvReference.expand(s) } catch { throw self.error(at: key, error.message) }
    }

    /// A string map with `${NAME}` references in its values expanded, in document order.
    public func expandedPairs(_ key: String) throws(ConfigError) -> [(String, String)]? {
        guard let pairs = try stringPairs(key) else { return nil }
        var out: [(String, String)] = []
        for (k, v) in pairs {
            do { out.append((k, try EnvReference.expand(v))) } catch { throw self.error(at: key, "\(k): \(error.message)") }
        }
        return out
    }
}
