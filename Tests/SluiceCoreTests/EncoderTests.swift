import Foundation
@testable import SluiceCore
import Testing

@Suite struct JSONLineEncoderTests {
    func encode(_ lines: [[UInt8]], tags: [EventTag] = [EventTag("__path__", "/var/log/a.log")], time: Int64 = 1_700_000_000) -> String {
        var arena: [UInt8] = []
        var events: [LogEvent] = []
        for l in lines {
            events.append(LogEvent(content: Span(arena.count, l.count)))
            arena += l
        }
        let batch = EventBatch(arena: arena, events: events, tags: tags, timeSeconds: time, inputBytes: arena.count)
        let out = OutputBuffer(capacity: 16)
        JSONLineEncoder().encode(batch, into: out)
        return String(decoding: out.bytes, as: UTF8.self)
    }

    @Test func plainLineShape() {
        #expect(encode([Array("hello".utf8)]) == "{\"content\":\"hello\",\"__path__\":\"/var/log/a.log\",\"__time__\":1700000000}\n")
    }

    @Test func escapesQuotesBackslashesAndControls() throws {
        let s = encode([Array("a\"b\\c\td\u{1}e\r".utf8)])
        #expect(s.contains(#""content":"a\"b\\c\td\u0001e\r""#))
        let obj = try JSONSerialization.jsonObject(with: Data(s.utf8)) as! [String: Any]
        #expect(obj["content"] as? String == "a\"b\\c\td\u{1}e\r")
    }

    @Test func invalidUTF8BecomesReplacementCharacter() throws {
        // 0xff, a lone 0xc3, an overlong 0xc0 0xaf, a surrogate ED A0 80, then valid é and 😀.
        let bytes: [UInt8] = [0x61, 0xFF, 0x62, 0xC3, 0x63, 0xC0, 0xAF, 0xED, 0xA0, 0x80] + Array("é😀".utf8)
        let s = encode([bytes])
        let obj = try JSONSerialization.jsonObject(with: Data(s.utf8)) as! [String: Any]
        #expect(obj["content"] as? String == "a\u{FFFD}b\u{FFFD}c\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}é😀")
    }

    @Test func truncatedMultibyteAtEndOfLine() throws {
        let s = encode([[0x41, 0xE4, 0xB8]])
        let obj = try JSONSerialization.jsonObject(with: Data(s.utf8)) as! [String: Any]
        #expect(obj["content"] as? String == "A\u{FFFD}\u{FFFD}")
    }

    @Test func everyByteValueProducesValidJSON() throws {
        var lines: [[UInt8]] = []
        for b in 0...255 where b != 0x0A { lines.append([UInt8(b), 0x78, UInt8(b)]) }
        let s = encode(lines)
        var n = 0
        for line in s.split(separator: "\n") {
            _ = try JSONSerialization.jsonObject(with: Data(line.utf8))
            n += 1
        }
        #expect(n == lines.count)
    }

    /// The escaper (a word at a time under 32 bytes, the C SSE2 scan above) against a byte-at-a-
    /// time reference, on random strings of 0 to 300 bytes: plain runs with quotes, backslashes,
    /// controls, DEL, valid and broken UTF-8 at every position of the 16-byte blocks.
    /// Against an escaper written byte by byte; half the rounds short, half dense in specials
    /// (a JSON document carried as a string), some with bytes from 0x80 part way. The double escape
    /// (`appendEscapedTwice`) against the reference applied twice, on the same strings.
    @Test func escapingMatchesAByteAtATimeReference() {
        func reference(_ b: [UInt8]) -> String {
            var out = ""
            var i = 0
            while i < b.count {
                let c = b[i]
                switch c {
                case 0x22: out += "\\\""
                case 0x5C: out += "\\\\"
                case 0x0A: out += "\\n"
                case 0x0D: out += "\\r"
                case 0x09: out += "\\t"
                case 0x08: out += "\\b"
                case 0x0C: out += "\\f"
                case 0..<0x20: out += String(format: "\\u%04x", c)
                case 0x20..<0x80: out.unicodeScalars.append(Unicode.Scalar(c))
                default:
                    // One valid UTF-8 sequence as it is; else U+FFFD for this byte.
                    var decoded: String?
                    for len in 2...4 where i + len <= b.count {
                        if let s = String(validating: b[i..<(i + len)], as: UTF8.self), s.unicodeScalars.count == 1 { decoded = s; i += len - 1; break }
                    }
                    out += decoded ?? "\\ufffd"
                }
                i += 1
            }
            return out
        }
        var rng = SystemRandomNumberGenerator()
        let specials: [[UInt8]] = [[0x22], [0x5C], [0x0A], [0x01], [0x1F], [0x7F], [0x80], [0xFF], Array("é".utf8), Array("😀".utf8), [0xE4, 0xB8], Array("日志内容".utf8)]
        var mismatches = 0, twiceMismatches = 0
        for round in 0..<6000 {
            // Half short (the no-loop paths under 16 bytes: 0–3, 4–7, 8–15), half long.
            let n = Int.random(in: 0...(round < 3000 ? 17 : 300), using: &rng)
            var b: [UInt8] = (0..<n).map { _ in UInt8.random(in: 0x20...0x7E, using: &rng) }
            // Odd rounds dense in specials (a JSON document carried as a string), mostly quotes.
            let dense = round % 2 == 1
            for _ in 0..<Int.random(in: 0...(dense ? 24 : 4), using: &rng) where !b.isEmpty {
                let at = Int.random(in: 0..<b.count, using: &rng)
                b.replaceSubrange(at..<at, with: dense && Bool.random(using: &rng) ? [0x22] : specials.randomElement(using: &rng)!)
            }
            let out = OutputBuffer(capacity: 16)
            b.withUnsafeBufferPointer { JSONLineEncoder.appendEscaped($0.baseAddress ?? UnsafePointer(bitPattern: 1)!, $0.count, to: out) }
            if String(decoding: out.bytes, as: UTF8.self) != reference(b) { mismatches += 1 }
            // The one-pass double escape is the reference applied twice.
            let twice = OutputBuffer(capacity: 16)
            b.withUnsafeBufferPointer { JSONLineEncoder.appendEscapedTwice($0.baseAddress ?? UnsafePointer(bitPattern: 1)!, $0.count, to: twice) }
            if String(decoding: twice.bytes, as: UTF8.self) != reference(Array(reference(b).utf8)) { twiceMismatches += 1 }
        }
        #expect(mismatches == 0)
        #expect(twiceMismatches == 0)
    }

    @Test func longAsciiRunsAroundSpecials() throws {
        // Exercise the 8-byte fast path with specials at every alignment.
        for pos in 0..<24 {
            var l = Array(repeating: UInt8(ascii: "x"), count: 40)
            l[pos] = UInt8(ascii: "\"")
            let s = encode([l])
            let obj = try JSONSerialization.jsonObject(with: Data(s.utf8)) as! [String: Any]
            #expect((obj["content"] as? String)?.utf8.count == 40)
        }
    }

    /// Random valid strings (ASCII, quotes, controls, multi-byte) round-trip exactly; random bytes
    /// always give valid JSON.
    @Test func randomizedRoundTrip() throws {
        var rng = SystemRandomNumberGenerator()
        let alphabet: [String] = ["a", "b", " ", "\"", "\\", "\t", "\u{1}", "\u{7f}", "é", "中", "😀", "/", "0"]
        for _ in 0..<300 {
            let len = Int.random(in: 0..<80, using: &rng)
            var str = ""
            for _ in 0..<len { str += alphabet.randomElement(using: &rng)! }
            let s = encode([Array(str.utf8)])
            let obj = try JSONSerialization.jsonObject(with: Data(s.utf8)) as! [String: Any]
            #expect(obj["content"] as? String == str)
            let bytes = (0..<len).map { _ in UInt8.random(in: 0...255, using: &rng) }.filter { $0 != 0x0A }
            let s2 = encode([bytes])
            #expect((try? JSONSerialization.jsonObject(with: Data(s2.utf8))) != nil, "bytes \(bytes)")
        }
    }

    @Test func eventTimeOverridesBatchTime() {
        var batch = EventBatch(arena: Array("x".utf8), events: [LogEvent(content: Span(0, 1), timeNanos: 1_600_000_000_123_456_789)], tags: [], timeSeconds: 5, inputBytes: 1)
        batch.tags = [EventTag("k", "v\"")]
        let out = OutputBuffer(capacity: 8)
        JSONLineEncoder().encode(batch, into: out)
        #expect(String(decoding: out.bytes, as: UTF8.self) == "{\"content\":\"x\",\"k\":\"v\\\"\",\"__time__\":1600000000}\n")
    }

    @Test func parsedFieldsReplaceContent() {
        var batch = EventBatch(arena: [], events: [], tags: [], timeSeconds: 7, inputBytes: 0)
        let k1 = batch.append(bytes: Array("status".utf8))
        let v1 = batch.append(bytes: Array("200".utf8))
        let k2 = batch.append(bytes: Array("path".utf8))
        let v2 = batch.append(bytes: Array("/a\"b".utf8))
        batch.fields = [EventField(key: k1, value: v1), EventField(key: k2, value: v2)]
        var ev = LogEvent(content: .empty, flags: LogEvent.Flag.parsed)
        ev.fieldStart = 0
        ev.fieldCount = 2
        batch.events = [ev]
        let out = OutputBuffer(capacity: 8)
        JSONLineEncoder().encode(batch, into: out)
        #expect(String(decoding: out.bytes, as: UTF8.self) == "{\"status\":\"200\",\"path\":\"/a\\\"b\",\"__time__\":7}\n")
    }

    @Test func rawJSONFieldsUnquotedDeletedSkippedEmptiedEventsNotWritten() {
        var batch = EventBatch(arena: [], events: [], tags: [], timeSeconds: 7, inputBytes: 0)
        let k1 = batch.append(bytes: Array("n".utf8))
        let v1 = batch.append(bytes: Array("{\"a\":[1,true]}".utf8))
        let k2 = batch.append(bytes: Array("gone".utf8))
        batch.fields = [EventField(key: k1, value: v1, kind: .json), EventField(key: k2, value: v1, kind: .deleted),
                        EventField(key: k2, value: v1, kind: .deleted)]
        var first = LogEvent(content: .empty, flags: LogEvent.Flag.parsed)
        first.fieldStart = 0
        first.fieldCount = 2
        var second = LogEvent(content: .empty, flags: LogEvent.Flag.parsed)
        second.fieldStart = 2
        second.fieldCount = 1
        batch.events = [first, second]
        let out = OutputBuffer(capacity: 8)
        JSONLineEncoder().encode(batch, into: out)
        #expect(String(decoding: out.bytes, as: UTF8.self) == "{\"n\":{\"a\":[1,true]},\"__time__\":7}\n")
    }
}

@Suite struct OutputBufferTests {
    /// Every length around the short-copy paths (0–3 bytes, 4–7, 8–16, 17–32, 33–64, memmove
    /// above), each at every alignment of source and destination, as a byte array's append would give.
    @Test func appendsOfEveryShortLengthCopyExactly() {
        var g = SystemRandomNumberGenerator()
        let src = (0..<96).map { _ in UInt8.random(in: 0...255, using: &g) }
        for n in 0...80 {
            for srcOffset in 0..<8 {
                for prefix in 0..<8 {
                    let out = OutputBuffer(capacity: 8)
                    var expected: [UInt8] = Array(repeating: 0xAA, count: prefix)
                    out.append(expected)
                    src.withUnsafeBufferPointer { out.append($0.baseAddress! + srcOffset, n) }
                    expected += src[srcOffset..<srcOffset + n]
                    out.append(byte: 0x55)
                    expected.append(0x55)
                    #expect(out.toArray() == expected, "n=\(n) srcOffset=\(srcOffset) prefix=\(prefix)")
                }
            }
        }
    }

    /// Decimal digits as `String(v)` gives them: the extremes, every power of ten and its
    /// neighbours (where the digit count changes), negatives, and random values of every length.
    @Test func decimalsMatchStringFormatting() {
        var values: [Int64] = [0, 1, -1, 9, 10, 99, 100, .max, .min, .max - 1, .min + 1]
        var p: Int64 = 1
        for _ in 0..<19 {
            values += [p - 1, p, p + 1, -p, -(p - 1), -(p + 1)]
            if p <= Int64.max / 10 { p *= 10 }
        }
        var g = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let bits = Int.random(in: 0...63, using: &g)
            let v = Int64.random(in: 0...(Int64.max >> (63 - bits)), using: &g)
            values.append(Bool.random(using: &g) ? v : -v)
        }
        var wrong: [Int64] = []
        let out = OutputBuffer(capacity: 8)
        for v in values {
            out.clear()
            out.append(byte: 0x7C)
            out.append(decimal: v)
            out.append(byte: 0x7C)
            if String(decoding: out.bytes, as: UTF8.self) != "|\(v)|" { wrong.append(v) }
        }
        #expect(wrong.isEmpty, "wrong digits for \(wrong.prefix(5))")
    }

    /// `RepeatedDecimal.append` moves its digits up in place for a number a little above the last:
    /// a walk of steps from 0 to 1001 over carries through every digit (…999 → …1000, a digit more),
    /// repeats, steps down, jumps and negatives gives `String(v)` each time.
    @Test func repeatedDecimalsFollowSmallStepsAndJumps() {
        var values: [Int64] = [0, 0, 1, 9, 10, 99, 100, 999, 1000, 1999, 2000, -5, -4, 7, 3, .max - 1001, .max - 1, .max, .min, 12]
        var g = SystemRandomNumberGenerator()
        var v: Int64 = 1_700_000_000_000_000_000 - 5000
        for _ in 0..<20_000 {
            switch Int.random(in: 0..<10, using: &g) {
            case 0: v = Int64.random(in: -1_000_000...Int64.max / 2, using: &g)
            case 1: v -= Int64.random(in: 1...50, using: &g)
            default: v += Int64.random(in: 0...1001, using: &g)
            }
            values.append(v)
        }
        // Digit-count boundaries: the steps up to and past each power of ten.
        var p: Int64 = 10
        while true {
            values += [p - 3, p - 1, p, p + 2]
            if p > Int64.max / 10 { break }
            p *= 10
        }
        var d = RepeatedDecimal()
        var wrong: [Int64] = []
        let out = OutputBuffer(capacity: 8)
        for v in values {
            out.clear()
            d.append(v, to: out)
            if String(decoding: out.bytes, as: UTF8.self) != "\(v)" { wrong.append(v) }
        }
        #expect(wrong.isEmpty, "wrong digits for \(wrong.prefix(5))")
    }

    /// The short and medium copies load before they store, so a piece of the buffer appended to
    /// itself (the ranges overlapping) comes out as memmove would give it.
    @Test func shortCopiesBetweenOverlappingRangesAreMemmoves() {
        for n in 1...64 {
            for shift in 1...n {
                var a = Array(0..<UInt8(140))
                var b = a
                a.withUnsafeMutableBufferPointer { p in
                    if n <= 16 {
                        OutputBuffer.copySmall(from: UnsafePointer(p.baseAddress! + 4), to: p.baseAddress! + 4 + shift, n)
                    } else {
                        OutputBuffer.copyMedium(from: UnsafePointer(p.baseAddress! + 4), to: p.baseAddress! + 4 + shift, n)
                    }
                }
                b.withUnsafeMutableBufferPointer { p in
                    _ = memmove(p.baseAddress! + 4 + shift, p.baseAddress! + 4, n)
                }
                #expect(a == b, "n=\(n) shift=\(shift)")
            }
        }
    }

    @Test func secondsOfNanosecondsRoundDown() {
        let cases: [(Int64, Int64)] = [
            (0, 0), (999_999_999, 0), (1_000_000_000, 1), (-1, -1), (-999_999_999, -1), (-1_000_000_000, -1),
            (-1_000_000_001, -2), (.max, 9_223_372_036), (.min, -9_223_372_037),
        ]
        for (ns, s) in cases { #expect(LogEvent.seconds(ofNanos: ns) == s, "\(ns)") }
    }

    @Test func aBorrowingBufferWritesInPlaceUntilFullThenMovesOut() {
        let lent = UnsafeMutableRawBufferPointer.allocate(byteCount: 32, alignment: 1)
        defer { lent.deallocate() }
        lent.initializeMemory(as: UInt8.self, repeating: 0xEE)
        let out = OutputBuffer(borrowing: lent)
        out.append("0123456789")
        out.append(decimal: 1234567890123)
        #expect(!out.ownsMemory)
        #expect(UnsafeRawPointer(out.base) == UnsafeRawPointer(lent.baseAddress!))
        #expect(Array(lent.prefix(23)) == Array("01234567891234567890123".utf8))
        #expect(lent[23] == 0xEE, "nothing written past what was appended")
        // Nine more bytes fill it exactly; one more moves everything to memory of its own.
        out.append("abcdefghi")
        #expect(!out.ownsMemory && out.count == 32)
        out.append(byte: UInt8(ascii: "!"))
        #expect(out.ownsMemory)
        #expect(UnsafeRawPointer(out.base) != UnsafeRawPointer(lent.baseAddress!))
        #expect(out.toArray() == Array("01234567891234567890123abcdefghi!".utf8))
        out.append(String(repeating: "z", count: 1000))
        #expect(out.count == 1033 && out.bytes.last == UInt8(ascii: "z"))
        #expect(Array(lent) == Array("01234567891234567890123abcdefghi".utf8), "the lent memory is left as it was when full")
        // Lent nothing: it grows from the first append.
        let empty = OutputBuffer(borrowing: UnsafeMutableRawBufferPointer(start: nil, count: 0))
        empty.append("x")
        #expect(empty.ownsMemory && empty.toArray() == [UInt8(ascii: "x")])
        out.clear()
        #expect(out.count == 0)
    }
}

@Suite struct AckTrackerTests {
    @Test func commitsOnlyContiguousPrefix() {
        var t = OrderedAckTracker(committed: 0)
        let a = t.emitted(upTo: 100)
        let b = t.emitted(upTo: 200)
        let c = t.emitted(upTo: 300)
        let mb = t.acknowledged(b)
        #expect(!mb)
        #expect(t.committed == 0)
        let ma = t.acknowledged(a)
        #expect(ma)
        #expect(t.committed == 200)
        #expect(t.inFlight == 1)
        let mc = t.acknowledged(c)
        #expect(mc)
        #expect(t.committed == 300)
        #expect(t.inFlight == 0)
    }

    @Test func resetIgnoresStaleAcks() {
        var t = OrderedAckTracker(committed: 0)
        let a = t.emitted(upTo: 100)
        t.reset(committed: 0)
        let b = t.emitted(upTo: 50)
        let ma = t.acknowledged(a)
        #expect(!ma)
        #expect(t.committed == 0)
        let mb = t.acknowledged(b)
        #expect(mb)
        #expect(t.committed == 50)
    }

    @Test func manyBatchesCompact() {
        var t = OrderedAckTracker(committed: 0)
        var seqs: [UInt64] = []
        for i in 1...1000 { seqs.append(t.emitted(upTo: Int64(i))) }
        for s in seqs { t.acknowledged(s) }
        #expect(t.committed == 1000)
        #expect(t.inFlight == 0)
    }

    @Test func ackTokenFiresOnceAfterAllFlushers() {
        final class Counter: @unchecked Sendable { var n = 0 }
        let c = Counter()
        let tok = AckToken(expected: 0) { _ in c.n += 1 }
        tok.expect(3)
        tok.acknowledge(); tok.acknowledge()
        #expect(c.n == 0)
        tok.acknowledge()
        #expect(c.n == 1)
    }

    @Test func ackTokenCombinesStatusesWorstFirst() {
        final class Box: @unchecked Sendable { var s: [DeliveryStatus] = [] }
        for (given, combined) in [([DeliveryStatus.delivered, .delivered], DeliveryStatus.delivered),
                                  ([.delivered, .rejected], .rejected),
                                  ([.rejected, .abandoned], .abandoned),
                                  ([.abandoned, .delivered], .abandoned)] {
            let b = Box()
            let tok = AckToken(expected: given.count) { b.s.append($0) }
            for g in given { tok.finish(g) }
            #expect(b.s == [combined])
        }
    }
}

@Suite struct BatchQueueTests {
    func batch(_ size: Int) -> EventBatch {
        EventBatch(arena: [UInt8](repeating: 0, count: size), events: [], tags: [], timeSeconds: 0, inputBytes: size)
    }

    @Test func fifoAndCloseDrains() async {
        let q = BatchQueue(highWatermark: 1 << 20)
        for i in 1...3 { #expect(q.push(batch(i))) }
        q.close()
        #expect(!q.push(batch(9)))
        var sizes: [Int] = []
        while let b = await q.pop() { sizes.append(b.inputBytes) }
        #expect(sizes == [1, 2, 3])
    }

    @Test func producerBlocksAtHighWatermarkUntilLow() async {
        let q = BatchQueue(highWatermark: 10_000, lowWatermark: 3_000)
        for _ in 0..<3 { q.push(batch(4_000)) }   // 12 000+ ≥ high: draining
        #expect(q.isFull)
        #expect(!q.push(batch(10), timeoutMs: 50))
        _ = await q.pop()   // ~8 000: still above low
        #expect(q.isFull)
        _ = await q.pop()   // ~4 000: still above low
        #expect(q.isFull)
        _ = await q.pop()   // 0: below low
        #expect(!q.isFull)
        #expect(q.push(batch(10), timeoutMs: 50))
    }

    @Test func consumerWaitsForProducerThread() async {
        let q = BatchQueue(highWatermark: 1 << 20)
        let t = Thread {
            usleep(50_000)
            q.push(EventBatch(arena: [1, 2], events: [], tags: [], timeSeconds: 0, inputBytes: 2))
        }
        t.start()
        let b = await q.pop()
        #expect(b?.inputBytes == 2)
    }

    @Test("push(timeoutMs:) from two threads at once into an empty queue that one batch fills: one enqueues, the other gives up at its timeout, never blocks (500 rounds)")
    func timedPushesRacingNeverBlock() {
        var stuck = 0, notOne = 0
        for _ in 0..<500 {
            let q = BatchQueue(highWatermark: 100)
            let ready = DispatchSemaphore(value: 0), go = DispatchSemaphore(value: 0), done = DispatchGroup()
            final class R: @unchecked Sendable { var ok = [false, false] }
            let r = R()
            for i in 0..<2 {
                done.enter()
                Thread {
                    ready.signal()
                    go.wait()
                    r.ok[i] = q.push(EventBatch(arena: [UInt8](repeating: 0, count: 200), events: [], tags: [], timeSeconds: 0, inputBytes: 200), timeoutMs: 10)
                    done.leave()
                }.start()
            }
            ready.wait(); ready.wait()
            go.signal(); go.signal()
            if done.wait(timeout: .now() + 2) == .timedOut {
                stuck += 1
                q.close()  // frees the blocked producer
                done.wait()
            }
            if r.ok.filter({ $0 }).count != 1 { notOne += 1 }
        }
        #expect(stuck == 0, "a timed push blocked past its timeout \(stuck) times")
        #expect(notOne == 0, "rounds where not exactly one push enqueued: \(notOne)")
    }

    @Test func closeWakesBlockedProducer() {
        let q = BatchQueue(highWatermark: 100)
        q.push(batch(200))
        let done = DispatchSemaphore(value: 0)
        final class R: @unchecked Sendable { var v = true }
        let r = R()
        Thread {
            r.v = q.push(EventBatch(arena: [], events: [], tags: [], timeSeconds: 0, inputBytes: 0))
            done.signal()
        }.start()
        usleep(50_000)
        q.close()
        #expect(done.wait(timeout: .now() + 2) == .success)
        #expect(r.v == false)
    }
}

@Suite struct RateLimiterTests {
    @Test func limitsThroughput() {
        let l = RateLimiter(bytesPerSecond: 1_000_000)
        let start = Date()
        for _ in 0..<20 { l.acquire(100_000) }   // 2 MB at 1 MB/s, first 1 MB from the full bucket
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed > 0.8 && elapsed < 2.0, "elapsed \(elapsed)")
    }
}
