import Glibc
import SluiceCore
import SluiceFiles
import SluiceSystem
import SluiceTesting
import Synchronization
import Testing

// MARK: - Helpers shared by FileInputTests.swift and ModelTests.swift (prefixed `fi` / `FI` so
// they cannot clash with helpers of other files of this target)

private func fiStatCall(_ path: String, _ st: inout stat) -> Int32 { stat(path, &st) }

/// (dev, inode, size) of `path`, following symlinks.
func fiStat(_ path: String) -> (dev: UInt64, inode: UInt64, size: Int64)? {
    var st = Glibc.stat()
    guard fiStatCall(path, &st) == 0 else { return nil }
    return (UInt64(st.st_dev), UInt64(st.st_ino), Int64(st.st_size))
}

/// Whether a descriptor of this process other than `excluding` refers to the given inode, i.e.
/// whether the input (which runs in-process) holds the file open.
func fiIsOpenInProcess(dev: UInt64, inode: UInt64, excluding: Set<Int32> = []) -> Bool {
    guard let d = opendir("/proc/self/fd") else { return false }
    defer { closedir(d) }
    while let e = readdir(d) {
        let name = withUnsafePointer(to: &e.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
        }
        guard let fd = Int32(name), !excluding.contains(fd) else { continue }
        var st = Glibc.stat()
        if fiStatCall("/proc/self/fd/" + name, &st) == 0, UInt64(st.st_dev) == dev, UInt64(st.st_ino) == inode {
            return true
        }
    }
    return false
}

func fiIsOpenInProcess(_ path: String) -> Bool {
    guard let s = fiStat(path) else { return false }
    return fiIsOpenInProcess(dev: s.dev, inode: s.inode)
}

/// Puts a file in place atomically (written under a name no pattern matches, then renamed), so
/// the reader never sees it half-written and chunk boundaries are deterministic.
func fiPlaceAtomically(_ path: String, _ bytes: [UInt8]) {
    let tmp = path + ".placing"
    writeFile(tmp, bytes)
    precondition(rename(tmp, path) == 0)
}

func fiPlaceAtomically(_ path: String, _ text: String) { fiPlaceAtomically(path, Array(text.utf8)) }

/// A sink that records every event with its flags and batch, and acknowledges batches at once or
/// holds them for `ack(batch:)` (in any order).
final class FIRecordingSink: BatchSink, Sendable {
    struct Event: Sendable {
        var content: [UInt8]
        var flags: UInt32
        var path: String
        var batch: Int
        var text: String { String(decoding: content, as: UTF8.self) }
    }
    private struct State {
        var events: [Event] = []
        var held: [Int: AckToken] = [:]
        var batches = 0
        var autoAck: Bool
    }
    private let state: Mutex<State>

    init(autoAck: Bool = true) { state = Mutex(State(autoAck: autoAck)) }

    func send(_ b: EventBatch) -> Bool {
        let path = b.tag("__path__") ?? ""
        let toAck: AckToken? = state.withLock { s in
            let idx = s.batches
            s.batches += 1
            for i in 0..<b.events.count {
                s.events.append(Event(content: b.contentBytes(i), flags: b.events[i].flags, path: path, batch: idx))
            }
            if s.autoAck { return b.ack }
            if let t = b.ack { s.held[idx] = t }
            return nil
        }
        toAck?.expect(1)
        toAck?.acknowledge()
        return true
    }

    var events: [Event] { state.withLock { $0.events } }
    var lines: [String] { events.map(\.text) }
    var batchCount: Int { state.withLock { $0.batches } }

    func ack(batch i: Int) {
        let t: AckToken? = state.withLock { $0.held.removeValue(forKey: i) }
        t?.expect(1)
        t?.acknowledge()
    }
}

/// A sink that writes to each batch as a processor does: one byte appended to its arena, which
/// must stay where it is (the batch's only reference, with the room the reader leaves), not be
/// copied away as a buffer still shared with the reader would be.
final class FIOwnershipSink: BatchSink, Sendable {
    struct Counts: Sendable { var batches = 0, moved = 0, lines = 0 }
    private let state = Mutex(Counts())

    func send(_ batch: consuming EventBatch) -> Bool {
        var b = consume batch
        let before = b.arena.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        b.arena.append(0)
        let after = b.arena.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        let n = b.events.count
        state.withLock { c in
            c.batches += 1
            c.lines += n
            if before != after { c.moved += 1 }
        }
        b.ack?.expect(1)
        b.ack?.acknowledge()
        return true
    }

    var counts: Counts { state.withLock { $0 } }
}

/// A temporary data dir with an `in/` folder for the files to read.
struct FIEnv {
    let tmp: TempDir
    let inDir: String
    var dir: String { tmp.path }

    init() {
        tmp = TempDir("sluice-files")
        inDir = tmp.sub("in")
    }

    func remove() { tmp.remove() }

    /// The options every test starts from (fast timers).
    func options(_ patterns: [String]? = nil) -> FileInputOptions {
        var o = FileInputOptions(filePaths: patterns ?? [inDir + "/*.log"])
        o.flushTimeoutSecs = 0.3
        o.releaseDrainedAfterSec = 0.5
        o.rescanIntervalSec = 0.5
        o.pollIntervalSec = 0.2
        return o
    }

    func table() throws -> CheckpointTable { try CheckpointTable(dataDir: dir, pipeline: "t") }

    func input(_ o: FileInputOptions, table: CheckpointTable, metrics: PipelineMetrics = PipelineMetrics()) throws -> FileInput {
        let ctx = testContext(dataDir: dir, pipelineMetrics: metrics)
        return try FileInput(options: o, context: ctx, checkpoints: table)
    }

    /// An empty file the input opens during its first scan: once it is open, the first scan of
    /// `in/` has listed the directory, so files created afterwards count as new.
    var marker: String { inDir + "/zz-marker.log" }
    func createMarker() { writeFile(marker, "") }
    func waitStarted() async -> Bool { await eventually(5) { fiIsOpenInProcess(marker) } }
}

/// Runs `input` (on its own thread) while `body` runs, then stops it and waits for it to end.
func fiWithInput<T>(_ input: FileInput, sink: any BatchSink, _ body: () async throws -> T) async throws -> T {
    async let done: Void = input.run(sink: sink)
    let result: Result<T, any Error>
    do { result = .success(try await body()) } catch { result = .failure(error) }
    input.requestStop()
    try await done
    return try result.get()
}

private func numbered(_ prefix: String, _ range: Range<Int>, width: Int = 0) -> [String] {
    range.map { i in
        let s = "\(prefix)-\(i)"
        return width > s.count ? s + String(repeating: ".", count: width - s.count) : s
    }
}

private func text(_ lines: [String]) -> String { lines.map { $0 + "\n" }.joined() }

// MARK: - Focused tests of input_file

@Suite("input_file")
struct FileInputTests {

    @Test("A file created while the input runs is read from offset 0, even when larger than TailSizeKB")
    func newFileReadFromStart() async throws {
        let env = FIEnv()
        defer { env.remove() }
        env.createMarker()
        var o = env.options()
        o.tailSizeKB = 1
        let sink = FIRecordingSink()
        let lines = numbered("new", 0..<300, width: 40)  // ~12 KiB, far above 1 KiB
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink) {
            #expect(await env.waitStarted())
            writeFile(env.inDir + "/a.log", text(lines))
            #expect(await eventually { sink.lines.count >= lines.count })
            await pause(0.3)
        }
        #expect(sink.lines == lines)
        #expect(sink.events.allSatisfy { $0.path == env.inDir + "/a.log" })
    }

    @Test("A pre-existing file is read from its last TailSizeKB, starting at a line boundary",
          arguments: [32, 33])
    func preexistingFileTailed(lineLength: Int) async throws {
        // lineLength 32: 3200 − 1024 = 2176 = 68·32, the cut falls exactly on a line start (keep it);
        // lineLength 33: the cut falls inside line 68 (skip to line 69).
        let env = FIEnv()
        defer { env.remove() }
        let lines = numbered("old", 0..<100, width: lineLength - 1)
        let content = text(lines)
        writeFile(env.inDir + "/big.log", content)
        let cut = content.utf8.count - 1024
        let firstKept = cut % lineLength == 0 ? cut / lineLength : cut / lineLength + 1
        let expected = Array(lines[firstKept...])
        var o = env.options()
        o.tailSizeKB = 1
        let sink = FIRecordingSink()
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink) {
            #expect(await eventually { sink.lines.count >= expected.count })
            writeFile(env.inDir + "/big.log", "appended\n", append: true)
            #expect(await eventually { sink.lines.last == "appended" })
        }
        #expect(sink.lines == expected + ["appended"])
    }

    @Test("After a tailed start with nothing acknowledged, a restart still begins at a line boundary")
    func tailedStartThenRestartBeforeAnyAck() async throws {
        let env = FIEnv()
        defer { env.remove() }
        let lines = numbered("old", 0..<100, width: 32)  // 33-byte lines: the cut is mid-line
        writeFile(env.inDir + "/big.log", text(lines))
        let content = text(lines)
        let cut = content.utf8.count - 1024
        let expected = Array(lines[(cut / 33 + 1)...])
        var o = env.options()
        o.tailSizeKB = 1
        // Session 1: the lines are read but their batches are never acknowledged.
        let table1 = try env.table()
        let held = FIRecordingSink(autoAck: false)
        try await fiWithInput(try env.input(o, table: table1), sink: held) {
            #expect(await eventually { held.lines.count >= expected.count })
        }
        #expect(held.lines == expected)
        try table1.persist(force: true)
        // Session 2: everything unacknowledged is read again — from a line start, not mid-line.
        let sink = FIRecordingSink()
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink) {
            #expect(await eventually { sink.lines.count >= expected.count })
            await pause(0.2)
        }
        #expect(sink.lines.first == expected.first, "first line after restart: \(sink.lines.first ?? "none")")
        #expect(sink.lines == expected)
    }

    @Test("A file renamed to another matching name keeps its identity and is not read again",
          arguments: [true, false], [false, true])
    func renameToMatchingName(inotify: Bool, idleClosed: Bool) async throws {
        let env = FIEnv()
        defer { env.remove() }
        var o = env.options()
        o.useInotify = inotify
        if idleClosed { o.closeUnusedReaderIntervalSec = 0.2 }
        let metrics = PipelineMetrics()
        let sink = FIRecordingSink()
        let a = env.inDir + "/a.log", b = env.inDir + "/b.log"
        writeFile(a, text(["one", "two", "three"]))
        try await fiWithInput(try env.input(o, table: try env.table(), metrics: metrics), sink: sink) {
            #expect(await eventually { sink.lines.count >= 3 })
            if idleClosed { #expect(await eventually { !fiIsOpenInProcess(a) }) }
            #expect(rename(a, b) == 0)
            await pause(0.7)  // longer than RescanIntervalSec: the new name has been seen
            writeFile(b, "four\n", append: true)
            #expect(await eventually { sink.lines.contains("four") })
            await pause(0.8)  // a re-read (rescan every 0.5 s) would show up by now
        }
        #expect(sink.lines == ["one", "two", "three", "four"])
        #expect(sink.events.last?.path == b)
        #expect(metrics.filesOpened.current == 1)
    }

    @Test("Truncation restarts reading at 0 (smaller file, and rewritten to a larger one)",
          arguments: [false, true])
    func truncationRestartsAtZero(rewriteLarger: Bool) async throws {
        let env = FIEnv()
        defer { env.remove() }
        let metrics = PipelineMetrics()
        let sink = FIRecordingSink()
        let a = env.inDir + "/a.log"
        let before = numbered("before", 0..<5, width: 20)
        let after = rewriteLarger ? numbered("after", 0..<10, width: 30) : ["x1", "x2"]
        writeFile(a, text(before))
        try await fiWithInput(try env.input(env.options(), table: try env.table(), metrics: metrics), sink: sink) {
            #expect(await eventually { sink.lines.count >= before.count })
            writeFile(a, text(after))  // O_TRUNC then write
            #expect(await eventually { sink.lines.count >= before.count + after.count })
            await pause(0.3)
        }
        #expect(sink.lines == before + after)
        #expect(metrics.truncations.current >= 1)
    }

    @Test("Polling fallback: a file truncated and rewritten to exactly its old size is read again")
    func pollingSeesSameSizeRewrite() async throws {
        let env = FIEnv()
        defer { env.remove() }
        var o = env.options()
        o.useInotify = false
        let sink = FIRecordingSink()
        let a = env.inDir + "/a.log"
        writeFile(a, text(["aaaa-1", "aaaa-2"]))
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink) {
            #expect(await eventually { sink.lines.count >= 2 })
            writeFile(a, text(["bbbb-1", "bbbb-2"]))  // same size, new content (copytruncate + same-size write)
            #expect(await eventually(3) { sink.lines.count >= 4 }, "the rewritten content was never read")
        }
        #expect(sink.lines == ["aaaa-1", "aaaa-2", "bbbb-1", "bbbb-2"])
    }

    @Test("Unacknowledged batches are read again after a restart, acknowledged ones are not; out-of-order acks commit only the contiguous prefix")
    func unacknowledgedReReadAfterRestart() async throws {
        let env = FIEnv()
        defer { env.remove() }
        let a = env.inDir + "/a.log"
        let b0 = numbered("b0", 0..<3), b1 = numbered("b1", 0..<3), b2 = numbered("b2", 0..<3)
        writeFile(a, "")
        let table1 = try env.table()
        let sink1 = FIRecordingSink(autoAck: false)
        try await fiWithInput(try env.input(env.options(), table: table1), sink: sink1) {
            for (i, batch) in [b0, b1, b2].enumerated() {
                writeFile(a, text(batch), append: true)
                #expect(await eventually { sink1.lines.count >= 3 * (i + 1) })
            }
            #expect(sink1.batchCount == 3)
            sink1.ack(batch: 0)
            sink1.ack(batch: 2)  // out of order: batch 1 is still missing
        }
        try table1.persist(force: true)
        let entries = try env.table().entries
        #expect(entries.count == 1)
        #expect(entries.first?.offset == Int64(text(b0).utf8.count), "checkpoint: \(entries)")

        let table2 = try env.table()
        let sink2 = FIRecordingSink()
        try await fiWithInput(try env.input(env.options(), table: table2), sink: sink2) {
            #expect(await eventually { sink2.lines.count >= 6 })
            await pause(0.3)
        }
        #expect(sink2.lines == b1 + b2)
        try table2.persist(force: true)

        // Everything is acknowledged now: a third start reads nothing.
        let sink3 = FIRecordingSink()
        try await fiWithInput(try env.input(env.options(), table: try env.table()), sink: sink3) {
            await pause(0.5)
        }
        #expect(sink3.lines.isEmpty)
    }

    @Test("Unacknowledged data of a file rotated away before a shutdown is read after the restart")
    func unacknowledgedRotatedFileSurvivesRestart() async throws {
        let env = FIEnv()
        defer { env.remove() }
        let a = env.inDir + "/app.log"
        writeFile(a, "")
        let table1 = try env.table()
        let sink1 = FIRecordingSink(autoAck: false)
        try await fiWithInput(try env.input(env.options(), table: table1), sink: sink1) {
            #expect(await eventually { fiIsOpenInProcess(a) })
            writeFile(a, text(["old-1", "old-2"]), append: true)
            #expect(await eventually { sink1.lines.count >= 2 })
            #expect(rename(a, a + ".1") == 0)  // rotated: app.log.1 is not matched by *.log
            writeFile(a, text(["new-1"]))
            #expect(await eventually { sink1.lines.count >= 3 })
            // The flusher never confirmed any of it (e.g. the sink was down) when we shut down.
        }
        try table1.persist(force: true)
        let sink2 = FIRecordingSink()
        try await fiWithInput(try env.input(env.options(), table: try env.table()), sink: sink2) {
            _ = await eventually(2) { sink2.lines.count >= 3 }
            await pause(0.3)
        }
        #expect(Set(sink2.lines) == ["old-1", "old-2", "new-1"], "at-least-once: got \(sink2.lines)")
    }

    @Test("A file that replaced a checkpointed one while Sluice was stopped is read from its start, not its last TailSizeKB")
    func fileReplacedWhileStoppedIsReadWhole() async throws {
        let env = FIEnv()
        defer { env.remove() }
        let a = env.inDir + "/app.log", b = env.inDir + "/other.log"
        writeFile(a, "")
        writeFile(b, "")
        var o = env.options()
        o.tailSizeKB = 1
        let table1 = try env.table()
        let sink1 = FIRecordingSink()
        try await fiWithInput(try env.input(o, table: table1), sink: sink1) {
            writeFile(a, text(["first-1", "first-2"]), append: true)
            writeFile(b, text(["b-1"]), append: true)
            #expect(await eventually { sink1.lines.count >= 3 })
            await pause(0.3)
        }
        try table1.persist(force: true)
        // Stopped: app.log is rotated away (not matched any more) and a new app.log grows past
        // TailSizeKB; other.log, which Sluice never saw replaced, grows too.
        #expect(rename(a, env.inDir + "/app.log.1") == 0)
        let fresh = (0..<200).map { "second-\($0)-" + String(repeating: "x", count: 40) }
        writeFile(a, text(fresh))
        writeFile(b, text(["b-2"]), append: true)
        let sink2 = FIRecordingSink()
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink2) {
            _ = await eventually(3) { sink2.lines.count >= fresh.count + 1 }
            await pause(0.3)
        }
        #expect(sink2.lines.filter { $0.hasPrefix("second-") } == fresh, "the whole new file, once: \(sink2.lines.count) lines")
        #expect(sink2.lines.filter { $0.hasPrefix("b-") } == ["b-2"], "a resumed file is not read again")

        // A file Sluice never had a checkpoint for still starts at its last TailSizeKB.
        let c = env.inDir + "/late.log"
        writeFile(c, text((0..<200).map { "late-\($0)-" + String(repeating: "y", count: 40) }))
        let sink3 = FIRecordingSink()
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink3) {
            _ = await eventually(2) { sink3.lines.contains("late-199-" + String(repeating: "y", count: 40)) }
            await pause(0.3)
        }
        let late = sink3.lines.filter { $0.hasPrefix("late-") }
        #expect(!late.isEmpty && late.count < 40, "tail only: \(late.count) lines")
    }

    @Test("An idle-closed reader does not lose lines appended just before the file is rotated away")
    func idleClosedReaderThenAppendAndRotate() async throws {
        let env = FIEnv()
        defer { env.remove() }
        var o = env.options()
        o.useInotify = false  // the polling fallback makes the timing deterministic
        o.closeUnusedReaderIntervalSec = 0.2
        let sink = FIRecordingSink()
        let a = env.inDir + "/app.log"
        writeFile(a, "first\n")
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink) {
            #expect(await eventually { sink.lines == ["first"] })
            #expect(await eventually { !fiIsOpenInProcess(a) })  // closed as idle
            writeFile(a, "last words\n", append: true)
            #expect(rename(a, a + ".1") == 0)
            #expect(await eventually(3) { sink.lines.contains("last words") }, "the line written before the rotation was lost")
        }
        #expect(sink.lines == ["first", "last words"])
    }

    /// Found by the input_file model test under stress: a file deleted while its reader had closed
    /// it for idleness, its inode number reused by a new file under a name the patterns do not
    /// match. The old reader found the new file by its identity, took it for its own file renamed
    /// away, and read it under the old file's `__path__`. The inode's generation tells them apart.
    @Test("A file deleted while closed for idleness: a new file that reuses its inode under another name is not read as it")
    func inodeReusedWhileClosedIsAnotherFile() async throws {
        let env = FIEnv()
        defer { env.remove() }
        var o = env.options()
        o.closeUnusedReaderIntervalSec = 0.2
        let sink = FIRecordingSink()
        let a = env.inDir + "/app.log"
        writeFile(a, "old 1\nold 2\n")
        let fd = open(a, O_RDONLY)
        let generation = Sys.inodeGeneration(fd)
        close(fd)
        guard generation != nil else {
            // tmpfs, overlayfs: no generation to tell a reused inode by; nothing to test here.
            print("inode generations are not kept under \(env.inDir); test not applicable")
            return
        }
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink) {
            #expect(await eventually { sink.lines == ["old 1", "old 2"] })
            #expect(await eventually { !fiIsOpenInProcess(a) })  // closed as idle
            guard let old = fiStat(a) else { Issue.record("no \(a)"); return }
            // Delete it and create files until one gets its inode number (ext4 reuses a freed
            // inode at once, nearly always on the first try).
            #expect(unlink(a) == 0)
            let rotated = env.inDir + "/other.log.1"
            var reused = false
            for attempt in 0..<50 {
                writeFile(rotated, "new \(attempt)\n")
                if fiStat(rotated)?.inode == old.inode { reused = true; break }
                unlink(rotated)
            }
            guard reused else {
                print("no inode reuse in 50 tries; test not applicable")
                return
            }
            writeFile(a, "fresh\n")  // the old path in use again, by a third file
            #expect(await eventually(3) { sink.lines.contains("fresh") })
            await pause(0.8)  // longer than a poll, the release delay and the idle close
        }
        let wrong = sink.events.filter { $0.text.hasPrefix("new ") }
        #expect(wrong.isEmpty, "a file the patterns do not match was read as the deleted file: \(wrong.map { "\($0.text) as \($0.path)" })")
        #expect(sink.lines == ["old 1", "old 2", "fresh"])
    }

    @Test("FlushTimeoutSecs emits an unterminated last line, without a newline, and the next line separately")
    func flushTimeoutEmitsPartialLine() async throws {
        let env = FIEnv()
        defer { env.remove() }
        env.createMarker()
        let sink = FIRecordingSink()
        let a = env.inDir + "/a.log"
        try await fiWithInput(try env.input(env.options(), table: try env.table()), sink: sink) {
            #expect(await env.waitStarted())
            let t0 = monotonicSeconds()
            fiPlaceAtomically(a, "abc\ndef")
            #expect(await eventually { sink.lines.count >= 1 })
            #expect(sink.lines == ["abc"], "the unterminated line must wait for the flush timeout")
            #expect(await eventually(3) { sink.lines.count >= 2 })
            #expect(monotonicSeconds() - t0 >= 0.25)
            writeFile(a, "ghi\n", append: true)
            #expect(await eventually { sink.lines.count >= 3 })
            await pause(0.4)
        }
        let ev = sink.events
        #expect(ev.map(\.text) == ["abc", "def", "ghi"])
        if ev.count == 3 {
            #expect(ev[1].flags & LogEvent.Flag.unterminated != 0)
            #expect(ev[0].flags == 0 && ev[2].flags == 0)
        }
        #expect(!ev.contains { $0.content.contains(0x0A) })
    }

    @Test("An unterminated last line of a file last written longer ago than FlushTimeoutSecs is emitted at once")
    func flushTimeoutCountsFromTheLastWrite() async throws {
        let env = FIEnv()
        defer { env.remove() }
        var o = env.options()
        o.flushTimeoutSecs = 10
        let a = env.inDir + "/a.log"
        writeFile(a, "abc\ndef")
        setModificationTime(a, secondsAgo: 30)
        let sink = FIRecordingSink()
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink) {
            #expect(await eventually(3) { sink.lines.count >= 2 }, "the unterminated line waited for the flush timeout")
        }
        #expect(sink.lines == ["abc", "def"])
    }

    @Test("A line longer than max_read_buffer_size is emitted in flagged pieces and counted")
    func longLineEmittedInPieces() async throws {
        let env = FIEnv()
        defer { env.remove() }
        env.createMarker()
        var o = env.options()
        o.maxReadBufferSize = 4096
        let metrics = PipelineMetrics()
        let sink = FIRecordingSink()
        let long = String(repeating: "x", count: 10_000)
        try await fiWithInput(try env.input(o, table: try env.table(), metrics: metrics), sink: sink) {
            #expect(await env.waitStarted())
            fiPlaceAtomically(env.inDir + "/long.log", long + "\nafter\n")
            #expect(await eventually { sink.lines.last == "after" })
        }
        let ev = sink.events
        #expect(ev.map { $0.content.count } == [4096, 4096, 1808, 5])
        #expect(ev.dropLast().map(\.text).joined() == long)
        #expect(ev.dropLast().allSatisfy { $0.flags & LogEvent.Flag.splitPiece != 0 })
        #expect(ev.last?.flags == 0)
        #expect(metrics.linesSplit.current == 1)
    }

    @Test("A batch reaches the sink as the only reference to its arena, with room to add bytes in place")
    func batchArrivesUniquelyOwned() async throws {
        let env = FIEnv()
        defer { env.remove() }
        env.createMarker()
        var o = env.options()
        o.maxReadBufferSize = 4096
        let sink = FIOwnershipSink()
        let lines = numbered("own", 0..<500, width: 30)  // ~15 KiB: several reads of 4 KiB
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink) {
            #expect(await env.waitStarted())
            fiPlaceAtomically(env.inDir + "/a.log", text(lines))
            #expect(await eventually { sink.counts.lines >= lines.count })
        }
        let c = sink.counts
        #expect(c.lines == lines.count)
        #expect(c.batches >= 4)
        // Shared with the reader, the first write would copy the arena to a new buffer.
        #expect(c.moved == 0, "\(c.moved) of \(c.batches) batches were copied on their first write")
    }

    @Test("A long line that does not start at a read boundary is still cut at max_read_buffer_size")
    func longLineAfterShortLineIsCapped() async throws {
        let env = FIEnv()
        defer { env.remove() }
        env.createMarker()
        var o = env.options()
        o.maxReadBufferSize = 4096
        let metrics = PipelineMetrics()
        let sink = FIRecordingSink()
        let long = String(repeating: "y", count: 6000)
        try await fiWithInput(try env.input(o, table: try env.table(), metrics: metrics), sink: sink) {
            #expect(await env.waitStarted())
            fiPlaceAtomically(env.inDir + "/long.log", "short\n" + long + "\nafter\n")
            #expect(await eventually { sink.lines.last == "after" })
        }
        let ev = sink.events
        #expect(ev.first?.text == "short")
        #expect(ev.dropFirst().dropLast().map(\.text).joined() == long)
        #expect(ev.allSatisfy { $0.content.count <= 4096 }, "event sizes: \(ev.map { $0.content.count })")
        #expect(metrics.linesSplit.current == 1)
    }

    @Test("A line of exactly max_read_buffer_size bytes is one event, not split")
    func lineOfExactlyBufferSize() async throws {
        let env = FIEnv()
        defer { env.remove() }
        env.createMarker()
        var o = env.options()
        o.maxReadBufferSize = 4096
        let metrics = PipelineMetrics()
        let sink = FIRecordingSink()
        let line = String(repeating: "z", count: 4096)
        try await fiWithInput(try env.input(o, table: try env.table(), metrics: metrics), sink: sink) {
            #expect(await env.waitStarted())
            fiPlaceAtomically(env.inDir + "/exact.log", line + "\nafter\n")
            #expect(await eventually { sink.lines.last == "after" })
        }
        #expect(sink.events.map { $0.content.count } == [4096, 5])
        #expect(metrics.linesSplit.current == 0)
    }

    @Test("FileEncoding gbk: lines are converted to UTF-8, also an unterminated one at the flush timeout")
    func gbkDecodedToUTF8() async throws {
        let env = FIEnv()
        defer { env.remove() }
        env.createMarker()
        var o = env.options()
        o.fileEncoding = "gbk"
        let sink = FIRecordingSink()
        let zhongwenrizhi: [UInt8] = [0xD6, 0xD0, 0xCE, 0xC4, 0xC8, 0xD5, 0xD6, 0xBE]  // 中文日志
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink) {
            #expect(await env.waitStarted())
            fiPlaceAtomically(env.inDir + "/gbk.log", zhongwenrizhi + [0x0A] + Array("ascii".utf8) + [0x0A, 0xD6, 0xD0])
            #expect(await eventually(3) { sink.lines.count >= 3 })
        }
        #expect(sink.lines == ["中文日志", "ascii", "中"])
    }

    @Test("FileEncoding gbk: a line longer than max_read_buffer_size keeps all its characters")
    func gbkLongLine() async throws {
        let env = FIEnv()
        defer { env.remove() }
        env.createMarker()
        var o = env.options()
        o.fileEncoding = "gbk"
        o.maxReadBufferSize = 4096
        let sink = FIRecordingSink()
        var bytes: [UInt8] = []
        for _ in 0..<3000 { bytes += [0xD6, 0xD0] }  // 中 × 3000 = 6000 bytes
        bytes += [0x0A] + Array("after\n".utf8)
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink) {
            #expect(await env.waitStarted())
            fiPlaceAtomically(env.inDir + "/gbk.log", bytes)
            #expect(await eventually { sink.lines.last == "after" })
        }
        let pieces = sink.lines.dropLast().joined()
        let same = pieces == String(repeating: "中", count: 3000)
        #expect(same, "expected 3000 × 中, got \(pieces.count) characters in \(sink.lines.count - 1) events: \(sink.lines.dropLast().map { "\($0.count) chars, \($0.filter { $0 != "中" }.count) not 中" })")
    }

    @Test("Polling fallback (no inotify) finds new files, appended data and rotations")
    func pollingFallback() async throws {
        let env = FIEnv()
        defer { env.remove() }
        env.createMarker()
        var o = env.options()
        o.useInotify = false
        let sink = FIRecordingSink()
        let a = env.inDir + "/a.log"
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink) {
            #expect(await env.waitStarted())
            writeFile(a, text(["p1", "p2"]))
            #expect(await eventually(3) { sink.lines.count >= 2 })
            writeFile(a, "p3\n", append: true)
            #expect(await eventually(3) { sink.lines.count >= 3 })
            #expect(rename(a, a + ".1") == 0)
            writeFile(a + ".1", "p4-late\n", append: true)  // written by the app just after the rename
            writeFile(a, "n1\n")
            #expect(await eventually(3) { sink.lines.count >= 5 })
            await pause(0.8)
        }
        #expect(sink.lines.filter { $0.hasPrefix("p") } == ["p1", "p2", "p3", "p4-late"])
        #expect(sink.lines.filter { $0.hasPrefix("n") } == ["n1"])
        #expect(sink.lines.count == 5)
    }

    @Test("ExcludeFiles, ExcludeDirs and ExcludeFilePaths skip files found by the first scan and later")
    func exclusions() async throws {
        let env = FIEnv()
        defer { env.remove() }
        let d = env.inDir
        for sub in ["private", "private/sub", "a", "a/cache"] { _ = env.tmp.sub("in/" + sub) }
        var o = env.options([d + "/**/*.log"])
        o.maxDirSearchDepth = 2
        o.exclusions = PathExclusions(filePaths: [d + "/a/nope*.log"], fileNames: ["skip-*.log"],
                                      directories: [d + "/private", d + "/*/cache"])
        func files(_ tag: String) -> [String: Bool] {  // path → expected to be read
            [d + "/keep-\(tag).log": true, d + "/skip-\(tag).log": false, d + "/private/p-\(tag).log": false,
             d + "/private/sub/deep-\(tag).log": false, d + "/a/cache/c-\(tag).log": false,
             d + "/a/ok-\(tag).log": true, d + "/a/nope-\(tag).log": false]
        }
        for (p, _) in files("early") { writeFile(p, "line of \(p)\n") }
        env.createMarker()
        let sink = FIRecordingSink()
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink) {
            #expect(await env.waitStarted())
            for (p, _) in files("late") { writeFile(p, "line of \(p)\n") }
            #expect(await eventually { sink.lines.count >= 4 })
            await pause(0.8)
        }
        let expected = (files("early").merging(files("late")) { $1 }).filter(\.value).keys.map { "line of \($0)" }
        #expect(Set(sink.lines) == Set(expected))
        #expect(sink.lines.count == expected.count)
    }

    @Test("** stands for 0 up to MaxDirSearchDepth directories", arguments: [0, 2])
    func doubleStarDepth(depth: Int) async throws {
        let env = FIEnv()
        defer { env.remove() }
        let d = env.inDir
        _ = env.tmp.sub("in/a"); _ = env.tmp.sub("in/a/b"); _ = env.tmp.sub("in/a/b/c")
        let early = [d + "/x.log": 0, d + "/a/y.log": 1, d + "/a/b/z.log": 2, d + "/a/b/c/w.log": 3]
        for (p, _) in early { writeFile(p, "\(p)\n") }
        env.createMarker()
        var o = env.options([d + "/**/*.log"])
        o.maxDirSearchDepth = depth
        let sink = FIRecordingSink()
        let late = [d + "/top-late.log": 0, d + "/n/new1.log": 1, d + "/n/m/new2.log": 2, d + "/n/m/o/new3.log": 3]
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink) {
            #expect(await env.waitStarted())
            _ = env.tmp.sub("in/n"); _ = env.tmp.sub("in/n/m"); _ = env.tmp.sub("in/n/m/o")
            await pause(0.1)
            for (p, _) in late { writeFile(p, "\(p)\n") }
            let want = early.merging(late) { $1 }.filter { $0.value <= depth }.count
            #expect(await eventually { sink.lines.count >= want })
            await pause(0.8)
        }
        let expected = Set(early.merging(late) { $1 }.filter { $0.value <= depth }.keys)
        #expect(Set(sink.lines) == expected)
        #expect(sink.lines.count == expected.count)
    }

    // The same happens, more often, when a deleted file's inode is reused by a new file at the
    // same path (ext4 hands the inode out again at once); renaming back makes it deterministic.
    /// The writer keeps writing to a file after it was deleted (a pod's log while its directory
    /// goes): no event names the file any more, so the reader's last read saw an end of file that
    /// is no longer the end. It is let go only once read to its size (fstat).
    @Test("A deleted file written to after its last read is read to its size before it is let go")
    func deletedFileDrainedToItsSize() async throws {
        let env = FIEnv()
        defer { env.remove() }
        let podDir = env.inDir + "/pod"
        #expect(mkdir(podDir, 0o755) == 0)
        let a = podDir + "/gone.log"
        writeFile(a, "")
        var o = env.options([env.inDir + "/*/*.log"])
        o.pollIntervalSec = 60   // no polling pass: only events and housekeeping see the file
        o.releaseDrainedAfterSec = 2   // room for the writes below on a loaded machine
        let sink = FIRecordingSink()
        let st = try #require(fiStat(a))
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink) {
            #expect(await eventually { fiIsOpenInProcess(a) })
            let fd = open(a, O_WRONLY | O_APPEND)
            try #require(fd >= 0)
            defer { close(fd) }
            _ = "before-1\n".withCString { write(fd, $0, strlen($0)) }
            #expect(await eventually { sink.lines.contains("before-1") })
            // The file and its directory go (the pod's log directory removed): the directory's
            // watch goes with it, so no event reports what is written next.
            #expect(unlink(a) == 0)
            #expect(rmdir(podDir) == 0)
            sleepMs(300)   // the input has seen both go (and read the file once more) before the writes
            _ = "after-1\nafter-2\n".withCString { write(fd, $0, strlen($0)) }
            #expect(await eventually(6) { !fiIsOpenInProcess(dev: st.dev, inode: st.inode, excluding: [fd]) },
                    "the deleted file is let go")
        }
        #expect(sink.lines == ["before-1", "after-1", "after-2"])
    }

    @Test("A file let go and found again (renamed away, released, renamed back): acks of batches from before do not move the new checkpoint")
    func staleAckAfterRenameBack() async throws {
        let env = FIEnv()
        defer { env.remove() }
        let a = env.inDir + "/app.log", away = env.inDir + "/app.log.1"
        writeFile(a, "")
        let table1 = try env.table()
        let sink1 = FIRecordingSink(autoAck: false)
        try await fiWithInput(try env.input(env.options(), table: table1), sink: sink1) {
            #expect(await eventually { fiIsOpenInProcess(a) })
            writeFile(a, text(["old-1", "old-2"]), append: true)
            #expect(await eventually { sink1.batchCount == 1 })  // batch 0: held
            #expect(rename(a, away) == 0)                          // rotated away: no longer matched
            #expect(await eventually { !fiIsOpenInProcess(away) })  // drained and released
            writeFile(away, "new-1\n", append: true)
            #expect(rename(away, a) == 0)                          // and back: followed again
            #expect(await eventually { sink1.lines.contains("new-1") })  // batch 1: held
            sink1.ack(batch: 0)  // only the batch from before the release is delivered
        }
        try table1.persist(force: true)
        let sink2 = FIRecordingSink()
        try await fiWithInput(try env.input(env.options(), table: try env.table()), sink: sink2) {
            _ = await eventually(2) { sink2.lines.contains("new-1") }
        }
        let offsets = try env.table().entries.map(\.offset)
        #expect(sink2.lines.contains("new-1"), "new-1 was never acknowledged but is not read again: \(sink2.lines), checkpoint \(offsets)")
    }
}

// MARK: - CheckpointTable

@Suite("CheckpointTable")
struct FICheckpointTableTests {
    let idA = FileIdentity(dev: 2049, inode: 100)
    let idB = FileIdentity(dev: 2049, inode: 7)

    @Test("persist then load gives the same entries")
    func roundtrip() throws {
        let env = FIEnv()
        defer { env.remove() }
        let t = try env.table()
        #expect(t.entries.isEmpty)
        t.track(idA, path: "/var/log/a.log", signature: FileSignature(hash: 0xdead_beef_0123_4567, length: 1024), offset: 10)
        t.track(idB, path: "/var/log/dir with space/b.log", signature: FileSignature(hash: 1, length: 12), offset: 0)
        let s = t.emitted(idA, upTo: 500)
        t.acknowledged(idA, sequence: s)
        try t.persist(force: true)
        #expect(t.path == env.dir + "/checkpoints/t.json")
        let loaded = try env.table()
        let byInode = Dictionary(uniqueKeysWithValues: loaded.entries.map { ($0.inode, $0) })
        #expect(byInode.count == 2)
        #expect(byInode[100]?.dev == 2049)
        #expect(byInode[100]?.sig == "deadbeef01234567")
        #expect(byInode[100]?.sigLen == 1024)
        #expect(byInode[100]?.offset == 500)
        #expect(byInode[100]?.path == "/var/log/a.log")
        #expect(byInode[100]?.signature == FileSignature(hash: 0xdead_beef_0123_4567, length: 1024))
        #expect(byInode[7]?.offset == 0)
        #expect(byInode[7]?.path == "/var/log/dir with space/b.log")
        #expect(loaded.lookup(idA)?.offset == 500)
        // No temporary file is left behind.
        #expect(fiStat(t.path + ".tmp") == nil)
    }

    @Test("a damaged checkpoint file makes init throw an error naming the file")
    func damagedFileThrows() throws {
        let env = FIEnv()
        defer { env.remove() }
        let t = try env.table()
        t.track(idA, path: "/x.log", signature: .empty, offset: 0)
        try t.persist(force: true)
        for garbage in ["{\"version\":1,\"pipeline\":\"t\",\"fil", "", "[1,2,3]", "{\"version\":1}"] {
            writeFile(t.path, garbage)
            do {
                _ = try env.table()
                Issue.record("no error for content \(garbage.debugDescription)")
            } catch let e as CheckpointTable.CheckpointError {
                guard case .damaged(let path, _) = e else { Issue.record("wrong error \(e)"); continue }
                #expect(path == t.path)
                #expect("\(e)".contains(t.path) && "\(e)".contains("damaged"))
            }
        }
        try CheckpointTable.moveAside(dataDir: env.dir, pipeline: "t")
        // The position journal beside it still knows the file.
        #expect(try env.table().entries.map(\.path) == ["/x.log"])
    }

    @Test("out-of-order acknowledgements commit only the contiguous prefix")
    func ackOrdering() throws {
        let env = FIEnv()
        defer { env.remove() }
        let t = try env.table()
        t.track(idA, path: "/a.log", signature: .empty, offset: 0)
        let s0 = t.emitted(idA, upTo: 100), s1 = t.emitted(idA, upTo: 250), s2 = t.emitted(idA, upTo: 400)
        #expect(t.inFlight(idA) == 3)
        t.acknowledged(idA, sequence: s2)
        #expect(t.lookup(idA)?.offset == 0)
        t.acknowledged(idA, sequence: s0)
        #expect(t.lookup(idA)?.offset == 100)
        t.acknowledged(idA, sequence: s0)  // a repeated ack changes nothing
        #expect(t.lookup(idA)?.offset == 100)
        t.acknowledged(idA, sequence: s1)
        #expect(t.lookup(idA)?.offset == 400)
        #expect(t.inFlight(idA) == 0)
        try t.persist()
        #expect(try env.table().lookup(idA)?.offset == 400)
    }

    @Test("after reset (truncation), acks of batches emitted before it do not move the checkpoint")
    func resetIgnoresStaleAcks() throws {
        let env = FIEnv()
        defer { env.remove() }
        let t = try env.table()
        t.track(idA, path: "/a.log", signature: .empty, offset: 0)
        let old = t.emitted(idA, upTo: 1000)
        t.reset(idA, offset: 0, signature: .empty)
        let new = t.emitted(idA, upTo: 30)
        t.acknowledged(idA, sequence: old)
        #expect(t.lookup(idA)?.offset == 0)
        t.acknowledged(idA, sequence: new)
        #expect(t.lookup(idA)?.offset == 30)
    }

    @Test("a released file's entry stays while batches are in flight and goes with the last ack")
    func releaseWaitsForInFlight() throws {
        let env = FIEnv()
        defer { env.remove() }
        let t = try env.table()
        t.track(idA, path: "/a.log", signature: .empty, offset: 0)
        let s = t.emitted(idA, upTo: 10)
        t.release(idA)
        #expect(t.lookup(idA) != nil)
        t.acknowledged(idA, sequence: s)
        #expect(t.lookup(idA) == nil)
        t.track(idB, path: "/b.log", signature: .empty, offset: 0)
        t.release(idB)
        #expect(t.lookup(idB) == nil)
    }

    @Test("tracking an identity again (inode reuse) ignores acks of batches of the previous file")
    func retrackIgnoresStaleAcks() throws {
        let env = FIEnv()
        defer { env.remove() }
        let t = try env.table()
        t.track(idA, path: "/a.log", signature: FileSignature(hash: 1, length: 20), offset: 0)
        let oldSeq = t.emitted(idA, upTo: 800)  // old file's batch, still in flight
        t.release(idA)                           // old file deleted and drained
        t.track(idA, path: "/a.log", signature: FileSignature(hash: 2, length: 20), offset: 0)  // new file, same inode
        _ = t.emitted(idA, upTo: 50)             // new file's batch, never acknowledged
        t.acknowledged(idA, sequence: oldSeq)
        #expect(t.lookup(idA)?.offset == 0, "a stale ack moved the new file's checkpoint to \(t.lookup(idA)?.offset ?? -1)")
    }

    /// Found by the input_file model test (CI, under load): a deleted file's batch was still in
    /// flight when its inode was reused twice. The second reuse made a new tracker whose sequence
    /// numbers began at 0 again, so the old batch's late acknowledgement (sequence 0) was taken for
    /// the new file's first batch, and the checkpoint passed that batch unacknowledged: a restart
    /// then skipped its lines.
    @Test("A late acknowledgement for an earlier file with the same identity never moves the checkpoint of a file tracked after the entry was dropped")
    func staleAckAfterTheEntryWasDropped() throws {
        let env = FIEnv()
        defer { env.remove() }
        let t = try env.table()
        let oldSig = FileSignature(hash: 1, length: 64), newSig = FileSignature(hash: 2, length: 64)
        // The first file: one batch in flight when it is deleted and let go.
        t.track(idB, path: "/a.log", signature: oldSig, offset: 0)
        let stale = t.emitted(idB, upTo: 500)
        t.release(idB)
        // Its inode reused: a second file, read and acknowledged, then let go. The entry is dropped
        // (tracking the second file forgot the first file's batch).
        t.track(idB, path: "/a.log", signature: newSig, offset: 0)
        let a = t.emitted(idB, upTo: 100)
        t.acknowledged(idB, sequence: a)
        t.release(idB)
        #expect(t.lookup(idB) == nil)
        // Reused again: the third file's first batch is in flight when the first file's batch is
        // acknowledged late.
        t.track(idB, path: "/a.log", signature: newSig, offset: 0)
        let first = t.emitted(idB, upTo: 300)
        #expect(first != stale)
        t.acknowledged(idB, sequence: stale)
        #expect(t.lookup(idB)?.offset == 0)
        #expect(try env.table().lookup(idB)?.offset == 0)
        t.acknowledged(idB, sequence: first)
        #expect(t.lookup(idB)?.offset == 300)
    }

    @Test("An acknowledgement of a batch emitted while the file was not tracked is ignored once it is")
    func ackOfAnUntrackedBatch() throws {
        let env = FIEnv()
        defer { env.remove() }
        let t = try env.table()
        let orphan = t.emitted(idB, upTo: 50)
        t.track(idB, path: "/a.log", signature: FileSignature(hash: 2, length: 64), offset: 0)
        let first = t.emitted(idB, upTo: 80)
        #expect(first != orphan)
        t.acknowledged(idB, sequence: orphan)
        #expect(t.lookup(idB)?.offset == 0)
        t.acknowledged(idB, sequence: first)
        #expect(t.lookup(idB)?.offset == 80)
    }

    @Test("different pipeline names never share a checkpoint file")
    func fileNamesAreDistinct() throws {
        let env = FIEnv()
        defer { env.remove() }
        // "Ā0" and "က" (U+1000) are both "%1000" if the hex escape has no fixed width.
        let names = ["a/b", "a%2fb", "a_b", "Ā0", "က", "é", "\u{0E}9"]
        let paths = try names.map { try CheckpointTable(dataDir: env.dir, pipeline: $0).path }
        #expect(Set(paths).count == names.count, "\(paths)")
    }
}
