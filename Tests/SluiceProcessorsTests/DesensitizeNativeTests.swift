import SluiceCore
import SluiceTesting
import Testing

/// Golden cases for processor_desensitize_native (reference §1.7).
@Suite struct DesensitizeNativeTests {
    static func harness(_ extra: String) throws -> ProcessorHarness {
        try ProcessorHarness("""
          - Type: processor_desensitize_native
            SourceKey: content
            ContentPatternBeforeReplacedString: 'password":"'
            ReplacedContentPattern: '[^"]+'
        \(extra)
        """)
    }

    @Test func constReplacesEveryMatchKeepingThePrefix() throws {
        let h = try Self.harness("    Method: const\n    ReplacingString: '******'")
        #expect(h.run([#"{"user":"a","password":"s3cret","x":{"password":"two"}}"#])
            == [#"{"content":"{\"user\":\"a\",\"password\":\"******\",\"x\":{\"password\":\"******\"}}"}"#])
    }

    @Test func replacingAllFalseReplacesOnlyTheFirst() throws {
        let h = try Self.harness("    Method: const\n    ReplacingString: '*'\n    ReplacingAll: false")
        #expect(h.run([#"password":"a" password":"b""#]) == [#"{"content":"password\":\"*\" password\":\"b\""}"#])
    }

    @Test func md5IsUpperCaseHexOfTheSensitivePart() throws {
        let h = try Self.harness("    Method: md5")
        // MD5("password") = 5F4DCC3B5AA765D61D8327DEB882CF99 (python hashlib).
        #expect(h.run([#"password":"password""#]) == [#"{"content":"password\":\"5F4DCC3B5AA765D61D8327DEB882CF99\""}"#])
    }

    @Test func groupReferencesInTheReplacement() throws {
        let h = try ProcessorHarness("""
          - Type: processor_desensitize_native
            SourceKey: content
            Method: const
            ContentPatternBeforeReplacedString: 'card='
            ReplacedContentPattern: '(\\d{4})\\d+'
            ReplacingString: '\\2****'
        """)
        #expect(h.run(["card=1234567890 ok"]) == [#"{"content":"card=1234**** ok"}"#])
    }

    @Test func noMatchAndEmptyValuesAreLeftAlone() throws {
        let h = try Self.harness("    Method: const\n    ReplacingString: x")
        #expect(h.run(["nothing here", ""]) == [#"{"content":"nothing here"}"#, #"{"content":""}"#])
    }

    @Test func onlyTheSourceKeyIsMasked() throws {
        let h = try ProcessorHarness("""
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: (\\S+) (\\S+)
            Keys: [a, b]
          - Type: processor_desensitize_native
            SourceKey: b
            Method: const
            ContentPatternBeforeReplacedString: 'k='
            ReplacedContentPattern: '\\w+'
            ReplacingString: '#'
        """)
        #expect(h.run(["k=1 k=2"]) == [#"{"a":"k=1","b":"k=#"}"#])
    }

    @Test func configErrorsAtTheirKey() {
        func message(_ yaml: String) -> String {
            do { _ = try ProcessorHarness(yaml); return "" } catch { return "\(error)" }
        }
        let base = "  - Type: processor_desensitize_native\n    SourceKey: content\n    ContentPatternBeforeReplacedString: a\n    ReplacedContentPattern: b\n"
        #expect(message(base + "    Method: sha1").contains("processors[0].Method"))
        #expect(message(base + "    Method: const").contains("ReplacingString is required"))
        #expect(message(base + "    Method: const\n    ReplacingString: '\\3'").contains("group"))
        #expect(message("  - Type: processor_desensitize_native\n    SourceKey: content\n    Method: md5\n    ContentPatternBeforeReplacedString: a\n    ReplacedContentPattern: '(b'").contains("processors[0].ReplacedContentPattern"))
    }
}
