import SluiceCore
import SluiceTesting
import Testing

/// Golden cases for processor_parse_delimiter_native, written from the incumbent's semantics
/// (reference §1.0, §1.3): separators, quoting, trimming, short and overflowing lines, the common
/// keep / drop rules.
@Suite struct ParseDelimiterNativeTests {
    static func harness(separator: String = "','", keys: String = "[a, b, c]", _ extra: String = "") throws -> ProcessorHarness {
        try ProcessorHarness("""
          - Type: processor_parse_delimiter_native
            SourceKey: content
            Separator: \(separator)
            Keys: \(keys)
        \(extra)
        """)
    }

    static func configError(_ yaml: String) -> String? {
        do { _ = try ProcessorHarness(yaml); return nil } catch { return "\(error)" }
    }

    @Test func splitsIntoKeysAndDropsTheSource() throws {
        // §1.3 Keys = column names; §1.0 step 3: source deleted. Empty columns are empty values.
        let h = try Self.harness()
        #expect(h.run(["1,2,3", "x,,z", ",,"]) == [#"{"a":"1","b":"2","c":"3"}"#, #"{"a":"x","b":"","c":"z"}"#, #"{"a":"","b":"","c":""}"#])
        #expect(h.metrics().parseFailures.current == 0)
    }

    @Test func multiByteSeparatorsAreMatchedLiterally() throws {
        // §1.3: up to 4 bytes, matched literally; a single `@` is data when the separator is `@@`.
        let h = try Self.harness(separator: "'@@'")
        #expect(h.run(["x@@y@@z", "x@y@@z", "a@@@@b"]) == [#"{"a":"x","b":"y","c":"z"}"#, #"{"a":"x@y","b":"z"}"#, #"{"a":"a","b":"","c":"b"}"#])
        let four = try Self.harness(separator: "'<=>|'")
        #expect(four.run(["1<=>|2<=>|3"]) == [#"{"a":"1","b":"2","c":"3"}"#])
    }

    @Test func tabSeparatorEitherAsARealTabOrAsBackslashT() throws {
        // §1.3: the literal two-character string `\t` is turned into TAB; §0.4: YAML "\t" is a TAB.
        for sep in [#""\t""#, #"'\t'"#] {
            let h = try Self.harness(separator: sep)
            #expect(h.run(["1\t2\t3"]) == [#"{"a":"1","b":"2","c":"3"}"#])
            // A backslash followed by t in the data is not a separator.
            #expect(h.run(["1\\t2"]) == [#"{"a":"1\\t2"}"#])
        }
    }

    @Test func separatorLongerThanFourBytesOrMissingIsRejected() {
        // §1.3: Separator is mandatory, 1–4 bytes (>4 → rejected).
        let long = Self.configError("  - Type: processor_parse_delimiter_native\n    SourceKey: content\n    Separator: '@@@@@'\n    Keys: [a]")
        #expect(long?.contains("processors[0].Separator") == true)
        let missing = Self.configError("  - Type: processor_parse_delimiter_native\n    SourceKey: content\n    Keys: [a]")
        #expect(missing?.contains("Separator") == true)
        let noKeys = Self.configError("  - Type: processor_parse_delimiter_native\n    SourceKey: content\n    Separator: ','")
        #expect(noKeys?.contains("Keys") == true)
        let noSource = Self.configError("  - Type: processor_parse_delimiter_native\n    Separator: ','\n    Keys: [a]")
        #expect(noSource?.contains("SourceKey") == true)
    }

    @Test func quoteLongerThanOneCharIsRejected() {
        // §1.3: Quote is a single char only (>1 char → rejected).
        let e = Self.configError("  - Type: processor_parse_delimiter_native\n    SourceKey: content\n    Separator: ','\n    Quote: \"''\"\n    Keys: [a]")
        #expect(e?.contains("processors[0].Quote") == true)
    }

    @Test func quotedFieldsAreCSVLike() throws {
        // §1.3 quoted mode: a quote opens a field at its start, `""` inside is a literal quote,
        // quotes are removed; the separator and newlines inside quotes are data.
        let h = try Self.harness()
        #expect(h.run([#""a,b",c,"say ""hi""""#, #""",x,"l1"#  + "\n" + #"l2""#])
            == [#"{"a":"a,b","b":"c","c":"say \"hi\""}"#, #"{"a":"","b":"x","c":"l1\nl2"}"#])
    }

    @Test func misplacedQuotesAreParseFailures() throws {
        // §1.3: a quote inside an unquoted field, text right after a closing quote, or an unclosed
        // quote at end of line → failure; §1.0 step 6: dropped by default.
        let h = try Self.harness()
        let bad = [#"a"b,c,d"#, #""a"b,c,d"#, #"a,"bc,d"#]
        #expect(h.run(bad + ["1,2,3"]) == [#"{"a":"1","b":"2","c":"3"}"#])
        #expect(h.metrics().parseFailures.current == 3)
        #expect(h.metrics().discardedByReason["parse_failure"] == 3)
    }

    @Test func aCustomQuoteAndAQuoteEqualToTheSeparator() throws {
        // §1.3: Quote sets the quote char; Quote == Separator turns quoting off.
        let single = try Self.harness(#"    Quote: "'""#)
        #expect(single.run([#"'x,y',"z""#]) == [#"{"a":"x,y","b":"\"z\""}"#])
        let off = try Self.harness("    Quote: ','")
        #expect(off.run([#""x,y",z"#]) == [#"{"a":"\"x","b":"y\"","c":"z"}"#])
    }

    @Test func quotesAreIgnoredWithAMultiCharSeparator() throws {
        // §1.3: Quote is only used with a single-char separator; set with a multi-char one it is
        // ignored with a warning (the config loads).
        let byDefault = try Self.harness(separator: "'||'")
        #expect(byDefault.run([#""a||b"||c"#]) == [#"{"a":"\"a","b":"b\"","c":"c"}"#])
        let explicit = try Self.harness(separator: "'||'", #"    Quote: "'""#)
        #expect(explicit.run(["'a||b'||c"]) == [#"{"a":"'a","b":"b'","c":"c"}"#])
    }

    @Test func theValueIsTrimmedOfLeadingSpacesAndTrailingSpacesAndCR() throws {
        // §1.3: trailing ' ' and '\r' and leading ' ' are cut; tabs and inner spaces are not.
        let h = try Self.harness()
        #expect(h.run(["  1,2,3 \r \r", "1, 2 ,3", "\t1,2,3\t"])
            == [#"{"a":"1","b":"2","c":"3"}"#, #"{"a":"1","b":" 2 ","c":"3"}"#, #"{"a":"\t1","b":"2","c":"3\t"}"#])
    }

    @Test func anEmptyValueIsReturnedUnchangedAndCountedFailed() throws {
        // §1.3: empty (or empty after trimming) → event unchanged (source kept, no Keep/Discard
        // logic), counted failed — even with KeepingSourceWhenParseFail and a RenamedSourceKey.
        let h = try Self.harness()
        #expect(h.run(["", "   \r "]) == [#"{"content":""}"#, #"{"content":"   \r "}"#])
        #expect(h.metrics().parseFailures.current == 2)
        #expect((h.metrics().discardedByReason["parse_failure"] ?? 0) == 0)
        let keep = try Self.harness("    KeepingSourceWhenParseFail: true\n    RenamedSourceKey: raw\n    CopingRawLog: true")
        #expect(keep.run(["  "]) == [#"{"content":"  "}"#])
    }

    @Test func shortenedFields() throws {
        // §1.3 AllowingShortenedFields: default true sets only the first n keys; false → failure.
        let allowed = try Self.harness()
        #expect(allowed.run(["1,2", "1"]) == [#"{"a":"1","b":"2"}"#, #"{"a":"1"}"#])
        let strict = try Self.harness("    AllowingShortenedFields: false")
        #expect(strict.run(["1,2", "1,2,3"]) == [#"{"a":"1","b":"2","c":"3"}"#])
        #expect(strict.metrics().parseFailures.current == 1)
        #expect(strict.metrics().discardedByReason["parse_failure"] == 1)
        let kept = try Self.harness("    AllowingShortenedFields: false\n    KeepingSourceWhenParseFail: true")
        #expect(kept.run(["1,2"]) == [#"{"content":"1,2"}"#])
    }

    @Test func overflowExtendNamesExtraColumnsByTheirAbsoluteIndex() throws {
        // §1.3 / §7 item 1: extend (the default) → __column3__, __column4__.
        for extra in ["", "    OverflowedFieldsTreatment: extend"] {
            let h = try Self.harness(extra)
            #expect(h.run(["1,2,3,4,5"]) == [#"{"a":"1","b":"2","c":"3","__column3__":"4","__column4__":"5"}"#])
        }
        // The incumbent warns and falls back to extend on an unknown value; Sluice reports it at its key
        // (docs/REFERENCE.md says so), so a typo does not silently change the output.
        #expect(throws: (any Error).self) { try Self.harness("    OverflowedFieldsTreatment: bogus") }
    }

    @Test func overflowKeepPutsTheRestWithItsLeadingSeparatorInOneColumn() throws {
        // §1.3 keep: everything after the N-th column is __column<N>__, starting with the separator
        // (ProcessorParseDelimiterNativeUnittest: `123@@456@@1@@2@@3` → `@@2@@3`).
        let multi = try Self.harness(separator: "'@@'", "    OverflowedFieldsTreatment: keep")
        #expect(multi.run(["123@@456@@1@@2@@3"]) == [#"{"a":"123","b":"456","c":"1","__column3__":"@@2@@3"}"#])
        let single = try Self.harness("    OverflowedFieldsTreatment: keep")
        #expect(single.run(["1,2,3,4,5", "1,2,3"]) == [#"{"a":"1","b":"2","c":"3","__column3__":",4,5"}"#, #"{"a":"1","b":"2","c":"3"}"#])
    }

    @Test func overflowDiscardDropsExtraColumnsAndUnderscoreKeys() throws {
        // §1.3 discard: extra columns dropped, and a key named exactly `_` is skipped (only in discard mode).
        let discard = try Self.harness(keys: "[a, _, c]", "    OverflowedFieldsTreatment: discard")
        #expect(discard.run(["1,2,3,4,5", "1,2"]) == [#"{"a":"1","c":"3"}"#, #"{"a":"1"}"#])
        let underscoreOnly = try Self.harness(keys: "[_, __, c]", "    OverflowedFieldsTreatment: discard")
        #expect(underscoreOnly.run(["1,2,3"]) == [#"{"__":"2","c":"3"}"#])
        let extend = try Self.harness(keys: "[a, _, c]")
        #expect(extend.run(["1,2,3,4"]) == [#"{"a":"1","_":"2","c":"3","__column3__":"4"}"#])
    }

    @Test func keepingSourceOnSuccessAndOnFailureWithRawLogCopy() throws {
        // §1.0 steps 4 and 5, field order: parsed fields, RenamedSourceKey, __raw_log__.
        let h = try Self.harness("""
            KeepingSourceWhenParseSucceed: true
            KeepingSourceWhenParseFail: true
            CopingRawLog: true
            RenamedSourceKey: __raw__
        """)
        #expect(h.run(["1,2,3", #"1,2"x"#])
            == [#"{"a":"1","b":"2","c":"3","__raw__":"1,2,3"}"#, #"{"__raw__":"1,2\"x","__raw_log__":"1,2\"x"}"#])
    }

    @Test func keysNamedLikeTheSourceOrTheRenamedKey() throws {
        // §1.0 step 3: a produced key named like SourceKey keeps it (replaced in place);
        // step 4: a parsed field named like RenamedSourceKey wins over the raw value.
        let h = try Self.harness(keys: "[content, b]")
        #expect(h.run(["x,y"]) == [#"{"content":"x","b":"y"}"#])
        let renamed = try Self.harness(keys: "[raw, b]", "    KeepingSourceWhenParseSucceed: true\n    RenamedSourceKey: raw")
        #expect(renamed.run(["x,y"]) == [#"{"raw":"x","b":"y"}"#])
    }

    @Test("Keys written in order with content among them, a repeated key (the later value in the first slot), and lines of other lengths in the same batch")
    func keyOrderAndRepeatedKeys() throws {
        let h = try Self.harness(keys: "[a, content, b]", "    AllowingShortenedFields: true\n    OverflowedFieldsTreatment: extend")
        #expect(h.run(["1,2,3", "1,2", "1,2,3,4"]) == [#"{"content":"2","a":"1","b":"3"}"#, #"{"content":"2","a":"1"}"#,
                                                     #"{"content":"2","a":"1","b":"3","__column3__":"4"}"#])
        let repeated = try Self.harness(keys: "[a, b, a]")
        #expect(repeated.run(["1,2,3"]) == [#"{"a":"3","b":"2"}"#])
        let discard = try Self.harness(keys: "[a, _, b]", "    OverflowedFieldsTreatment: discard")
        #expect(discard.run(["1,2,3", "1,2,3,4"]) == [#"{"a":"1","b":"3"}"#, #"{"a":"1","b":"3"}"#])
    }

    @Test func noKeysConfiguredIsAConfigError() throws {
        // §1.3: with no keys every event fails in the incumbent; Sluice rejects such a config at `Keys`.
        do {
            _ = try Self.harness(keys: "[]")
            Issue.record("empty Keys accepted")
        } catch {
            #expect("\(error)".contains("processors[0].Keys"))
        }
    }

    @Test func aMissingSourceKeyLeavesTheEventAlone() throws {
        // §1.0 step 1.
        let h = try ProcessorHarness("""
          - Type: processor_parse_delimiter_native
            SourceKey: message
            Separator: ','
            Keys: [a, b]
        """)
        #expect(h.run(["1,2"]) == [#"{"content":"1,2"}"#])
        #expect(h.metrics().parseFailures.current == 0)
    }
}
