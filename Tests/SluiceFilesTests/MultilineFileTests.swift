import Glibc
import SluiceCore
@testable import SluiceFiles
import SluiceRegex
import SluiceSystem
import SluiceTesting
import Testing

/// A Java-style log: records starting with a date, some followed by `\tat …` lines.
private func javaRecords(_ n: Int, seed: UInt64, idPrefix: String = "r") -> [String] {
    var rng = SplitMix(seed: seed)
    return (0..<n).map { i in
        var rec = "2024-05-0\(i % 9 + 1) 12:00:00.000 ERROR [main] \(idPrefix)\(i) something failed"
        if rng.next() % 10 < 3 {
            for k in 0..<(1 + Int(rng.next() % 8)) { rec += "\n\tat com.example.Frame\(k).call(Frame.java:\(k + 10))" }
        }
        return rec
    }
}

/// Deterministic generator (tests must be reproducible).
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private let datePattern = "\\d{4}-\\d{2}-\\d{2}"

/// `input_file` with `Multiline`: groups across reads, the flush timeout, the size bound, the
/// held checkpoint across restarts, GBK, JSON mode, runtime logs.
@Suite("input_file Multiline")
struct MultilineFileTests {
    func options(_ env: FIEnv, start: String? = datePattern, end: String? = nil, mode: MultilineOptions.Mode = .custom) -> FileInputOptions {
        var o = env.options()
        o.multiline = MultilineOptions(mode: mode, start: start.map { try! MultilineOptions.compile($0)! }, end: end.map { try! MultilineOptions.compile($0)! })
        return o
    }

    /// An input whose component metrics the test can read.
    func input(_ env: FIEnv, _ o: FileInputOptions, table: CheckpointTable) throws -> (FileInput, PluginContext) {
        let ctx = testContext(dataDir: env.dir)
        return (try FileInput(options: o, context: ctx, checkpoints: table), ctx)
    }

    @Test("Groups are joined whole across read boundaries (1 KiB reads of a 10 KiB file); the last one leaves at the flush timeout")
    func acrossReads() async throws {
        let env = FIEnv()
        defer { env.remove() }
        var o = options(env)
        o.maxReadBufferSize = 1024
        let fitting = javaRecords(100, seed: 7)
        #expect(fitting.allSatisfy { $0.utf8.count < 1024 })
        writeFile(env.inDir + "/a.log", fitting.map { $0 + "\n" }.joined())
        let sink = FIRecordingSink()
        let (inp, _) = try input(env, o, table: try env.table())
        try await fiWithInput(inp, sink: sink) {
            #expect(await eventually(5) { sink.lines.count >= fitting.count })
            await pause(0.4)
        }
        #expect(sink.lines == fitting)
    }

    @Test("With nothing to read the loop sleeps 100 ms, or until an unterminated line comes due; one overdue (held elsewhere) does not make it spin")
    func sleepsUntilTheNextFlush() throws {
        let env = FIEnv()
        defer { env.remove() }
        var o = env.options()
        o.flushTimeoutSecs = 0.5
        let (inp, _) = try input(env, o, table: try env.table())
        let now = Sys.monotonicNanos()
        #expect(inp.waitMillis(now: now) == 100)
        let r = FileReader(id: FileIdentity(dev: 1, inode: 1), path: env.inDir + "/a.log", offset: 0,
                           signature: FileSignature(hash: 0, length: 0), tags: [], now: now)
        inp.readers[r.id] = r
        #expect(inp.waitMillis(now: now) == 100, "no unterminated line")
        r.partial = Array("no newline yet".utf8)
        r.partialSince = now - 460_000_000
        #expect(inp.waitMillis(now: now) == 40, "due in 40 ms")
        r.partialSince = now - 499_500_000
        #expect(inp.waitMillis(now: now) == 1, "rounded up, never woken before it is due")
        r.partialSince = now - 600_000_000
        #expect(inp.waitMillis(now: now) == 100, "overdue: housekeeping has seen it; the loop ticks, it does not spin")
        r.partialSince = now
        #expect(inp.waitMillis(now: now) == 100)
    }

    @Test("FlushTimeoutSecs: a pending group leaves after it, with an unterminated last line joined in")
    func flushTimeout() async throws {
        let env = FIEnv()
        defer { env.remove() }
        env.createMarker()
        var o = options(env)
        o.flushTimeoutSecs = 0.8
        let sink = FIRecordingSink()
        let a = env.inDir + "/a.log"
        let (inp, _) = try input(env, o, table: try env.table())
        try await fiWithInput(inp, sink: sink) {
            #expect(await env.waitStarted())
            let t0 = monotonicSeconds()
            fiPlaceAtomically(a, "2024-01-01 one\n\tat a\n2024-01-02 two\n\tat b\n\tat c")
            #expect(await eventually { sink.lines.count >= 1 })
            await pause(0.3)
            #expect(sink.lines == ["2024-01-01 one\n\tat a"], "the second group waits for the timeout")
            #expect(await eventually(3) { sink.lines.count >= 2 })
            #expect(monotonicSeconds() - t0 >= 0.7)
            writeFile(a, "2024-01-03 three\n", append: true)
            #expect(await eventually(3) { sink.lines.count >= 3 })
        }
        let ev = sink.events
        #expect(ev.map(\.text) == ["2024-01-01 one\n\tat a", "2024-01-02 two\n\tat b\n\tat c", "2024-01-03 three"])
        if ev.count == 3 { #expect(ev[1].flags & LogEvent.Flag.unterminated != 0) }
    }

    @Test("At the end of a file last written longer ago than FlushTimeoutSecs, its pending group and unterminated line leave at once; a file written just now still waits")
    func flushTimeoutCountsFromTheLastWrite() async throws {
        let env = FIEnv()
        defer { env.remove() }
        var o = options(env)
        o.flushTimeoutSecs = 10
        let old = env.inDir + "/old.log", fresh = env.inDir + "/fresh.log"
        writeFile(old, "2024-01-01 one\n\tat a\n2024-01-02 two\n\tat b\n2024-01-03 three\n\tat c")
        setModificationTime(old, secondsAgo: 30)
        writeFile(fresh, "2024-02-01 one\n\tat a\n2024-02-02 two\n\tat b\n")
        let sink = FIRecordingSink()
        try await fiWithInput(try input(env, o, table: try env.table()).0, sink: sink) {
            #expect(await eventually(3) { sink.lines.count >= 4 })
            await pause(0.5)
        }
        #expect(sink.lines.filter { $0.hasPrefix("2024-01") } == ["2024-01-01 one\n\tat a", "2024-01-02 two\n\tat b", "2024-01-03 three\n\tat c"],
                "the old file's last group (with its unterminated last line) did not wait 10 s")
        #expect(sink.lines.filter { $0.hasPrefix("2024-02") } == ["2024-02-01 one\n\tat a"], "the fresh file's last group waits for more lines")
    }

    @Test("ContainerLogFormat cri: a stream's pending group at the end of a log last written long ago leaves at once")
    func criFlushTimeoutCountsFromTheLastWrite() async throws {
        let env = FIEnv()
        defer { env.remove() }
        var o = options(env)
        o.containerLogFormat = .cri
        o.flushTimeoutSecs = 10
        let t = "2024-01-01T00:00:01Z"
        let a = env.inDir + "/c.log"
        writeFile(a, "\(t) stdout F 2024-01-01 one\n\(t) stderr F 2024-01-01 err\n\(t) stdout F \tat a\n\(t) stderr F \tat e\n")
        setModificationTime(a, secondsAgo: 30)
        let sink = FIRecordingSink()
        try await fiWithInput(try input(env, o, table: try env.table()).0, sink: sink) {
            #expect(await eventually(3) { sink.lines.count >= 2 }, "the pending groups waited for the flush timeout")
        }
        #expect(Set(sink.lines) == ["2024-01-01 one\n\tat a", "2024-01-01 err\n\tat e"])
    }

    @Test("A group larger than max_read_buffer_size is emitted in flagged pieces and counted once; nothing is lost")
    func maxSize() async throws {
        let env = FIEnv()
        defer { env.remove() }
        var o = options(env)
        o.maxReadBufferSize = 256
        let big = "2024-01-01 big" + (0..<40).map { "\n\tat frame \($0) xxxxxxxxxxxxxxxxxxxx" }.joined()
        writeFile(env.inDir + "/a.log", "2024-01-01 small\n" + big + "\n2024-01-02 after\n")
        let sink = FIRecordingSink()
        let (inp, ctx) = try input(env, o, table: try env.table())
        try await fiWithInput(inp, sink: sink) {
            #expect(await eventually(5) { sink.lines.last == "2024-01-02 after" })
        }
        let ev = sink.events
        #expect(ev.first?.text == "2024-01-01 small")
        let pieces = ev.dropFirst().dropLast()
        #expect(pieces.count >= 2)
        #expect(pieces.allSatisfy { $0.flags & LogEvent.Flag.truncatedGroup != 0 && $0.content.count <= 256 })
        #expect(pieces.map(\.text).joined(separator: "\n") == big, "the pieces put together are the group")
        #expect(ev.last?.flags == 0)
        #expect(ctx.metrics.multilineTruncatedGroups.current == 1)
    }

    @Test("UnmatchedContentTreatment discard: lines before the first Start are dropped and counted")
    func discardCounted() async throws {
        let env = FIEnv()
        defer { env.remove() }
        var o = options(env)
        o.multiline?.unmatched = .discard
        o.multiline?.ignoringUnmatchWarning = true
        writeFile(env.inDir + "/a.log", "junk 1\njunk 2\n2024-01-01 a\n x\n2024-01-02 b\n")
        let sink = FIRecordingSink()
        let (inp, ctx) = try input(env, o, table: try env.table())
        try await fiWithInput(inp, sink: sink) {
            #expect(await eventually(3) { sink.lines.count >= 2 })
        }
        #expect(sink.lines == ["2024-01-01 a\n x", "2024-01-02 b"])
        #expect(ctx.metrics.discardedByReason["multiline_unmatched"] == 2)
    }

    @Test("The checkpoint stays at a pending group's first byte: a restart in the middle of a group reads it again whole, once")
    func restartMidGroup() async throws {
        let env = FIEnv()
        defer { env.remove() }
        var o = options(env)
        o.flushTimeoutSecs = 30  // no flush during the test: only the restart can cut a group
        let a = env.inDir + "/a.log"
        let first = "2024-01-01 one\n\tat a\n"
        writeFile(a, first + "2024-01-02 two\n\tat b\n")
        // Session 1: `one` is emitted (and acknowledged), `two` waits for its next Start line.
        let table1 = try env.table()
        let sink1 = FIRecordingSink()
        try await fiWithInput(try env.input(o, table: table1), sink: sink1) {
            #expect(await eventually { sink1.lines.count >= 1 })
            await pause(0.3)
        }
        #expect(sink1.lines == ["2024-01-01 one\n\tat a"])
        try table1.persist(force: true)
        #expect(try env.table().entries.first?.offset == Int64(first.utf8.count), "the checkpoint is at the first byte of `two`")
        // Meanwhile the group grows and the next one starts.
        writeFile(a, "\tat c\n2024-01-03 three\n", append: true)
        let sink2 = FIRecordingSink()
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink2) {
            #expect(await eventually { sink2.lines.count >= 1 })
            await pause(0.3)
        }
        #expect(sink2.lines == ["2024-01-02 two\n\tat b\n\tat c"], "read again whole, once; `three` waits")
    }

    @Test("FileEncoding gbk: patterns match the UTF-8 text, groups are converted whole")
    func gbk() async throws {
        let env = FIEnv()
        defer { env.remove() }
        var o = options(env, start: "中文")
        o.fileEncoding = "gbk"
        let zhongwen: [UInt8] = [0xD6, 0xD0, 0xCE, 0xC4]  // 中文
        let rizhi: [UInt8] = [0xC8, 0xD5, 0xD6, 0xBE]  // 日志
        var bytes: [UInt8] = zhongwen + Array(" 1".utf8) + [0x0A] + rizhi + [0x0A]
        bytes += zhongwen + Array(" 2".utf8) + [0x0A] + Array(" x".utf8) + [0x0A]
        writeFile(env.inDir + "/g.log", bytes)
        let sink = FIRecordingSink()
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink) {
            #expect(await eventually(3) { sink.lines.count >= 2 })
        }
        #expect(sink.lines == ["中文 1\n日志", "中文 2\n x"])
    }

    @Test("Mode JSON: one object across lines is one event")
    func jsonMode() async throws {
        let env = FIEnv()
        defer { env.remove() }
        var o = options(env, start: nil, mode: .json)
        o.maxReadBufferSize = 64
        writeFile(env.inDir + "/j.log", "{\"a\": 1}\n{\n  \"b\": \"}\",\n  \"c\": {\"d\": [1, 2]}\n}\n{\"e\":\"x\"}\n")
        let sink = FIRecordingSink()
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink) {
            #expect(await eventually(3) { sink.lines.count >= 3 })
            await pause(0.2)
        }
        #expect(sink.lines == ["{\"a\": 1}", "{\n  \"b\": \"}\",\n  \"c\": {\"d\": [1, 2]}\n}", "{\"e\":\"x\"}"])
    }

    @Test("ContainerLogFormat cri: a last P record whose F never comes is emitted after FlushTimeoutSecs, and the checkpoint passes it")
    func criPartialRecordAtTheEndIsFlushed() async throws {
        let env = FIEnv()
        defer { env.remove() }
        var o = FileInputOptions(filePaths: [env.inDir + "/*.log"])
        o.containerLogFormat = .cri
        o.flushTimeoutSecs = 0.5
        o.pollIntervalSec = 0.2
        let t = "2024-01-01T00:00:01Z"
        let a = env.inDir + "/c.log"
        writeFile(a, "")
        let table = try env.table()
        let sink = FIRecordingSink()
        let (input, ctx) = try self.input(env, o, table: table)
        try await fiWithInput(input, sink: sink) {
            #expect(await eventually { fiIsOpenInProcess(a) })
            // A Job's last output: `printf "result=42"`, no newline.
            writeFile(a, "\(t) stdout F started\n\(t) stdout P result=42\n", append: true)
            #expect(await eventually { sink.lines.count >= 1 })
            #expect(sink.lines == ["started"], "held while the record may still be continued")
            #expect(await eventually(3) { sink.lines.count >= 2 })
            #expect(sink.lines == ["started", "result=42"])
            // A line that is no runtime record passes as stdout content, counted in the metrics.
            writeFile(a, "garbage\n", append: true)
            #expect(await eventually { sink.lines.count >= 3 })
            await pause(0.3)
        }
        #expect(sink.lines.last == "garbage")
        #expect(ctx.metrics.containerLogUnparsedLines.current == 1)
        #expect(ctx.metrics.snapshot().contains { $0.0 == "container_log_unparsed_lines" && $0.1 == 1 })
        try table.persist(force: true)
        #expect(try env.table().entries.first?.offset == Int64(fileSize(a)), "the checkpoint passes the emitted record")
    }

    @Test("ContainerLogFormat cri: P/F parts joined, then grouped per stream; a restart mid-group reads it again whole")
    func criWithRestart() async throws {
        let env = FIEnv()
        defer { env.remove() }
        var o = options(env)
        o.containerLogFormat = .cri
        o.flushTimeoutSecs = 30
        let t = "2024-01-01T00:00:01Z"
        let a = env.inDir + "/c.log"
        let head = "\(t) stdout P 2024-01-01 ex\n\(t) stdout F ception\n\(t) stderr F 2024-01-01 err\n\(t) stdout F \tat a\n"
        writeFile(a, head + "\(t) stdout F 2024-01-02 two\n\(t) stderr F \tat e\n")
        let table1 = try env.table()
        let sink1 = FIRecordingSink()
        try await fiWithInput(try env.input(o, table: table1), sink: sink1) {
            #expect(await eventually { sink1.lines.count >= 1 })
            await pause(0.3)
        }
        #expect(sink1.lines == ["2024-01-01 exception\n\tat a"])
        try table1.persist(force: true)
        #expect(try env.table().entries.first?.offset == Int64(head.utf8.count - 0) - Int64("\(t) stderr F 2024-01-01 err\n\(t) stdout F \tat a\n".utf8.count),
                "held at the stderr group's first line (the earliest pending group)")
        writeFile(a, "\(t) stdout P \tat \n\(t) stdout F b\n\(t) stdout F 2024-01-03 three\n\(t) stderr F 2024-01-02 err2\n", append: true)
        let sink2 = FIRecordingSink()
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink2) {
            #expect(await eventually { sink2.lines.count >= 3 })
            await pause(0.3)
        }
        // Both pending groups arrive whole. The held offset is the earliest pending group's (stderr),
        // so stdout's `\tat a` after it, already delivered inside `exception`, is read again: with a
        // fresh stdout state it is an unmatched line (at-least-once across streams, as for P/F parts).
        #expect(Set(sink2.lines) == ["\tat a", "2024-01-02 two\n\tat b", "2024-01-01 err\n\tat e"])
        #expect(sink2.lines.count == 3)
    }

    @Test("Model: random groups written in random chunks with random restarts arrive whole, once", arguments: [1, 2, 3])
    func model(seed: UInt64) async throws {
        let env = FIEnv()
        defer { env.remove() }
        var rng = SplitMix(seed: seed)
        var o = options(env)
        o.flushTimeoutSecs = 1.0
        o.maxReadBufferSize = 512 + Int(rng.next() % 512)  // above the largest record: none is cut
        let records = javaRecords(80, seed: seed &* 31).map { r in
            r.split(separator: "\n", omittingEmptySubsequences: false).map { String($0.prefix(100)) }.joined(separator: "\n")
        }
        let bytes = Array(records.map { $0 + "\n" }.joined().utf8)
        let a = env.inDir + "/m.log"
        writeFile(a, "")
        var written = 0
        var all: [String] = []
        let sessions = 3
        for s in 0..<sessions {
            let sink = FIRecordingSink()
            let table = try env.table()
            try await fiWithInput(try env.input(o, table: table), sink: sink) {
                let share = s == sessions - 1 ? bytes.count - written : (bytes.count - written) / 2
                var left = share
                while left > 0 {
                    let n = min(left, 1 + Int(rng.next() % 300))
                    writeFile(a, Array(bytes[written..<(written + n)]), append: true)
                    written += n
                    left -= n
                    if rng.next() % 4 == 0 { await pause(0.01) }
                }
                if s == sessions - 1 {
                    #expect(await eventually(6) { sink.lines.count + all.count >= records.count })
                    await pause(0.3)
                } else {
                    await pause(0.2)
                }
            }
            all += sink.lines
            try table.persist(force: true)
        }
        #expect(all.count == records.count)
        #expect(all == records, "first difference at \(Array(zip(all, records)).firstIndex { $0.0 != $0.1 } ?? -1)")
    }
}
