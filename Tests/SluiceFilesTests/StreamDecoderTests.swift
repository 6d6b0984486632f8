import SluiceCore
@testable import SluiceFiles
import SluiceSystem
import Testing

/// `StreamDecoder`: runtime log lines → events, partial records joined per stream, the held
/// checkpoint offset, bounds, truncation and ignored streams.
@Suite("StreamDecoder") struct StreamDecoderTests {
    /// A batch of raw lines as the reader hands them (content without the newline), and each
    /// line's file offset, starting at `base`.
    func raw(_ lines: [String], base: Int64 = 0) -> (EventBatch, [Int64]) {
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
        return (EventBatch(arena: arena, events: events, tags: [EventTag("__path__", "/x.log")], timeSeconds: 1, inputBytes: arena.count), offsets)
    }

    /// (stream, content, time, flags) of every event of the decoded batches.
    func events(_ batches: [EventBatch]) -> [(String, String, Int64, UInt32)] {
        batches.flatMap { b in
            b.events.indices.map { i in (b.tag("_source_") ?? "?", String(decoding: b.contentBytes(i), as: UTF8.self), b.events[i].timeNanos, b.events[i].flags) }
        }
    }

    let t1 = "2024-01-01T00:00:01Z", t2 = "2024-01-01T00:00:02Z"
    let ns1: Int64 = 1_704_067_201_000_000_000

    @Test func criPartialsAreJoinedWithTheFirstPiecesTime() {
        let d = StreamDecoder(format: .cri)
        let (b, _) = raw(["\(t1) stdout P ab", "\(t2) stdout P cd", "\(t2) stdout F ef", "\(t2) stdout F whole"])
        let e = events(d.decode(b, baseOffset: 0))
        #expect(e.map(\.1) == ["abcdef", "whole"])
        #expect(e[0].2 == ns1)
        #expect(d.holdOffset == nil)
    }

    @Test func theCheckpointIsHeldAtTheFirstPieceAcrossReads() {
        let d = StreamDecoder(format: .cri)
        let (b1, off1) = raw(["\(t1) stdout F before", "\(t1) stdout P part1-"], base: 1000)
        #expect(events(d.decode(b1, baseOffset: 1000)).map(\.1) == ["before"])
        #expect(d.holdOffset == off1[1], "the position cannot pass the first piece of a record being joined")
        let (b2, _) = raw(["\(t2) stdout P part2-"], base: 2000)
        #expect(events(d.decode(b2, baseOffset: 2000)).isEmpty)
        #expect(d.holdOffset == off1[1])
        let (b3, _) = raw(["\(t2) stdout F end"], base: 3000)
        #expect(events(d.decode(b3, baseOffset: 3000)).map(\.1) == ["part1-part2-end"])
        #expect(d.holdOffset == nil)
    }

    @Test func dockerSplitLinesAreJoined() {
        let d = StreamDecoder(format: .dockerJSON)
        let piece = String(repeating: "x", count: 16 * 1024)
        let (b, _) = raw([#"{"log":"\#(piece)","stream":"stdout","time":"\#(t1)"}"#,
                          #"{"log":"\#(piece)","stream":"stdout","time":"\#(t2)"}"#,
                          #"{"log":"tail\n","stream":"stdout","time":"\#(t2)"}"#,
                          #"{"log":"next\n","stream":"stdout","time":"\#(t2)"}"#])
        let e = events(d.decode(b, baseOffset: 0))
        #expect(e.map(\.1) == [piece + piece + "tail", "next"])
        #expect(e[0].2 == ns1)
    }

    @Test func streamsAreJoinedSeparatelyAndTaggedBySource() {
        let d = StreamDecoder(format: .cri)
        let (b, _) = raw(["\(t1) stdout P out-a", "\(t1) stderr F err-whole", "\(t1) stderr P err-", "\(t2) stdout F out-b", "\(t2) stderr F end"])
        let batches = d.decode(b, baseOffset: 0)
        #expect(batches.count == 2)
        #expect(batches.map { $0.tag("_source_") } == ["stdout", "stderr"])
        #expect(events(batches).map(\.1) == ["out-aout-b", "err-whole", "err-end"])
        #expect(batches[0].tag("__path__") == "/x.log", "the input's tags are kept")
    }

    @Test func maxLogSizeBoundsAJoinAndCountsIt() {
        let d = StreamDecoder(format: .cri, maxLogSize: 1024)
        let chunk = String(repeating: "y", count: 600)
        let (b, _) = raw(["\(t1) stdout P \(chunk)", "\(t1) stdout P \(chunk)", "\(t1) stdout P \(chunk)", "\(t1) stdout F z"])
        let e = events(d.decode(b, baseOffset: 0))
        #expect(e.map(\.1.count) == [1200, 601])
        #expect(e[0].3 & LogEvent.Flag.splitPiece != 0)
        #expect(d.oversizedJoins == 1)
    }

    @Test func truncationForgetsHeldPieces() {
        let d = StreamDecoder(format: .cri)
        let (b, _) = raw(["\(t1) stdout P held"])
        _ = d.decode(b, baseOffset: 0)
        #expect(d.holdOffset == 0)
        d.reset()
        #expect(d.holdOffset == nil)
        let (b2, _) = raw(["\(t2) stdout F fresh"])
        #expect(events(d.decode(b2, baseOffset: 0)).map(\.1) == ["fresh"])
    }

    @Test(arguments: [(true, false), (false, true)])
    func ignoredStreamsAreDroppedWithoutHoldingTheCheckpoint(_ ignoreStdout: Bool, _ ignoreStderr: Bool) {
        let d = StreamDecoder(format: .cri, ignoreStdout: ignoreStdout, ignoreStderr: ignoreStderr)
        let (b, _) = raw(["\(t1) stdout F out", "\(t1) stderr F err", "\(t1) stdout P o1", "\(t1) stderr P e1", "\(t2) stdout F o2", "\(t2) stderr F e2"])
        let e = events(d.decode(b, baseOffset: 0))
        #expect(e.map(\.0) == (ignoreStdout ? ["stderr", "stderr"] : ["stdout", "stdout"]))
        #expect(e.map(\.1) == (ignoreStdout ? ["err", "e1e2"] : ["out", "o1o2"]))
        #expect(d.holdOffset == nil)
    }

    @Test func heldPiecesAreFlushedWhenTheFileIsLetGo() {
        let d = StreamDecoder(format: .cri)
        let (b, _) = raw(["\(t1) stderr P last words"])
        _ = d.decode(b, baseOffset: 0)
        let e = events(d.flushPending(tags: [], observedNanos: 1_000_000_000))
        #expect(e.map(\.1) == ["last words"])
        #expect(e.map(\.0) == ["stderr"])
        #expect(e[0].3 & LogEvent.Flag.unterminated != 0)
        #expect(d.holdOffset == nil)
    }

    @Test func aHeldPieceIsEmittedOnceItWaitedTheFlushTimeout() {
        let d = StreamDecoder(format: .cri)
        let (b, _) = raw(["\(t1) stdout P result=42", "\(t1) stderr F whole"], base: 100)
        #expect(events(d.decode(b, baseOffset: 100)).map(\.1) == ["whole"])
        #expect(d.hasPendingPartial && d.holdOffset == 100)
        let now = Sys.monotonicNanos()
        let timeout: Int64 = 5_000_000_000
        // Not yet due: nothing, and the deadline is its piece's time plus the timeout.
        #expect(d.flushPartials(olderThan: timeout, now: now, tags: [], observedNanos: 1).isEmpty)
        let deadline = try? #require(d.nextPartialDeadline(timeout: timeout, after: now))
        #expect(deadline.map { $0 > now && $0 <= now + timeout } == true)
        // Its last piece was written 10 s ago (the file's mtime): due now.
        d.heldWritten(atOrBefore: now - 10_000_000_000)
        #expect(d.nextPartialDeadline(timeout: timeout, after: now) == nil)
        let e = events(d.flushPartials(olderThan: timeout, now: now, tags: [], observedNanos: 1))
        #expect(e.map(\.1) == ["result=42"] && e.map(\.0) == ["stdout"])
        #expect(e.first.map { $0.3 & LogEvent.Flag.unterminated != 0 } == true)
        #expect(!d.hasPendingPartial && d.holdOffset == nil)
        // A piece that comes after is a record of its own.
        let (b2, _) = raw(["\(t2) stdout F  done"])
        #expect(events(d.decode(b2, baseOffset: 200)).map(\.1) == [" done"])
    }

    @Test func linesThatAreNotRecordsPassThroughAsStdoutAndAreCounted() {
        let d = StreamDecoder(format: .cri)
        let (b, _) = raw(["not a record", "\(t1) stdout F ok"])
        let e = events(d.decode(b, baseOffset: 0))
        #expect(e.map(\.1) == ["not a record", "ok"])
        #expect(d.unparsedLines == 1)
        #expect(d.takeRecordCounts() == (1, 0))
        #expect(d.takeRecordCounts() == (0, 0), "each count is reported once")
        // With stdout ignored, such a line (stdout content) is dropped too, and still counted.
        let quiet = StreamDecoder(format: .cri, ignoreStdout: true)
        #expect(events(quiet.decode(raw(["not a record", "\(t1) stderr F err"]).0, baseOffset: 0)).map(\.1) == ["err"])
        #expect(quiet.takeRecordCounts() == (1, 0))
    }

    @Test func autoDetectsTheFormatFromTheFirstLine() {
        let docker = StreamDecoder(format: .auto)
        _ = docker.decode(raw([#"{"log":"a\n","stream":"stdout","time":"\#(t1)"}"#]).0, baseOffset: 0)
        #expect(docker.format == .dockerJSON)
        let cri = StreamDecoder(format: .auto)
        _ = cri.decode(raw(["\(t1) stdout F a"]).0, baseOffset: 0)
        #expect(cri.format == .cri)
    }
}
