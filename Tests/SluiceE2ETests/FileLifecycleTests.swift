import Glibc
import Foundation
import SluiceTesting
import Testing

/// Rotation, copytruncate, truncation, deletion and TailSizeKB, against the real binary.
extension E2E {
    // MARK: 1. Rename rotation

    @Test("1a. rename rotation, rotated name not matched (*.log): every line exactly once")
    func renameRotationUnmatched() throws {
        try renameRotation(pattern: "*.log", label: "rot-unmatched")
    }

    @Test("1b. rename rotation, rotated name matched (app.log*): every line exactly once")
    func renameRotationMatched() throws {
        try renameRotation(pattern: "app.log*", label: "rot-matched")
    }

    func renameRotation(pattern: String, label: String) throws {
        let s = E2EScenario(label)
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let out = s.path("out/out.jsonl")
        s.writePipeline("rot", Pipelines.fileToFile(paths: [logs + "/" + pattern], output: out))
        try s.startAndWait()

        let app = logs + "/app.log"
        let lines = NumberedLines(prefix: "rot-", digits: 6, lineLength: 48)
        var expected: [String] = []
        func put(_ path: String, _ r: Range<Int>) {
            appendFile(path, lines.bytes(r))
            expected += lines.contents(r)
        }
        put(app, 0..<1000)
        try #require(waitForLines(out, 1000))

        // Lines written just before the rename must still be read from the old file.
        put(app, 1000..<1500)
        #expect(rename(app, app + ".1") == 0)
        // The application still writes a little through its old descriptor...
        put(app + ".1", 1500..<1600)
        // ...then reopens app.log.
        put(app, 1600..<2600)
        sleepMs(300)
        // A second rotation, logrotate style: .1 → .2, app.log → .1, new app.log.
        #expect(rename(app + ".1", app + ".2") == 0)
        #expect(rename(app, app + ".1") == 0)
        put(app + ".1", 2600..<2700)
        put(app, 2700..<3000)

        let arrived = waitForLines(out, expected.count)
        sleepMs(settleMs)
        let records = outputRecords(out)
        let r = deliveryReport(expected: expected, delivered: records.map(\.content))
        note("\(label) (pattern \(pattern)): \(r); rotations counted \(statValue(readStats(s.statsFile), "rotations") ?? -1)")
        #expect(arrived)
        #expect(r.ok, "\(r)")
        // Lines of the last app.log carry its path.
        let lastPaths = Set(records.filter { $0.content >= lines.content(2700) }.map(\.path))
        #expect(lastPaths == [app], "paths of the newest file's lines: \(lastPaths)")
        #expect(s.process?.stop() == 0)
    }

    @Test("1c. stats: rotations by rename are counted")
    func rotationsAreCounted() throws {
        let s = E2EScenario("rot-count")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let out = s.path("out/out.jsonl")
        s.writePipeline("rot", Pipelines.fileToFile(paths: [logs + "/*.log"], output: out))
        try s.startAndWait()
        let app = logs + "/app.log"
        appendFile(app, "before rotation\n")
        try #require(waitForLines(out, 1))
        #expect(rename(app, app + ".1") == 0)
        appendFile(app, "after rotation\n")
        try #require(waitForLines(out, 2))
        sleepMs(400)   // two stats intervals
        let rotations = statValue(readStats(s.statsFile), "rotations") ?? -1
        note("rotation counter after one rename rotation seen by inotify: \(rotations)")
        #expect(rotations == 1, "stats rotations after one rename rotation")
        #expect(s.process?.stop() == 0)
    }

    @Test("1d. rename rotation of an idle file whose descriptor was closed: the last lines before and after the rename arrive")
    func renameRotationOfIdleFile() throws {
        let s = E2EScenario("rot-idle")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let out = s.path("out/out.jsonl")
        s.writePipeline("rot", Pipelines.fileToFile(paths: [logs + "/*.log"], output: out,
                                                    inputExtra: ["CloseUnusedReaderIntervalSec: 1"]))
        try s.startAndWait()
        let app = logs + "/app.log"
        appendFile(app, "idle-0\n")
        try #require(waitForLines(out, 1))
        sleepMs(2500)   // idle: the descriptor is closed after CloseUnusedReaderIntervalSec
        // A last line, the rename, a line through the application's old descriptor, the new file.
        let fd = open(app, O_WRONLY | O_APPEND)
        try #require(fd >= 0)
        _ = "idle-1\n".withCString { write(fd, $0, 7) }
        #expect(rename(app, app + ".1") == 0)
        _ = "idle-2\n".withCString { write(fd, $0, 7) }
        close(fd)
        appendFile(app, "idle-3\n")
        let arrived = waitForLines(out, 4, timeout: 4)
        sleepMs(settleMs)
        let r = deliveryReport(expected: ["idle-0", "idle-1", "idle-2", "idle-3"], delivered: outputContents(out))
        note("rotation of an idle (closed) file: \(r)")
        #expect(arrived)
        #expect(r.ok, "\(r)")
        #expect(s.process?.stop() == 0)
    }

    // MARK: 2. copytruncate

    @Test("2a. copytruncate, copy not matched (*.log): nothing duplicated, nothing lost")
    func copyTruncateUnmatched() throws {
        try copyTruncate(pattern: "*.log", label: "ct-unmatched")
    }

    @Test("2b. copytruncate, copy matched (app.log*): the copy is not read again")
    func copyTruncateMatched() throws {
        try copyTruncate(pattern: "app.log*", label: "ct-matched")
    }

    func copyTruncate(pattern: String, label: String) throws {
        let s = E2EScenario(label)
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let out = s.path("out/out.jsonl")
        s.writePipeline("ct", Pipelines.fileToFile(paths: [logs + "/" + pattern], output: out))
        try s.startAndWait()

        let app = logs + "/app.log"
        let lines = NumberedLines(prefix: "ct-", digits: 6, lineLength: 40)
        var expected: [String] = []
        func put(_ r: Range<Int>) {
            appendFile(app, lines.bytes(r))
            expected += lines.contents(r)
        }
        // 8 KiB before the rotation (more than the 1 KiB signature).
        put(0..<200)
        try #require(waitForLines(out, 200))
        #expect(shell("cp '\(app)' '\(app).1' && truncate -s0 '\(app)'") == 0)
        put(200..<250)   // shorter than before: size < offset
        sleepMs(500)
        put(250..<600)   // now longer than before the truncation
        let arrived = waitForLines(out, expected.count)
        sleepMs(settleMs)
        // A second copytruncate cycle, logrotate style (.1 → .2 first).
        // This time the copy is written in two steps, as a copy of a large file is: sluice may well
        // see the copy before its first KiB is there.
        #expect(shell("mv '\(app).1' '\(app).2' && { head -c 100 '\(app)'; sleep 0.3; tail -c +101 '\(app)'; } > '\(app).1' && truncate -s0 '\(app)'") == 0)
        put(600..<700)
        let arrived2 = waitForLines(out, expected.count)
        sleepMs(settleMs)
        let r = deliveryReport(expected: expected, delivered: outputContents(out))
        let st = readStats(s.statsFile)
        note("\(label) (pattern \(pattern)): \(r); truncations \(statValue(st, "truncations") ?? -1)")
        #expect(arrived && arrived2)
        #expect(r.ok, "\(r)")
        #expect(s.process?.stop() == 0)
    }

    // MARK: 3. Truncation and rewrite

    @Test("3. truncation to 0 and rewrite with other content: read again from 0, nothing duplicated")
    func truncateAndRewrite() throws {
        let s = E2EScenario("trunc")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let out = s.path("out/out.jsonl")
        s.writePipeline("tr", Pipelines.fileToFile(paths: [logs + "/*.log"], output: out))
        try s.startAndWait()
        let app = logs + "/app.log"
        let old = NumberedLines(prefix: "old-", digits: 5, lineLength: 40)
        let new = NumberedLines(prefix: "new-", digits: 5, lineLength: 40)
        let newer = NumberedLines(prefix: "newer-", digits: 5, lineLength: 40)

        writeFile(app, old.bytes(0..<100))              // 4000 bytes
        try #require(waitForLines(out, 100))
        writeFile(app, new.bytes(0..<30))               // O_TRUNC, then 1200 bytes: shorter
        let a1 = waitForLines(out, 130)
        writeFile(app, newer.bytes(0..<300))            // O_TRUNC, then 12000 bytes: longer than before
        let a2 = waitForLines(out, 430)
        // Truncate in place (no O_TRUNC open), then append a little.
        #expect(shell("truncate -s0 '\(app)'") == 0)
        sleepMs(300)
        appendFile(app, new.bytes(1000..<1010))
        let a3 = waitForLines(out, 440)
        sleepMs(settleMs)
        let expected = old.contents(0..<100) + new.contents(0..<30) + newer.contents(0..<300) + new.contents(1000..<1010)
        let r = deliveryReport(expected: expected, delivered: outputContents(out))
        note("truncate+rewrite: \(r); truncations \(statValue(readStats(s.statsFile), "truncations") ?? -1)")
        #expect(a1 && a2 && a3)
        #expect(r.ok, "\(r)")
        #expect(s.process?.stop() == 0)
    }

    // MARK: 4. Deletion while open

    @Test("4. deleted while open: lines appended just before rm (and after, through an open fd) arrive")
    func deletionWhileOpen() throws {
        let s = E2EScenario("delete")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let out = s.path("out/out.jsonl")
        s.writePipeline("del", Pipelines.fileToFile(paths: [logs + "/*.log"], output: out))
        try s.startAndWait()

        // a) Written, read, then a large append and rm right away.
        let a = logs + "/a.log"
        let la = NumberedLines(prefix: "del-a-", digits: 6, lineLength: 48)
        appendFile(a, la.bytes(0..<100))
        try #require(waitForLines(out, 100))
        appendFile(a, la.bytes(100..<5000))   // ~235 KiB
        #expect(unlink(a) == 0)

        // b) A helper shell appends, deletes, and keeps writing through its descriptor.
        let b = logs + "/b.log"
        appendFile(b, "del-b-start\n")
        try #require(waitForLines(out, 5001))
        let script = """
        exec 3>>'\(b)'
        i=0; while [ $i -lt 300 ]; do echo "del-b-$i" >&3; i=$((i+1)); done
        rm '\(b)'
        while [ $i -lt 600 ]; do echo "del-b-$i" >&3; i=$((i+1)); done
        sleep 0.5
        while [ $i -lt 700 ]; do echo "del-b-$i" >&3; i=$((i+1)); done
        exec 3>&-
        """
        #expect(shell("sh -c \(shellQuote(script))") == 0)

        let expected = la.contents(0..<5000) + ["del-b-start"] + (0..<700).map { "del-b-\($0)" }
        let arrived = waitForLines(out, expected.count, timeout: 15)
        sleepMs(settleMs)
        let r = deliveryReport(expected: expected, delivered: outputContents(out))
        note("deletion while open: \(r)")
        #expect(arrived)
        #expect(r.ok, "\(r)")
        #expect(s.process?.stop() == 0)
    }

    // MARK: 16. Unterminated last line

    @Test("16. an unterminated last line is emitted after FlushTimeoutSecs, once; what follows arrives too")
    func unterminatedLastLine() throws {
        let s = E2EScenario("partial")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let out = s.path("out/out.jsonl")
        s.writePipeline("partial", Pipelines.fileToFile(paths: [logs + "/*.log"], output: out, flushTimeoutSecs: 1))
        try s.startAndWait()
        let app = logs + "/app.log"
        let t0 = monotonicSeconds()
        appendFile(app, "complete-1\npartial-start")
        try #require(waitForLines(out, 1))
        let flushed = waitForLines(out, 2, timeout: 5)
        let flushS = monotonicSeconds() - t0
        appendFile(app, "-end\ncomplete-2\n")
        let rest = waitForLines(out, 4, timeout: 5)
        sleepMs(settleMs)
        let got = outputContents(out)
        note(String(format: "unterminated line: emitted after %.2f s (FlushTimeoutSecs 1); output %@", flushS, got.description))
        #expect(flushed && flushS < 3)
        #expect(rest)
        #expect(got == ["complete-1", "partial-start", "-end", "complete-2"])
        #expect(s.process?.stop() == 0)
    }

    // MARK: 15. TailSizeKB

    @Test("15. TailSizeKB 1024: a 3 MiB file existing at start yields its last 1 MiB; a new file is read whole")
    func tailSizeKB() throws {
        let s = E2EScenario("tail")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let out = s.path("out/out.jsonl")
        // Lines of varying length, so that the 1 MiB boundary falls inside a line.
        var text: [UInt8] = []
        var starts: [(offset: Int, content: String)] = []
        var i = 0
        while text.count < 3 << 20 {
            let content = "tail-\(i) " + String(repeating: "x", count: 17 + (i * 7) % 60)
            starts.append((text.count, content))
            text += Array(content.utf8) + [0x0A]
            i += 1
        }
        let old = logs + "/old.log"
        writeFile(old, text)
        let cut = text.count - 1024 * 1024
        let expectedOld = starts.filter { $0.offset >= cut }.map(\.content)
        note("TailSizeKB: old file \(text.count) bytes, \(starts.count) lines, cut at \(cut) (inside a line: \(text[cut - 1] != 0x0A)), \(expectedOld.count) lines expected")

        s.writePipeline("tail", Pipelines.fileToFile(paths: [logs + "/*.log"], output: out, tailSizeKB: 1024))
        try s.startAndWait()
        let gotOld = waitForLines(out, expectedOld.count)
        // A file created while running: read from 0, whatever its size.
        let newer = logs + "/new.log"
        let nl = NumberedLines(prefix: "tail-new-", digits: 6, lineLength: 64)
        nl.write(to: newer, 0..<40_000, append: false)   // 2.5 MiB
        let expected = expectedOld + nl.contents(0..<40_000)
        let gotAll = waitForLines(out, expected.count)
        sleepMs(settleMs)
        let r = deliveryReport(expected: expected, delivered: outputContents(out))
        note("TailSizeKB: \(r)")
        #expect(gotOld && gotAll)
        #expect(r.ok, "\(r)")
        #expect(s.process?.stop() == 0)
    }
}

/// Single-quotes `s` for sh.
func shellQuote(_ s: String) -> String {
    "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
