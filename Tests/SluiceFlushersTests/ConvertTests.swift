import SluiceConfig
import SluiceCore
@testable import SluiceFlushers
import SluiceTesting
import Testing

/// The incumbent's converter shapes (reference §3.0), byte for byte.
@Suite struct ConvertTests {
    let tags = [EventTag("__path__", "/data/test.log"), EventTag("__hostname__", "master"), EventTag("_namespace_", "java_app"), EventTag("_source_", "stdout")]

    func documents(_ o: ConvertOptions, _ batch: EventBatch) -> [String] {
        var enc = LogDocumentEncoder(options: o)
        enc.begin(batch)
        var out: [String] = []
        for i in batch.events.indices {
            let b = OutputBuffer(capacity: 64)
            if enc.append(i, of: batch, to: b) { out.append(String(decoding: b.bytes, as: UTF8.self)) }
        }
        return out
    }

    func options(_ p: ConvertProtocol, kubernetes: Bool = false) -> ConvertOptions {
        var o = ConvertOptions(protocol: p)
        o.kubernetes = kubernetes
        return o
    }

    @Test func customSingleUnparsedSortsKeysAndRenamesTags() {
        let b = lineBatch(["hello \"x\""], tags: tags, observedNanos: 1_664_435_098_123_000_000)
        #expect(documents(options(.customSingle), b) == [
            #"{"contents":{"_source_":"stdout","content":"hello \"x\""},"tags":{"host.name":"master","k8s.namespace.name":"java_app","log.file.path":"/data/test.log"},"time":1664435098}"#,
        ])
    }

    @Test func customSingleParsedFieldsSortedRawJSONUnquotedDeletedSkipped() throws {
        var b = lineBatch(["x"], tags: [EventTag("__path__", "/a")], observedNanos: 1_700_000_000_000_000_000)
        let k1 = b.append(bytes: Array("thread".utf8)), v1 = b.append(bytes: Array("main".utf8))
        let k2 = b.append(bytes: Array("level".utf8)), v2 = b.append(bytes: Array("ERROR".utf8))
        let k3 = b.append(bytes: Array("n".utf8)), v3 = b.append(bytes: Array("42".utf8))
        let k4 = b.append(bytes: Array("gone".utf8))
        b.fields = [EventField(key: k1, value: v1), EventField(key: k2, value: v2), EventField(key: k3, value: v3, kind: .json), EventField(key: k4, value: v1, kind: .deleted)]
        b.events[0].fieldStart = 0
        b.events[0].fieldCount = 4
        b.events[0].flags |= LogEvent.Flag.parsed
        b.events[0].timeNanos = 1_600_000_000_999_999_999
        #expect(documents(options(.customSingle), b) == [#"{"contents":{"level":"ERROR","n":42,"thread":"main"},"tags":{"log.file.path":"/a"},"time":1600000000}"#])
        #expect(documents(options(.customSingleFlatten), b) == [#"{"level":"ERROR","log.file.path":"/a","n":42,"thread":"main","time":1600000000}"#])
        #expect(documents(options(.jsonline), b) == [#"{"thread":"main","level":"ERROR","n":42,"log.file.path":"/a","time":1600000000}"#])
    }

    /// `appendAsString` gives exactly the escape of `append`'s document, for every protocol, for
    /// unparsed lines (quotes, backslashes, controls, CJK, invalid UTF-8, empty) under tags that
    /// need escaping themselves, and for a parsed event; the template is escaped per batch.
    @Test func documentsAsStringsAreTheEscapedDocuments() {
        let lines: [[UInt8]] = [
            Array("plain".utf8), Array(#"say "hi" \ \n"#.utf8), [0x61, 0x09, 0x01, 0x0A, 0x62], Array("日志 \"内容\"".utf8),
            [0x41, 0xFF, 0xC3, 0x28, 0xE4, 0xB8], [], Array(String(repeating: "x\"", count: 40).utf8),
        ]
        let escapingTags = [EventTag("__path__", "/data/\"q\"/日志.log"), EventTag("__hostname__", "h\\1"), EventTag("_source_", "stdout")]
        for p in [ConvertProtocol.customSingle, .customSingleFlatten, .jsonline] {
            for t in [tags, escapingTags, []] {
                var b = EventBatch(arena: [], events: [], tags: t, timeSeconds: 1_700_000_000, inputBytes: 0)
                for (n, l) in lines.enumerated() {
                    let span = b.append(bytes: l)
                    var ev = LogEvent(content: span)
                    if n % 3 == 1 { ev.timeNanos = 1_600_000_000_000_000_000 + Int64(n) * 1_000_000_007 }
                    b.events.append(ev)
                }
                // A parsed event too: the general path.
                let k = b.append(bytes: Array("msg".utf8)), v = b.append(bytes: Array(#"a "b""#.utf8))
                b.fields = [EventField(key: k, value: v)]
                var parsed = LogEvent(content: .empty, flags: LogEvent.Flag.parsed)
                parsed.fieldStart = 0
                parsed.fieldCount = 1
                b.events.append(parsed)
                var enc = LogDocumentEncoder(options: options(p))
                var asString = LogDocumentEncoder(options: options(p))
                enc.begin(b)
                asString.begin(b)
                for i in b.events.indices {
                    let doc = OutputBuffer(capacity: 16), expected = OutputBuffer(capacity: 16), got = OutputBuffer(capacity: 16)
                    let wrote = enc.append(i, of: b, to: doc)
                    JSONLineEncoder.appendEscaped(doc.base, doc.count, to: expected)
                    let wroteString = asString.appendAsString(i, of: b, to: got)
                    #expect(wrote && wroteString)
                    #expect(got.toArray() == expected.toArray(), "\(p) event \(i): \(String(decoding: got.bytes, as: UTF8.self))")
                }
            }
        }
    }

    @Test func unparsedEventsEachCarryTheirOwnTime() {
        // The unparsed path keeps the last second's digits: a time that changes, and changes
        // back, is written as it is for every event, and an event without a time has the batch's.
        var b = lineBatch(["a", "b", "c", "d"], tags: [], observedNanos: 1_700_000_000_000_000_000)
        b.events[0].timeNanos = 1_600_000_000_500_000_000
        b.events[1].timeNanos = 1_600_000_001_000_000_000
        b.events[2].timeNanos = 1_600_000_000_000_000_000
        #expect(documents(options(.jsonline), b) == [
            #"{"content":"a","time":1600000000}"#, #"{"content":"b","time":1600000001}"#,
            #"{"content":"c","time":1600000000}"#, #"{"content":"d","time":1700000000}"#,
        ])
    }

    @Test func flattenTagsOverwriteContentsAndTimeOverwritesAll() {
        var b = lineBatch(["x"], tags: [EventTag("host.name", "from-tag")], observedNanos: 5_000_000_000)
        let k1 = b.append(bytes: Array("host.name".utf8)), v1 = b.append(bytes: Array("from-content".utf8))
        let k2 = b.append(bytes: Array("time".utf8)), v2 = b.append(bytes: Array("2022-07-20".utf8))
        b.fields = [EventField(key: k1, value: v1), EventField(key: k2, value: v2)]
        b.events[0].fieldCount = 2
        b.events[0].flags |= LogEvent.Flag.parsed
        #expect(documents(options(.customSingleFlatten), b) == [#"{"host.name":"from-tag","time":5}"#])
        // jsonline is the same flat map (in the order written): one key each, never a duplicate.
        #expect(documents(options(.jsonline), b) == [#"{"host.name":"from-tag","time":5}"#])
    }

    /// Content fields the incumbent turns into tags: `__tag__:<name>` (the name converted as a
    /// tag's), `__log_topic__` (`log.topic`); `__tag__:__user_defined_id__` is dropped.
    @Test func tagPrefixedFieldsBecomeTags() {
        var b = lineBatch(["x"], tags: [], observedNanos: 7_000_000_000)
        var fields: [EventField] = []
        for (k, v) in [("content", "x"), ("__tag__:env", "prod"), ("__log_topic__", "t"), ("__tag__:__user_defined_id__", "u"), ("__tag__:__path__", "/q")] {
            fields.append(EventField(key: b.append(bytes: Array(k.utf8)), value: b.append(bytes: Array(v.utf8))))
        }
        b.fields = fields
        b.events[0].fieldCount = UInt32(fields.count)
        b.events[0].flags |= LogEvent.Flag.parsed
        #expect(documents(options(.customSingle), b) == [#"{"contents":{"content":"x"},"tags":{"env":"prod","log.file.path":"/q","log.topic":"t"},"time":7}"#])
        #expect(documents(options(.customSingleFlatten), b) == [#"{"content":"x","env":"prod","log.file.path":"/q","log.topic":"t","time":7}"#])
    }

    /// A content field named as a tag the incumbent knows (`_namespace_`) goes to the tags; keys
    /// that only look like one (`_source_`, a bare `__tag__:`, `__log_topic`) stay contents.
    @Test func wellKnownTagNamesAmongFieldsBecomeTags() {
        var b = lineBatch(["x"], tags: [], observedNanos: 7_000_000_000)
        var fields: [EventField] = []
        for (k, v) in [("content", "x"), ("_namespace_", "ns1"), ("_source_", "stdout"), ("__tag__:", "bare"), ("__log_topic", "not"), ("_", "u")] {
            fields.append(EventField(key: b.append(bytes: Array(k.utf8)), value: b.append(bytes: Array(v.utf8))))
        }
        b.fields = fields
        b.events[0].fieldCount = UInt32(fields.count)
        b.events[0].flags |= LogEvent.Flag.parsed
        #expect(documents(options(.customSingle), b) == [#"{"contents":{"_":"u","__log_topic":"not","__tag__:":"bare","_source_":"stdout","content":"x"},"tags":{"k8s.namespace.name":"ns1"},"time":7}"#])
    }

    @Test func kubernetesNamesAndRenames() throws {
        let b = lineBatch(["l"], tags: [EventTag("_container_name_", "app"), EventTag("__hostname__", "n1"), EventTag("__pack_id__", "x")], observedNanos: 0)
        var o = options(.customSingle, kubernetes: true)
        o.tagFieldsRename = ["host.name": "hostname", "k8s.container.name": ""]
        o.protocolFieldsRename = ["time": "@timestamp", "contents": "log"]
        #expect(documents(o, b) == [#"{"@timestamp":0,"log":{"content":"l"},"tags":{"hostname":"n1"}}"#])
    }

    @Test func readsConvertAndRejectsUnknownProtocols() throws {
        let c = try ConfigObject.parse(yaml: "Convert: {Protocol: jsonline, TagFieldsRename: {host.name: h}}")
        let o = try ConvertOptions.read(c, allowed: [.customSingle, .jsonline])
        #expect(o.protocol == .jsonline && o.tagFieldsRename == ["host.name": "h"])
        let bad = try ConfigObject.parse(yaml: "Convert: {Protocol: otlp_log_v1}")
        #expect(throws: ConfigError.self) { try ConvertOptions.read(bad, allowed: [.customSingle]) }
        let enc = try ConfigObject.parse(yaml: "Convert: {Protocol: custom_single, Encoding: protobuf}")
        #expect(throws: ConfigError.self) { try ConvertOptions.read(enc, allowed: [.customSingle]) }
    }

    @Test func dynamicTemplates() throws {
        var b = lineBatch(["x"], tags: [EventTag("__path__", "/p")], observedNanos: 0)
        let k = b.append(bytes: Array("app".utf8)), v = b.append(bytes: Array("web".utf8))
        b.fields = [EventField(key: k, value: v)]
        b.events[0].fieldCount = 1
        b.events[0].flags |= LogEvent.Flag.parsed
        let t = try DynamicTemplate(parsing: "logs-%{content.app}-%{tag.log.file.path}-%{content.missing}-%{+yyyy.MM.dd}")
        // Noon UTC: the same day in any zone within 11 hours (the date is local time, as the incumbent's).
        #expect(t.render(event: 0, of: b, tags: ["log.file.path": "/p"], now: 1_699_963_200) == "logs-web-/p-content.missing-2023.11.14")
        #expect(t.renderIfFound(event: 0, of: b, tags: ["log.file.path": "/p"], now: 0) == nil, "a missing field: nothing (Loki leaves the label out)")
        #expect(try DynamicTemplate(parsing: "%{content.app}").renderIfFound(event: 0, of: b, tags: [:], now: 0) == "web")
        #expect(t.usesContent && !t.isStatic)
        #expect(throws: TemplateError.self) { try DynamicTemplate(parsing: "%{metadata.x}") }
    }

    /// The incumbent's date letters (`fmtstr.FormatTimestamp`): ISO week without padding,
    /// unpadded month and day, names, 12-hour clock.
    @Test func dateLettersAsTheIncumbent() {
        let may1 = Int64(1_714_564_800) + 3900  // 2024-05-01 13:05 UTC, a Wednesday, ISO week 18
        #expect(DynamicTemplate.format("yyyy.ww", unixSeconds: may1, utc: true) == "2024.18")
        #expect(DynamicTemplate.format("yyyy.M.d", unixSeconds: may1, utc: true) == "2024.5.1")
        #expect(DynamicTemplate.format("yy-MM-dd HH:mm:ss", unixSeconds: may1, utc: true) == "24-05-01 13:05:00")
        #expect(DynamicTemplate.format("MMM MMMM EEE EEEE", unixSeconds: may1, utc: true) == "May May Wed Wednesday")
        #expect(DynamicTemplate.format("KK:mm aa K m s", unixSeconds: may1, utc: true) == "01:05 PM 1 5 0")
        #expect(DynamicTemplate.format("yyyy.ww", unixSeconds: 1_704_110_400, utc: true) == "2024.1", "2024-01-01: week 1, unpadded")
        #expect(DynamicTemplate.format("yyyy.ww", unixSeconds: 1_703_937_600, utc: true) == "2023.52", "2023-12-30: week 52")
    }

    @Test func environmentReferences() throws {
        let env = ["TOKEN": "s3cret"]
        #expect(try EnvReference.expand("Bearer ${TOKEN}", environment: { env[$0] }) == "Bearer s3cret")
        #expect(try EnvReference.expand("$${TOKEN}", environment: { env[$0] }) == "${TOKEN}")
        #expect(throws: EnvReferenceError.self) { try EnvReference.expand("${NOPE}", environment: { env[$0] }) }
        // The incumbent's `${NAME:default}`: the default when unset (even empty), the value when set.
        #expect(try EnvReference.expand("${NOPE:app_logs}", environment: { env[$0] }) == "app_logs")
        #expect(try EnvReference.expand("t-${NOPE:}-x", environment: { env[$0] }) == "t--x")
        #expect(try EnvReference.expand("${TOKEN:fallback}", environment: { env[$0] }) == "s3cret")
        #expect(try EnvReference.expand("${NOPE:a:b}", environment: { env[$0] }) == "a:b")
        #expect(throws: EnvReferenceError.self) { try EnvReference.expand("${:x}", environment: { env[$0] }) }
    }

    @Test func compressionRoundTrips() throws {
        let text = Array(String(repeating: "sluice compresses bodies; ", count: 500).utf8)
        for c in BodyCompression.allCases {
            let z = try c.compress(text)
            if c != .none { #expect(z.readableBytes < text.count / 4, "\(c)") }
            #expect(try c.decompress(z) == text, "\(c)")
        }
    }
}
