import Foundation
import Glibc
import Logging
import SluiceCore
@testable import SluiceRuntime
import SluiceSystem
import SluiceTesting
import Synchronization
import Testing

/// The disk buffer against a model: random appends, reads, acknowledgements, crashes (with a torn
/// frame at the tail), restarts and bit flips. Checked after every restart: nothing that was
/// durable (acknowledged to its source) and not acknowledged by the flusher is lost unless a
/// damaged frame was counted; nothing acknowledged by the flusher is replayed; every frame handed
/// out is exactly what was appended.
@Suite(.serialized, .timeLimit(.minutes(2))) struct DiskBufferTests {
    static let logger = Logger(label: "test.buffer")

    static func batch(_ text: String, seq: Int) -> EventBatch {
        var b = EventBatch(arena: Array(text.utf8), events: [LogEvent(content: Span(0, text.utf8.count), timeNanos: Int64(seq))],
                           tags: [EventTag("__path__", "/var/log/\(seq % 7).log")], observedNanos: Int64(seq) * 1000, inputBytes: text.utf8.count + 1)
        b.sourceKey = UInt64(seq)
        b.sourceOffset = Int64(seq * 10)
        return b
    }

    static func content(_ b: EventBatch) -> String { String(decoding: b.contentBytes(0), as: UTF8.self) }

    func options(maxBytes: Int = 4 << 20) -> DiskBufferOptions {
        var o = DiskBufferOptions()
        o.maxBytes = maxBytes
        o.segmentBytes = 8 << 10
        o.commitIntervalMs = 1
        return o
    }

    @Test func codecRoundTripsEveryPartOfABatch() throws {
        var b = Self.batch("hello world", seq: 3)
        _ = b.append(bytes: Array("key".utf8))
        b.fields = [EventField(key: Span(11, 3), value: Span(0, 5), kind: .json)]
        b.events[0].fieldStart = 0
        b.events[0].fieldCount = 1
        b.events[0].flags = LogEvent.Flag.parsed
        let bytes = BatchCodec.encode(b)
        let d = try bytes.withUnsafeBytes { try BatchCodec.decode($0) }
        #expect(d.arena == b.arena && d.events == b.events && d.fields == b.fields && d.tags == b.tags)
        #expect(d.observedNanos == b.observedNanos && d.inputBytes == b.inputBytes && d.sourceKey == 3 && d.sourceOffset == 30)
        // Every truncation and every single-byte change of the encoding is an error or a batch, never a crash.
        for cut in 0..<bytes.count {
            #expect(throws: BatchCodec.DecodeError.self) { try Array(bytes[0..<cut]).withUnsafeBytes { try BatchCodec.decode($0) } }
        }
        for i in 0..<bytes.count {
            var m = bytes
            m[i] ^= 0xFF
            _ = try? m.withUnsafeBytes { try BatchCodec.decode($0) }
        }
    }

    @Test func modelWithCrashesTornTailsAndBitFlips() async throws {
        var rng = FuzzRNG(seed: UInt64(ProcessInfo.processInfo.environment["SLUICE_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0x5eed_b0ff))
        let tmp = TempDir("sluice-buffer-model")
        defer { tmp.remove() }
        let dir = tmp.path + "/buf"
        var buffer: DiskBuffer? = try DiskBuffer(directory: dir, options: options(), logger: Self.logger)
        // The model: the frames the flusher acknowledged, those handed out and not yet acknowledged,
        // and the sequence each text was given.
        var ackedByFlusher = Set<UInt64>()
        var handedOut: [UInt64] = []
        var appended = 0
        var crashes = 0, flips = 0, replayed = 0, lostToDamage = 0
        var seqOf: [String: UInt64] = [:]
        // Every text handed out at least once: each appended frame must be, unless damage took it.
        var seen = Set<String>()
        for step in 0..<1500 {
            guard let b = buffer else { break }
            let r = rng.next() % 100
            if r < 45 {
                let text = "frame-\(appended)-" + String(repeating: "x", count: Int(rng.next() % 600))
                let payload = BatchCodec.encode(Self.batch(text, seq: appended))
                appended += 1
                #expect(await b.append(payload, events: 1, onDurable: nil) == .appended)
            } else if r < 75 {
                if let (seq, batch) = b.tryNext() {
                    let text = Self.content(batch)
                    #expect(!ackedByFlusher.contains(seq), "frame \(seq) handed out after it was acknowledged")
                    if let known = seqOf[text] { #expect(known == seq, "one text, one sequence") }
                    seqOf[text] = seq
                    seen.insert(text)
                    handedOut.append(seq)
                }
            } else if r < 93 {
                if !handedOut.isEmpty {
                    let i = Int(rng.next() % UInt64(handedOut.count))
                    let seq = handedOut.remove(at: i)
                    b.acknowledge(seq)
                    ackedByFlusher.insert(seq)
                }
            } else {
                // Crash and restart: what was appended is written (the commit thread finishes),
                // then the process "dies" with a frame half written at the tail, maybe a bit
                // flipped somewhere, and a new buffer opens the directory.
                b.finishWriting()
                await b.waitUntilFinished()
                let before = b.usage
                let unacked = Set(durableSeqs(b)).subtracting(ackedByFlusher)
                buffer = nil
                crashes += 1
                let segs = segmentFiles(dir)
                var flipped = false
                if let last = segs.last {
                    // A torn frame: a valid-looking header with a short payload, or a few bytes.
                    let torn: [UInt8] = rng.next() % 2 == 0 ? [0x53, 0x4C, 0x42, 0x46, 0xFF, 0x00, 0x00, 0x00, 1, 2, 3] : [0x53, 0x4C]
                    appendFile(last, torn)
                }
                if rng.next() % 3 == 0, let seg = segs.randomElement(using: &rng) {
                    let size = fileSize(seg)
                    if size > 0 {
                        var bytes = readFileBytes(seg)
                        let at = Int(rng.next() % UInt64(size))
                        bytes[at] ^= UInt8(1 << (rng.next() % 8))
                        writeFile(seg, bytes)
                        flipped = true
                        flips += 1
                    }
                }
                let reopened = try DiskBuffer(directory: dir, options: options(), logger: Self.logger)
                // Replay: every durable frame the flusher did not acknowledge comes back, in order.
                var back: [UInt64] = []
                while let (seq, batch) = reopened.tryNext() {
                    back.append(seq)
                    #expect(!ackedByFlusher.contains(seq), "step \(step): frame \(seq) replayed after the flusher acknowledged it")
                    if let known = seqOf[Self.content(batch)] { #expect(known == seq) }
                    seqOf[Self.content(batch)] = seq
                    seen.insert(Self.content(batch))
                }
                #expect(back == back.sorted(), "replayed in order")
                let missing = unacked.subtracting(back)
                replayed += back.count
                lostToDamage += missing.count
                #expect(missing.count <= (flipped ? 1 : 0), "step \(step): \(missing.count) durable frames lost (flipped: \(flipped)); before: \(before)")
                if !missing.isEmpty {
                    #expect(reopened.corruptFrames.load(ordering: .relaxed) + (reopened.truncatedBytes.load(ordering: .relaxed) > 11 ? 1 : 0) >= 1,
                            "a lost frame is counted")
                }
                #expect(reopened.truncatedBytes.load(ordering: .relaxed) >= 2, "the torn tail was cut off")
                // Nothing handed out before the crash is pending in this process any more.
                handedOut = back
                buffer = reopened
            }
        }
        if let b = buffer {
            // Everything acknowledged: the segments but the last go.
            b.finishWriting()
            await b.waitUntilFinished()
            while let (seq, batch) = b.tryNext() {
                handedOut.append(seq)
                seen.insert(Self.content(batch))
            }
            for s in handedOut { b.acknowledge(s) }
            #expect(b.usage.frames == 0)
            #expect(segmentFiles(dir).count <= 1)
        }
        print("    disk buffer model: \(appended) appends, \(crashes) crashes, \(flips) bit flips, \(replayed) frames replayed, \(lostToDamage) lost to counted damage")
        #expect(crashes > 20 && appended > 300)
        // Judged by the texts, not by the buffer's own view of what is unacknowledged: a frame the
        // buffer wrongly counts as delivered is never handed out.
        #expect(appended - seen.count <= flips, "\(appended - seen.count) appended frames never handed out (\(flips) bit flips)")
    }

    /// A restart after frames were acknowledged out of order (3 delivered, 2 not, as with
    /// concurrent sends): the next frame must not take a sequence already saved as delivered, or
    /// acknowledging 2 would count it delivered too and delete its segment before it is read.
    @Test func aFrameAppendedAfterARestartNeverTakesADeliveredSequence() async throws {
        let tmp = TempDir("sluice-buffer-seq")
        defer { tmp.remove() }
        let dir = tmp.path + "/buf"
        let first = try DiskBuffer(directory: dir, options: options(), logger: Self.logger)
        for (i, text) in ["a", "b", "c"].enumerated() {
            #expect(await first.append(BatchCodec.encode(Self.batch(text, seq: i)), events: 1, onDurable: nil) == .appended)
        }
        var out: [(UInt64, String)] = []
        for _ in 0..<200 where out.count < 3 {
            if let (seq, b) = first.tryNext() { out.append((seq, Self.content(b))) } else { try await Task.sleep(for: .milliseconds(5)) }
        }
        #expect(out.map(\.1) == ["a", "b", "c"])
        first.acknowledge(out[0].0)
        first.acknowledge(out[2].0)
        first.finishWriting()
        await first.waitUntilFinished()

        let second = try DiskBuffer(directory: dir, options: options(), logger: Self.logger)
        let replay = second.tryNext()
        #expect(replay.map { Self.content($0.batch) } == "b")
        #expect(await second.append(BatchCodec.encode(Self.batch("d", seq: 3)), events: 1, onDurable: nil) == .appended)
        var next: (seq: UInt64, batch: EventBatch)?
        for _ in 0..<200 where next == nil {
            next = second.tryNext()
            if next == nil { try await Task.sleep(for: .milliseconds(5)) }
        }
        // The replayed frame is delivered before the new one is read (the new one is in flight
        // or waiting): the new frame is still there, whole, under a sequence of its own.
        if let (seq, _) = replay { second.acknowledge(seq) }
        let newSeq = try #require(next).seq
        #expect(newSeq > out[2].0, "the new frame took sequence \(newSeq), already delivered")
        #expect(Self.content(try #require(next).batch) == "d")
        #expect(second.unacknowledgedSequences == [newSeq])
        second.acknowledge(newSeq)
        second.finishWriting()
        await second.waitUntilFinished()
        #expect(second.corruptFrames.load(ordering: .relaxed) == 0)
        #expect(second.usage.frames == 0)

        // And across one more restart nothing comes back: everything was delivered once.
        let third = try DiskBuffer(directory: dir, options: options(), logger: Self.logger)
        #expect(third.tryNext() == nil)
        third.finishWriting()
        await third.waitUntilFinished()
    }

    /// Sequences of the durable frames that have not been acknowledged (from a clean reopen's view).
    func durableSeqs(_ b: DiskBuffer) -> [UInt64] {
        b.unacknowledgedSequences
    }

    func segmentFiles(_ dir: String) -> [String] {
        guard case .success(let entries) = Sys.listDirectory(dir) else { return [] }
        return entries.map(\.name).filter { $0.hasSuffix(".seg") }.sorted().map { dir + "/" + $0 }
    }

    /// The flusher's timed wait for the next frame is woken by the commit that makes a frame
    /// durable and by the end of writing, and otherwise ends at its timeout.
    @Test func timedWaitForAFrameWakesOnCommitAndEndsAtItsTimeout() async throws {
        let tmp = TempDir("sluice-buffer-wait")
        defer { tmp.remove() }
        let b = try DiskBuffer(directory: tmp.path, options: options(), logger: Self.logger)
        let clock = ContinuousClock()
        // Nothing comes: the wait ends at its timeout.
        var t0 = clock.now
        await b.waitForFrame(timeout: .milliseconds(300))
        let idle = clock.now - t0
        #expect(idle >= .milliseconds(290) && idle < .seconds(3), "an idle wait took \(idle)")
        #expect(b.tryNext() == nil)
        // A frame appended while a long wait is on: the commit wakes it at once.
        t0 = clock.now
        let appender = Task {
            try await Task.sleep(for: .milliseconds(100))
            return await b.append(BatchCodec.encode(Self.batch("x", seq: 1)), events: 1, onDurable: nil)
        }
        await b.waitForFrame(timeout: .seconds(30))
        let woken = clock.now - t0
        #expect(try await appender.value == .appended)
        #expect(woken >= .milliseconds(90) && woken < .seconds(5), "woken after \(woken)")
        let frame = b.tryNext()
        #expect(frame != nil)
        if let (seq, _) = frame { b.acknowledge(seq) }
        // The end of writing wakes a waiting reader too.
        t0 = clock.now
        let finisher = Task {
            try await Task.sleep(for: .milliseconds(100))
            b.finishWriting()
        }
        await b.waitForFrame(timeout: .seconds(30))
        try await finisher.value
        #expect(clock.now - t0 < .seconds(5))
        await b.waitUntilFinished()
        #expect(b.isDrained)
    }

    @Test func blockWaitsForSpaceAndDropNewestCounts() async throws {
        let tmp = TempDir("sluice-buffer-full")
        defer { tmp.remove() }
        var o = options(maxBytes: 1 << 20)
        o.segmentBytes = 64 << 10
        let payload = BatchCodec.encode(Self.batch(String(repeating: "y", count: 60_000), seq: 1))
        // drop_newest: past the limit, appends are dropped and counted.
        o.whenFull = .dropNewest
        let dropping = try DiskBuffer(directory: tmp.path + "/drop", options: o, logger: Self.logger)
        var results: [DiskBuffer.AppendResult] = []
        for _ in 0..<30 { results.append(await dropping.append(payload, events: 1, onDurable: nil)) }
        #expect(results.filter { $0 == .appended }.count < 20 && results.contains(.dropped))
        #expect(dropping.droppedEvents.load(ordering: .relaxed) == results.filter { $0 == .dropped }.count)
        #expect(dropping.usage.bytes <= o.maxBytes)
        dropping.finishWriting()
        await dropping.waitUntilFinished()

        // block: the append past the limit waits until acknowledged segments are deleted.
        o.whenFull = .block
        let blocking = try DiskBuffer(directory: tmp.path + "/block", options: o, logger: Self.logger)
        var n = 0
        while blocking.usage.bytes + payload.count + 28 <= o.maxBytes {
            #expect(await blocking.append(payload, events: 1, onDurable: nil) == .appended)
            n += 1
        }
        let done = Mutex(false)
        let waiting = Task {
            let r = await blocking.append(payload, events: 1, onDurable: nil)
            done.withLock { $0 = true }
            return r
        }
        try await Task.sleep(for: .milliseconds(200))
        let finishedEarly = done.withLock { $0 }
        #expect(!finishedEarly, "the append waits for space")
        // The flusher sends (acknowledges) what is there: segments go, the append gets its space.
        var acked = 0
        for _ in 0..<500 where !done.withLock({ $0 }) {
            while let (seq, _) = blocking.tryNext() { blocking.acknowledge(seq); acked += 1 }
            try await Task.sleep(for: .milliseconds(10))
        }
        let got = done.withLock { $0 }
        #expect(got, "the waiting append got its space after \(acked) acknowledgements; usage \(blocking.usage)")
        blocking.finishWriting()
        #expect(await waiting.value == (got ? .appended : .closed))
        await blocking.waitUntilFinished()
        #expect(n > 10)
    }

    /// A real full file system (a 1 MiB tmpfs; root only): the commit fails, the error is logged
    /// and counted, `block` appends wait (nothing piles up in memory) and `drop_newest` drops and
    /// counts; space coming back resumes writing; what was reported durable is all there after a
    /// restart; at shutdown with the disk still full the waiting batches go back to their sources.
    @Test(.enabled(if: getuid() == 0, "mounting a tmpfs needs root"))
    func diskFullHoldsBackAndLosesNothingDurable() async throws {
        let tmp = TempDir("sluice-buffer-diskfull")
        let fs = tmp.sub("fs")
        #expect(shell("mount -t tmpfs -o size=1m sluice-test '\(fs)'") == 0)
        defer { _ = shell("umount -l '\(fs)'"); tmp.remove() }
        var o = options(maxBytes: 64 << 20)
        o.segmentBytes = 128 << 10
        let dir = fs + "/buf"
        let b = try DiskBuffer(directory: dir, options: o, logger: Self.logger)
        final class Outcomes: Sendable {
            let m = Mutex<[Bool]>([])
            func record(_ ok: Bool) { m.withLock { $0.append(ok) } }
        }
        let outcomes = Outcomes()
        // 40 KB frames until an append waits: the disk is full long before MaxBytes.
        var appended = 0
        var blocked: Task<DiskBuffer.AppendResult, Never>?
        while appended < 200 {
            let payload = BatchCodec.encode(Self.batch("f\(appended)-" + String(repeating: "z", count: 40_000), seq: appended))
            let returned = Outcomes()
            let t = Task {
                let r = await b.append(payload, events: 1, onDurable: { ok in outcomes.record(ok) })
                returned.record(true)
                return r
            }
            // Still waiting half a second later (the disk refused a write): blocked.
            if !(await eventually(0.5) { !returned.m.withLock { $0.isEmpty } }) { blocked = t; break }
            #expect(await t.value == .appended)
            appended += 1
        }
        let waiting = try #require(blocked, "an append waits once the disk is full")
        #expect(b.writeErrors.load(ordering: .relaxed) > 0, "the refused write is counted")
        let inMemory = b.usage.bytes - segmentFiles(dir).reduce(0) { $0 + Int(fileSize($1)) }
        #expect(inMemory <= DiskBuffer.maxPendingBytes, "what waits is bounded: \(inMemory) bytes pending")
        let durableBefore = outcomes.m.withLock { $0.filter { $0 }.count }
        #expect(durableBefore > 0 && durableBefore < appended + 1, "some frames fit on the disk (\(durableBefore) of \(appended + 1))")

        // The flusher sends what is there: segments go, space comes back, writing resumes.
        var sent: [String] = []
        let resumed = await eventually(20) {
            while let (seq, batch) = b.tryNext() { sent.append(String(Self.content(batch).prefix(8))); b.acknowledge(seq) }
            return outcomes.m.withLock { $0.count } == appended + 1
        }
        #expect(resumed, "writing resumed once acknowledged segments freed the disk")
        #expect(await waiting.value == .appended)
        #expect(outcomes.m.withLock { $0.allSatisfy { $0 } }, "every append was reported durable in the end")

        // Full again, then shutdown: the frame the disk refuses is given back (false), the
        // commit thread ends, and a restart finds every durable frame not yet sent.
        let filler = fs + "/filler"
        _ = shell("dd if=/dev/zero of='\(filler)' bs=64k count=64 2>/dev/null")
        let last = BatchCodec.encode(Self.batch("last-" + String(repeating: "z", count: 40_000), seq: 999))
        let lastResult = Mutex<Bool?>(nil)
        #expect(await b.append(last, events: 1, onDurable: { ok in lastResult.withLock { $0 = ok } }) == .appended)
        #expect(await eventually(5) { b.writeErrors.load(ordering: .relaxed) > 1 })
        b.finishWriting()
        await b.waitUntilFinished()
        #expect(lastResult.withLock { $0 } == false, "the refused batch goes back to its source at shutdown")
        while let (seq, batch) = b.tryNext() { sent.append(String(Self.content(batch).prefix(8))); b.acknowledge(seq) }
        #expect(Set(sent).count == sent.count, "nothing handed out twice")
        #expect(sent.count == appended + 1, "every durable frame was handed out: \(sent.count) of \(appended + 1)")

        // drop_newest on a full disk: dropped and counted, not queued.
        unlink(filler)
        var d = o
        d.whenFull = .dropNewest
        let dropping = try DiskBuffer(directory: fs + "/drop", options: d, logger: Self.logger)
        _ = shell("dd if=/dev/zero of='\(filler)' bs=64k count=64 2>/dev/null")
        var results: [DiskBuffer.AppendResult] = []
        for i in 0..<20 {
            results.append(await dropping.append(BatchCodec.encode(Self.batch("d\(i)-" + String(repeating: "z", count: 40_000), seq: i)), events: 1, onDurable: nil))
            try await Task.sleep(for: .milliseconds(30))
        }
        #expect(results.contains(.dropped) && dropping.droppedEvents.load(ordering: .relaxed) == results.filter { $0 == .dropped }.count)
        dropping.finishWriting()
        await dropping.waitUntilFinished()
    }
}


/// CRC-32C against its published check value and against a bit-by-bit reference, on every length
/// and alignment the 8-byte loop and its tail can see, split at every point.
@Suite struct CRC32CTests {
    static func reference(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        }
        return ~c
    }

    @Test func checkValueAndReference() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
        var rng = FuzzRNG(seed: 0xC3C3)
        let data = (0..<300).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        for start in 0..<9 {
            for end in stride(from: start, through: data.count, by: 7) {
                let slice = Array(data[start..<end])
                let whole = CRC32C.checksum(slice)
                #expect(whole == Self.reference(slice))
                let cut = slice.count / 3
                let split = slice.withUnsafeBytes { p in
                    CRC32C.update(CRC32C.update(0, UnsafeRawBufferPointer(rebasing: p[0..<cut])), UnsafeRawBufferPointer(rebasing: p[cut...]))
                }
                #expect(split == whole)
            }
        }
    }
}
