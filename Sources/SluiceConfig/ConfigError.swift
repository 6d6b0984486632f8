/// A position in a config file, as the YAML parser reports it.
///
/// Lines and columns start at 1; columns count Unicode scalars (as libyaml does).
/// `0` means "unknown", for example for an error about a key that is missing altogether.
public struct SourceLocation: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// 1-based line, 0 if unknown.
    public var line: Int
    /// 1-based column in Unicode scalars, 0 if unknown.
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    /// No known position.
    public static let unknown = SourceLocation(line: 0, column: 0)

    /// Whether a line is known.
    public var isKnown: Bool { line > 0 }

    /// `"7:5"`, `"7"` when only the line is known, `""` when unknown.
    public var description: String {
        guard line > 0 else { return "" }
        return column > 0 ? "\(line):\(column)" : "\(line)"
    }
}

/// One problem in a config file: what is wrong, and exactly where.
///
/// The same type is used for warnings (see ``PipelineDocument/warnings``).
///
/// `description` is `"<basename of file>:<line>:<column>: <keyPath>: <message>"`, for example
/// `app.yaml:7:5: inputs[0].FilePath: unknown key (did you mean FilePaths?)`.
/// `:<line>:<column>` is left out when the position is unknown and `<keyPath>: ` when the
/// error is about the document as a whole.
public struct ConfigError: Error, Sendable, CustomStringConvertible, Equatable, Hashable {
    /// The path of the file, as it was given to the loader.
    public var file: String
    /// 1-based line, 0 if unknown.
    public var line: Int
    /// 1-based column, 0 if unknown.
    public var column: Int
    /// Where in the document, e.g. `inputs[0].FilePath`; `""` for the document itself.
    public var keyPath: String
    /// What is wrong, e.g. `unknown key (did you mean FilePaths?)`.
    public var message: String

    public init(file: String, line: Int = 0, column: Int = 0, keyPath: String = "", message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.keyPath = keyPath
        self.message = message
    }

    public init(file: String, location: SourceLocation, keyPath: String, message: String) {
        self.init(file: file, line: location.line, column: location.column, keyPath: keyPath, message: message)
    }

    /// The position as a ``SourceLocation``.
    public var location: SourceLocation { SourceLocation(line: line, column: column) }

    public var description: String {
        var text = ConfigError.basename(of: file)
        if line > 0 {
            text += ":\(line)"
            if column > 0 { text += ":\(column)" }
        }
        if !text.isEmpty { text += ": " }
        if !keyPath.isEmpty { text += "\(keyPath): " }
        return text + message
    }

    /// The last path component of `path` (everything after the last `/`).
    static func basename(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// Document order: known positions first, by line then column; unknown positions last.
    static func documentOrder(_ a: ConfigError, _ b: ConfigError) -> Bool {
        switch (a.line > 0, b.line > 0) {
        case (true, false): return true
        case (false, true): return false
        case (false, false): return false
        case (true, true): return (a.line, a.column) < (b.line, b.column)
        }
    }

    /// Sorts stably into document order (errors at the same place keep the order they were found in).
    static func sorted(_ errors: [ConfigError]) -> [ConfigError] {
        errors.enumerated().sorted { lhs, rhs in
            if documentOrder(lhs.element, rhs.element) { return true }
            if documentOrder(rhs.element, lhs.element) { return false }
            return lhs.offset < rhs.offset
        }.map(\.element)
    }
}

/// All the errors found in one file, in document order.
///
/// `description` has one ``ConfigError`` description per line.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible, Equatable {
    public var errors: [ConfigError]

    public init(_ errors: [ConfigError]) {
        self.errors = errors
    }

    public init(errors: [ConfigError]) {
        self.errors = errors
    }

    public var description: String {
        errors.map(\.description).joined(separator: "\n")
    }
}
