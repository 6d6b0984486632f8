import SluiceCore
import SluiceTesting
import Testing

/// Golden cases for processor_parse_regex_native, written from the incumbent's semantics
/// (reference §1.0, §1.1): full match, Keys, the common keep / drop rules.
@Suite struct ParseRegexNativeTests {
    static let nginx = #"^([^ ]*) ([^ ]*) ([^ ]*) \[([^\]]*)\] "(\S+) ([^\"]*) (\S*)" ([^ ]*) ([^ ]*) "([^\"]*)" "([^\"]*)""#

    @Test func parsesIntoKeysAndDropsTheSource() throws {
        let h = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (\\w+) (\\d+)
            Keys: [word, number]
        """)
        #expect(h.run(["hello 42"]) == [#"{"word":"hello","number":"42"}"#])
    }

    @Test func aValueThatDoesNotFullyMatchIsDroppedByDefault() throws {
        let h = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (\\w+) (\\d+)
            Keys: [word, number]
        """)
        // Full match: trailing text fails, and the failed event, left empty, is dropped.
        #expect(h.run(["hello 42 tail", "ok 1"]) == [#"{"word":"ok","number":"1"}"#])
        #expect(h.metrics().parseFailures.current == 1)
        #expect(h.metrics().discardedByReason["parse_failure"] == 1)
    }

    @Test func keepingSourceOnFailureAndSuccess() throws {
        let h = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (\\w+) (\\d+)
            Keys: [word, number]
            KeepingSourceWhenParseFail: true
            KeepingSourceWhenParseSucceed: true
            RenamedSourceKey: raw
        """)
        #expect(h.run(["a 1", "bad"]) == [#"{"word":"a","number":"1","raw":"a 1"}"#, #"{"raw":"bad"}"#])
    }

    @Test func aParsedFieldNamedLikeTheRenamedKeyWins() throws {
        // TestProcessRegexRaw: rawLog is the parsed group, not the raw line.
        let h = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (\\w+) (\\d+)
            Keys: [rawLog, number]
            KeepingSourceWhenParseSucceed: true
            RenamedSourceKey: rawLog
        """)
        #expect(h.run(["a 1"]) == [#"{"rawLog":"a","number":"1"}"#])
    }

    @Test func copingRawLogAddsRawLogOnKeptFailures() throws {
        let h = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (\\d+)
            Keys: [n]
            KeepingSourceWhenParseFail: true
            CopingRawLog: true
        """)
        #expect(h.run(["x"]) == [#"{"content":"x","__raw_log__":"x"}"#])
    }

    @Test func aKeyNamedLikeTheSourceKeepsIt() throws {
        let h = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (\\w+) (.*)
            Keys: [level, content]
        """)
        #expect(h.run(["INFO started up"]) == [#"{"content":"started up","level":"INFO"}"#])
    }

    @Test func aRepeatedKeyIsOverwrittenByItsLastGroup() throws {
        // Keys with a repeat take the general path (each field looked up): the last value wins,
        // in the place of the first; a key named `content` overwrites the line in place.
        let h = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (\\w+) (\\w+) (\\w+) (.*)
            Keys: [a, b, a, content]
        """)
        #expect(h.run(["x y z rest"]) == [#"{"content":"rest","a":"z","b":"y"}"#])
        let distinct = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (\\w+) (\\w+) (.*)
            Keys: [a, content, b]
        """)
        #expect(distinct.run(["x y rest"]) == [#"{"content":"y","a":"x","b":"rest"}"#])
    }

    @Test func commaSeparatedSingleKeyIsSplit() throws {
        let h = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (\\w+) (\\w+)
            Keys: ["a,b"]
        """)
        #expect(h.run(["x y"]) == [#"{"a":"x","b":"y"}"#])
    }

    @Test func fewerGroupsThanKeysFailsAndAGroupThatTookNoPartIsEmpty() throws {
        let few = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (\\w+)
            Keys: [a, b]
        """)
        #expect(few.run(["x"]).isEmpty)
        let optional = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: '(\\w+)(?: (\\d+))?'
            Keys: [a, b]
        """)
        #expect(optional.run(["x"]) == [#"{"a":"x","b":""}"#])
    }

    @Test func dotMatchesNewlinesAsBoostDoes() throws {
        let h = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (\\w+) (.*)
            Keys: [a, msg]
        """)
        #expect(h.run(["x line1\nline2"]) == [#"{"a":"x","msg":"line1\nline2"}"#])
    }

    @Test func wholeLineModeCopiesWithoutARegex() throws {
        let h = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (.*)
            Keys: [line]
        """)
        #expect(h.run(["any\nthing"]) == [#"{"line":"any\nthing"}"#])
    }

    @Test func aMissingSourceKeyLeavesTheEventAlone() throws {
        let h = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: message
            Regex: (.+)
            Keys: [a]
        """)
        #expect(h.run(["raw"]) == [#"{"content":"raw"}"#])
        #expect(h.metrics().parseFailures.current == 0)
    }

    @Test func theIncumbentsNginxBenchmarkPattern() throws {
        let h = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: \(Self.nginx)
            Keys: [ip, ident, auth, timestamp, method, request, http_version, response_code, bytes, referrer, user_agent]
        """)
        let line = #"10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET /index.html HTTP/1.1" 200 2326 "-" "curl/8.0""#
        #expect(h.run([line]) == [#"{"ip":"10.0.0.1","ident":"-","auth":"-","timestamp":"10/Oct/2023:13:55:36 +0000","method":"GET","request":"/index.html","http_version":"HTTP/1.1","response_code":"200","bytes":"2326","referrer":"-","user_agent":"curl/8.0"}"#])
    }

    @Test func aCatastrophicPatternIsACountedFailureNotAHang() throws {
        let h = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (\\w+\\s?)*
            Keys: [a]
            KeepingSourceWhenParseFail: true
        """)
        let line = String(repeating: "a", count: 5000) + "!"
        let clock = ContinuousClock()
        let t = clock.measure { #expect(h.run([line]).count == 1) }
        #expect(t < .seconds(5))
        #expect(h.metrics().parseFailures.current == 1)
        // PCRE2 gave up at the match limit (not an ordinary no-match): counted as an error too.
        #expect(h.metrics().errors.current == 1)
    }

    @Test func patternsThatTurnOffTheJITOrTurnOnUTFStillMatchByTheirRules() throws {
        // `(*NO_JIT)`: no JIT code although the JIT compile call succeeds; the interpreter runs it.
        let noJIT = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (*NO_JIT)(\\w+) (.*)
            Keys: [level, msg]
        """)
        #expect(noJIT.run(["INFO started"]) == [#"{"level":"INFO","msg":"started"}"#])
        #expect(noJIT.metrics().errors.current == 0)
        // `(*UTF)`: the subject's UTF-8 is checked (by pcre2_match, not the unchecked JIT call);
        // an invalid line is a counted failure, a valid one parses.
        let utf = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (*UTF)(\\w+) (.*)
            Keys: [level, msg]
            KeepingSourceWhenParseFail: true
        """)
        #expect(utf.run(bytes: [Array("WARN caf".utf8) + [0xE9, 0x20, 0x6F, 0x6B]]).count == 1)
        #expect(utf.metrics().parseFailures.current == 1)
        #expect(utf.metrics().errors.current == 1, "PCRE2's UTF-8 error, counted")
        #expect(utf.run(["WARN café ok"]) == [#"{"level":"WARN","msg":"café ok"}"#])
    }

    @Test func badPatternsAndMissingKeysAreConfigErrorsAtTheirKey() throws {
        #expect(throws: (any Error).self) { try ProcessorHarness("  - Type: processor_parse_regex_native\n    SourceKey: content\n    Regex: \"a(b\"\n    Keys: [a]") }
        do {
            _ = try ProcessorHarness("  - Type: processor_parse_regex_native\n    SourceKey: content\n    Regex: \"a(b\"\n    Keys: [a]")
        } catch {
            let text = "\(error)"
            #expect(text.contains("processors[0].Regex"))
            #expect(text.contains("missing closing parenthesis"))
            #expect(text.contains("offset 3"))
        }
        do {
            _ = try ProcessorHarness("  - Type: processor_parse_regex_native\n    Regex: (a)\n    Keys: [a]")
            Issue.record("no error for a missing SourceKey")
        } catch {
            #expect("\(error)".contains("SourceKey is required"))
        }
    }
}
