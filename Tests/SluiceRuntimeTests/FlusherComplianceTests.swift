import Glibc
import SluiceConfig
import SluiceCore
import SluiceFlushers
@testable import SluiceRuntime
import SluiceSystem
import SluiceTesting
import Testing

/// What every flusher, present and future, must do under the runner: finish each batch exactly
/// once, count what it received and sent, resume after failures without duplicates, and never
/// block on what it cannot take. A new flusher adds a case to `Subject`.
@Suite(.serialized) struct FlusherComplianceTests {
    enum Subject: String, CaseIterable, CustomTestStringConvertible {
        case file, stdout, blackhole, scripted
        var testDescription: String { rawValue }
    }

    /// A flusher of the subject's type writing under `dir`, and how to read back what it delivered
    /// (nil when it keeps nothing).
    func make(_ s: Subject, dir: String) throws -> (any Flusher, () -> [String]?) {
        let ctx = testContext(kind: .flusher, type: "flusher_\(s.rawValue)", dataDir: dir)
        switch s {
        case .file:
            let out = dir + "/out.jsonl"
            let o = try FlusherFile.options(from: try ConfigObject.parse(yaml: "FilePath: \(out)\nMaxFileSize: 0\n", file: "t.yaml", fields: FlusherFile.spec.fields), globals: GlobalParameters())
            return (FlusherFile(options: o, context: ctx), { outputContents(out) })
        case .stdout:
            let out = dir + "/stdout.jsonl"
            let fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            return (FlusherStdout(fd: fd), { outputContents(out) })
        case .blackhole:
            return (FlusherBlackhole(), { nil })
        case .scripted:
            let f = ScriptedFlusher()
            return (f, { f.delivered })
        }
    }

    func drive<F: Flusher>(_ f: F, _ batches: [EventBatch]) async -> PluginContext {
        let q = BatchQueue(highWatermark: 64 << 20)
        let ctx = testContext(kind: .flusher, type: "compliance")
        try? await f.start()
        let task = Task { await FlusherRunner(flusher: f, queue: q, context: ctx).run() }
        for b in batches { q.push(b) }
        q.close()
        await task.value
        await f.stop()
        return ctx
    }

    @Test(arguments: Subject.allCases)
    func finishesEveryBatchOnceAndCounts(_ s: Subject) async throws {
        let tmp = TempDir("sluice-compliance")
        defer { tmp.remove() }
        let (f, readBack) = try make(s, dir: tmp.path)
        let tb = TestBatches()
        let batches = (0..<200).map { i in tb.batch(i, (0..<(1 + i % 7)).map { "b\(i)-l\($0)" }) }
        let expected = (0..<200).flatMap { i in (0..<(1 + i % 7)).map { "b\(i)-l\($0)" } }
        let ctx = await drive(f, batches)
        for i in 0..<200 { #expect(tb.statuses(of: i) == [.delivered], "batch \(i)") }
        #expect(ctx.metrics.receivedEvents.current == expected.count)
        #expect(ctx.metrics.sentEvents.current == expected.count)
        #expect(ctx.metrics.sentBytes.current > 0)
        #expect(ctx.pipelineMetrics.eventsOut.current == expected.count)
        #expect(ctx.metrics.discardedByReason.isEmpty)
        #expect(ctx.metrics.bufferedEvents.load(ordering: .relaxed) == 0 && ctx.metrics.bufferedBytes.load(ordering: .relaxed) == 0,
                "nothing is held once every batch is finished")
        if let got = readBack() { #expect(got == expected) }
    }

    @Test func flusherFileOnAFullDiskRetriesAndResumesWithoutDuplicates() async throws {
        try #require(getuid() == 0, "mounting a small tmpfs needs root")
        let tmp = TempDir("sluice-enospc")
        defer {
            _ = shell("umount '\(tmp.path)/fs' 2>/dev/null")
            tmp.remove()
        }
        let fs = tmp.sub("fs")
        try #require(shell("mount -t tmpfs -o size=256k tmpfs '\(fs)'") == 0)
        // Fill it, so the first writes fail with ENOSPC.
        _ = shell("dd if=/dev/zero of='\(fs)/filler' bs=4k count=100 2>/dev/null")
        let out = fs + "/out.jsonl"
        let o = try FlusherFile.options(from: try ConfigObject.parse(yaml: "FilePath: \(out)\nMaxFileSize: 0\n", file: "t.yaml", fields: FlusherFile.spec.fields), globals: GlobalParameters())
        let f = FlusherFile(options: o, context: testContext(kind: .flusher, type: "flusher_file"))
        let tb = TestBatches()
        let lines = (0..<3000).map { "enospc-line-\($0)" }
        let batches = stride(from: 0, to: 3000, by: 100).enumerated().map { k, i in tb.batch(k, Array(lines[i..<(i + 100)])) }
        let q = BatchQueue(highWatermark: 64 << 20)
        let ctx = testContext(kind: .flusher, type: "flusher_file")
        try? await f.start()
        let task = Task { await FlusherRunner(flusher: f, queue: q, context: ctx).run() }
        for b in batches { q.push(b) }
        q.close()
        #expect(waitUntil(timeout: 10) { ctx.metrics.errors.current >= 2 }, "writes fail while the disk is full")
        #expect(tb.finished < batches.count, "nothing is acknowledged that is not written")
        unlink(fs + "/filler")
        await task.value
        await f.stop()
        for k in batches.indices { #expect(tb.statuses(of: k) == [.delivered]) }
        let got = outputContents(out)
        #expect(got == lines, "every line once, in order (\(got.count) lines)")
        #expect(ctx.metrics.requestsRetried.current >= 2)
    }

    @Test func flusherFileKeepsMaxFilesRotatedFiles() async throws {
        let tmp = TempDir("sluice-maxfiles")
        defer { tmp.remove() }
        let out = tmp.path + "/out.jsonl"
        let o = try FlusherFile.options(from: try ConfigObject.parse(yaml: "FilePath: \(out)\nMaxFileSize: 4096\nMaxFiles: 2\n", file: "t.yaml", fields: FlusherFile.spec.fields), globals: GlobalParameters())
        let f = FlusherFile(options: o, context: testContext(kind: .flusher, type: "flusher_file"))
        let tb = TestBatches()
        let batches = (0..<40).map { i in tb.batch(i, (0..<10).map { "rot-\(i)-\($0)" }) }
        _ = await drive(f, batches)
        #expect(Sys.exists(out) && Sys.exists(out + ".1") && Sys.exists(out + ".2"))
        #expect(!Sys.exists(out + ".3"), "the oldest file beyond MaxFiles is removed")
        let kept = outputContents(out + ".2") + outputContents(out + ".1") + outputContents(out)
        let all = (0..<40).flatMap { i in (0..<10).map { "rot-\(i)-\($0)" } }
        #expect(kept == Array(all.suffix(kept.count)), "the files hold the newest lines, in order")
        for file in [out, out + ".1", out + ".2"] { #expect(fileSize(file) <= 4096) }
    }
}
