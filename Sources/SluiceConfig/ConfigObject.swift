/// A mapping from a config file, for plugin code to read typed values from and to report
/// semantic errors at a key.
///
/// The loader has already checked every value against the plugin's ``FieldSpec``s, so for keys
/// of a spec the typed accessors do not throw in practice; they still check (and throw a
/// ``ConfigError`` located at the value) so they are safe on objects without a spec.
///
/// Keys are looked up by the field's name: a value written under an alias is found under the
/// field's name. A key whose value is `null` counts as absent.
///
/// ```swift
/// let paths = try config.stringList("FilePaths") ?? []
/// guard paths.count <= 10 else { throw config.error(at: "FilePaths", "at most 10 paths") }
/// ```
public struct ConfigObject: Sendable {
    struct Entry: Sendable {
        /// The field name (the spec's name when the key is an alias), used for look-ups.
        var name: String
        /// The key as written, used in key paths.
        var writtenKey: String
        var keyLocation: SourceLocation
        var value: ConfigNode
    }

    /// The path of the file, as given to the loader.
    public var file: String
    /// Where this object is, e.g. `inputs[0]`.
    public var keyPath: String
    /// Where this object starts in the file.
    public var location: SourceLocation
    /// The fields this object is read with, when known (used to resolve aliases in nested objects).
    public var fields: [FieldSpec]?
    var entries: [Entry]

    /// Wraps a mapping node. Keys that are aliases of `fields` are filed under the field's name;
    /// when a field is written twice (name and alias), the first one wins.
    public init(file: String, keyPath: String, node: ConfigNode, fields: [FieldSpec]? = nil) {
        self.file = file
        self.keyPath = keyPath
        self.location = node.location
        self.fields = fields
        var entries: [Entry] = []
        var seen = Set<String>()
        for entry in node.entries ?? [] where !entry.value.isNull {
            let name = fields?.first { $0.matches(entry.key) }?.name ?? entry.key
            guard seen.insert(name).inserted else { continue }
            entries.append(Entry(name: name, writtenKey: entry.key, keyLocation: entry.keyLocation, value: entry.value))
        }
        self.entries = entries
    }

    /// Parses a YAML or JSON mapping, e.g. for a plugin's unit tests. No field checks are made.
    public static func parse(yaml: String, file: String = "<memory>", keyPath: String = "", fields: [FieldSpec]? = nil) throws(ConfigErrors) -> ConfigObject {
        let result = DocumentReader.read(text: yaml, file: file)
        if !result.errors.isEmpty { throw ConfigErrors(ConfigError.sorted(result.errors)) }
        let root = result.root ?? ConfigNode(.mapping([]), location: .unknown)
        guard root.entries != nil else {
            throw ConfigErrors([ConfigError(file: file, location: root.location, keyPath: keyPath,
                                            message: "expected a mapping, found \(root.foundDescription)")])
        }
        return ConfigObject(file: file, keyPath: keyPath, node: root, fields: fields)
    }

    /// The field names present (with a non-null value), in document order.
    public var keys: [String] { entries.map(\.name) }

    /// Whether `key` is present with a non-null value.
    public func has(_ key: String) -> Bool { entry(key) != nil }

    /// The raw value of `key`, nil when absent or null.
    public func node(_ key: String) -> ConfigNode? { entry(key)?.value }

    /// Where the value of `key` is written, or this object's own location when it is absent.
    public func location(of key: String) -> SourceLocation {
        entry(key)?.value.location ?? location
    }

    /// The key path of `key`, as written (an alias keeps its spelling), e.g. `inputs[0].TailSizeKB`.
    public func keyPath(of key: String) -> String {
        KeyPath.appending(entry(key)?.writtenKey ?? key, to: keyPath)
    }

    /// An error located at the value of `key` (or at this object when `key` is nil or absent),
    /// to throw from a plugin's own checks.
    public func error(at key: String?, _ message: String) -> ConfigError {
        guard let key else {
            return ConfigError(file: file, location: location, keyPath: keyPath, message: message)
        }
        return ConfigError(file: file, location: location(of: key), keyPath: keyPath(of: key), message: message)
    }

    // MARK: Typed accessors

    /// A ``FieldType/string`` value: any scalar, as its text.
    public func string(_ key: String) throws(ConfigError) -> String? {
        guard let entry = entry(key) else { return nil }
        return try ValueReader.string(entry.value, file: file, keyPath: keyPath(of: key))
    }

    /// A ``FieldType/int`` value: a YAML integer only (not `"10"`, not `10.0`).
    public func int(_ key: String) throws(ConfigError) -> Int? {
        guard let entry = entry(key) else { return nil }
        return try ValueReader.int(entry.value, file: file, keyPath: keyPath(of: key))
    }

    /// A ``FieldType/double`` value: a YAML float or integer.
    public func double(_ key: String) throws(ConfigError) -> Double? {
        guard let entry = entry(key) else { return nil }
        return try ValueReader.double(entry.value, file: file, keyPath: keyPath(of: key))
    }

    /// A ``FieldType/bool`` value: `true` or `false`.
    public func bool(_ key: String) throws(ConfigError) -> Bool? {
        guard let entry = entry(key) else { return nil }
        return try ValueReader.bool(entry.value, file: file, keyPath: keyPath(of: key))
    }

    /// A ``FieldType/stringList`` value.
    public func stringList(_ key: String) throws(ConfigError) -> [String]? {
        guard let entry = entry(key) else { return nil }
        return try ValueReader.stringList(entry.value, file: file, keyPath: keyPath(of: key))
    }

    /// A ``FieldType/intList`` value.
    public func intList(_ key: String) throws(ConfigError) -> [Int]? {
        guard let entry = entry(key) else { return nil }
        return try ValueReader.intList(entry.value, file: file, keyPath: keyPath(of: key))
    }

    /// A ``FieldType/stringMap`` value as a dictionary.
    public func stringMap(_ key: String) throws(ConfigError) -> [String: String]? {
        guard let pairs = try stringPairs(key) else { return nil }
        return Dictionary(pairs, uniquingKeysWith: { first, _ in first })
    }

    /// A ``FieldType/stringMap`` value as pairs in document order.
    public func stringPairs(_ key: String) throws(ConfigError) -> [(String, String)]? {
        guard let entry = entry(key) else { return nil }
        return try ValueReader.stringPairs(entry.value, file: file, keyPath: keyPath(of: key))
    }

    /// A nested ``FieldType/object``.
    public func object(_ key: String) throws(ConfigError) -> ConfigObject? {
        guard let entry = entry(key) else { return nil }
        let path = keyPath(of: key)
        guard entry.value.entries != nil else {
            throw ConfigError(file: file, location: entry.value.location, keyPath: path,
                              message: "expected a mapping, found \(entry.value.foundDescription)")
        }
        return ConfigObject(file: file, keyPath: path, node: entry.value, fields: nestedFields(key))
    }

    /// A ``FieldType/objectList``: each item's key path is `key[i]`.
    public func objectList(_ key: String) throws(ConfigError) -> [ConfigObject]? {
        guard let entry = entry(key) else { return nil }
        let path = keyPath(of: key)
        guard let items = entry.value.list else {
            throw ConfigError(file: file, location: entry.value.location, keyPath: path,
                              message: "expected a list of mappings, found \(entry.value.foundDescription)")
        }
        let fields = nestedFields(key)
        var objects: [ConfigObject] = []
        for (index, item) in items.enumerated() {
            let itemPath = KeyPath.appending(index: index, to: path)
            guard item.entries != nil else {
                throw ConfigError(file: file, location: item.location, keyPath: itemPath,
                                  message: "expected a mapping, found \(item.foundDescription)")
            }
            objects.append(ConfigObject(file: file, keyPath: itemPath, node: item, fields: fields))
        }
        return objects
    }

    // MARK: Private

    private func entry(_ key: String) -> Entry? {
        if let entry = entries.first(where: { $0.name == key }) { return entry }
        // A name that is itself an alias of a field: look the field up.
        if let field = fields?.first(where: { $0.aliases.contains(key) }) {
            return entries.first { $0.name == field.name }
        }
        return nil
    }

    private func nestedFields(_ key: String) -> [FieldSpec]? {
        guard let entry = entry(key) else { return nil }
        return fields?.first { $0.name == entry.name }?.type.nestedFields
    }
}

/// Reads typed values from nodes; shared by ``ConfigObject`` and the loader's checks so that the
/// messages are the same.
enum ValueReader {
    static func typeError(_ node: ConfigNode, file: String, keyPath: String, expected: String, hint: String = "") -> ConfigError {
        ConfigError(file: file, location: node.location, keyPath: keyPath,
                    message: "expected \(expected), found \(node.foundDescription)\(hint)")
    }

    static func string(_ node: ConfigNode, file: String, keyPath: String) throws(ConfigError) -> String {
        guard let scalar = node.scalar, scalar.kind != .null else {
            throw typeError(node, file: file, keyPath: keyPath, expected: "a string")
        }
        return scalar.text
    }

    static func int(_ node: ConfigNode, file: String, keyPath: String) throws(ConfigError) -> Int {
        if let scalar = node.scalar {
            switch scalar.kind {
            case .int(let value?):
                return value
            case .int(nil):
                throw ConfigError(file: file, location: node.location, keyPath: keyPath,
                                  message: "integer out of range: \(scalar.text)")
            case .string where scalar.isQuoted && Int(scalar.text.trimmingSpaces) != nil:
                throw typeError(node, file: file, keyPath: keyPath, expected: "an integer",
                                hint: " (a quoted string; write the number without quotes)")
            default:
                break
            }
        }
        throw typeError(node, file: file, keyPath: keyPath, expected: "an integer")
    }

    static func double(_ node: ConfigNode, file: String, keyPath: String) throws(ConfigError) -> Double {
        if let scalar = node.scalar {
            switch scalar.kind {
            case .float(let value):
                guard value.isFinite else {
                    throw typeError(node, file: file, keyPath: keyPath, expected: "a finite number", hint: "")
                }
                return value
            case .int(let value?):
                return Double(value)
            case .int(nil):
                if let value = Double(scalar.text), value.isFinite { return value }
            case .string where scalar.isQuoted && Double(scalar.text.trimmingSpaces) != nil:
                throw typeError(node, file: file, keyPath: keyPath, expected: "a number",
                                hint: " (a quoted string; write the number without quotes)")
            default:
                break
            }
        }
        throw typeError(node, file: file, keyPath: keyPath, expected: "a number")
    }

    /// Spellings of `true`/`false` accepted for boolean fields. YAML 1.1 also reads `yes`/`no`/`on`/`off`
    /// as booleans; those are refused, to keep configs unambiguous.
    static let booleanSpellings: [String: Bool] = [
        "true": true, "True": true, "TRUE": true, "false": false, "False": false, "FALSE": false,
    ]

    static func bool(_ node: ConfigNode, file: String, keyPath: String) throws(ConfigError) -> Bool {
        if let scalar = node.scalar {
            switch scalar.kind {
            case .bool:
                if let value = booleanSpellings[scalar.text] { return value }
                throw typeError(node, file: file, keyPath: keyPath, expected: "true or false",
                                hint: " (write true or false)")
            case .string where scalar.isQuoted && booleanSpellings[scalar.text] != nil:
                throw typeError(node, file: file, keyPath: keyPath, expected: "true or false",
                                hint: " (a quoted string; write it without quotes)")
            default:
                break
            }
        }
        throw typeError(node, file: file, keyPath: keyPath, expected: "true or false")
    }

    /// The hint for a single value where a list is expected.
    static func listHint(_ node: ConfigNode) -> String {
        guard let scalar = node.scalar, scalar.kind != .null else { return "" }
        let item = scalar.kind == .string ? ConfigScalar.quoted(scalar.text) : scalar.text
        return " (a single value; write it as a list: [\(item)])"
    }

    static func list(_ node: ConfigNode, file: String, keyPath: String, expected: String) throws(ConfigError) -> [ConfigNode] {
        guard let items = node.list else {
            throw typeError(node, file: file, keyPath: keyPath, expected: expected, hint: listHint(node))
        }
        return items
    }

    static func stringList(_ node: ConfigNode, file: String, keyPath: String) throws(ConfigError) -> [String] {
        var result: [String] = []
        for (index, item) in try list(node, file: file, keyPath: keyPath, expected: "a list of strings").enumerated() {
            result.append(try string(item, file: file, keyPath: KeyPath.appending(index: index, to: keyPath)))
        }
        return result
    }

    static func intList(_ node: ConfigNode, file: String, keyPath: String) throws(ConfigError) -> [Int] {
        var result: [Int] = []
        for (index, item) in try list(node, file: file, keyPath: keyPath, expected: "a list of integers").enumerated() {
            result.append(try int(item, file: file, keyPath: KeyPath.appending(index: index, to: keyPath)))
        }
        return result
    }

    /// A map value: any scalar as its text, `null` (an empty value) as `""`.
    static func mapValue(_ node: ConfigNode, file: String, keyPath: String) throws(ConfigError) -> String {
        guard let scalar = node.scalar else {
            throw typeError(node, file: file, keyPath: keyPath, expected: "a string")
        }
        return scalar.kind == .null ? "" : scalar.text
    }

    static func stringPairs(_ node: ConfigNode, file: String, keyPath: String) throws(ConfigError) -> [(String, String)] {
        guard let entries = node.entries else {
            throw typeError(node, file: file, keyPath: keyPath, expected: "a mapping of strings")
        }
        var result: [(String, String)] = []
        for entry in entries {
            result.append((entry.key, try mapValue(entry.value, file: file, keyPath: KeyPath.appending(entry.key, to: keyPath))))
        }
        return result
    }
}

extension String {
    var trimmingSpaces: Substring {
        var text = self[...]
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return text
    }
}
