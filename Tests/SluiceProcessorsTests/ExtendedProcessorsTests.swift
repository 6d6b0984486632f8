import SluiceCore
import SluiceTesting
import Testing

/// Config errors as text (nil when the config loads).
private func configError(_ yaml: String) -> String? {
    do { _ = try ProcessorHarness(yaml); return nil } catch { return "\(error)" }
}

/// A parser that turns `"1 2 3"` into the fields `a`, `b`, `c`, ahead of the processor under test.
private let threeFields = """
  - Type: processor_parse_regex_native
    SourceKey: content
    Regex: (\\S+) (\\S+) (\\S+)
    Keys: [a, b, c]
"""

/// Golden cases for processor_add_fields (reference §2; LC plugins/processor/addfields).
@Suite struct AddFieldsTests {
    @Test func theIncumbentsDocSample() throws {
        let h = try ProcessorHarness("""
          - Type: processor_add_fields
            Fields:
              service: A
            IgnoreIfExist: false
        """)
        #expect(h.run(["this is a test log"]) == [#"{"content":"this is a test log","service":"A"}"#])
    }

    @Test func fieldsAreAddedInDocumentOrderAsStrings() throws {
        // The incumbent walks a Go map (random order); Sluice keeps the order written. Values are strings.
        let h = try ProcessorHarness("""
          - Type: processor_add_fields
            Fields:
              zone: b
              count: 42
              flag: true
              empty: ""
        """)
        #expect(h.run(["x", "y"]) == [
            #"{"content":"x","zone":"b","count":"42","flag":"true","empty":""}"#,
            #"{"content":"y","zone":"b","count":"42","flag":"true","empty":""}"#,
        ])
    }

    @Test func anExistingNameIsAppendedAgainWithoutIgnoreIfExist() throws {
        let h = try ProcessorHarness("""
          - Type: processor_add_fields
            Fields:
              content: added
        """)
        #expect(h.run(["x"]) == [#"{"content":"x","content":"added"}"#])
    }

    @Test func ignoreIfExistKeepsTheEventsOwnField() throws {
        let h = try ProcessorHarness(threeFields + """

          - Type: processor_add_fields
            Fields:
              b: other
              env: prod
            IgnoreIfExist: true
        """)
        #expect(h.run(["1 2 3"]) == [#"{"a":"1","b":"2","c":"3","env":"prod"}"#])
    }

    @Test func fieldsAreRequired() {
        #expect(configError("  - Type: processor_add_fields")?.contains("Fields is required") == true)
        let empty = configError("  - Type: processor_add_fields\n    Fields: {}")
        #expect(empty?.contains("processors[0].Fields") == true)
        #expect(empty?.contains("must not be empty") == true)
        #expect(configError("  - Type: processor_add_fields\n    Fields: [a, b]")?.contains("processors[0].Fields") == true)
    }
}

/// Golden cases for processor_drop (reference §2; LC plugins/processor/drop).
@Suite struct DropTests {
    @Test func dropsTheNamedFields() throws {
        let one = try ProcessorHarness(threeFields + "\n  - Type: processor_drop\n    DropKeys: [b]")
        #expect(one.run(["1 2 3"]) == [#"{"a":"1","c":"3"}"#])
        let some = try ProcessorHarness(threeFields + "\n  - Type: processor_drop\n    DropKeys: [a, nothere, c]")
        #expect(some.run(["1 2 3"]) == [#"{"b":"2"}"#])
    }

    @Test func aMissingFieldLeavesTheEventAlone() throws {
        let h = try ProcessorHarness("  - Type: processor_drop\n    DropKeys: [level]")
        #expect(h.run(["raw line"]) == [#"{"content":"raw line"}"#])
        #expect(h.metrics().discardedByReason.isEmpty)
    }

    @Test func everyOccurrenceOfANameIsDropped() throws {
        let h = try ProcessorHarness("""
          - Type: processor_add_fields
            Fields: {k: v1}
          - Type: processor_add_fields
            Fields: {k: v2}
          - Type: processor_drop
            DropKeys: [k]
        """)
        #expect(h.run(["x"]) == [#"{"content":"x"}"#])
    }

    @Test func anEventLeftWithNoFieldIsDroppedAndCounted() throws {
        let h = try ProcessorHarness("  - Type: processor_drop\n    DropKeys: [content]")
        #expect(h.run(["x", "y"]).isEmpty)
        #expect(h.metrics().discardedByReason["empty"] == 2)
    }

    @Test func dropKeysIsRequiredAndAList() {
        #expect(configError("  - Type: processor_drop")?.contains("DropKeys is required") == true)
        #expect(configError("  - Type: processor_drop\n    DropKeys: []")?.contains("DropKeys is required") == true)
        #expect(configError("  - Type: processor_drop\n    DropKeys: a")?.contains("processors[0].DropKeys") == true)
    }
}

/// Golden cases for processor_rename (reference §2; LC plugins/processor/rename, v1).
@Suite struct RenameTests {
    static func renaming(_ sources: String, _ dests: String, extra: String = "") throws -> ProcessorHarness {
        try ProcessorHarness(threeFields + "\n  - Type: processor_rename\n    SourceKeys: \(sources)\n    DestKeys: \(dests)" + extra)
    }

    @Test func renamesTheRawLine() throws {
        let h = try ProcessorHarness("  - Type: processor_rename\n    SourceKeys: [content]\n    DestKeys: [message]")
        #expect(h.run(["hello"]) == [#"{"message":"hello"}"#])
    }

    @Test func renamesInPlaceKeepingThePosition() throws {
        #expect(try Self.renaming("[b]", "[B]").run(["1 2 3"]) == [#"{"a":"1","B":"2","c":"3"}"#])
    }

    @Test func oneLookUpPerFieldSoNamesCanSwap() throws {
        #expect(try Self.renaming("[a, b]", "[b, a]").run(["1 2 3"]) == [#"{"b":"1","a":"2","c":"3"}"#])
    }

    @Test func aMissingSourceIsSkipped() throws {
        let h = try Self.renaming("[nothere, a]", "[x, A]", extra: "\n    NoKeyError: true")
        #expect(h.run(["1 2 3"]) == [#"{"A":"1","b":"2","c":"3"}"#])
        #expect(h.metrics(1).errors.current == 0)
    }

    @Test func identityPairsAreIgnoredAndTheLastPairForASourceWins() throws {
        #expect(try Self.renaming("[a, a, b]", "[x, y, b]").run(["1 2 3"]) == [#"{"y":"1","b":"2","c":"3"}"#])
    }

    @Test func aDestinationTheEventHasIsNotMerged() throws {
        #expect(try Self.renaming("[a]", "[b]").run(["1 2 3"]) == [#"{"b":"1","b":"2","c":"3"}"#])
    }

    @Test func bothListsAreRequiredWithTheSameLength() {
        let mismatch = configError("  - Type: processor_rename\n    SourceKeys: [a, b]\n    DestKeys: [x]")
        #expect(mismatch?.contains("processors[0].DestKeys") == true)
        #expect(mismatch?.contains("pair up") == true)
        #expect(configError("  - Type: processor_rename\n    SourceKeys: [a]")?.contains("DestKeys is required") == true)
        #expect(configError("  - Type: processor_rename\n    DestKeys: [a]")?.contains("SourceKeys is required") == true)
    }
}

/// Golden cases for processor_filter_regex (reference §2; LC plugins/processor/filter/regex).
@Suite struct FilterRegexTests {
    @Test func theIncumbentsDocSample() throws {
        let h = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (\\S+) (\\S+) (\\S+)
            Keys: [ip, method, browser]
          - Type: processor_filter_regex
            Include:
              ip: '10\\..*'
              method: POST
            Exclude:
              browser: 'aliyun.*'
        """)
        let out = h.run(["10.0.0.1 POST aliyun-sdk-java", "10.0.0.2 POST chrome", "192.168.0.1 POST chrome", "10.0.0.3 GET chrome"])
        #expect(out == [#"{"ip":"10.0.0.2","method":"POST","browser":"chrome"}"#])
        #expect(h.metrics(1).discardedByReason["filtered"] == 3)
    }

    @Test func theRegexIsSearchedNotFullyMatched() throws {
        // Go MatchString; the native filter would need the whole value to match.
        let h = try ProcessorHarness("  - Type: processor_filter_regex\n    Include:\n      content: ERROR")
        #expect(h.run(["an ERROR here", "fine", "ERROR"]) == [#"{"content":"an ERROR here"}"#, #"{"content":"ERROR"}"#])
        let anchored = try ProcessorHarness("  - Type: processor_filter_regex\n    Include:\n      content: '^ERROR'")
        #expect(anchored.run(["an ERROR here", "ERROR x"]) == [#"{"content":"ERROR x"}"#])
    }

    @Test func aMissingIncludeKeyDropsAMissingExcludeKeyDoesNot() throws {
        let include = try ProcessorHarness("  - Type: processor_filter_regex\n    Include:\n      level: '.*'")
        #expect(include.run(["a", ""]).isEmpty)
        #expect(include.metrics().discardedByReason["filtered"] == 2)
        let exclude = try ProcessorHarness("  - Type: processor_filter_regex\n    Exclude:\n      level: '.*'")
        #expect(exclude.run(["a"]) == [#"{"content":"a"}"#])
    }

    @Test func includeAndExcludeOnTheSameField() throws {
        let h = try ProcessorHarness("""
          - Type: processor_filter_regex
            Include:
              content: a
            Exclude:
              content: b
        """)
        #expect(h.run(["a", "ab", "c"]) == [#"{"content":"a"}"#])
    }

    @Test func dotDoesNotMatchANewline() throws {
        let h = try ProcessorHarness("  - Type: processor_filter_regex\n    Include:\n      content: '^a.b$'")
        #expect(h.run(["a\nb", "axb"]) == [#"{"content":"axb"}"#])
    }

    @Test func dollarMatchesOnlyAtTheVeryEnd() throws {
        // RE2 without (?m): `$` is the end of the text, not the place before a final newline.
        let h = try ProcessorHarness("  - Type: processor_filter_regex\n    Include:\n      content: 'a$'")
        #expect(h.run(["a\n", "a", "ba"]) == [#"{"content":"a"}"#, #"{"content":"ba"}"#])
        let multiline = try ProcessorHarness("  - Type: processor_filter_regex\n    Include:\n      content: '(?m)a$'")
        #expect(multiline.run(["a\nb", "b"]) == [#"{"content":"a\nb"}"#])
    }

    @Test func everyIncludeFieldMustMatchAnyExcludeFieldDrops() throws {
        // LC filter_regex_test.go TestNotMatch, with fields from a parser.
        let include = try ProcessorHarness(threeFields + "\n  - Type: processor_filter_regex\n    Include:\n      a: '1'\n      c: '3'")
        #expect(include.run(["1 2 3", "1 2 4"]) == [#"{"a":"1","b":"2","c":"3"}"#])
        let exclude = try ProcessorHarness(threeFields + "\n  - Type: processor_filter_regex\n    Exclude:\n      a: x\n      c: '3'")
        #expect(exclude.run(["1 2 3", "1 2 4"]) == [#"{"a":"1","b":"2","c":"4"}"#])
    }

    @Test func noRulesKeepEverything() throws {
        let h = try ProcessorHarness("  - Type: processor_filter_regex")
        #expect(h.run(["a", ""]) == [#"{"content":"a"}"#, #"{"content":""}"#])
    }

    @Test func aBadRegexIsAConfigErrorAtItsKey() {
        let e = configError("  - Type: processor_filter_regex\n    Include:\n      ip: '10\\\\..*'\n    Exclude:\n      key: '('")
        #expect(e?.contains("processors[0].Exclude.key") == true)
        #expect(e?.contains("missing closing parenthesis") == true)
    }
}

/// Golden cases for processor_split_char (reference §2, §7 items 4 and 20; LC plugins/processor/split/char
/// and its split_char_test.go).
@Suite struct SplitCharTests {
    @Test func theIncumbentsDocSample() throws {
        let h = try ProcessorHarness("""
          - Type: processor_split_char
            SourceKey: content
            SplitSep: "|"
            SplitKeys: [ip, time, method, url, request_time, request_length, status, length, ref_url, browser]
        """)
        let line = "127.0.0.1|10/Aug/2017:14:57:51 +0800|POST|PutData?Category=YunOsAccountOpLog|0.024|18204|200|37|-|aliyun-sdk-java"
        #expect(h.run([line]) == [#"{"ip":"127.0.0.1","time":"10/Aug/2017:14:57:51 +0800","method":"POST","url":"PutData?Category=YunOsAccountOpLog","request_time":"0.024","request_length":"18204","status":"200","length":"37","ref_url":"-","browser":"aliyun-sdk-java"}"#])
    }

    @Test func defaultsMoveTheWholeValueToSplitPreserve() throws {
        // Code defaults: SplitSep \n, no keys, PreserveOthers true, KeepSource false.
        let h = try ProcessorHarness("  - Type: processor_split_char")
        #expect(h.run(["xxxx\nyyyy\nzzzz"]) == [#"{"_split_preserve_":"xxxx\nyyyy\nzzzz"}"#])
    }

    @Test func theRestGoesToSplitPreserveAndATrailingSeparatorSetsNothing() throws {
        let h = try ProcessorHarness("  - Type: processor_split_char\n    SplitSep: \",\"\n    SplitKeys: [a, b]")
        #expect(h.run(["1,2,3,4", "1,2,", "1,,3", "1"]) == [
            #"{"a":"1","b":"2","_split_preserve_":"3,4"}"#,
            #"{"a":"1","b":"2"}"#,
            #"{"a":"1","b":"","_split_preserve_":"3"}"#,
            #"{"a":"1"}"#,
        ])
        let dropping = try ProcessorHarness("  - Type: processor_split_char\n    SplitSep: \",\"\n    SplitKeys: [a, b]\n    PreserveOthers: false")
        #expect(dropping.run(["1,2,3,4"]) == [#"{"a":"1","b":"2"}"#])
    }

    @Test func shortValuesCountWithNoMatchErrorAndEmptiedEventsAreDropped() throws {
        let h = try ProcessorHarness("  - Type: processor_split_char\n    SplitSep: \",\"\n    SplitKeys: [a, b, c]\n    NoMatchError: true")
        #expect(h.run(["1,2", "1,2,3", ""]) == [#"{"a":"1","b":"2"}"#, #"{"a":"1","b":"2","c":"3"}"#])
        #expect(h.metrics().parseFailures.current == 2)
        // The empty value sets no key and its source is removed: nothing is left.
        #expect(h.metrics().discardedByReason["empty"] == 1)
    }

    @Test func quotedValuesWithDoubledQuotes() throws {
        // LC split_char_test.go TestQuote.
        let h = try ProcessorHarness("""
          - Type: processor_split_char
            SourceKey: content
            SplitSep: ","
            QuoteFlag: true
            Quote: '"'
            SplitKeys: [key1, key2, key3, key4, key5]
        """)
        let out = h.run([
            #"1999,Chevy,"Venture ""Extended Edition, Very Large""","",5000.00"#,
            #"1999,Chevy,"Venture ""Extended Edition, Very Large""","","5000.00""", ,,,"#,
            #",Chevy,"Venture ""Extended Edition, Very Large""",,"5000.00""", "#,
        ])
        #expect(out == [
            #"{"key1":"1999","key2":"Chevy","key3":"Venture \"Extended Edition, Very Large\"","key4":"","key5":"5000.00"}"#,
            #"{"key1":"1999","key2":"Chevy","key3":"Venture \"Extended Edition, Very Large\"","key4":"","key5":"5000.00\"","_split_preserve_":" ,,,"}"#,
            #"{"key1":"","key2":"Chevy","key3":"Venture \"Extended Edition, Very Large\"","key4":"","key5":"5000.00\"","_split_preserve_":" "}"#,
        ])
    }

    @Test func aMalformedQuoteIsAParseFailureThatKeepsTheSource() throws {
        // LC split_char_test.go TestKeepSourceIfParseError: the values before the bad quote stay.
        let config = """
          - Type: processor_split_char
            SourceKey: content
            SplitSep: "["
            QuoteFlag: true
            Quote: '"'
            SplitKeys: [key1, key2, key3, key4, key5]
        """
        let line = "2017-12-12 00:00:00] 你好\n  hello\n\t\n[2017xxxxxx]yyyy\nzzzz\n\t你好[你好[\"[hello\"[\"\"invalid\""
        let parts = #""key1":"2017-12-12 00:00:00] 你好\n  hello\n\t\n","key2":"2017xxxxxx]yyyy\nzzzz\n\t你好","key3":"你好","key4":"[hello""#
        let h = try ProcessorHarness(config)
        #expect(h.run([line]) == [#"{"content":"2017-12-12 00:00:00] 你好\n  hello\n\t\n[2017xxxxxx]yyyy\nzzzz\n\t你好[你好[\"[hello\"[\"\"invalid\"","# + parts + "}"])
        #expect(h.metrics().parseFailures.current == 1)
        let removing = try ProcessorHarness(config + "\n    KeepSourceIfParseError: false")
        #expect(removing.run([line]) == ["{" + parts + "}"])
    }

    @Test func quoteEdgeCasesAsTheIncumbentHasThem() throws {
        let h = try ProcessorHarness("  - Type: processor_split_char\n    SplitSep: \",\"\n    QuoteFlag: true\n    Quote: '\"'\n    SplitKeys: [a, b, c]")
        // A quote inside an unquoted value is a plain byte; a quote never closed sets no key, and
        // the rest from that quote goes to the next key.
        #expect(h.run([#"x"y,z"#, #"x,"yz"#]) == [#"{"a":"x\"y","b":"z"}"#, #"{"a":"x","c":"\"yz"}"#])
        // Without QuoteFlag, Quote does nothing.
        let plain = try ProcessorHarness("  - Type: processor_split_char\n    SplitSep: \",\"\n    Quote: '\"'\n    SplitKeys: [x, y]")
        #expect(plain.run([#""a,b",c"#]) == [#"{"x":"\"a","y":"b\"","_split_preserve_":"c"}"#])
    }

    @Test func keepSourceAndTheFirstFieldAsSource() throws {
        let keep = try ProcessorHarness("  - Type: processor_split_char\n    SplitSep: \",\"\n    SplitKeys: [a, b]\n    KeepSource: true")
        #expect(keep.run(["1,2"]) == [#"{"content":"1,2","a":"1","b":"2"}"#])
        let parsed = """
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (\\S+) (\\S+)
            Keys: [x, y]
          - Type: processor_split_char
            SplitSep: "|"
            SplitKeys: [p, q]
        """
        // No SourceKey: the first field.
        #expect(try ProcessorHarness(parsed).run(["1|2 3|4"]) == [#"{"y":"3|4","p":"1","q":"2"}"#])
        #expect(try ProcessorHarness(parsed + "\n    SourceKey: y").run(["1|2 3|4"]) == [#"{"x":"1|2","p":"3","q":"4"}"#])
        // A missing SourceKey leaves the event alone, NoKeyError or not.
        let missing = try ProcessorHarness(parsed + "\n    SourceKey: nothere\n    NoKeyError: true")
        #expect(missing.run(["1|2 3|4"]) == [#"{"x":"1|2","y":"3|4"}"#])
        #expect(missing.metrics(1).parseFailures.current == 0)
    }

    @Test func splitSepMustBeOneByte() {
        for sep in [#"",,""#, #""""#, #""｜""#] {
            let e = configError("  - Type: processor_split_char\n    SplitSep: \(sep)\n    SplitKeys: [a]")
            #expect(e?.contains("processors[0].SplitSep") == true, "accepted \(sep)")
            #expect(e?.contains("exactly one byte") == true)
        }
    }
}

/// Golden cases for processor_split_string (reference §2, §7 item 4; LC plugins/processor/split/string
/// and its split_string_test.go).
@Suite struct SplitStringTests {
    static let log = "你好[2017-12-12 00:00:00] 你好\n  hello\n\t\n[2017xxxxxx]yyyy\nzzzz\n\t你好[你好"

    @Test func aMultiByteSeparatorAndTheRestInSplitPreserve() throws {
        // LC split_string_test.go TestNormal.
        let h = try ProcessorHarness("  - Type: processor_split_string\n    SourceKey: content\n    SplitSep: \"你好\"\n    SplitKeys: [key1, key2]")
        #expect(h.run([Self.log]) == [#"{"key1":"","key2":"[2017-12-12 00:00:00] ","_split_preserve_":"\n  hello\n\t\n[2017xxxxxx]yyyy\nzzzz\n\t你好[你好"}"#])
        let keeping = try ProcessorHarness("  - Type: processor_split_string\n    SplitSep: \"你好\"\n    SplitKeys: [key1, key2]\n    KeepSource: true\n    PreserveOthers: false")
        #expect(keeping.run([Self.log]) == [#"{"content":"你好[2017-12-12 00:00:00] 你好\n  hello\n\t\n[2017xxxxxx]yyyy\nzzzz\n\t你好[你好","key1":"","key2":"[2017-12-12 00:00:00] "}"#])
    }

    @Test func defaultsMoveTheWholeValueToSplitPreserve() throws {
        let h = try ProcessorHarness("  - Type: processor_split_string")
        #expect(h.run(["xxxx\nyyyy\nzzzz\n"]) == [#"{"_split_preserve_":"xxxx\nyyyy\nzzzz\n"}"#])
    }

    @Test func splitNPartsEmptyOnesIncluded() throws {
        // strings.SplitN: a trailing separator makes an empty last part, an empty value one empty part.
        let h = try ProcessorHarness("  - Type: processor_split_string\n    SplitSep: \"::\"\n    SplitKeys: [a, b]\n    NoMatchError: true")
        #expect(h.run(["1::2::", "", "1::2", "1::2::3::4"]) == [
            #"{"a":"1","b":"2","_split_preserve_":""}"#,
            #"{"a":""}"#,
            #"{"a":"1","b":"2"}"#,
            #"{"a":"1","b":"2","_split_preserve_":"3::4"}"#,
        ])
        #expect(h.metrics().parseFailures.current == 1)
    }

    @Test func separatorsDoNotOverlap() throws {
        let h = try ProcessorHarness("  - Type: processor_split_string\n    SplitSep: aa\n    SplitKeys: [x, y]")
        #expect(h.run(["aaa"]) == [#"{"x":"","y":"a"}"#])
    }

    @Test func expandOthers() throws {
        // LC split_string_test.go TestExpand.
        let noKeys = try ProcessorHarness("  - Type: processor_split_string\n    SplitSep: \"&\"\n    ExpandOthers: true\n    ExpandKeyPrefix: param_\n    KeepSource: true")
        #expect(noKeys.run(["abc&def&gh"]) == [#"{"content":"abc&def&gh","param_1":"abc","param_2":"def","param_3":"gh"}"#])
        let oneKey = try ProcessorHarness("  - Type: processor_split_string\n    SplitSep: \"&\"\n    SplitKeys: [key]\n    ExpandOthers: true\n    ExpandKeyPrefix: param_")
        #expect(oneKey.run(["abc&def&gh", "abc"]) == [#"{"key":"abc","param_1":"def","param_2":"gh"}"#, #"{"key":"abc"}"#])
        let notPreserved = try ProcessorHarness("  - Type: processor_split_string\n    SplitSep: \"&\"\n    SplitKeys: [key]\n    ExpandOthers: true\n    PreserveOthers: false")
        #expect(notPreserved.run(["abc&def&gh"]) == [#"{"key":"abc"}"#])
    }

    @Test func expandedNamesPastNine() throws {
        let h = try ProcessorHarness("  - Type: processor_split_string\n    SplitSep: \",\"\n    ExpandOthers: true\n    ExpandKeyPrefix: k")
        #expect(h.run(["0,1,2,3,4,5,6,7,8,9,10", "a"]) == [
            #"{"k1":"0","k2":"1","k3":"2","k4":"3","k5":"4","k6":"5","k7":"6","k8":"7","k9":"8","k10":"9","k11":"10"}"#,
            #"{"k1":"a"}"#,
        ])
    }

    @Test func aMissingSourceLeavesTheEventAlone() throws {
        let h = try ProcessorHarness("  - Type: processor_split_string\n    SourceKey: message\n    SplitSep: \",\"\n    SplitKeys: [a]\n    NoKeyError: true")
        #expect(h.run(["1,2"]) == [#"{"content":"1,2"}"#])
    }

    @Test func splitSepMustNotBeEmpty() {
        let e = configError("  - Type: processor_split_string\n    SplitSep: \"\"\n    SplitKeys: [a]")
        #expect(e?.contains("processors[0].SplitSep") == true)
    }
}
