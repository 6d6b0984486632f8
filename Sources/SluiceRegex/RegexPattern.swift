import CPCRE2

/// A regular expression compiled once with PCRE2 (8-bit, bytes, not UTF mode) and, where the
/// platform allows, JIT-compiled. Immutable after `init`, so one pattern is shared by every
/// thread; matching state lives in a ``RegexMatcher`` per thread.
///
/// How a pattern is applied is fixed at compile time, because PCRE2's JIT cannot take
/// `ANCHORED` / `ENDANCHORED` at match time:
/// - ``Anchoring/full``: the whole subject must match (Boost `regex_match`, used by the native
///   parsers and filters);
/// - ``Anchoring/prefix``: a match must start at the subject's start (Boost `regex_search` with
///   `match_continuous`, used by multiline patterns);
/// - ``Anchoring/search``: anywhere (Go `regexp.MatchString`, RE2 `PartialMatch`).
public final class RegexPattern: @unchecked Sendable, CustomStringConvertible {
    public enum Anchoring: Sendable, Equatable {
        case full, prefix, search
    }

    /// Syntax options.
    public struct Syntax: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// `.` also matches `\n` (Boost's Perl syntax default).
        public static let dotAll = Syntax(rawValue: PCRE2_DOTALL)
        /// `^` and `$` also match at line boundaries (Boost's Perl syntax default).
        public static let multiline = Syntax(rawValue: PCRE2_MULTILINE)
        public static let caseless = Syntax(rawValue: PCRE2_CASELESS)
        /// `$` matches only at the very end (Go's RE2 without `(?m)`), not before a final newline.
        public static let dollarEndOnly = Syntax(rawValue: PCRE2_DOLLAR_ENDONLY)
        /// Several groups may have the same name (grok expressions).
        public static let duplicateNames = Syntax(rawValue: PCRE2_DUPNAMES)
        /// What the incumbent's C++ processors get from Boost.Regex's Perl syntax.
        public static let boost: Syntax = [.dotAll, .multiline]
    }

    /// The pattern as written.
    public let pattern: String
    public let anchoring: Anchoring
    /// Number of capture groups (not counting the whole match).
    public let captureCount: Int
    /// Named groups and their numbers, in the pattern's order of numbers.
    public let namedGroups: [(name: String, number: Int)]
    /// Whether the JIT compiled the pattern (else the interpreter runs it).
    public let isJIT: Bool
    /// Matched through `pcre2_jit_match` (JIT code, no UTF mode to check the subject for).
    let jitFastPath: Bool
    let code: OpaquePointer

    /// Compiles `pattern`. A bad pattern throws a ``RegexError`` with PCRE2's message and the
    /// byte offset where it found the error.
    public init(_ pattern: String, anchoring: Anchoring, syntax: Syntax = []) throws(RegexError) {
        var options = syntax.rawValue
        switch anchoring {
        case .full: options |= PCRE2_ANCHORED | PCRE2_ENDANCHORED
        case .prefix: options |= PCRE2_ANCHORED
        case .search: break
        }
        var errorCode: Int32 = 0
        var errorOffset: Int = 0
        let bytes = Array(pattern.utf8)
        let compiled = bytes.withUnsafeBufferPointer { b in
            pcre2_compile_8(b.baseAddress ?? UnsafePointer(bitPattern: 1), b.count, options, &errorCode, &errorOffset, nil)
        }
        guard let compiled else {
            throw RegexError(pattern: pattern, message: RegexError.message(errorCode), offset: errorOffset)
        }
        code = compiled
        self.pattern = pattern
        self.anchoring = anchoring
        // JIT code exists only when its size is not 0: `(*NO_JIT)` makes the compile call
        // succeed with none.
        _ = pcre2_jit_compile_8(compiled, PCRE2_JIT_COMPLETE)
        var jitSize: Int = 0
        pcre2_pattern_info_8(compiled, UInt32(PCRE2_INFO_JITSIZE), &jitSize)
        isJIT = jitSize > 0
        // `pcre2_jit_match` checks nothing, so it is used only where nothing needs checking: a
        // pattern that turns on UTF mode (`(*UTF)`) needs the subject's UTF-8 checked (an invalid
        // line is a counted failure, not undefined behaviour), which `pcre2_match` does.
        var all: UInt32 = 0
        pcre2_pattern_info_8(compiled, UInt32(PCRE2_INFO_ALLOPTIONS), &all)
        jitFastPath = isJIT && all & PCRE2_UTF == 0
        var count: UInt32 = 0
        pcre2_pattern_info_8(compiled, UInt32(PCRE2_INFO_CAPTURECOUNT), &count)
        captureCount = Int(count)
        namedGroups = RegexPattern.readNames(compiled)
    }

    deinit { pcre2_code_free_8(code) }

    /// A handle to match with that costs no reference counting; valid while this pattern lives.
    public var handle: RegexHandle { RegexHandle(code: code, captureCount: captureCount, jitFastPath: jitFastPath) }

    public var description: String { pattern }

    /// The number of the group named `name`, if any.
    public func groupNumber(_ name: String) -> Int? {
        namedGroups.first { $0.name == name }?.number
    }

    private static func readNames(_ code: OpaquePointer) -> [(name: String, number: Int)] {
        var count: UInt32 = 0
        var entrySize: UInt32 = 0
        var table: UnsafePointer<UInt8>? = nil
        pcre2_pattern_info_8(code, UInt32(PCRE2_INFO_NAMECOUNT), &count)
        guard count > 0 else { return [] }
        pcre2_pattern_info_8(code, UInt32(PCRE2_INFO_NAMEENTRYSIZE), &entrySize)
        pcre2_pattern_info_8(code, UInt32(PCRE2_INFO_NAMETABLE), &table)
        guard let table else { return [] }
        var names: [(String, Int)] = []
        for i in 0..<Int(count) {
            let entry = table + i * Int(entrySize)
            let number = Int(entry[0]) << 8 | Int(entry[1])
            var end = 2
            while end < Int(entrySize) && entry[end] != 0 { end += 1 }
            let name = String(decoding: UnsafeBufferPointer(start: entry + 2, count: end - 2), as: UTF8.self)
            names.append((name, number))
        }
        return names.sorted { $0.1 < $1.1 }
    }
}

/// A compiled pattern borrowed from a ``RegexPattern`` that its holder keeps alive: a plain value
/// (no reference counting) for loops that match once per line.
public struct RegexHandle: @unchecked Sendable {
    let code: OpaquePointer
    public let captureCount: Int
    /// Matched through `pcre2_jit_match` (PCRE2's fast path, which skips the checks of
    /// `pcre2_match`): JIT code exists and there is no UTF mode whose subject needs checking.
    let jitFastPath: Bool
}

/// A pattern PCRE2 could not compile.
public struct RegexError: Error, Sendable, Equatable, CustomStringConvertible {
    public var pattern: String
    /// PCRE2's message, e.g. `missing closing parenthesis`.
    public var message: String
    /// Byte offset in the pattern where PCRE2 stopped.
    public var offset: Int

    public init(pattern: String, message: String, offset: Int) {
        self.pattern = pattern
        self.message = message
        self.offset = offset
    }

    /// E.g. `invalid regular expression "a(b": missing closing parenthesis at offset 3`.
    public var description: String {
        "invalid regular expression \"\(pattern)\": \(message) at offset \(offset)"
    }

    static func message(_ code: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = pcre2_get_error_message_8(code, &buffer, buffer.count)
        return n > 0 ? String(decoding: buffer[0..<Int(n)], as: UTF8.self) : "error \(code)"
    }
}
