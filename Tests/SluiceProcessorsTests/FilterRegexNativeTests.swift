import SluiceCore
import SluiceTesting
import Testing

/// Golden cases for processor_filter_regex_native, written from the incumbent's semantics
/// (reference §1.6): FilterKey/FilterRegex, Include, ConditionExp, full match, AND of rules,
/// missing keys, DiscardingNonUTF8.
@Suite struct FilterRegexNativeTests {
    /// `method status` lines parsed into two fields, then the filter given by `filter`.
    static func parsedThen(_ filter: String) throws -> ProcessorHarness {
        try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (\\S+) (\\S+)
            Keys: [method, status]
          - Type: processor_filter_regex_native
        \(filter)
        """)
    }

    static func configError(_ yaml: String) -> String? {
        do { _ = try ProcessorHarness(yaml); return nil } catch { return "\(error)" }
    }

    @Test func filterKeyAndFilterRegexKeepOnlyMatchingEvents() throws {
        let h = try ProcessorHarness("""
          - Type: processor_filter_regex_native
            FilterKey: [content]
            FilterRegex: ['ERROR.*']
        """)
        #expect(h.run(["ERROR disk full", "INFO ok", "ERROR"]) == [#"{"content":"ERROR disk full"}"#, #"{"content":"ERROR"}"#])
        #expect(h.metrics().discardedByReason["filtered"] == 1)
    }

    @Test func theRegexMustMatchTheWholeValue() throws {
        // §1.6: full match (boost::regex_match): `POST|PUT` behaves like `^(POST|PUT)$`.
        let h = try ProcessorHarness("""
          - Type: processor_filter_regex_native
            FilterKey: [content]
            FilterRegex: ['POST|PUT']
        """)
        #expect(h.run(["POST", "PUT", "XPUT", "PUTX", "POST /a", "GET"]) == [#"{"content":"POST"}"#, #"{"content":"PUT"}"#])
        #expect(h.metrics().discardedByReason["filtered"] == 4)
        let anchored = try ProcessorHarness("""
          - Type: processor_filter_regex_native
            FilterKey: [content]
            FilterRegex: ['^(POST|PUT)$']
        """)
        #expect(anchored.run(["POST", "PUT", "XPUT", "PUTX"]) == [#"{"content":"POST"}"#, #"{"content":"PUT"}"#])
    }

    @Test func everyRuleMustMatch() throws {
        // §1.6: keep only if every rule matches (AND).
        let h = try Self.parsedThen("""
            FilterKey: [method, status]
            FilterRegex: ['POST|PUT', '2\\d\\d']
        """)
        #expect(h.run(["POST 200", "POST 500", "GET 200", "PUT 204"]) == [#"{"method":"POST","status":"200"}"#, #"{"method":"PUT","status":"204"}"#])
        #expect(h.metrics(1).discardedByReason["filtered"] == 2)
    }

    @Test func aMissingKeyIsNoMatchAndTheEventIsDropped() throws {
        // §1.6: a missing key → no match → drop, even for a regex that matches the empty string.
        let h = try ProcessorHarness("""
          - Type: processor_filter_regex_native
            FilterKey: [level]
            FilterRegex: ['.*']
        """)
        #expect(h.run(["anything", ""]).isEmpty)
        #expect(h.metrics().discardedByReason["filtered"] == 2)
        let present = try ProcessorHarness("""
          - Type: processor_filter_regex_native
            FilterKey: [content]
            FilterRegex: ['.*']
        """)
        // An empty value is present: `.*` matches it.
        #expect(present.run([""]) == [#"{"content":""}"#])
    }

    @Test func filterKeyAndFilterRegexMustHaveTheSameLength() {
        // §1.6 / §7 item 14: LC rejects a length mismatch.
        let more = Self.configError("  - Type: processor_filter_regex_native\n    FilterKey: [a, b]\n    FilterRegex: ['x']")
        #expect(more?.contains("processors[0].Filter") == true)
        let onlyKeys = Self.configError("  - Type: processor_filter_regex_native\n    FilterKey: [a]")
        #expect(onlyKeys?.contains("processors[0].Filter") == true)
    }

    @Test func anInvalidFilterRegexIsRejected() {
        let e = Self.configError("  - Type: processor_filter_regex_native\n    FilterKey: [content]\n    FilterRegex: ['a(b']")
        #expect(e?.contains("processors[0].FilterRegex") == true)
    }

    @Test func includeMapIsTheDeprecatedAlternative() throws {
        // §1.6 Include: key → regex, all must (fully) match; missing key → dropped.
        let h = try Self.parsedThen("""
            Include:
              method: 'GET|HEAD'
              status: '3\\d\\d'
        """)
        #expect(h.run(["GET 301", "GET 200", "HEAD 304", "GETX 301"]) == [#"{"method":"GET","status":"301"}"#, #"{"method":"HEAD","status":"304"}"#])
        let missing = try ProcessorHarness("""
          - Type: processor_filter_regex_native
            Include:
              level: '.*'
        """)
        #expect(missing.run(["x"]).isEmpty)
    }

    @Test func includeIsIgnoredWhenFilterKeyIsGiven() throws {
        // §1.6: Include is used only if neither ConditionExp nor FilterKey/FilterRegex is given.
        let h = try ProcessorHarness("""
          - Type: processor_filter_regex_native
            FilterKey: [content]
            FilterRegex: ['a.*']
            Include:
              content: 'b.*'
        """)
        #expect(h.run(["abc", "bcd"]) == [#"{"content":"abc"}"#])
    }

    @Test func conditionExpTakesPriority() throws {
        // §1.6: ConditionExp wins over FilterKey/FilterRegex and Include.
        let h = try ProcessorHarness("""
          - Type: processor_filter_regex_native
            ConditionExp:
              key: content
              type: regex
              exp: 'b.*'
            FilterKey: [content]
            FilterRegex: ['a.*']
            Include:
              content: 'a.*'
        """)
        #expect(h.run(["abc", "bcd"]) == [#"{"content":"bcd"}"#])
    }

    @Test func conditionExpAndOrNot() throws {
        // §1.6: and/or with 2 operands, not with 1, regex leaves (full match).
        let h = try Self.parsedThen("""
            ConditionExp:
              operator: and
              operands:
                - operator: or
                  operands:
                    - {key: method, type: regex, exp: 'POST'}
                    - {key: method, type: regex, exp: 'PUT'}
                - operator: not
                  operands:
                    - {key: status, type: regex, exp: '5\\d\\d'}
        """)
        #expect(h.run(["POST 200", "PUT 201", "PUT 503", "GET 200", "POSTX 200", "POST 5000"])
            == [#"{"method":"POST","status":"200"}"#, #"{"method":"PUT","status":"201"}"#, #"{"method":"POST","status":"5000"}"#])
        #expect(h.metrics(1).discardedByReason["filtered"] == 3)
    }

    @Test func conditionExpMissingKeyLeafDoesNotMatch() throws {
        // §1.6: a missing key → no match (leaf false), so an `or` can still pass on its other operand.
        let h = try Self.parsedThen("""
            ConditionExp:
              operator: or
              operands:
                - {key: level, type: regex, exp: '.*'}
                - {key: status, type: regex, exp: '200'}
        """)
        #expect(h.run(["GET 200", "GET 404"]) == [#"{"method":"GET","status":"200"}"#])
    }

    @Test func invalidConditionExpIsRejected() {
        // §1.6: and/or need exactly 2 operands, not exactly 1; leaves are `type: regex`; invalid → rejected.
        let head = "  - Type: processor_filter_regex_native\n    ConditionExp:\n"
        let leaf = "{key: content, type: regex, exp: 'a'}"
        let bad = [
            "      operator: and\n      operands: [\(leaf)]",
            "      operator: or\n      operands: [\(leaf), \(leaf), \(leaf)]",
            "      operator: not\n      operands: [\(leaf), \(leaf)]",
            "      operator: xor\n      operands: [\(leaf), \(leaf)]",
            "      key: content\n      type: equal\n      exp: 'a'",
            "      key: content\n      type: regex\n      exp: 'a(b'",
        ]
        for body in bad {
            let e = Self.configError(head + body)
            #expect(e?.contains("processors[0].ConditionExp") == true, "accepted or wrong path: \(body)")
        }
    }

    @Test func withNoRulesEverythingPasses() throws {
        // §1.6: with no rules at all, everything passes.
        let h = try ProcessorHarness("  - Type: processor_filter_regex_native")
        #expect(h.run(["a", "", "b c"]) == [#"{"content":"a"}"#, #"{"content":""}"#, #"{"content":"b c"}"#])
        #expect((h.metrics().discardedByReason["filtered"] ?? 0) == 0)
    }

    @Test func anEmptyEventIsDroppedOnlyInRuleMode() throws {
        // §1.6: in rule/expression mode an empty event (no fields; here `{}` parsed by the JSON
        // parser) is dropped — even under `not`; with no rules it passes.
        let rule = try ProcessorHarness("""
          - Type: processor_parse_json_native
            SourceKey: content
          - Type: processor_filter_regex_native
            ConditionExp:
              operator: not
              operands:
                - {key: x, type: regex, exp: 'y'}
        """)
        #expect(rule.batch(["{}"]).events.isEmpty)
        #expect(rule.metrics(1).discardedByReason["filtered"] == 1)
        let none = try ProcessorHarness("""
          - Type: processor_parse_json_native
            SourceKey: content
          - Type: processor_filter_regex_native
        """)
        #expect(none.batch(["{}"]).events.count == 1)
    }

    @Test func dotMatchesNewlineAsInBoost() throws {
        // §1.6 uses boost::regex_match with Perl syntax (§1.1: `.` matches `\n`).
        let h = try ProcessorHarness("""
          - Type: processor_filter_regex_native
            FilterKey: [content]
            FilterRegex: ['ERROR.*']
        """)
        #expect(h.run(["ERROR first\n\tat second"]) == [#"{"content":"ERROR first\n\tat second"}"#])
    }

    @Test func discardingNonUTF8ReplacesEachInvalidByteWithASpace() throws {
        // §1.6: for kept events, every invalid UTF-8 byte is replaced by ' '; valid multi-byte text
        // is untouched. Without the option the bytes stay (the encoder shows them as U+FFFD).
        let line: [UInt8] = [0x61, 0xFF, 0x62] + Array("é".utf8) + [0xC3]
        let on = try ProcessorHarness("  - Type: processor_filter_regex_native\n    DiscardingNonUTF8: true")
        #expect(on.run(bytes: [line]) == [#"{"content":"a bé "}"#])
        let off = try ProcessorHarness("  - Type: processor_filter_regex_native\n    DiscardingNonUTF8: false")
        #expect(off.run(bytes: [line]) == [#"{"content":"a\ufffdbé\ufffd"}"#])
        // With a rule: the (byte-wise) match decides, then the kept event is cleaned.
        let ruled = try ProcessorHarness("""
          - Type: processor_filter_regex_native
            FilterKey: [content]
            FilterRegex: ['a.b.*']
            DiscardingNonUTF8: true
        """)
        #expect(ruled.run(bytes: [line, Array("xyz".utf8)]) == [#"{"content":"a bé "}"#])
    }
}
