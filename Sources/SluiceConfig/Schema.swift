/// The type a config field's value must have.
///
/// The loader checks every value against its field's type before any plugin sees it, so
/// plugin code reading a ``ConfigObject`` gets values of the declared type.
public indirect enum FieldType: Sendable {
    /// Any scalar. Unquoted numbers and booleans are accepted and kept as written (`Port: 9200` → `"9200"`).
    case string
    /// A YAML integer (`10`, `-1`, `0x1F`). A quoted `"10"` is a string and is rejected, and so is `10.0`.
    case int
    /// A number: a YAML float or integer.
    case double
    /// `true` or `false`.
    case bool
    /// A list whose items are scalars, kept as their text (like ``string``).
    case stringList
    /// A mapping of string to scalar, values kept as their text; an empty or `null` value is `""`.
    case stringMap
    /// A list of YAML integers.
    case intList
    /// A nested mapping whose keys are checked against `fields` (unknown keys are errors unless `allowUnknown`).
    case object(fields: [FieldSpec], allowUnknown: Bool = false)
    /// A list of mappings, each checked against `fields`.
    case objectList(fields: [FieldSpec])
    /// Anything; not checked.
    case any

    /// How the type is named in messages and docs, e.g. "list of strings".
    public var displayName: String {
        switch self {
        case .string: return "string"
        case .int: return "integer"
        case .double: return "number"
        case .bool: return "boolean"
        case .stringList: return "list of strings"
        case .stringMap: return "map of strings"
        case .intList: return "list of integers"
        case .object: return "object"
        case .objectList: return "list of objects"
        case .any: return "any"
        }
    }

    /// The fields of an ``object`` or ``objectList`` type, else nil.
    public var nestedFields: [FieldSpec]? {
        switch self {
        case .object(let fields, _), .objectList(let fields): return fields
        default: return nil
        }
    }
}

/// Whether a field does something in Sluice yet.
public enum FieldStatus: Sendable, Equatable {
    /// The field is implemented.
    case supported
    /// The field is accepted so that existing configs load, but has no effect yet. The loader
    /// emits a warning naming `reason`, not an error.
    case acceptedNotYetEffective(reason: String)
}

/// One parameter of a plugin (or of a nested object), with its documentation.
///
/// The same spec drives validation, `sluice validate` messages and the README reference.
public struct FieldSpec: Sendable {
    /// The key as written in the config, e.g. `FilePaths` (iLogtail's PascalCase names).
    public var name: String
    /// What the value must be.
    public var type: FieldType
    /// One or two sentences for the docs.
    public var doc: String
    /// The default as human text for docs, e.g. `"1024"`; nil when there is none.
    public var defaultValue: String?
    /// Whether the field has an effect yet.
    public var status: FieldStatus
    /// Other names accepted for the same field (for example an older spelling).
    public var aliases: [String]

    public init(
        _ name: String,
        _ type: FieldType,
        doc: String,
        default defaultValue: String? = nil,
        status: FieldStatus = .supported,
        aliases: [String] = []
    ) {
        self.name = name
        self.type = type
        self.doc = doc
        self.defaultValue = defaultValue
        self.status = status
        self.aliases = aliases
    }

    public init(
        name: String,
        type: FieldType,
        doc: String,
        defaultValue: String? = nil,
        status: FieldStatus = .supported,
        aliases: [String] = []
    ) {
        self.init(name, type, doc: doc, default: defaultValue, status: status, aliases: aliases)
    }

    /// Whether `key` names this field (its name or one of its aliases; case-sensitive).
    public func matches(_ key: String) -> Bool {
        name == key || aliases.contains(key)
    }
}

/// The four sections of a pipeline.
public enum PluginKind: String, Sendable, CaseIterable {
    case input, processor, aggregator, flusher

    /// The top-level key of the section, e.g. `inputs`.
    public var sectionKey: String { rawValue + "s" }
}

/// A plugin type that pipelines may use: its iLogtail name, kind and parameters.
public struct PluginSpec: Sendable {
    /// The value of `Type`, e.g. `input_file`.
    public var type: String
    public var kind: PluginKind
    /// One sentence for the docs.
    public var summary: String
    /// The parameters, besides `Type`.
    public var fields: [FieldSpec]
    /// When true, keys that are not in `fields` are accepted without a message.
    public var allowsUnknownFields: Bool

    public init(type: String, kind: PluginKind, summary: String, fields: [FieldSpec], allowsUnknownFields: Bool = false) {
        self.type = type
        self.kind = kind
        self.summary = summary
        self.fields = fields
        self.allowsUnknownFields = allowsUnknownFields
    }

    /// The field named `key` (by name or alias), if any.
    public func field(_ key: String) -> FieldSpec? {
        fields.first { $0.matches(key) }
    }
}

/// The plugin types available to pipelines. The runtime builds one from the specs each plugin module declares.
public struct PluginCatalog: Sendable {
    /// All specs, in the order given.
    public var specs: [PluginSpec]

    public init(_ specs: [PluginSpec]) {
        self.specs = specs
    }

    /// The spec for `type` in section `kind`, if there is one.
    public func spec(kind: PluginKind, type: String) -> PluginSpec? {
        specs.first { $0.kind == kind && $0.type == type }
    }

    /// The types of one kind, in catalog order.
    public func types(of kind: PluginKind) -> [String] {
        specs.filter { $0.kind == kind }.map(\.type)
    }
}

// MARK: - Markdown

extension FieldSpec {
    /// Table rows for the docs: this field, then (for objects) its nested fields as `Parent.Child`.
    ///
    /// Columns: field, type, default, description. Use under ``FieldSpec/markdownTableHeader``.
    public func markdown() -> String {
        markdownRows(prefix: "").joined(separator: "\n")
    }

    /// The header (two lines) of the table that ``markdown()`` rows belong to.
    public static let markdownTableHeader = "| field | type | default | description |\n| --- | --- | --- | --- |"

    func markdownRows(prefix: String) -> [String] {
        let fullName = prefix + name
        var description = doc
        if !aliases.isEmpty {
            description += " Also accepted as " + aliases.map { "`\($0)`" }.joined(separator: ", ") + "."
        }
        if case .acceptedNotYetEffective(let reason) = status {
            description += " **Accepted, no effect yet:** \(reason)."
        }
        let defaultText = defaultValue.map { "`\($0)`" } ?? "—"
        var rows = ["| `\(fullName)` | \(type.displayName) | \(Markdown.cell(defaultText)) | \(Markdown.cell(description)) |"]
        if let nested = type.nestedFields {
            let childPrefix = fullName + (isList ? "[]." : ".")
            for field in nested {
                rows += field.markdownRows(prefix: childPrefix)
            }
        }
        return rows
    }

    private var isList: Bool {
        if case .objectList = type { return true }
        return false
    }
}

extension PluginSpec {
    /// A docs section: a heading with the type, the summary and the table of fields.
    public func markdown() -> String {
        var text = "### \(type) (\(kind.rawValue))\n\n\(summary)\n\n"
        if fields.isEmpty {
            text += "No parameters besides `Type`.\n"
        } else {
            text += FieldSpec.markdownTableHeader + "\n"
            text += fields.map { $0.markdown() }.joined(separator: "\n") + "\n"
        }
        if allowsUnknownFields {
            text += "\nOther keys are accepted and passed to the plugin as they are.\n"
        }
        return text
    }
}

enum Markdown {
    /// Makes text safe inside a table cell: escapes `|`, turns line breaks into spaces.
    static func cell(_ text: String) -> String {
        text.replacing("|", with: "\\|")
            .split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}
