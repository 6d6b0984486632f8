/// Checks mappings against ``FieldSpec``s, collecting every error and warning instead of
/// stopping at the first.
struct FieldChecker {
    let file: String
    var errors: [ConfigError] = []
    var warnings: [ConfigError] = []

    init(file: String) {
        self.file = file
    }

    /// Checks each key of the mapping `node` (at `path`) against `fields`, and each value against
    /// its field's type, recursing into nested objects. Keys in `ignoring` are skipped.
    /// `extraCandidates` are offered in "did you mean" suggestions besides the field names.
    mutating func checkFields(
        of node: ConfigNode,
        path: String,
        fields: [FieldSpec],
        allowUnknown: Bool,
        ignoring: Set<String> = [],
        extraCandidates: [String] = []
    ) {
        guard let entries = node.entries else { return }
        var writtenKeyOfField: [String: String] = [:]
        for entry in entries where !ignoring.contains(entry.key) {
            let keyPath = KeyPath.appending(entry.key, to: path)
            guard let field = fields.first(where: { $0.matches(entry.key) }) else {
                if !allowUnknown {
                    let candidates = extraCandidates + fields.map(\.name) + fields.flatMap(\.aliases)
                    errors.append(ConfigError(file: file, location: entry.keyLocation, keyPath: keyPath,
                                              message: Self.unknownKeyMessage(entry.key, candidates: candidates)))
                }
                continue
            }
            if let other = writtenKeyOfField[field.name] {
                let meaning = other == field.name || entry.key == field.name ? "" : " (both mean \(field.name))"
                errors.append(ConfigError(file: file, location: entry.keyLocation, keyPath: keyPath,
                                          message: "same field as \(other)\(meaning); write it only once"))
                continue
            }
            writtenKeyOfField[field.name] = entry.key
            if entry.value.isNull { continue }
            if case .acceptedNotYetEffective(let reason) = field.status {
                warnings.append(ConfigError(file: file, location: entry.keyLocation, keyPath: keyPath,
                                            message: "accepted but has no effect yet: \(reason)"))
            }
            checkValue(entry.value, type: field.type, path: keyPath)
        }
    }

    static func unknownKeyMessage(_ key: String, candidates: [String]) -> String {
        if let suggestion = Suggestions.closest(to: key, in: candidates) {
            return "unknown key (did you mean \(suggestion)?)"
        }
        return "unknown key"
    }

    /// Checks `node` against `type`, recording every problem found (all bad list items, all bad
    /// nested keys).
    mutating func checkValue(_ node: ConfigNode, type: FieldType, path: String) {
        let file = self.file
        switch type {
        case .string:
            record { () throws(ConfigError) in _ = try ValueReader.string(node, file: file, keyPath: path) }
        case .int:
            record { () throws(ConfigError) in _ = try ValueReader.int(node, file: file, keyPath: path) }
        case .double:
            record { () throws(ConfigError) in _ = try ValueReader.double(node, file: file, keyPath: path) }
        case .bool:
            record { () throws(ConfigError) in _ = try ValueReader.bool(node, file: file, keyPath: path) }
        case .stringList, .intList:
            let isString: Bool
            if case .stringList = type { isString = true } else { isString = false }
            guard let items = node.list else {
                errors.append(ValueReader.typeError(node, file: file, keyPath: path,
                                                    expected: isString ? "a list of strings" : "a list of integers",
                                                    hint: ValueReader.listHint(node)))
                return
            }
            for (index, item) in items.enumerated() {
                let itemPath = KeyPath.appending(index: index, to: path)
                if isString {
                    record { () throws(ConfigError) in _ = try ValueReader.string(item, file: file, keyPath: itemPath) }
                } else {
                    record { () throws(ConfigError) in _ = try ValueReader.int(item, file: file, keyPath: itemPath) }
                }
            }
        case .stringMap:
            guard let entries = node.entries else {
                errors.append(ValueReader.typeError(node, file: file, keyPath: path, expected: "a mapping of strings"))
                return
            }
            for entry in entries {
                let entryPath = KeyPath.appending(entry.key, to: path)
                record { () throws(ConfigError) in _ = try ValueReader.mapValue(entry.value, file: file, keyPath: entryPath) }
            }
        case .object(let fields, let allowUnknown):
            guard node.entries != nil else {
                errors.append(ValueReader.typeError(node, file: file, keyPath: path, expected: "a mapping"))
                return
            }
            checkFields(of: node, path: path, fields: fields, allowUnknown: allowUnknown)
        case .objectList(let fields):
            guard let items = node.list else {
                let hint = node.entries != nil ? " (a single mapping; write it as a list item, starting with \"- \")" : ""
                errors.append(ValueReader.typeError(node, file: file, keyPath: path, expected: "a list of mappings", hint: hint))
                return
            }
            for (index, item) in items.enumerated() {
                let itemPath = KeyPath.appending(index: index, to: path)
                guard item.entries != nil else {
                    errors.append(ValueReader.typeError(item, file: file, keyPath: itemPath, expected: "a mapping"))
                    continue
                }
                checkFields(of: item, path: itemPath, fields: fields, allowUnknown: false)
            }
        case .any:
            break
        }
    }

    private mutating func record(_ body: () throws(ConfigError) -> Void) {
        do {
            try body()
        } catch {
            errors.append(error)
        }
    }
}

extension PluginSpec {
    /// Checks a plugin entry (a mapping with `Type`) against this spec, without the loader:
    /// unknown keys, value types, not-yet-effective fields. `Type` itself is not checked.
    public func check(_ object: ConfigObject) -> (errors: [ConfigError], warnings: [ConfigError]) {
        var checker = FieldChecker(file: object.file)
        let node = ConfigNode(.mapping(object.entries.map {
            ConfigNode.Entry(key: $0.writtenKey, keyLocation: $0.keyLocation, value: $0.value)
        }), location: object.location)
        checker.checkFields(of: node, path: object.keyPath, fields: fields, allowUnknown: allowsUnknownFields,
                            ignoring: ["Type"])
        return (ConfigError.sorted(checker.errors), ConfigError.sorted(checker.warnings))
    }
}
