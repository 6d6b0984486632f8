import Foundation
import SluiceCore
@testable import SluiceFiles
import SluiceRegex
import SluiceTesting
import Testing

/// Randomized robustness runs (issue 9, Tests: fuzzing) for the multiline joiner and the CRI /
/// Docker decoders. Seeded SplitMix64; the seed is printed (`SLUICE_FUZZ_SEED` replays one),
/// `SLUICE_FUZZ_SECONDS` sets the duration per target (default 2). Properties: no crash, each call
/// bounded in time, spans inside the arena, the decoders never emit more bytes than they were
/// given, the joiner (single_line) emits every input line exactly once, in order.
private enum Fuzz {
    static let callBound = 5.0

    static func run(_ target: String, _ body: (inout FuzzRNG) throws -> Void) rethrows {
        try FuzzInput.run(target) { r, _ in try body(&r) }
    }

    static func timed<T>(_ what: @autoclosure () -> String, _ f: () throws -> T) rethrows -> T {
        let t0 = Date()
        let r = try f()
        let dt = Date().timeIntervalSince(t0)
        #expect(dt < callBound, "call took \(dt) s: \(what())")
        return r
    }

    static func randomBytes(_ r: inout FuzzRNG, max: Int = 64, alphabet: [UInt8]? = nil) -> [UInt8] {
        FuzzInput.randomBytes(&r, max: max, alphabet: alphabet)
    }

    static func mutate(_ b: [UInt8], _ r: inout FuzzRNG, other: [UInt8], specials: [UInt8]) -> [UInt8] {
        FuzzInput.mutate(b, &r, other: other, specials: specials, numbers: false, maxRepeat: 3000)
    }

    /// A raw batch as the reader hands it: lines (no `\n` inside) each followed by `\n` in the arena.
    static func raw(_ lines: [[UInt8]]) -> EventBatch {
        var arena: [UInt8] = []
        var events: [LogEvent] = []
        for l in lines {
            events.append(LogEvent(content: Span(arena.count, l.count)))
            arena += l
            arena.append(0x0A)
        }
        return EventBatch(arena: arena, events: events, tags: [EventTag("__path__", "/x.log")], timeSeconds: 1, inputBytes: arena.count)
    }
}

@Suite struct FilesFuzzTests {
    // MARK: multiline joiner

    static let patterns = ["S.*", "\\s.*", "E.*", ".*", "[^x]*", "(a|b)*c", "\\d{4}-\\d\\d.*", "\\{.*", "é.*", ""]

    /// Lines through MultilineMachine with the file reader's sink, then finish; the events' bytes.
    static func join(_ o: MultilineOptions, _ lines: [[UInt8]], maxGroupBytes: Int) -> (events: [[UInt8]], arenaCount: Int, spansInside: Bool) {
        let b = Fuzz.raw(lines)
        var ml = MultilineMachine(options: o, maxGroupBytes: maxGroupBytes)
        let matcher = RegexMatcher(for: o.patterns)
        var out: [LogEvent] = []
        b.arena.withUnsafeBufferPointer { ab in
            let base = ab.baseAddress!
            var sink = ArenaGroupSink(events: [], base: base)
            for e in b.events {
                let s = e.content
                ml.feed(MultilineLine(span: s), base + Int(s.offset), Int(s.length), matcher: matcher, sink: &sink)
            }
            ml.finish(sink: &sink)
            out = sink.events
        }
        let inside = out.allSatisfy { Int($0.content.offset) + Int($0.content.length) <= b.arena.count }
        let events = inside ? out.map { Array(b.arena[Int($0.content.offset)..<Int($0.content.offset + $0.content.length)]) } : []
        return (events, b.arena.count, inside)
    }

    @Test func multilineJoiner() throws {
        let compiled = Self.patterns.map { try! MultilineOptions.compile($0) }
        let alphabet = Array("SEx abc {}\"\\2024-01é\t".utf8) + [0, 0xFF, 0xC3, 0x80]
        let seeds = ["S1", " c", "E", "x0", "2024-01-01 start", "{\"a\":", "}", "abcabc", "é", ""].map { Array($0.utf8) }
        try Fuzz.run("multiline joiner") { r in
            func pick() -> RegexPattern? { r.chance(3) ? nil : compiled[r.int(compiled.count)] }
            var o = MultilineOptions(start: pick(), continue: pick(), end: pick(), unmatched: .singleLine)
            if r.chance(4) { o.checkLength = r.int(8) }
            if !o.isActive { o = MultilineOptions(start: compiled[r.int(compiled.count)], unmatched: .singleLine) }
            var lines: [[UInt8]] = []
            for _ in 0..<(r.int(40)) {
                var l: [UInt8]
                switch r.int(3) {
                case 0: l = Fuzz.randomBytes(&r, max: 30, alphabet: alphabet)
                case 1: l = Fuzz.randomBytes(&r, max: 30)
                default: l = Fuzz.mutate(seeds[r.int(seeds.count)], &r, other: seeds[r.int(seeds.count)], specials: alphabet)
                }
                if r.chance(200) { l += [UInt8](repeating: UInt8(ascii: "S"), count: 1 << 17) }
                lines.append(l.filter { $0 != 0x0A })
            }
            let maxGroup = r.chance(2) ? 1 << 20 : 1 + r.int(64)
            let (events, _, inside) = try Fuzz.timed("multiline \(o.patterns) \(lines.count) lines") { Self.join(o, lines, maxGroupBytes: maxGroup) }
            #expect(inside, "an event's span is outside the buffer")
            // single_line: every line exactly once, in order, across the groups.
            let joinedOut = events.map { $0 }.joined(separator: [0x0A]).map { $0 }
            let joinedIn = lines.joined(separator: [0x0A]).map { $0 }
            #expect(joinedOut == joinedIn && events.reduce(0, { $0 + $1.filter { $0 == 0x0A }.count + 1 }) == lines.count,
                    "lines lost or duplicated: \(lines) → \(events), start \(String(describing: o.start)) continue \(String(describing: o.continue)) end \(String(describing: o.end)) max \(maxGroup)")
        }
    }

    // MARK: CRI / Docker decoders

    static let criSeeds = ["2024-01-01T00:00:01Z stdout F hello", "2024-01-01T00:00:01.123456789+08:00 stderr P part-", "2024-01-01T00:00:02Z stdout F",
                           "2024-01-01T00:00:02Z stdout X bad tag", "not a record", "2024-13-45T99:99:99Z stdout F weird time"].map { Array($0.utf8) }
    static let dockerSeeds = [#"{"log":"hello\n","stream":"stdout","time":"2024-01-01T00:00:01.000000001Z"}"#,
                              #"{"log":"part","stream":"stderr","time":"2024-01-01T00:00:01Z"}"#,
                              #"{"stream":"stdout","log":"\u00e9\ud83d\ude00\"\\\/\b\f\r\t\u0000\n","time":"2024-01-01T00:00:01Z","attrs":{"a":"b"}}"#,
                              #"{"log":"\ud800","stream":"stdout","time":"x"}"#, "{}", "{", "not json"].map { Array($0.utf8) }

    @Test func criAndDockerDecoders() throws {
        let specials = Array("{}\":,\\ usPFTZ0123456789-.+".utf8)
        let startPattern = try! MultilineOptions.compile("\\d.*")
        try Fuzz.run("cri/docker decoders") { r in
            let docker = r.chance(2)
            let seeds = docker ? Self.dockerSeeds : Self.criSeeds
            let format: ContainerLogFormat = r.chance(5) ? .auto : (docker ? .dockerJSON : .cri)
            let ml: MultilineOptions? = r.chance(3) ? MultilineOptions(start: startPattern, unmatched: r.chance(2) ? .singleLine : .discard) : nil
            let d = StreamDecoder(format: format, maxLogSize: r.chance(2) ? 512 * 1024 : 1 + r.int(64), ignoreStdout: r.chance(6), ignoreStderr: r.chance(6),
                                  multiline: ml, maxGroupBytes: r.chance(2) ? 1 << 20 : 1 + r.int(64))
            var given = 0, emitted = 0, base: Int64 = 0
            func check(_ batches: [EventBatch]) {
                for b in batches {
                    for e in b.events {
                        let inside = Int(e.content.offset) + Int(e.content.length) <= b.arena.count
                        #expect(inside, "decoded span outside the arena")
                        emitted += Int(e.content.length)
                    }
                }
            }
            for _ in 0..<(1 + r.int(4)) {
                var lines: [[UInt8]] = []
                for _ in 0..<r.int(12) {
                    var l: [UInt8]
                    switch r.int(4) {
                    case 0: l = Fuzz.randomBytes(&r, max: 80)
                    case 1: l = Fuzz.randomBytes(&r, max: 80, alphabet: specials)
                    default:
                        l = seeds[r.int(seeds.count)]
                        for _ in 0..<(r.int(4)) { l = Fuzz.mutate(l, &r, other: seeds[r.int(seeds.count)], specials: specials) }
                    }
                    if r.chance(100) {
                        let body = [UInt8](repeating: UInt8(ascii: "a"), count: 1 << 17)
                        l = docker ? Array(#"{"log":""#.utf8) + body + Array(#"","stream":"stdout","time":"2024-01-01T00:00:01Z"}"#.utf8)
                                   : Array("2024-01-01T00:00:01Z stdout P ".utf8) + body
                    }
                    lines.append(l.filter { $0 != 0x0A })
                }
                let b = Fuzz.raw(lines)
                given += b.arena.count
                check(try Fuzz.timed("decode \(lines.count) lines") { d.decode(b, baseOffset: base) })
                base += Int64(b.arena.count)
                if let h = d.holdOffset { #expect(h >= 0 && h <= base, "hold offset \(h) outside [0, \(base)]") }
                if r.chance(4) { check(d.flushGroups(olderThan: 0, now: Int64.max / 2, tags: [], observedNanos: 1)) }
            }
            check(d.flushPending(tags: [], observedNanos: 1))
            #expect(emitted <= given, "decoder emitted \(emitted) bytes from \(given)")
        }
    }

    /// The record parsers alone: content bounds inside the record, Docker output never longer than its input.
    @Test func runtimeRecordParsers() throws {
        let specials = Array("{}\":,\\ usPFTZ0123456789-.+".utf8)
        try Fuzz.run("runtime record parsers") { r in
            let docker = r.chance(2)
            let seeds = docker ? Self.dockerSeeds : Self.criSeeds
            var l = r.chance(3) ? Fuzz.randomBytes(&r, max: 100) : seeds[r.int(seeds.count)]
            for _ in 0..<(r.int(5)) { l = Fuzz.mutate(l, &r, other: seeds[r.int(seeds.count)], specials: specials) }
            let pad = r.int(4)
            let buf = [UInt8](repeating: 0x41, count: pad) + l + [UInt8](repeating: 0x42, count: r.int(4))
            buf.withUnsafeBufferPointer { bp in
                let p = bp.baseAddress ?? UnsafePointer(bitPattern: 1)!
                let s = pad, e = pad + l.count
                if docker {
                    var out: [UInt8] = [9]
                    if let rec = RuntimeLogParser.parseDocker(p, s, e, into: &out) {
                        #expect(out.count - 1 <= l.count, "docker output longer than the record: \(l)")
                        #expect(rec.contentStart >= 0 && rec.contentStart <= rec.contentEnd && rec.contentEnd <= out.count, "docker content \(rec.contentStart)..<\(rec.contentEnd) outside \(out.count): \(l)")
                    } else {
                        #expect(out == [9], "a rejected docker line left bytes in the output: \(l)")
                    }
                } else if let rec = RuntimeLogParser.parseCRI(p, s, e) {
                    #expect(rec.contentStart >= s && rec.contentStart <= rec.contentEnd && rec.contentEnd <= e, "cri content \(rec.contentStart)..<\(rec.contentEnd) outside \(s)..<\(e): \(l)")
                }
            }
        }
    }
}
