import Glibc

/// One `FilePaths` entry in iLogtail's syntax: a directory part that may hold `*`, `?` and `**`,
/// and a file-name pattern. `**` stands for any number of directories, from 0 up to
/// `MaxDirSearchDepth` (iLogtail's default of 0 makes `/var/log/**/*.log` match `/var/log/*.log` only).
///
/// Pure logic: matching works on path components and never touches the file system.
public struct PathPattern: Sendable, Equatable, CustomStringConvertible {
    /// The longest leading directory without wildcards, e.g. `/var/log` for `/var/log/*/app/*.log`.
    public let baseDirectory: String
    /// Patterns for the directories below the base, in order (`**` kept as is).
    public let directoryComponents: [String]
    /// Pattern for the file name.
    public let filePattern: String
    public let maxDepth: Int
    public let original: String

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case notAbsolute(String)
        case noFileName(String)
        case wildcardInFileNameWithSlash(String)
        public var description: String {
            switch self {
            case .notAbsolute(let p): return "\"\(p)\" is not an absolute path"
            case .noFileName(let p): return "\"\(p)\" names a directory, not files (add a file name pattern such as *.log)"
            case .wildcardInFileNameWithSlash(let p): return "\"\(p)\": ** may only stand for directories"
            }
        }
    }

    public init(_ path: String, maxDepth: Int = 0) throws(ParseError) {
        guard path.hasPrefix("/") else { throw .notAbsolute(path) }
        guard !path.hasSuffix("/") else { throw .noFileName(path) }
        let comps = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard let file = comps.last, !file.isEmpty else { throw .noFileName(path) }
        if file == "**" { throw .wildcardInFileNameWithSlash(path) }
        let dirs = comps.dropLast()
        var base: [String] = []
        var rest: [String] = []
        var inWild = false
        for c in dirs {
            if !inWild && !PathPattern.hasWildcard(c) { base.append(c) } else { inWild = true; rest.append(c) }
        }
        // Collapse consecutive ** into one.
        var collapsed: [String] = []
        for c in rest where !(c == "**" && collapsed.last == "**") { collapsed.append(c) }
        baseDirectory = "/" + base.joined(separator: "/")
        directoryComponents = collapsed
        filePattern = file
        self.maxDepth = max(0, maxDepth)
        original = path
    }

    public var description: String { original }

    static func hasWildcard(_ s: String) -> Bool {
        s.contains("*") || s.contains("?") || s.contains("[")
    }

    /// fnmatch(3) without FNM_PATHNAME subtleties: one component against one pattern.
    public static func matchComponent(_ pattern: String, _ name: String) -> Bool {
        if !hasWildcard(pattern) { return pattern == name }
        return fnmatch(pattern, name, 0) == 0
    }

    /// The deepest directory (relative components count) that can hold matching files.
    public var maxRelativeDepth: Int {
        let fixed = directoryComponents.filter { $0 != "**" }.count
        return directoryComponents.contains("**") ? fixed + maxDepth : fixed
    }

    /// Whether files directly in the directory with relative components `rel` can match.
    public func directoryMatches(_ rel: [String]) -> Bool {
        match(directoryComponents[...], rel[...], budget: maxDepth, prefixOnly: false)
    }

    /// Whether some directory below `rel` (or `rel` itself) can match: worth watching and scanning.
    public func directoryMayLeadToMatch(_ rel: [String]) -> Bool {
        match(directoryComponents[...], rel[...], budget: maxDepth, prefixOnly: true)
    }

    private func match(_ pat: ArraySlice<String>, _ rel: ArraySlice<String>, budget: Int, prefixOnly: Bool) -> Bool {
        guard let p = pat.first else { return rel.isEmpty }
        if rel.isEmpty { return prefixOnly || pat.allSatisfy { $0 == "**" } }
        if p == "**" {
            // ** consumes 0...budget components.
            if match(pat.dropFirst(), rel, budget: budget, prefixOnly: prefixOnly) { return true }
            if budget > 0 { return match(pat, rel.dropFirst(), budget: budget - 1, prefixOnly: prefixOnly) }
            return false
        }
        guard PathPattern.matchComponent(p, rel.first!) else { return false }
        return match(pat.dropFirst(), rel.dropFirst(), budget: budget, prefixOnly: prefixOnly)
    }

    /// Relative components of `dir` below the base directory, or nil if `dir` is not under it.
    public func relativeComponents(ofDirectory dir: String) -> [String]? {
        if dir == baseDirectory { return [] }
        let prefix = baseDirectory == "/" ? "/" : baseDirectory + "/"
        guard dir.hasPrefix(prefix) else { return nil }
        return dir.dropFirst(prefix.count).split(separator: "/").map(String.init)
    }

    /// Whether the file at absolute `path` matches.
    public func matches(path: String) -> Bool {
        guard let slash = path.lastIndex(of: "/") else { return false }
        let dir = slash == path.startIndex ? "/" : String(path[..<slash])
        let name = String(path[path.index(after: slash)...])
        guard PathPattern.matchComponent(filePattern, name), let rel = relativeComponents(ofDirectory: dir) else { return false }
        return directoryMatches(rel)
    }
}

/// The exclusions of `input_file`: `ExcludeFilePaths` (absolute path globs), `ExcludeFiles`
/// (file name globs) and `ExcludeDirs` (directory globs: a file under a matching directory, at
/// any depth, is excluded).
public struct PathExclusions: Sendable, Equatable {
    public var filePaths: [String] = []
    public var fileNames: [String] = []
    public var directories: [String] = []
    public init(filePaths: [String] = [], fileNames: [String] = [], directories: [String] = []) {
        self.filePaths = filePaths
        self.fileNames = fileNames
        self.directories = directories
    }

    public func excludesFile(_ path: String) -> Bool {
        for p in filePaths where fnmatch(p, path, FNM_PATHNAME) == 0 { return true }
        if !fileNames.isEmpty {
            let name = path.split(separator: "/").last.map(String.init) ?? path
            for p in fileNames where fnmatch(p, name, 0) == 0 { return true }
        }
        if !directories.isEmpty {
            var dir = path
            while let slash = dir.lastIndex(of: "/"), slash != dir.startIndex {
                dir = String(dir[..<slash])
                if excludesDirectory(dir) { return true }
            }
        }
        return false
    }

    public func excludesDirectory(_ dir: String) -> Bool {
        for p in directories where fnmatch(p, dir, FNM_PATHNAME) == 0 { return true }
        return false
    }
}
