/// A parsed YAML/JSON value with its position in the file.
///
/// This is the loader's own copy of the document tree (Yams' `Node` is not `Sendable`). Scalars
/// keep the text as written and the type YAML resolved for them, so the checks can tell a quoted
/// `"10"` (a string) from `10` (an integer).
public struct ConfigNode: Sendable {
    /// A key and its value in a mapping.
    public struct Entry: Sendable {
        /// The key's text.
        public var key: String
        /// Where the key is written.
        public var keyLocation: SourceLocation
        public var value: ConfigNode

        public init(key: String, keyLocation: SourceLocation, value: ConfigNode) {
            self.key = key
            self.keyLocation = keyLocation
            self.value = value
        }
    }

    public enum Content: Sendable {
        case scalar(ConfigScalar)
        case list([ConfigNode])
        /// Entries in document order; keys are unique (the loader reports and drops duplicates).
        case mapping([Entry])
    }

    public var content: Content
    /// Where the value starts.
    public var location: SourceLocation

    public init(_ content: Content, location: SourceLocation = .unknown) {
        self.content = content
        self.location = location
    }

    /// The scalar, if this is one.
    public var scalar: ConfigScalar? {
        if case .scalar(let scalar) = content { return scalar }
        return nil
    }

    /// The items, if this is a list.
    public var list: [ConfigNode]? {
        if case .list(let items) = content { return items }
        return nil
    }

    /// The entries, if this is a mapping.
    public var entries: [Entry]? {
        if case .mapping(let entries) = content { return entries }
        return nil
    }

    /// Whether this is a `null` scalar (written `null`, `~` or nothing at all).
    public var isNull: Bool {
        if case .scalar(let scalar) = content, case .null = scalar.kind { return true }
        return false
    }

    /// How the value is named in "found …" messages: `"abc"` (strings, quoted), `10`, `true`,
    /// `null`, `a list`, `a mapping`.
    public var foundDescription: String {
        switch content {
        case .scalar(let scalar): return scalar.foundDescription
        case .list: return "a list"
        case .mapping: return "a mapping"
        }
    }
}

/// A scalar value: its text as written and the type YAML resolved for it.
public struct ConfigScalar: Sendable, Equatable {
    /// What YAML made of the scalar (the YAML 1.1 core schema, as Yams resolves it).
    public enum Kind: Sendable, Equatable {
        /// A string: quoted, or plain text that is not a number, boolean or null.
        case string
        /// An integer; the value is nil when it does not fit in `Int`.
        case int(Int?)
        /// A floating point number.
        case float(Double)
        /// A boolean (YAML 1.1 also resolves `yes`, `no`, `on`, `off`).
        case bool(Bool)
        /// `null`, `~` or an empty value.
        case null
        /// Another tag, e.g. a timestamp or an explicit `!custom` tag.
        case other(tag: String)
    }

    /// The text as written (after YAML unquoting and unescaping).
    public var text: String
    public var kind: Kind
    /// Whether the scalar was written in quotes.
    public var isQuoted: Bool

    public init(text: String, kind: Kind, isQuoted: Bool = false) {
        self.text = text
        self.kind = kind
        self.isQuoted = isQuoted
    }

    /// How the scalar is named in "found …" messages.
    public var foundDescription: String {
        switch kind {
        case .string, .other: return Self.quoted(text)
        case .null: return "null"
        case .int, .float, .bool: return Self.shortened(text)
        }
    }

    /// The text in double quotes, shortened to 60 characters.
    static func quoted(_ text: String) -> String {
        var escaped = ""
        for character in shortened(text) {
            switch character {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\t": escaped += "\\t"
            case "\r": escaped += "\\r"
            default: escaped.append(character)
            }
        }
        return "\"\(escaped)\""
    }

    static func shortened(_ text: String) -> String {
        text.count > 60 ? String(text.prefix(57)) + "..." : text
    }
}

/// Builds key paths like `inputs[0].ContainerFilters.K8sNamespaceRegex`.
public enum KeyPath {
    /// `parent.key`, or `parent["key"]` when the key is not a plain identifier (has dots, spaces, ...).
    public static func appending(_ key: String, to parent: String) -> String {
        let isPlain = !key.isEmpty && key.unicodeScalars.allSatisfy { scalar in
            scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_" || scalar == "-"
        }
        if isPlain {
            return parent.isEmpty ? key : parent + "." + key
        }
        return parent + "[" + ConfigScalar.quoted(key) + "]"
    }

    /// `parent[index]`.
    public static func appending(index: Int, to parent: String) -> String {
        parent + "[\(index)]"
    }
}
