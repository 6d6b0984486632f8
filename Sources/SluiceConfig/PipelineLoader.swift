import Glibc
import SluiceSystem

/// One plugin entry of a pipeline, checked against its spec.
public struct PluginInstanceConfig: Sendable {
    /// The plugin type (`Type`), e.g. `input_file`.
    public var type: String
    /// The position in its section (`inputs[index]`).
    public var index: Int
    /// The entry's parameters; `config.keyPath` is e.g. `inputs[0]`.
    public var config: ConfigObject

    public init(type: String, index: Int, config: ConfigObject) {
        self.type = type
        self.index = index
        self.config = config
    }
}

/// A validated pipeline config file (one pipeline per file, iLogtail format).
public struct PipelineDocument: Sendable {
    /// The pipeline's name: the file name without directory and without `.yaml`/`.yml`/`.json`.
    public var name: String
    /// The path of the file, as given to the loader.
    public var file: String
    /// `enable` (default true). A disabled pipeline is still fully validated.
    public var enable: Bool
    /// The `global` mapping, if present. Of its keys only `PipelineMetaTagKey` has an effect in
    /// Sluice (``metaTagKeys``); the others are warnings (see ``warnings``).
    public var global: ConfigObject?
    /// `global.PipelineMetaTagKey`: the host tags of the pipeline's events.
    public var metaTagKeys: PipelineMetaTagKeys
    public var inputs: [PluginInstanceConfig]
    public var processors: [PluginInstanceConfig]
    public var aggregators: [PluginInstanceConfig]
    public var flushers: [PluginInstanceConfig]
    /// Things that load but deserve a word: accepted-but-not-yet-effective fields, ignored global keys.
    public var warnings: [ConfigError]
    /// FNV-1a 64 of the file's bytes, to tell whether a file changed.
    public var contentHash: UInt64

    public init(
        name: String, file: String, enable: Bool = true, global: ConfigObject? = nil,
        metaTagKeys: PipelineMetaTagKeys = PipelineMetaTagKeys(), inputs: [PluginInstanceConfig], processors: [PluginInstanceConfig] = [],
        aggregators: [PluginInstanceConfig] = [], flushers: [PluginInstanceConfig],
        warnings: [ConfigError] = [], contentHash: UInt64 = 0
    ) {
        self.name = name
        self.file = file
        self.enable = enable
        self.global = global
        self.metaTagKeys = metaTagKeys
        self.inputs = inputs
        self.processors = processors
        self.aggregators = aggregators
        self.flushers = flushers
        self.warnings = warnings
        self.contentHash = contentHash
    }

    /// The plugins of one section.
    public func plugins(_ kind: PluginKind) -> [PluginInstanceConfig] {
        switch kind {
        case .input: return inputs
        case .processor: return processors
        case .aggregator: return aggregators
        case .flusher: return flushers
        }
    }
}

/// Reads and validates pipeline config files.
public enum PipelineLoader {
    /// The top-level keys of a pipeline document.
    public static let topLevelKeys = ["enable", "global", "inputs", "processors", "aggregators", "flushers"]

    /// Section names of other collectors, mapped to the iLogtail key meant.
    static let topLevelSynonyms = [
        "sources": "inputs", "input": "inputs", "outputs": "flushers", "output": "flushers", "sinks": "flushers",
        "flusher": "flushers", "transforms": "processors", "filters": "processors", "processor": "processors",
        "aggregator": "aggregators",
    ]

    /// The `global` keys iLogtail knows. Sluice accepts them; all but `PipelineMetaTagKey` with a
    /// warning: they have no effect here.
    public static let knownGlobalKeys = [
        "StructureType", "InputIntervalMs", "InputMaxFirstCollectDelayMs", "EnableTimestampNanosecond",
        "UsingOldContentTag", "DefaultLogQueueSize", "DefaultLogGroupQueueSize", "ProcessPriority",
        "EnableProcessorTag", "PipelineMetaTagKey", "AgentEnvMetaTagKey",
    ]

    /// Input types that must be the only input of their pipeline (as in iLogtail).
    public static let exclusiveInputTypes: Set<String> = ["input_file", "input_container_stdio"]

    /// Reads `file` and validates it (see ``parse(text:file:catalog:)``).
    public static func load(file: String, catalog: PluginCatalog) throws(ConfigErrors) -> PipelineDocument {
        let bytes: [UInt8]
        do {
            bytes = try PipelineFiles.read(file)
        } catch {
            throw ConfigErrors([error])
        }
        return try load(bytes: bytes, file: file, catalog: catalog)
    }

    /// Validates the bytes of `file`, already read (see ``parse(text:file:catalog:)``).
    public static func load(bytes: [UInt8], file: String, catalog: PluginCatalog) throws(ConfigErrors) -> PipelineDocument {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigErrors([ConfigError(file: file, message: "the file is not valid UTF-8 text")])
        }
        return try parse(text: text, file: file, catalog: catalog)
    }

    /// Parses and validates a pipeline document given as text; `file` is used for the name and in messages.
    ///
    /// Collects all the errors of the document and throws them together, in document order.
    public static func parse(text: String, file: String, catalog: PluginCatalog) throws(ConfigErrors) -> PipelineDocument {
        let read = DocumentReader.read(text: text, file: file)
        var errors = read.errors
        guard let root = read.root else {
            if errors.isEmpty {
                errors.append(ConfigError(file: file, message: "the file is empty; a pipeline needs inputs and flushers"))
            }
            throw ConfigErrors(ConfigError.sorted(errors))
        }
        guard let entries = root.entries else {
            errors.append(ConfigError(file: file, location: root.location, keyPath: "",
                                      message: "the top level must be a mapping (with inputs and flushers), found \(root.foundDescription)"))
            throw ConfigErrors(ConfigError.sorted(errors))
        }

        var checker = FieldChecker(file: file)
        var enable = true
        var global: ConfigObject?
        var metaTagKeys = PipelineMetaTagKeys()
        var sections: [PluginKind: [PluginInstanceConfig]] = [:]
        var sectionEntries: [PluginKind: ConfigNode.Entry] = [:]

        for entry in entries {
            let keyPath = entry.key
            switch entry.key {
            case "enable":
                guard !entry.value.isNull else { break }
                do {
                    enable = try ValueReader.bool(entry.value, file: file, keyPath: keyPath)
                } catch {
                    checker.errors.append(error)
                }
            case "global":
                guard !entry.value.isNull else { break }
                guard let globalEntries = entry.value.entries else {
                    checker.errors.append(ValueReader.typeError(entry.value, file: file, keyPath: keyPath, expected: "a mapping"))
                    break
                }
                let g = ConfigObject(file: file, keyPath: keyPath, node: entry.value)
                global = g
                do {
                    let (keys, warnings) = try PipelineMetaTagKeys.read(from: g)
                    metaTagKeys = keys
                    checker.warnings += warnings
                } catch {
                    checker.errors.append(error)
                }
                for globalEntry in globalEntries where globalEntry.key != PipelineMetaTagKeys.key {
                    let path = KeyPath.appending(globalEntry.key, to: keyPath)
                    let message: String
                    if knownGlobalKeys.contains(globalEntry.key) {
                        message = "has no effect in Sluice"
                    } else if let suggestion = Suggestions.closest(to: globalEntry.key, in: knownGlobalKeys) {
                        message = "unknown global key, ignored (did you mean \(suggestion)?)"
                    } else {
                        message = "unknown global key, ignored"
                    }
                    checker.warnings.append(ConfigError(file: file, location: globalEntry.keyLocation, keyPath: path, message: message))
                }
            case "version":
                // The incumbent's pipeline version (`v1` / `v2`, its Go event model).
                checker.warnings.append(ConfigError(file: file, location: entry.keyLocation, keyPath: keyPath, message: "has no effect in Sluice"))
            case "extensions":
                checker.errors += extensionErrors(entry.value, keyPath: keyPath, file: file)
            default:
                if let kind = PluginKind.allCases.first(where: { $0.sectionKey == entry.key }) {
                    sectionEntries[kind] = entry
                    sections[kind] = checkSection(kind, node: entry.value, catalog: catalog, checker: &checker)
                } else {
                    let message: String
                    if let synonym = topLevelSynonyms[entry.key.lowercased()] {
                        message = "unknown key (did you mean \(synonym)?)"
                    } else if let suggestion = Suggestions.closest(to: entry.key, in: topLevelKeys) {
                        message = "unknown key (did you mean \(suggestion)?)"
                    } else {
                        message = "unknown key (allowed: \(topLevelKeys.joined(separator: ", ")))"
                    }
                    checker.errors.append(ConfigError(file: file, location: entry.keyLocation, keyPath: keyPath, message: message))
                }
            }
        }

        // Required sections. Entries that failed their own checks still count, so that a typo in
        // the only input does not also produce "needs at least one input".
        for (kind, noun) in [(PluginKind.input, "input"), (.flusher, "flusher")] {
            let entry = sectionEntries[kind]
            let isWrongType = entry.map { !$0.value.isNull && $0.value.list == nil } ?? false
            guard (entry?.value.list?.count ?? 0) == 0, !isWrongType else { continue }
            let location: SourceLocation
            if let entry {
                location = entry.value.isNull ? entry.keyLocation : entry.value.location
            } else {
                location = .unknown
            }
            checker.errors.append(ConfigError(file: file, location: location, keyPath: kind.sectionKey,
                                              message: "a pipeline needs at least one \(noun)"))
        }

        // Inputs that must be alone.
        if let inputNodes = sectionEntries[.input]?.value.list, inputNodes.count > 1 {
            for input in sections[.input] ?? [] where exclusiveInputTypes.contains(input.type) {
                checker.errors.append(ConfigError(file: file, location: input.config.location, keyPath: input.config.keyPath,
                                                  message: "\(input.type) must be the only input of its pipeline (found \(inputNodes.count) inputs)"))
            }
        }

        errors += checker.errors
        guard errors.isEmpty else {
            throw ConfigErrors(ConfigError.sorted(errors))
        }
        return PipelineDocument(
            name: PipelineFiles.pipelineName(of: file), file: file, enable: enable, global: global, metaTagKeys: metaTagKeys,
            inputs: sections[.input] ?? [], processors: sections[.processor] ?? [],
            aggregators: sections[.aggregator] ?? [], flushers: sections[.flusher] ?? [],
            warnings: ConfigError.sorted(checker.warnings), contentHash: PipelineFiles.contentHash(Array(text.utf8))
        )
    }

    /// Checks one section (`inputs`, ...): a list of plugin entries, each a mapping with a known
    /// `Type` and the keys of its spec.
    static func checkSection(_ kind: PluginKind, node: ConfigNode, catalog: PluginCatalog, checker: inout FieldChecker) -> [PluginInstanceConfig] {
        let file = checker.file
        let path = kind.sectionKey
        if node.isNull { return [] }
        guard let items = node.list else {
            let hint = node.entries != nil ? " (a single mapping; write it as a list item, starting with \"- \")" : ""
            checker.errors.append(ValueReader.typeError(node, file: file, keyPath: path,
                                                        expected: "a list of \(kind.rawValue) plugins", hint: hint))
            return []
        }
        let knownTypes = catalog.types(of: kind)
        let knownList = knownTypes.isEmpty ? "none available" : knownTypes.sorted().joined(separator: ", ")
        var instances: [PluginInstanceConfig] = []
        for (index, item) in items.enumerated() {
            let itemPath = KeyPath.appending(index: index, to: path)
            guard let entries = item.entries else {
                checker.errors.append(ValueReader.typeError(item, file: file, keyPath: itemPath, expected: "a mapping with Type"))
                continue
            }
            guard let typeEntry = entries.first(where: { $0.key == "Type" }) else {
                if let misspelt = entries.first(where: { $0.key.lowercased() == "type" }) {
                    checker.errors.append(ConfigError(file: file, location: misspelt.keyLocation,
                                                      keyPath: KeyPath.appending(misspelt.key, to: itemPath),
                                                      message: "unknown key (did you mean Type?)"))
                } else {
                    checker.errors.append(ConfigError(file: file, location: item.location, keyPath: itemPath,
                                                      message: "missing Type (known \(kind.rawValue) types: \(knownList))"))
                }
                continue
            }
            let typePath = KeyPath.appending("Type", to: itemPath)
            guard let typeScalar = typeEntry.value.scalar, typeScalar.kind == .string, !typeScalar.text.isEmpty else {
                checker.errors.append(ValueReader.typeError(typeEntry.value, file: file, keyPath: typePath,
                                                            expected: "a plugin type name"))
                continue
            }
            let type = typeScalar.text
            guard let spec = catalog.spec(kind: kind, type: type) else {
                var message = "unknown \(kind.rawValue) type \(ConfigScalar.quoted(type)) ("
                if let suggestion = Suggestions.closest(to: type, in: knownTypes) {
                    message += "did you mean \(suggestion)? "
                }
                message += "known: \(knownList))"
                if let otherKind = PluginKind.allCases.first(where: { $0 != kind && catalog.spec(kind: $0, type: type) != nil }) {
                    message += "; \(type) is a\(otherKind == .input ? "n" : "") \(otherKind.rawValue), it belongs under \(otherKind.sectionKey)"
                }
                checker.errors.append(ConfigError(file: file, location: typeEntry.value.location, keyPath: typePath, message: message))
                continue
            }
            checker.checkFields(of: item, path: itemPath, fields: spec.fields, allowUnknown: spec.allowsUnknownFields,
                                ignoring: ["Type"], extraCandidates: ["Type"])
            instances.append(PluginInstanceConfig(
                type: type, index: index,
                config: ConfigObject(file: file, keyPath: itemPath, node: item, fields: spec.fields)))
        }
        return instances
    }
}
