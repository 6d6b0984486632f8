import CPCRE2
import Synchronization

/// What one match attempt found.
public enum RegexResult: Sendable, Equatable {
    case matched
    case noMatch
    /// PCRE2 gave up (match limit, JIT stack limit, ...): a counted failure, never a hang.
    case failed(code: Int32)

    public var isMatch: Bool { self == .matched }
}

/// The per-thread state of matching: PCRE2 match data (the capture offsets), a match context
/// with a match limit, and a JIT stack. Use from one thread at a time (``RegexMatcherPool``
/// hands one out per batch); any number of ``RegexPattern``s whose groups fit can share it.
public final class RegexMatcher: @unchecked Sendable {
    /// PCRE2's own default is 10 M; a pattern that backtracks badly stops long before a reader stalls.
    public static let defaultMatchLimit: UInt32 = 1_000_000

    private let matchData: OpaquePointer
    private let context: OpaquePointer
    private let jitStack: OpaquePointer?
    @usableFromInline let ovector: UnsafeMutablePointer<Int>
    /// Capture groups this matcher has room for.
    public let maxCaptures: Int
    /// PCRE2's "group did not take part" offset, kept here so reading a group is not a lazy global's check.
    @usableFromInline let unset = cpcre2_unset()

    /// A matcher with room for the groups of every pattern in `patterns`.
    public convenience init(for patterns: [RegexPattern], matchLimit: UInt32 = RegexMatcher.defaultMatchLimit) {
        self.init(maxCaptures: patterns.map(\.captureCount).max() ?? 0, matchLimit: matchLimit)
    }

    public init(maxCaptures: Int, matchLimit: UInt32 = RegexMatcher.defaultMatchLimit) {
        self.maxCaptures = maxCaptures
        matchData = pcre2_match_data_create_8(UInt32(maxCaptures + 1), nil)
        ovector = pcre2_get_ovector_pointer_8(matchData)
        context = pcre2_match_context_create_8(nil)
        pcre2_set_match_limit_8(context, matchLimit)
        jitStack = pcre2_jit_stack_create_8(32 * 1024, 1024 * 1024, nil)
        if let jitStack { pcre2_jit_stack_assign_8(context, nil, UnsafeMutableRawPointer(jitStack)) }
    }

    deinit {
        pcre2_match_data_free_8(matchData)
        pcre2_match_context_free_8(context)
        if let jitStack { pcre2_jit_stack_free_8(jitStack) }
    }

    /// Matches `pattern` against `length` bytes at `subject`, starting at byte `start`.
    /// After ``RegexResult/matched``, ``range(_:)`` gives the groups.
    @inline(__always)
    public func match(_ pattern: RegexPattern, _ subject: UnsafePointer<UInt8>, _ length: Int, from start: Int = 0) -> RegexResult {
        match(pattern.handle, subject, length, from: start)
    }

    /// ``match(_:_:_:from:)`` through a ``RegexHandle`` (hot loops: no reference counting).
    @inline(__always)
    public func match(_ pattern: RegexHandle, _ subject: UnsafePointer<UInt8>, _ length: Int, from start: Int = 0) -> RegexResult {
        precondition(pattern.captureCount <= maxCaptures, "matcher too small for the pattern")
        // `pcre2_jit_match` checks nothing: a start past the end would read past the subject.
        precondition(start >= 0 && start <= length, "match start outside the subject")
        let rc = pattern.jitFastPath
            ? pcre2_jit_match_8(pattern.code, subject, length, start, 0, matchData, context)
            : pcre2_match_8(pattern.code, subject, length, start, 0, matchData, context)
        if rc > 0 { return .matched }
        if rc == 0 { return .matched }  // cannot happen: the match data has room for every group
        if rc == PCRE2_ERROR_NOMATCH || rc == PCRE2_ERROR_PARTIAL { return .noMatch }
        return .failed(code: rc)
    }

    /// Matches bytes of an array (tests, slow paths).
    public func match(_ pattern: RegexPattern, _ bytes: [UInt8]) -> RegexResult {
        bytes.withUnsafeBufferPointer { b in match(pattern, b.baseAddress ?? UnsafePointer(bitPattern: 1)!, b.count) }
    }

    /// The byte range of group `group` (0 = whole match) of the last successful match, relative
    /// to the subject's start; nil when the group did not take part.
    @inline(__always)
    public func range(_ group: Int) -> Range<Int>? {
        let s = ovector[2 * group]
        if s == unset { return nil }
        return s..<ovector[2 * group + 1]
    }

    /// Start and end of group `group`, -1 / -1 when it did not take part. Inlinable: a parser
    /// reads every group of every line through it, and a call across modules per group was 11 %
    /// of the regex's own time in the nginx-regex bench.
    @inlinable @inline(__always)
    public func bounds(_ group: Int) -> (start: Int, end: Int) {
        let s = ovector[2 * group]
        if s == unset { return (-1, -1) }
        return (s, ovector[2 * group + 1])
    }

    /// A message for a failure code, e.g. `match limit exceeded`.
    public static func message(_ code: Int32) -> String { RegexError.message(code) }
}

/// Matchers to borrow, one per batch: processors are shared by every thread that runs them, a
/// matcher is not. Taking one costs a lock per batch, never an allocation per event.
public final class RegexMatcherPool: Sendable {
    private let free = Mutex<[RegexMatcher]>([])
    private let maxCaptures: Int
    private let matchLimit: UInt32

    public init(for patterns: [RegexPattern], matchLimit: UInt32 = RegexMatcher.defaultMatchLimit) {
        maxCaptures = patterns.map(\.captureCount).max() ?? 0
        self.matchLimit = matchLimit
    }

    public func withMatcher<R>(_ body: (RegexMatcher) throws -> R) rethrows -> R {
        let m = free.withLock { $0.popLast() } ?? RegexMatcher(maxCaptures: maxCaptures, matchLimit: matchLimit)
        defer { free.withLock { if $0.count < 16 { $0.append(m) } } }
        return try body(m)
    }
}
