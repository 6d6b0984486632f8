import Yams

/// Reads a YAML or JSON text into a ``ConfigNode`` tree, turning every parser problem into a
/// ``ConfigError`` with a position.
///
/// JSON is read by the same parser (JSON is YAML's flow style), so JSON files get positions too.
///
/// Duplicate keys: Yams refuses a mapping with a repeated key and names only the first one, with
/// no key path. To report every duplicate where it is written, the reader renames the first
/// occurrence in a private copy of the text to a placeholder of the same length (so no position
/// moves), parses again, and repeats; in the final tree each placeholder is mapped back to its key,
/// and each later occurrence is reported as a duplicate (and dropped, the first one wins).
enum DocumentReader {
    struct ReadResult {
        /// The document's root, nil when the text is empty or could not be parsed.
        var root: ConfigNode?
        var errors: [ConfigError]
    }

    /// The most duplicate keys handled by renaming; past that, the first is reported as Yams names it.
    static let maxRenames = 200

    static func read(text: String, file: String) -> ReadResult {
        var work = Array(text.unicodeScalars)
        var placeholders: [String: String] = [:]  // placeholder -> original key
        var nextPlaceholder = 0
        let syntaxWord = file.lowercased().hasSuffix(".json") ? "JSON" : "YAML"

        while true {
            let yaml = String(String.UnicodeScalarView(work))
            do {
                guard let node = try Yams.compose(yaml: yaml) else {
                    return ReadResult(root: nil, errors: [])
                }
                var converter = Converter(file: file, placeholders: placeholders)
                let root = converter.convert(node, path: "")
                return ReadResult(root: root, errors: converter.errors)
            } catch let error as YamlError {
                if case .duplicatedKeysInMapping(let duplicates, let context) = error,
                   nextPlaceholder < maxRenames,
                   let key = duplicates.first,
                   let placeholder = makePlaceholder(number: nextPlaceholder, length: key.unicodeScalars.count),
                   rename(key: key, at: context.mark, to: placeholder, in: &work)
                {
                    placeholders[placeholder] = key
                    nextPlaceholder += 1
                    continue
                }
                return ReadResult(root: nil, errors: [convert(error, file: file, text: text, syntaxWord: syntaxWord, placeholders: placeholders)])
            } catch {
                return ReadResult(root: nil, errors: [ConfigError(file: file, message: "invalid \(syntaxWord): \(error)")])
            }
        }
    }

    // MARK: Yams errors

    static func convert(_ error: YamlError, file: String, text: String, syntaxWord: String, placeholders: [String: String]) -> ConfigError {
        func contextSuffix(_ context: YamlError.Context?) -> String {
            guard let context, !context.text.isEmpty else { return "" }
            return " (\(context.text) at line \(context.mark.line), column \(context.mark.column))"
        }
        switch error {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            return ConfigError(file: file, line: mark.line, column: mark.column,
                               message: "invalid \(syntaxWord): \(problem)\(contextSuffix(context))")
        case .reader(let problem, let offset, _, _):
            let position = offset.map { location(ofCharacterOffset: $0, in: text) } ?? SourceLocation.unknown
            return ConfigError(file: file, location: position, keyPath: "", message: "invalid \(syntaxWord): \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let names = duplicates.map { placeholders[$0] ?? $0 }.map { ConfigScalar.quoted($0) }.joined(separator: ", ")
            return ConfigError(file: file, line: context.mark.line, column: context.mark.column,
                               message: "duplicate key \(names) (each key may appear only once in a mapping)")
        default:
            return ConfigError(file: file, message: "invalid \(syntaxWord): \(error)")
        }
    }

    /// Line and column of the `offset`-th Character of `text`.
    static func location(ofCharacterOffset offset: Int, in text: String) -> SourceLocation {
        var line = 1
        var column = 1
        for (index, character) in text.enumerated() {
            if index == offset { break }
            if character.isNewline {
                line += 1
                column = 1
            } else {
                column += character.unicodeScalars.count
            }
        }
        return SourceLocation(line: line, column: column)
    }

    // MARK: Renaming duplicate keys

    /// A string of `length` private-use scalars that no real config contains, distinct per `number`.
    static func makePlaceholder(number: Int, length: Int) -> String? {
        guard length > 0, let scalar = Unicode.Scalar(0xE000 + number) else { return nil }
        return String(String.UnicodeScalarView(repeatElement(scalar, count: length)))
    }

    /// Overwrites the key scalar written at `mark` (plain or quoted) with `placeholder`, which has
    /// the same number of scalars. Returns false when the text there is not the key as expected
    /// (for example a quoted key with escapes), leaving `text` unchanged.
    static func rename(key: String, at mark: Mark, to placeholder: String, in text: inout [Unicode.Scalar]) -> Bool {
        guard var index = scalarIndex(line: mark.line, column: mark.column, in: text) else { return false }
        if index < text.count, text[index] == "\"" || text[index] == "'" {
            index += 1
        }
        let keyScalars = Array(key.unicodeScalars)
        guard index + keyScalars.count <= text.count,
              Array(text[index ..< index + keyScalars.count]) == keyScalars
        else { return false }
        text.replaceSubrange(index ..< index + keyScalars.count, with: placeholder.unicodeScalars)
        return true
    }

    /// The index in `text` of the scalar at a libyaml line/column (both 1-based), counting line
    /// breaks as libyaml does (`\r\n`, `\r`, `\n`, NEL, LS, PS) and skipping a leading BOM.
    static func scalarIndex(line: Int, column: Int, in text: [Unicode.Scalar]) -> Int? {
        guard line >= 1, column >= 1 else { return nil }
        var index = text.first == "\u{FEFF}" ? 1 : 0
        var currentLine = 1
        while currentLine < line {
            guard index < text.count else { return nil }
            let scalar = text[index]
            index += 1
            switch scalar {
            case "\r":
                if index < text.count, text[index] == "\n" { index += 1 }
                currentLine += 1
            case "\n", "\u{85}", "\u{2028}", "\u{2029}":
                currentLine += 1
            default:
                break
            }
        }
        let target = index + column - 1
        return target <= text.count ? target : nil
    }

    // MARK: Yams Node → ConfigNode

    struct Converter {
        let file: String
        let placeholders: [String: String]
        var errors: [ConfigError] = []

        init(file: String, placeholders: [String: String]) {
            self.file = file
            self.placeholders = placeholders
        }

        static func location(_ mark: Mark?) -> SourceLocation {
            guard let mark else { return .unknown }
            return SourceLocation(line: mark.line, column: mark.column)
        }

        mutating func convert(_ node: Node, path: String) -> ConfigNode {
            let location = Self.location(node.mark)
            switch node {
            case .scalar(let scalar):
                return ConfigNode(.scalar(Self.scalar(scalar, resolvedTag: Tag.Name(rawValue: node.tag.rawValue))), location: location)
            case .sequence(let sequence):
                var items: [ConfigNode] = []
                for (index, item) in sequence.enumerated() {
                    items.append(convert(item, path: KeyPath.appending(index: index, to: path)))
                }
                return ConfigNode(.list(items), location: location)
            case .mapping(let mapping):
                var entries: [ConfigNode.Entry] = []
                var firstSeen: [String: SourceLocation] = [:]
                for (keyNode, valueNode) in mapping {
                    let keyLocation = Self.location(keyNode.mark)
                    guard case .scalar(let keyScalar) = keyNode else {
                        errors.append(ConfigError(file: file, location: keyLocation, keyPath: path,
                                                  message: "a key must be a plain string, found \(keyNode.mapping != nil ? "a mapping" : "a list")"))
                        continue
                    }
                    let key = placeholders[keyScalar.string] ?? keyScalar.string
                    let keyPath = KeyPath.appending(key, to: path)
                    if let first = firstSeen[key] {
                        errors.append(ConfigError(file: file, location: keyLocation, keyPath: keyPath,
                                                  message: "duplicate key (first defined at line \(first.line), column \(first.column))"))
                        continue
                    }
                    firstSeen[key] = keyLocation
                    let value = convert(valueNode, path: keyPath)
                    entries.append(ConfigNode.Entry(key: key, keyLocation: keyLocation, value: value))
                }
                return ConfigNode(.mapping(entries), location: location)
            case .alias:
                // `compose` resolves aliases to the anchored node; this is not expected.
                return ConfigNode(.scalar(ConfigScalar(text: "", kind: .null)), location: location)
            }
        }

        static func scalar(_ scalar: Node.Scalar, resolvedTag: Tag.Name) -> ConfigScalar {
            let isQuoted = scalar.style == .singleQuoted || scalar.style == .doubleQuoted
            let kind: ConfigScalar.Kind
            switch resolvedTag {
            case .str:
                kind = .string
            case .int:
                kind = .int(Int.construct(from: scalar))
            case .float:
                if let value = Double.construct(from: scalar) {
                    kind = .float(value)
                } else {
                    kind = .other(tag: resolvedTag.rawValue)
                }
            case .bool:
                if let value = Bool.construct(from: scalar) {
                    kind = .bool(value)
                } else {
                    kind = .other(tag: resolvedTag.rawValue)
                }
            case .null:
                kind = .null
            default:
                kind = .other(tag: resolvedTag.rawValue)
            }
            return ConfigScalar(text: scalar.string, kind: kind, isQuoted: isQuoted)
        }
    }
}
