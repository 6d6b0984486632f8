import Foundation
import SluiceCore
import SluiceTesting
import Testing

/// Golden cases for processor_parse_json_native, written from the incumbent's semantics
/// (reference §1.0, §1.2): top-level flattening, value conversions, the common keep / drop rules.
@Suite struct ParseJsonNativeTests {
    static func harness(_ extra: String = "") throws -> ProcessorHarness {
        try ProcessorHarness("""
          - Type: processor_parse_json_native
            SourceKey: content
        \(extra)
        """)
    }

    @Test func topLevelMembersBecomeFieldsInMemberOrderAndTheSourceIsDropped() throws {
        // §1.2: each top-level member is one field, in JSON member order; §1.0 step 3: source deleted.
        let h = try Self.harness()
        #expect(h.run([#"{"b":"x","a":"y","c":""}"#]) == [#"{"b":"x","a":"y","c":""}"#])
        #expect(h.metrics().parseFailures.current == 0)
    }

    @Test func scalarsAreConvertedToStrings() throws {
        // §1.2: null → "", bool → "true"/"false", integers → decimal digits (int64 and uint64).
        let h = try Self.harness()
        let line = #"{"n":null,"t":true,"f":false,"i":-42,"z":0,"max":18446744073709551615,"min":-9223372036854775808}"#
        #expect(h.run([line]) == [#"{"n":"","t":"true","f":"false","i":"-42","z":"0","max":"18446744073709551615","min":"-9223372036854775808"}"#])
    }

    @Test func nonIntegerNumbersAreFormattedWithSixDecimals() throws {
        // §1.2: std::to_string(double) = %f: always 6 decimals, rounded, never exponent notation.
        let h = try Self.harness()
        let line = #"{"a":1.5,"b":0.1,"c":-2.25,"d":3.0,"e":1.23456789,"f":1e3,"g":2.5e-7,"h":1e20}"#
        #expect(h.run([line]) == [#"{"a":"1.500000","b":"0.100000","c":"-2.250000","d":"3.000000","e":"1.234568","f":"1000.000000","g":"0.000000","h":"100000000000000000000.000000"}"#])
    }

    /// Plain decimals (up to 9 integer and 6 fraction digits) are written from their own digits;
    /// that must be what `%f` of the parsed double prints, for every one of them: random ones of
    /// every length, and the edges (-0.0, 999999999.999999, one millionth).
    @Test func plainDecimalsGiveWhatPrintfGives() throws {
        let h = try Self.harness()
        var rng = SystemRandomNumberGenerator()
        var numbers = ["-0.0", "0.0", "0.000001", "-0.000001", "999999999.999999", "-999999999.999999", "123456789.5", "0.5", "9.999999"]
        for _ in 0..<3000 {
            let intDigits = Int.random(in: 1...9, using: &rng), fracDigits = Int.random(in: 1...6, using: &rng)
            var t = Bool.random(using: &rng) ? "-" : ""
            t += intDigits == 1 ? String(Int.random(in: 0...9, using: &rng)) : String(Int.random(in: 1...9, using: &rng))
            for _ in 1..<intDigits { t += String(Int.random(in: 0...9, using: &rng)) }
            t += "."
            for _ in 0..<fracDigits { t += String(Int.random(in: 0...9, using: &rng)) }
            numbers.append(t)
        }
        var wrong: [String] = []
        for chunk in stride(from: 0, to: numbers.count, by: 100) {
            let part = numbers[chunk..<min(numbers.count, chunk + 100)]
            let line = "{" + part.enumerated().map { "\"k\($0.offset)\":\($0.element)" }.joined(separator: ",") + "}"
            let expected = "{" + part.enumerated().map { "\"k\($0.offset)\":\"\(String(format: "%f", strtod($0.element, nil)))\"" }.joined(separator: ",") + "}"
            let got = h.run([line])
            if got != [expected] { wrong.append(contentsOf: part.prefix(3)) }
        }
        #expect(wrong.isEmpty, "e.g. \(wrong.prefix(5))")
    }

    @Test func objectsAndArraysBecomeCompactJSONStrings() throws {
        // §1.2: only the top level is flattened; a nested value is its compact re-serialisation, as a string.
        let h = try Self.harness()
        let line = #"{"req": { "k" : [ 1, 2 ], "s": "v", "o": {} }, "list": [ true , null, "x" ], "e": []}"#
        #expect(h.run([line]) == [#"{"req":"{\"k\":[1,2],\"s\":\"v\",\"o\":{}}","list":"[true,null,\"x\"]","e":"[]"}"#])
    }

    @Test func stringValuesAreUnescaped() throws {
        // §1.2: string → its unescaped value (written back JSON-escaped by the encoder).
        let h = try Self.harness()
        let line = #"{"m":"a\"b\\c\/d\nx\t\u00e9\ud83d\ude00"}"#
        #expect(h.run([line]) == [#"{"m":"a\"b\\c/d\nx\té😀"}"#])
    }

    @Test func invalidJSONAndNonObjectsFailAndAreDroppedByDefault() throws {
        // §1.2: invalid JSON or a non-object value → failure; §1.0 step 6: the emptied event is dropped.
        let h = try Self.harness()
        let bad = ["not json", "[1,2]", #""str""#, "42", "null", #"{"a":1"#, #"{"a":}"#, #"{a:1}"#]
        #expect(h.run(bad + [#"{"ok":"1"}"#]) == [#"{"ok":"1"}"#])
        #expect(h.metrics().parseFailures.current == bad.count)
        #expect(h.metrics().discardedByReason["parse_failure"] == bad.count)
    }

    @Test func anEmptyValueIsAFailure() throws {
        // §1.2: empty value → failure: dropped by default, kept under RenamedSourceKey on request.
        let dropped = try Self.harness()
        #expect(dropped.run([""]).isEmpty)
        #expect(dropped.metrics().parseFailures.current == 1)
        #expect(dropped.metrics().discardedByReason["parse_failure"] == 1)
        let kept = try Self.harness("    KeepingSourceWhenParseFail: true")
        #expect(kept.run([""]) == [#"{"content":""}"#])
        #expect(kept.metrics().parseFailures.current == 1)
    }

    @Test func anEmptyObjectIsASuccessWithNoFields() throws {
        // `{}` parses (it is an object); the source is removed (not a produced key); not a failure,
        // so no drop is counted. With KeepingSourceWhenParseSucceed only the raw value remains.
        let h = try Self.harness()
        #expect(h.run(["{}"]).isEmpty)
        #expect(h.metrics().parseFailures.current == 0)
        #expect((h.metrics().discardedByReason["parse_failure"] ?? 0) == 0)
        let kept = try Self.harness("    KeepingSourceWhenParseSucceed: true")
        #expect(kept.run(["{}"]) == [#"{"content":"{}"}"#])
    }

    @Test func keepingSourceOnSuccessAppendsItLastUnderRenamedSourceKey() throws {
        // §1.0 step 4 and field order: new fields, then RenamedSourceKey.
        let h = try Self.harness("    KeepingSourceWhenParseSucceed: true\n    RenamedSourceKey: raw")
        #expect(h.run([#"{"a":"1","b":2}"#]) == [#"{"a":"1","b":"2","raw":"{\"a\":\"1\",\"b\":2}"}"#])
        // Not kept on failure unless KeepingSourceWhenParseFail.
        #expect(h.run(["bad"]).isEmpty)
    }

    @Test func renamedSourceKeyDefaultsToSourceKeyWhenMissingOrEmpty() throws {
        // §1.0: RenamedSourceKey = SourceKey when empty or missing; the source was deleted (step 3),
        // so it comes back after the parsed fields.
        for extra in ["", "\n    RenamedSourceKey: ''"] {
            let h = try Self.harness("    KeepingSourceWhenParseSucceed: true" + extra)
            #expect(h.run([#"{"a":"1"}"#]) == [#"{"a":"1","content":"{\"a\":\"1\"}"}"#])
        }
    }

    @Test func keepingSourceOnFailure() throws {
        // §1.0 step 4: on failure the raw value goes under RenamedSourceKey; successes are unaffected.
        let h = try Self.harness("    KeepingSourceWhenParseFail: true\n    RenamedSourceKey: raw")
        #expect(h.run(["oops", #"{"a":"1"}"#]) == [#"{"raw":"oops"}"#, #"{"a":"1"}"#])
        #expect(h.metrics().parseFailures.current == 1)
        #expect((h.metrics().discardedByReason["parse_failure"] ?? 0) == 0)
    }

    @Test func copingRawLogOnlyOnKeptFailures() throws {
        // §1.0 step 5: both RenamedSourceKey and __raw_log__ on a kept failure (ProcessorParseJsonNativeUnittest);
        // nothing on success; no effect (still dropped) without KeepingSourceWhenParseFail.
        let h = try Self.harness("    KeepingSourceWhenParseFail: true\n    CopingRawLog: true\n    RenamedSourceKey: rawLog")
        #expect(h.run(["{bad", #"{"a":"1"}"#]) == [#"{"rawLog":"{bad","__raw_log__":"{bad"}"#, #"{"a":"1"}"#])
        let notKept = try Self.harness("    CopingRawLog: true")
        #expect(notKept.run(["{bad"]).isEmpty)
        #expect(notKept.metrics().discardedByReason["parse_failure"] == 1)
    }

    @Test func aParsedMemberNamedLikeTheRenamedKeyWins() throws {
        // §1.0 step 4: RenamedSourceKey is set without overwrite.
        let h = try Self.harness("    KeepingSourceWhenParseSucceed: true\n    RenamedSourceKey: raw")
        #expect(h.run([#"{"raw":"parsed","b":"2"}"#]) == [#"{"raw":"parsed","b":"2"}"#])
    }

    @Test func aMemberNamedLikeTheSourceReplacesItInPlace() throws {
        // §1.2: a member named like SourceKey = "source overwritten", so the source isn't deleted;
        // §1.0: it is replaced in place (first slot); KeepingSourceWhenParseSucceed doesn't overwrite it.
        let h = try Self.harness()
        #expect(h.run([#"{"level":"INFO","content":"hi"}"#]) == [#"{"content":"hi","level":"INFO"}"#])
        let kept = try Self.harness("    KeepingSourceWhenParseSucceed: true")
        #expect(kept.run([#"{"level":"INFO","content":"hi"}"#]) == [#"{"content":"hi","level":"INFO"}"#])
    }

    @Test func duplicateMembersTheLaterOneWinsInTheFirstSlot() throws {
        // §1.2: duplicate keys, later one wins (overwrite); §1.0: overwrite reuses the slot.
        let h = try Self.harness()
        #expect(h.run([#"{"a":"1","b":"2","a":"3"}"#]) == [#"{"a":"3","b":"2"}"#])
    }

    @Test func keysAlikeButForOneByteStayTwoFieldsAndDuplicatesOfAnyFormOverwrite() throws {
        // §1.2 / §1.0: distinct keys are distinct fields however alike; a duplicate (long, empty, or
        // written with an escape) overwrites the first one's slot.
        let h = try Self.harness()
        #expect(h.run([#"{"abcdefgh-1-ijklmnop":"1","abcdefgh-2-ijklmnop":"2","content":"c"}"#])
                == [#"{"content":"c","abcdefgh-1-ijklmnop":"1","abcdefgh-2-ijklmnop":"2"}"#])
        #expect(h.run([#"{"request_time_ms":"1","x":"2","request_time_ms":"3"}"#]) == [#"{"request_time_ms":"3","x":"2"}"#])
        #expect(h.run([#"{"":"1","b":"2","":"3"}"#]) == [#"{"":"3","b":"2"}"#])
        #expect(h.run([#"{"k\u0041":"1","kA":"2"}"#]) == [#"{"kA":"2"}"#])
    }

    @Test func parsedKeysReplaceExistingFieldsInPlaceAndAFailureKeepsTheOtherFields() throws {
        // §1.0 step 2 (overwrite in place), field order, and step 6: a failed event that still has
        // other fields is kept with them (not dropped, not counted as discarded).
        let h = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (\\w+) (.*)
            Keys: [level, body]
          - Type: processor_parse_json_native
            SourceKey: body
        """)
        #expect(h.run([#"INFO {"a":"1"}"#, #"INFO {"level":"DEBUG","x":"2"}"#, "WARN nope"])
            == [#"{"level":"INFO","a":"1"}"#, #"{"level":"DEBUG","x":"2"}"#, #"{"level":"WARN"}"#])
        #expect(h.metrics(1).parseFailures.current == 1)
        #expect((h.metrics(1).discardedByReason["parse_failure"] ?? 0) == 0)
    }

    @Test func aFailureWritesNoPartialFields() throws {
        // §1.2 (simdjson path): fields are only written if the whole object iterates without error;
        // invalid UTF-8 inside a string is an error, as in simdjson.
        let h = try Self.harness("    KeepingSourceWhenParseFail: true\n    RenamedSourceKey: raw")
        #expect(h.run([#"{"a":"1","b":tru}"#]) == [#"{"raw":"{\"a\":\"1\",\"b\":tru}"}"#])
        let invalid: [UInt8] = Array(#"{"a":"1","b":"x"#.utf8) + [0xFF] + Array(#"y"}"#.utf8)
        #expect(h.run(bytes: [invalid]) == [#"{"raw":"{\"a\":\"1\",\"b\":\"x\ufffdy\"}"}"#])
        #expect(h.metrics().parseFailures.current == 2)
        // A run of CJK characters is read sequence by sequence: whole ones parse, and a broken
        // one right after a run (a lone lead byte, a truncated sequence at the end) fails.
        #expect(h.run(["{\"msg\":\"用户登录成功\",\"u\":\"张三😀\"}"]) == ["{\"msg\":\"用户登录成功\",\"u\":\"张三😀\"}"])
        let brokenAfterRun: [UInt8] = Array("{\"m\":\"日志".utf8) + [0xE5, 0x41] + Array("\"}".utf8)
        let truncatedAtEnd: [UInt8] = Array("{\"m\":\"日志".utf8) + [0xE5, 0xBF]
        #expect(h.run(bytes: [brokenAfterRun, truncatedAtEnd]).count == 2)
        #expect(h.metrics().parseFailures.current == 4)
    }

    @Test func aMissingSourceKeyLeavesTheEventAlone() throws {
        // §1.0 step 1: SourceKey missing → unchanged, not a failure.
        let h = try ProcessorHarness("""
          - Type: processor_parse_json_native
            SourceKey: message
        """)
        #expect(h.run([#"{"a":"1"}"#]) == [#"{"content":"{\"a\":\"1\"}"}"#])
        #expect(h.metrics().parseFailures.current == 0)
    }

    @Test func sourceKeyIsRequired() {
        // §1.2: SourceKey is mandatory (no "content" default, §7 item 20).
        do {
            _ = try ProcessorHarness("  - Type: processor_parse_json_native\n    KeepingSourceWhenParseFail: true")
            Issue.record("no error for a missing SourceKey")
        } catch {
            #expect("\(error)".contains("processors[0]"))
            #expect("\(error)".contains("SourceKey"))
        }
    }

    // Sluice extension: KeepingValueTypes.

    @Test func keepingValueTypesWritesNonStringValuesAsCompactRawJSON() throws {
        let h = try Self.harness("    KeepingValueTypes: true")
        let line = #"{"s":"str","i":42,"d":1.5,"neg":-7,"t":true,"f":false,"n":null,"o":{ "k" : [ 1, "x" ] },"a":[ ]}"#
        #expect(h.run([line]) == [#"{"s":"str","i":42,"d":1.5,"neg":-7,"t":true,"f":false,"n":null,"o":{"k":[1,"x"]},"a":[]}"#])
    }

    @Test func keepingValueTypesFalseIsTheIncumbentsStringForm() throws {
        // Explicit false = default = §1.2 conversions; strings stay strings in both modes.
        let line = #"{"s":"q\"x","i":42,"d":1.5,"n":null,"o":{"k":[1]}}"#
        let off = try Self.harness("    KeepingValueTypes: false")
        #expect(off.run([line]) == [#"{"s":"q\"x","i":"42","d":"1.500000","n":"","o":"{\"k\":[1]}"}"#])
        let on = try Self.harness("    KeepingValueTypes: true")
        #expect(on.run([line]) == [#"{"s":"q\"x","i":42,"d":1.5,"n":null,"o":{"k":[1]}}"#])
    }
}
