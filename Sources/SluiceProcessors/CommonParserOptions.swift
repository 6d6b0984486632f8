import SluiceConfig
import SluiceCore

/// The options every native parser shares (regex, JSON, delimiter, apsara), with the
/// incumbent's defaults [LC core/plugin/processor/CommonParserOptions.cpp].
public struct CommonParserOptions: Sendable, Equatable {
    /// On failure, put the raw value back under `renamedSourceKey`.
    public var keepingSourceWhenParseFail = false
    /// On success, also keep the raw value under `renamedSourceKey`.
    public var keepingSourceWhenParseSucceed = false
    /// The name of the kept raw value; the source key when empty.
    public var renamedSourceKey = ""
    /// With `keepingSourceWhenParseFail`, also copy the raw value to `__raw_log__` on failure.
    public var copingRawLog = false

    public init() {}

    static let defaults = CommonParserOptions()

    /// The field specs, defaults derived from `defaults`.
    public static let fields: [FieldSpec] = [
        FieldSpec(name: "KeepingSourceWhenParseFail", type: .bool,
                  doc: "When parsing fails, keep the raw value under `RenamedSourceKey` (otherwise an event left with no fields is dropped).",
                  defaultValue: "\(defaults.keepingSourceWhenParseFail)"),
        FieldSpec(name: "KeepingSourceWhenParseSucceed", type: .bool,
                  doc: "When parsing succeeds, also keep the raw value under `RenamedSourceKey` (a parsed field of that name wins).",
                  defaultValue: "\(defaults.keepingSourceWhenParseSucceed)"),
        FieldSpec(name: "RenamedSourceKey", type: .string, doc: "Name of the kept raw value; the source key when empty.", defaultValue: nil),
        FieldSpec(name: "CopingRawLog", type: .bool,
                  doc: "With `KeepingSourceWhenParseFail`, also copy the raw value of a failed event to `__raw_log__` (iLogtail: for backward compatibility only).",
                  defaultValue: "\(defaults.copingRawLog)"),
    ]

    public static func from(_ c: ConfigObject) throws(ConfigError) -> CommonParserOptions {
        var o = CommonParserOptions()
        o.keepingSourceWhenParseFail = try c.bool("KeepingSourceWhenParseFail") ?? defaults.keepingSourceWhenParseFail
        o.keepingSourceWhenParseSucceed = try c.bool("KeepingSourceWhenParseSucceed") ?? defaults.keepingSourceWhenParseSucceed
        o.renamedSourceKey = try c.string("RenamedSourceKey") ?? ""
        o.copingRawLog = try c.bool("CopingRawLog") ?? defaults.copingRawLog
        return o
    }
}

/// The field spec of a mandatory `SourceKey` (the native parsers have no default).
let mandatorySourceKey = FieldSpec(name: "SourceKey", type: .string, doc: "The field to parse (`content` for the raw line). Required.", defaultValue: nil)

extension ConfigObject {
    /// A string that must be present and not empty.
    func requiredString(_ key: String) throws(ConfigError) -> String {
        guard let s = try string(key), !s.isEmpty else { throw error(at: has(key) ? key : nil, "\(key) is required") }
        return s
    }

    /// A list of strings that must be present and not empty.
    func requiredStringList(_ key: String) throws(ConfigError) -> [String] {
        guard let l = try stringList(key), !l.isEmpty else { throw error(at: has(key) ? key : nil, "\(key) is required and must not be empty") }
        return l
    }
}
