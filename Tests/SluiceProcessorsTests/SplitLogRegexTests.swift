import SluiceCore
import SluiceTesting
import Testing

/// Config errors as text (nil when the config loads).
private func configError(_ yaml: String) -> String? {
    do { _ = try ProcessorHarness(yaml); return nil } catch { return "\(error)" }
}

/// The contents of a batch's events, in order (unparsed events: their line).
private func contents(_ b: EventBatch) -> [String] {
    b.events.indices.map { i in b.fieldStrings(i).first { $0.key == "content" }?.value ?? "<none>" }
}

/// Golden cases for processor_split_log_regex, written from the incumbent's code
/// (LC plugins/processor/split/logregex/split_log_regex.go, `SplitLog` / `ProcessLogs`).
@Suite struct SplitLogRegexTests {
    /// The `SplitRegex` of reference §6.1 (a logback line: date, time with millis, then `|`).
    static let logback = """
      - Type: processor_split_log_regex
        SplitRegex: \\d+-\\d+-\\d+\\s\\d+:\\d+:\\d+\\.\\d+\\|.*
        SplitKey: content
        PreserveOthers: true
    """

    @Test func aJavaStackTraceStaysWithItsRecord() throws {
        let h = try ProcessorHarness(Self.logback)
        let text = [
            "2024-01-02 10:00:00.123|u1|INFO|get|A:1|main|started|",
            "2024-01-02 10:00:01.456|u2|ERROR|get|A:2|main|failed|java.lang.NullPointerException",
            "\tat com.example.A.get(A.java:2)",
            "\tat com.example.Main.main(Main.java:9)",
            "2024-01-02 10:00:02.789|u3|INFO|get|A:3|main|done|",
        ].joined(separator: "\n")
        #expect(h.run([text]) == [
            #"{"content":"2024-01-02 10:00:00.123|u1|INFO|get|A:1|main|started|"}"#,
            #"{"content":"2024-01-02 10:00:01.456|u2|ERROR|get|A:2|main|failed|java.lang.NullPointerException\n\tat com.example.A.get(A.java:2)\n\tat com.example.Main.main(Main.java:9)"}"#,
            #"{"content":"2024-01-02 10:00:02.789|u3|INFO|get|A:3|main|done|"}"#,
        ])
    }

    @Test func theFirstLineStartsTheFirstGroupEvenWhenItDoesNotMatch() throws {
        let h = try ProcessorHarness("  - Type: processor_split_log_regex\n    SplitRegex: 'start.*'")
        #expect(h.run(["junk\nmore\nstart 1\ncont\nstart 2"]) == [
            #"{"content":"junk\nmore"}"#, #"{"content":"start 1\ncont"}"#, #"{"content":"start 2"}"#,
        ])
        // No line but the first matches: one event, unchanged.
        #expect(h.run(["a\nb\nc"]) == [#"{"content":"a\nb\nc"}"#])
        // A single line, matching or not.
        #expect(h.run(["start only"]) == [#"{"content":"start only"}"#])
        #expect(h.run(["other"]) == [#"{"content":"other"}"#])
    }

    @Test func theDefaultMakesEveryLineAnEventIncludingEmptyOnes() throws {
        let h = try ProcessorHarness("  - Type: processor_split_log_regex")
        #expect(h.run(["a\nb\n\nc"]) == [#"{"content":"a"}"#, #"{"content":"b"}"#, #"{"content":""}"#, #"{"content":"c"}"#])
    }

    @Test func aTrailingNewlineStaysInTheLastGroup() throws {
        let h = try ProcessorHarness("  - Type: processor_split_log_regex\n    SplitRegex: 'S.*'")
        // The last line is empty and does not match `S.*`: it stays in the last group, `\n` and all.
        #expect(h.run(["S1\nx\nS2\n"]) == [#"{"content":"S1\nx"}"#, #"{"content":"S2\n"}"#])
        // A leading empty line: the first group is the empty line, cut before S1's `\n`.
        #expect(h.run(["\nS1\nS2"]) == [#"{"content":""}"#, #"{"content":"S1"}"#, #"{"content":"S2"}"#])
    }

    @Test func anEmptyValueGivesNoEvent() throws {
        let h = try ProcessorHarness("  - Type: processor_split_log_regex")
        let b = h.batch(["", "x"])
        #expect(contents(b) == ["x"])
        #expect(h.metrics().discardedByReason["empty"] == 1)
    }

    @Test func theMatchMustBeTheLeftmostFirstMatchReachingTheLineEnd() throws {
        // Go's FindStringSubmatchIndex takes the leftmost-first match: `a|ab` on "ab" is "a",
        // which does not reach the end, so "ab" does not start an event (PCRE2's full-match
        // backtracking would have said it does).
        let h = try ProcessorHarness("  - Type: processor_split_log_regex\n    SplitRegex: 'a|ab'")
        #expect(h.run(["x\nab\na"]) == [#"{"content":"x\nab"}"#, #"{"content":"a"}"#])
        // Not anchored at the end by the pattern: a prefix match is not enough.
        let p = try ProcessorHarness("  - Type: processor_split_log_regex\n    SplitRegex: '\\d+'")
        #expect(p.run(["x\n12 y\n34"]) == [#"{"content":"x\n12 y"}"#, #"{"content":"34"}"#])
        // Nor is a match later in the line.
        #expect(p.run(["x\ny 12"]) == [#"{"content":"x\ny 12"}"#])
    }

    @Test func eachEventKeepsTheTimeAndFlagsOfTheOriginal() throws {
        let h = try ProcessorHarness("  - Type: processor_split_log_regex")
        var arena = Array("a\nb".utf8)
        arena += Array("c".utf8)
        var b = EventBatch(arena: arena, events: [LogEvent(content: Span(0, 3), timeNanos: 5_000_000_000, flags: LogEvent.Flag.unterminated),
                                                  LogEvent(content: Span(3, 1))],
                           tags: [], observedNanos: 1, inputBytes: arena.count)
        for (p, _) in h.processors { p.process(&b) }
        #expect(b.events.count == 3)
        #expect(b.events.map(\.timeNanos) == [5_000_000_000, 5_000_000_000, 0])
        #expect(b.events.map(\.flags) == [LogEvent.Flag.unterminated, LogEvent.Flag.unterminated, 0])
        #expect(b.events.allSatisfy { !$0.isParsed }, "a raw line split on content stays unparsed")
        #expect(contents(b) == ["a", "b", "c"])
    }

    /// Two fields ahead of the processor: `pre` (a prefix) and `msg` (the lines), via a parser.
    static let twoFields = """
      - Type: processor_parse_regex_native
        SourceKey: content
        Regex: '(\\w+):(.*)'
        Keys: [pre, msg]
    """

    @Test func preserveOthersCopiesTheOtherFieldsBeforeTheSplitField() throws {
        let h = try ProcessorHarness(Self.twoFields + "\n" + """
          - Type: processor_split_log_regex
            SplitKey: msg
            SplitRegex: 'S.*'
            PreserveOthers: true
        """)
        #expect(h.run(["p1:S1\nx\nS2"]) == [#"{"pre":"p1","msg":"S1\nx"}"#, #"{"pre":"p1","msg":"S2"}"#])
    }

    /// EnableLogPositionMeta (the incumbent's `ReviseFileOffset`): a preserved `__file_offset__`
    /// holding an integer becomes each group's own offset; off, or not an integer, it is copied.
    @Test func enableLogPositionMetaMovesTheOffsetToEachGroup() throws {
        func harness(_ meta: Bool) throws -> ProcessorHarness {
            try ProcessorHarness("""
              - Type: processor_parse_regex_native
                SourceKey: content
                Regex: '(\\w+) ((?s).*)'
                Keys: [__file_offset__, msg]
              - Type: processor_split_log_regex
                SplitKey: msg
                SplitRegex: 'S.*'
                PreserveOthers: true
                EnableLogPositionMeta: \(meta)
            """)
        }
        #expect(try harness(true).run(["1000 S1\nx\nS2"]) == [#"{"__file_offset__":"1000","msg":"S1\nx"}"#, #"{"__file_offset__":"1005","msg":"S2"}"#])
        #expect(try harness(false).run(["1000 S1\nx\nS2"]) == [#"{"__file_offset__":"1000","msg":"S1\nx"}"#, #"{"__file_offset__":"1000","msg":"S2"}"#])
        #expect(try harness(true).run(["abc S1\nS2"]) == [#"{"__file_offset__":"abc","msg":"S1"}"#, #"{"__file_offset__":"abc","msg":"S2"}"#])
    }

    @Test func withoutPreserveOthersOnlyTheSplitFieldIsLeft() throws {
        let h = try ProcessorHarness(Self.twoFields + "\n" + """
          - Type: processor_split_log_regex
            SplitKey: msg
            SplitRegex: 'S.*'
        """)
        #expect(h.run(["p1:S1\nx\nS2"]) == [#"{"msg":"S1\nx"}"#, #"{"msg":"S2"}"#])
    }

    @Test func theSplitFieldMovesLastAndAnEmptyKeyTakesTheFirstField() throws {
        let h = try ProcessorHarness(Self.twoFields + "\n" + """
          - Type: processor_split_log_regex
            SplitRegex: '\\w+'
            PreserveOthers: true
        """)
        // SplitKey empty: the first field (`pre`) is split; `msg` is kept before it.
        #expect(h.run(["p1:m"]) == [#"{"msg":"m","pre":"p1"}"#])
    }

    @Test func anEventWithoutTheFieldPassesWithPreserveOthersAndIsDroppedWithout() throws {
        let keep = try ProcessorHarness("  - Type: processor_split_log_regex\n    SplitKey: msg\n    PreserveOthers: true")
        #expect(keep.run(["a\nb"]) == [#"{"content":"a\nb"}"#])
        let drop = try ProcessorHarness("  - Type: processor_split_log_regex\n    SplitKey: msg")
        #expect(drop.run(["a\nb", "c"]).isEmpty)
        #expect(drop.metrics().discardedByReason["no_key"] == 2)
        // Parsed events too.
        let parsed = try ProcessorHarness(Self.twoFields + "\n  - Type: processor_split_log_regex\n    SplitKey: nope")
        #expect(parsed.run(["p:m"]).isEmpty)
    }

    @Test func eventsAroundASplitOneKeepTheirOrder() throws {
        let h = try ProcessorHarness("  - Type: processor_split_log_regex\n    SplitRegex: 'S.*'")
        #expect(h.run(["one", "S1\nS2\nS3", "two"]) == [
            #"{"content":"one"}"#, #"{"content":"S1"}"#, #"{"content":"S2"}"#, #"{"content":"S3"}"#, #"{"content":"two"}"#,
        ])
    }

    @Test func aBadPatternIsAConfigErrorAtItsKey() {
        let e = configError("  - Type: processor_split_log_regex\n    SplitRegex: 'a(b'")
        #expect(e?.contains("processors[0].SplitRegex") == true, "\(e ?? "")")
        #expect(e?.contains("missing closing parenthesis") == true, "\(e ?? "")")
        #expect(configError("  - Type: processor_split_log_regex\n    PreserveOthers: maybe")?.contains("processors[0].PreserveOthers") == true)
        #expect(configError("  - Type: processor_split_log_regex\n    NoKeyError: true\n    EnableLogPositionMeta: false") == nil)
    }
}
