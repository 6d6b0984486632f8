import SluiceConfig
import SluiceCore
@testable import SluiceFiles
import CJSONText
import SluiceRegex
import SluiceSystem
import Testing

/// Runs `lines` through a joiner as the file reader does (one buffer, lines separated by `\n`,
/// the group as a span of it), then `finish` (flush timeout). Returns each event's text and flags,
/// and the machine's counters.
func mlRun(_ o: MultilineOptions, _ lines: [String], maxGroupBytes: Int = 1 << 20, finish: Bool = true)
    -> (events: [String], flags: [UInt32], machine: MultilineMachine) {
    var arena: [UInt8] = []
    var spans: [Span] = []
    for l in lines {
        spans.append(Span(arena.count, l.utf8.count))
        arena += Array(l.utf8)
        arena.append(0x0A)
    }
    var ml = MultilineMachine(options: o, maxGroupBytes: maxGroupBytes)
    let matcher = RegexMatcher(for: o.patterns)
    var out: [LogEvent] = []
    arena.withUnsafeBufferPointer { ab in
        let base = ab.baseAddress ?? UnsafePointer(bitPattern: 1)!
        var sink = ArenaGroupSink(events: [], base: base)
        for s in spans {
            ml.feed(MultilineLine(span: s), base + Int(s.offset), Int(s.length), matcher: matcher, sink: &sink)
        }
        if finish { ml.finish(sink: &sink) }
        out = sink.events
    }
    let texts = out.map { String(decoding: arena[Int($0.content.offset)..<Int($0.content.offset + $0.content.length)], as: UTF8.self) }
    return (texts, out.map(\.flags), ml)
}

func mlPattern(_ p: String) -> RegexPattern { try! MultilineOptions.compile(p)! }

/// The multiline rules of the incumbent (reference §1.8, LC ProcessorSplitMultilineLogStringNative),
/// as a table: pattern combinations × inputs → events, for both unmatched treatments.
@Suite("Multiline rules") struct MultilineRuleTests {
    // Start: a line beginning with "S"; Continue: a line beginning with a space; End: with "E".
    static let S = "S", C = "\\s", E = "E"

    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var start: String?, cont: String?, end: String?
        var input: [String]
        var singleLine: [String]
        var discard: [String]
        var discarded: Int
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "Start only", start: S, cont: nil, end: nil,
             input: ["x0", "S1", "a", "b", "S2", "c"],
             singleLine: ["x0", "S1\na\nb", "S2\nc"], discard: ["S1\na\nb", "S2\nc"], discarded: 1),
        Case(name: "Start + Continue", start: S, cont: C, end: nil,
             input: ["x0", "S1", " c1", " c2", "x1", "S2", "S3", " c3"],
             singleLine: ["x0", "S1\n c1\n c2", "x1", "S2", "S3\n c3"], discard: ["S1\n c1\n c2", "S2", "S3\n c3"], discarded: 2),
        Case(name: "Continue + End", start: nil, cont: C, end: E,
             input: ["x0", " c1", " c2", "E1", "E2", " c3", "x1", " c4"],
             singleLine: ["x0", " c1\n c2\nE1", "E2", " c3", "x1", " c4"], discard: [" c1\n c2\nE1", "E2"], discarded: 4),
        Case(name: "Start + End (a Start inside the block is part of it)", start: S, cont: nil, end: E,
             input: ["x0", "S1", "a", "S2", "E1", "x1", "S3", "b"],
             singleLine: ["x0", "S1\na\nS2\nE1", "x1", "S3", "b"], discard: ["S1\na\nS2\nE1"], discarded: 4),
        Case(name: "End only", start: nil, cont: nil, end: E,
             input: ["a", "b", "E1", "E2", "c"],
             singleLine: ["a\nb\nE1", "E2", "c"], discard: ["a\nb\nE1", "E2"], discarded: 1),
        Case(name: "All three: Continue ignored (a non-continue line does not end the block)", start: S, cont: C, end: E,
             input: ["S1", "x", " c", "E1", "y"],
             singleLine: ["S1\nx\n c\nE1", "y"], discard: ["S1\nx\n c\nE1"], discarded: 1),
        Case(name: "Start line opening a group is not tested against End (Start + End)", start: S, cont: nil, end: E,
             input: ["SE", "a", "E"],
             singleLine: ["SE\na\nE"], discard: ["SE\na\nE"], discarded: 0),
        Case(name: "Continue + End: a line matching both continues", start: nil, cont: "[ E]", end: E,
             input: [" a", "Eb", "x"],
             singleLine: [" a", "Eb", "x"], discard: [], discarded: 3),
    ]

    @Test(arguments: cases)
    func table(_ c: Case) {
        for treatment in MultilineOptions.Unmatched.allCases {
            var o = MultilineOptions(start: c.start.map(mlPattern), continue: c.cont.map(mlPattern), end: c.end.map(mlPattern), unmatched: treatment)
            o.ignoringUnmatchWarning = true
            let r = mlRun(o, c.input)
            if treatment == .singleLine {
                #expect(r.events == c.singleLine, "\(c.name), single_line")
                #expect(r.machine.discardedLines == 0)
            } else {
                #expect(r.events == c.discard, "\(c.name), discard")
                #expect(r.machine.discardedLines == c.discarded, "\(c.name): discarded lines")
            }
            #expect(r.flags.allSatisfy { $0 == 0 })
        }
    }

    @Test("Continue alone groups nothing (the whole Multiline is ignored), and neither does an empty pattern")
    func continueAloneIsIgnored() throws {
        #expect(!MultilineOptions(continue: mlPattern("\\s")).isActive)
        let c = try parse("Multiline: {ContinuePattern: '\\s'}")
        #expect(c == nil)
        #expect(try parse("Multiline: {StartPattern: '.*$'}") == nil, "`.*$` strips to nothing: not set")
    }

    @Test("Patterns match at the line start, as a prefix")
    func prefixAnchoring() {
        let o = MultilineOptions(start: mlPattern("\\d{4}-"))
        #expect(mlRun(o, ["2024-01 a", " x", "a 2024-01 b", "2025-02 c"]).events == ["2024-01 a\n x\na 2024-01 b", "2025-02 c"])
        // "ERROR" matches "ERROR: …" (prefix), not "xERROR".
        let e = MultilineOptions(start: mlPattern("ERROR"))
        #expect(mlRun(e, ["ERROR: a", "xERROR", "ERRORb"]).events == ["ERROR: a\nxERROR", "ERRORb"])
    }

    @Test("One trailing $ and trailing .* are stripped before compiling; escaped ones are kept")
    func patternStripping() throws {
        #expect(mlPattern("S.*$").pattern == "S")
        #expect(mlPattern("\\d+.*.*").pattern == "\\d+")
        #expect(mlPattern("a$").pattern == "a")
        #expect(mlPattern("a\\$").pattern == "a\\$")
        #expect(mlPattern("a\\.*").pattern == "a\\.*")
        #expect(try MultilineOptions.compile("$") == nil)
        #expect(mlPattern("[$]").pattern == "[$]")
    }

    @Test("Without an End pattern the pending group is emitted at the flush; with one its lines are unmatched")
    func finishRules() {
        let s = MultilineOptions(start: mlPattern("S"))
        #expect(mlRun(s, ["S1", "a"], finish: false).events == [])
        #expect(mlRun(s, ["S1", "a"], finish: true).events == ["S1\na"])
        let se = MultilineOptions(start: mlPattern("S"), end: mlPattern("E"))
        #expect(mlRun(se, ["S1", "a"], finish: false).events == [])
        #expect(mlRun(se, ["S1", "a"], finish: true).events == ["S1", "a"])
        var seDiscard = se
        seDiscard.unmatched = .discard
        let r = mlRun(seDiscard, ["S1", "a"])
        #expect(r.events == [] && r.machine.discardedLines == 2)
    }

    @Test("A group past max_read_buffer_size is emitted in flagged pieces, counted once")
    func maxGroupBytes() {
        let o = MultilineOptions(start: mlPattern("S"))
        let r = mlRun(o, ["S1", "aaaa", "bbbb", "cccc", "S2", "d"], maxGroupBytes: 10)
        #expect(r.events == ["S1\naaaa", "bbbb\ncccc", "S2\nd"])
        #expect(r.flags == [LogEvent.Flag.truncatedGroup, LogEvent.Flag.truncatedGroup, 0])
        #expect(r.machine.truncatedGroups == 1)
        // Every piece stays within the bound.
        #expect(r.events.allSatisfy { $0.utf8.count <= 10 })
    }

    @Test("BeginLineCheckLength: only the first bytes are tested")
    func checkLength() {
        var o = MultilineOptions(start: mlPattern("a*S"))
        o.checkLength = 3
        #expect(mlRun(o, ["aaS", "aaaS", "x"]).events == ["aaS\naaaS\nx"])
    }

    @Test("Mode JSON: complete objects by brace matching, across lines, strings and escapes respected")
    func jsonMode() {
        let o = MultilineOptions(mode: .json)
        #expect(o.isActive)
        let lines = [#"{"a":1}"#, #"{"b":"#, #"  "x}{","#, #" "y":{"z":2}"#, "}", "garbage", "", "   ", #"{"c":"\"}"} trailing"#, #"{"d":"#]
        let r = mlRun(o, lines, finish: false)
        #expect(r.events == [#"{"a":1}"#, "{\"b\":\n  \"x}{\",\n \"y\":{\"z\":2}\n}", "garbage", #"{"c":"\"}"} trailing"#])
        #expect(r.machine.blankLines == 2, "the blank lines between objects are skipped, and counted")
        // The incomplete last object waits; the flush emits it as it is.
        #expect(mlRun(o, lines, finish: true).events.last == #"{"d":"#)
        // Braces that do not match: the line is an event of its own and the next one starts afresh.
        #expect(mlRun(o, ["{}}", #"{"e":1}"#]).events == ["{}}", #"{"e":1}"#])
    }

    /// The C brace scan (64-byte blocks: the strings found by a prefix XOR of the quotes, the
    /// braces outside them counted at once; a block with a backslash walked byte by byte) against
    /// a byte-at-a-time reference: random texts of quotes, backslashes, braces and letters at
    /// every position of the blocks, cut in random pieces so that the state crosses calls (the
    /// last part of a piece of 64 bytes or more is read as the end of the 64 bytes before it).
    @Test("The brace scan gives what a byte-at-a-time scan gives, across blocks and calls")
    func braceScanMatchesReference() {
        struct State: Equatable { var depth = 0, inQuote = false, escapeNext = false }
        func reference(_ b: ArraySlice<UInt8>, _ s: inout State) -> Int {
            for (k, c) in b.enumerated() {
                if s.escapeNext { s.escapeNext = false; continue }
                switch c {
                case 0x5C: s.escapeNext = true
                case 0x22: s.inQuote.toggle()
                case 0x7B where !s.inQuote: s.depth += 1
                case 0x7D where !s.inQuote:
                    s.depth -= 1
                    if s.depth < 0 { return k }
                default: break
                }
            }
            return b.count
        }
        var rng = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = Array("\"\"\\{{{}}}abc :".utf8)
        var mismatches = 0
        for round in 0..<4000 {
            let n = Int.random(in: 1...400, using: &rng)
            // Some texts have no backslash at all, the blocks' fast path.
            let letters = round % 2 == 0 ? alphabet.filter { $0 != 0x5C } : alphabet
            let b: [UInt8] = (0..<n).map { _ in letters.randomElement(using: &rng)! }
            // The AVX2 scan (where the CPU has it) and the SSE2 one, in turn.
            let scan = round % 4 < 2 ? sluice_json_scan_braces : sluice_json_scan_braces_sse2
            var expected = State(), got = sluice_json_brace_state(depth: 0, in_quote: 0, escape_next: 0)
            var at = 0
            while at <= n {
                let piece = at == n ? 0 : Int.random(in: 1...(n - at), using: &rng)
                let want = reference(b[at..<(at + piece)], &expected)
                let found = b.withUnsafeBufferPointer { scan($0.baseAddress! + at, piece, &got) }
                let same = found == want && got.depth == expected.depth
                    && (got.in_quote != 0) == expected.inQuote && (got.escape_next != 0) == expected.escapeNext
                if !same { mismatches += 1; break }
                if found < piece { expected = State(); got = sluice_json_brace_state(depth: 0, in_quote: 0, escape_next: 0); at += found + 1; continue }
                if at == n { break }
                at += piece
            }
        }
        #expect(mismatches == 0)
    }

    // MARK: - Options

    func parse(_ yaml: String, allowJSON: Bool = true) throws -> MultilineOptions? {
        let root = try ConfigObject.parse(yaml: yaml, file: "t.yaml")
        guard let m = try root.object("Multiline") else { return nil }
        return try MultilineOptions.from(m, allowJSON: allowJSON)
    }

    @Test("Options: bad values are errors at their key")
    func optionErrors() throws {
        let o = try #require(try parse("Multiline: {StartPattern: '\\d+', UnmatchedContentTreatment: discard, IgnoringUnmatchWarning: true}"))
        #expect(o.start?.pattern == "\\d+" && o.unmatched == .discard && o.ignoringUnmatchWarning)
        #expect(o.start?.anchoring == .prefix)
        for (yaml, key) in [("Multiline: {StartPattern: 'a('}", "StartPattern"), ("Multiline: {StartPattern: a, EndPattern: '(b'}", "EndPattern"),
                            ("Multiline: {Mode: regex}", "Mode"), ("Multiline: {Mode: whole_file}", "Mode"),
                            ("Multiline: {StartPattern: a, UnmatchedContentTreatment: drop}", "UnmatchedContentTreatment")] {
            do {
                _ = try parse(yaml)
                Issue.record("accepted: \(yaml)")
            } catch {
                #expect("\(error)".contains(key), "\(yaml): \(error)")
            }
        }
        #expect(throws: ConfigError.self) { try parse("Multiline: {Mode: JSON}", allowJSON: false) }
        #expect(try parse("Multiline: {Mode: JSON, StartPattern: x}")?.start == nil, "JSON mode uses no patterns")
    }
}

/// Multiline on runtime logs: per stream, after the runtime's partial lines are joined.
@Suite("Multiline in StreamDecoder") struct MultilineStreamTests {
    let t1 = "2024-01-01T00:00:01Z", t2 = "2024-01-01T00:00:02Z"
    let ns1: Int64 = 1_704_067_201_000_000_000

    func raw(_ lines: [String], base: Int64) -> (EventBatch, [Int64]) {
        var arena: [UInt8] = []
        var events: [LogEvent] = []
        var offsets: [Int64] = []
        for l in lines {
            offsets.append(base + Int64(arena.count))
            let off = arena.count
            arena += Array(l.utf8)
            events.append(LogEvent(content: Span(off, l.utf8.count)))
            arena.append(0x0A)
        }
        return (EventBatch(arena: arena, events: events, tags: [], timeSeconds: 1, inputBytes: arena.count), offsets)
    }

    func texts(_ batches: [EventBatch]) -> [String] {
        batches.flatMap { b in b.events.indices.map { (b.tag("_source_") ?? "?") + ":" + String(decoding: b.contentBytes($0), as: UTF8.self) } }
    }

    @Test("CRI P/F parts are joined first, then lines grouped per stream; the checkpoint is held at the group's first part")
    func criPartsThenMultiline() {
        let d = StreamDecoder(format: .cri, multiline: MultilineOptions(start: mlPattern("\\d{4}-")))
        let (b1, off1) = raw(["\(t1) stdout P 2024-01-01 ex", "\(t1) stdout F ception", "\(t1) stderr F oops",
                              "\(t2) stdout F \tat a.b(C.java:1)", "\(t2) stderr F 2024 not a start",
                              "\(t2) stdout P \tat c.", "\(t2) stdout F d(E.java:2)", "\(t2) stdout P 2024-01-02 next"], base: 100)
        let e1 = d.decode(b1, baseOffset: 100)
        // The stdout group cannot close yet: its next Start line is still being joined (P).
        #expect(texts(e1) == ["stderr:oops", "stderr:2024 not a start"])
        #expect(d.holdOffset == off1[0], "held at the first part of the group's first line")
        let (b2, off2) = raw(["\(t2) stdout F  record", "\(t2) stdout F more"], base: 1000)
        let e2 = d.decode(b2, baseOffset: 1000)
        #expect(texts(e2) == ["stdout:2024-01-01 exception\n\tat a.b(C.java:1)\n\tat c.d(E.java:2)"])
        #expect(e2.first?.events.first?.timeNanos == ns1, "a group keeps its first line's time")
        #expect(d.holdOffset == off1[7], "the next group (now whole lines) holds its first part's offset")
        let (b3, _) = raw(["\(t2) stdout F 2024-01-03 third"], base: 2000)
        #expect(texts(d.decode(b3, baseOffset: 2000)) == ["stdout:2024-01-02 next record\nmore"])
        #expect(d.holdOffset == 2000)
        #expect(off2.count == 2)
        // Flush timeout: the pending group leaves, the checkpoint is free.
        let since = d.groupSince[0]
        #expect(d.nextGroupDeadline(timeout: 1_000_000_000, after: since) == since + 1_000_000_000, "the reader's wait ends when this group comes due")
        #expect(d.nextGroupDeadline(timeout: 1_000_000_000, after: since + 1_000_000_000) == nil, "an overdue group is not waited for")
        #expect(texts(d.flushGroups(olderThan: 10_000_000_000, now: Sys.monotonicNanos(), tags: [], observedNanos: 0)).isEmpty)
        #expect(texts(d.flushGroups(olderThan: 0, now: Sys.monotonicNanos(), tags: [], observedNanos: 0)) == ["stdout:2024-01-03 third"])
        #expect(d.holdOffset == nil)
        #expect(d.nextGroupDeadline(timeout: 0, after: 0) == nil)
    }

    @Test("Docker json-file: split records joined, then grouped; unmatched lines discarded and counted; the file let go flushes")
    func dockerDiscardAndRelease() {
        var o = MultilineOptions(start: mlPattern("BEGIN"), end: mlPattern("END"), unmatched: .discard)
        o.ignoringUnmatchWarning = true
        let d = StreamDecoder(format: .dockerJSON, multiline: o)
        let (b, _) = raw([#"{"log":"noise\n","stream":"stdout","time":"\#(t1)"}"#,
                          #"{"log":"BEG","stream":"stdout","time":"\#(t1)"}"#,
                          #"{"log":"IN 1\n","stream":"stdout","time":"\#(t1)"}"#,
                          #"{"log":"body\n","stream":"stdout","time":"\#(t1)"}"#,
                          #"{"log":"END 1\n","stream":"stdout","time":"\#(t1)"}"#,
                          #"{"log":"BEGIN 2\n","stream":"stdout","time":"\#(t1)"}"#], base: 0)
        #expect(texts(d.decode(b, baseOffset: 0)) == ["stdout:BEGIN 1\nbody\nEND 1"])
        #expect(d.holdOffset != nil)
        // Let go: Start + End without an End line → unmatched → discarded.
        #expect(texts(d.flushPending(tags: [], observedNanos: 0)).isEmpty)
        let c = d.takeMultilineCounts()
        #expect(c.discarded == 2 && c.unmatched == 2)
        #expect(d.holdOffset == nil)
    }

    @Test("service_docker_stdout BeginLineRegex / BeginLineTimeoutMs / BeginLineCheckLength become a Start-only multiline")
    func beginLineOptions() throws {
        // Parsed by the container plugin; here the compiled form is what the decoder takes.
        var o = MultilineOptions(start: try #require(try MultilineOptions.compile("\\[\\d+\\].*")))
        o.flushTimeoutSecs = 0.5
        #expect(o.start?.pattern == "\\[\\d+\\]")
        let d = StreamDecoder(format: .cri, multiline: o)
        let (b, _) = raw(["\(t1) stdout F [1] a", "\(t1) stdout F b", "\(t1) stdout F [2] c"], base: 0)
        #expect(texts(d.decode(b, baseOffset: 0)) == ["stdout:[1] a\nb"])
    }
}
