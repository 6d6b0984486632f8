import Glibc
import Foundation
import SluiceTesting
import Testing

extension E2E {
    // MARK: 12. Hot reload

    @Test("12. hot reload: add B, change B's flusher (no loss/dup), break A (reported, keeps running), delete B (stops)")
    func hotReload() throws {
        let s = E2EScenario("reload")
        defer { s.cleanup() }
        let dirA = s.dir("a"), dirB = s.dir("b")
        let outA = s.path("out/a.jsonl"), outB1 = s.path("out/b1.jsonl"), outB2 = s.path("out/b2.jsonl")
        let pipelineA = Pipelines.fileToFile(paths: [dirA + "/*.log"], output: outA)
        s.writePipeline("pa", pipelineA)
        try s.startAndWait()
        let la = NumberedLines(prefix: "A-", digits: 6, lineLength: 32)
        let lb = NumberedLines(prefix: "B-", digits: 6, lineLength: 32)
        la.write(to: dirA + "/a.log", 0..<100, append: true)
        try #require(waitForLines(outA, 100))

        // Add B.
        let t0 = monotonicSeconds()
        s.writePipeline("pb", Pipelines.fileToFile(paths: [dirB + "/*.log"], output: outB1))
        try #require(s.waitForLog("Input started.", count: 2, timeout: 5), "B started")
        let startB = monotonicSeconds() - t0
        lb.write(to: dirB + "/b.log", 0..<100, append: true)
        try #require(waitForLines(outB1, 100, "B's first output"))

        // Change B's flusher while lines keep coming.
        var changedAt = -1.0
        for i in 100..<700 {
            lb.write(to: dirB + "/b.log", i..<(i + 1), append: true)
            if i == 200 {
                s.writePipeline("pb", Pipelines.fileToFile(paths: [dirB + "/*.log"], output: outB2))
                changedAt = monotonicSeconds()
            }
            sleepMs(5)
        }
        let restarted = s.waitForLog("Pipeline file changed; restarting the pipeline.", timeout: 5)
        let arrivedB = waitUntil(timeout: 15) { countLines(outB1) + countLines(outB2) >= 700 }
        sleepMs(settleMs)
        let b1 = outputContents(outB1), b2 = outputContents(outB2)
        let rB = deliveryReport(expected: lb.contents(0..<700), delivered: b1 + b2)
        note(String(format: "reload: B started %.2f s after its file appeared; flusher changed at line 200 (%.2f s into the appends)", startB, changedAt > 0 ? changedAt - t0 : -1))
        note("reload: B across the flusher change: \(b1.count) lines in the old output, \(b2.count) in the new; \(rB)")
        #expect(restarted)
        #expect(arrivedB)
        #expect(rB.ok, "\(rB)")
        #expect(b2.count > 0, "the new flusher is used")

        // Break A: an unknown key at line 4, column 5.
        let broken = pipelineA.replacingOccurrences(of: "    FilePaths:\n", with: "    Bogus: 1\n    FilePaths:\n")
        #expect(broken.split(separator: "\n", omittingEmptySubsequences: false)[3] == "    Bogus: 1")
        s.writePipeline("pa", broken)
        let reported = s.waitForLog("pa.yaml:4:5: inputs[0].Bogus: unknown key", timeout: 5)
        let errLine = s.stderr.split(separator: "\n").first { $0.contains("pa.yaml:4:5") } ?? "<none>"
        note("reload: broken A reported as: \(errLine)")
        #expect(reported, "the broken file is reported with file:line:column and key path")
        #expect(s.stderr.contains("the previous version keeps running"))
        la.write(to: dirA + "/a.log", 100..<200, append: true)
        let arrivedA = waitForLines(outA, 200, timeout: 10, "A after the breakage")
        sleepMs(500)
        let rA = deliveryReport(expected: la.contents(0..<200), delivered: outputContents(outA))
        note("reload: A while its file is broken: \(rA)")
        #expect(arrivedA)
        #expect(rA.ok, "\(rA)")

        // Delete B: it stops; new lines of B's input no longer arrive.
        s.removePipeline("pb")
        let stopped = s.waitForLog("Pipeline file removed; stopping the pipeline.", timeout: 5)
        sleepMs(500)
        let bBefore = countLines(outB1) + countLines(outB2)
        lb.write(to: dirB + "/b.log", 700..<800, append: true)
        writeFile(dirB + "/b2.log", "B-new-file\n")
        sleepMs(3000)
        let bAfter = countLines(outB1) + countLines(outB2)
        note("reload: after deleting B's file: \(bBefore) → \(bAfter) lines in B's outputs (3 s after new input)")
        #expect(stopped)
        #expect(bAfter == bBefore, "B stopped collecting")
        // A still runs.
        la.write(to: dirA + "/a.log", 200..<210, append: true)
        #expect(waitForLines(outA, 210, timeout: 10, "A after B was removed"))

        // B comes back: it resumes from its checkpoints (the lines written while it was gone
        // arrive, nothing is read twice).
        s.writePipeline("pb", Pipelines.fileToFile(paths: [dirB + "/*.log"], output: outB2))
        let backB = waitUntil(timeout: 10) { countLines(outB1) + countLines(outB2) >= 801 }
        // A pipeline whose file is broken from the start is reported and not started; fixed, it starts.
        let dirC = s.dir("c"), outC = s.path("out/c.jsonl")
        writeFile(dirC + "/c.log", "C-0\n")
        s.writePipeline("pc", "inputs:\n  - Type: input_file\n    FilePaths: [\(quoted(dirC + "/*.log"))]\nflushers:\n  - Type: flusher_fil\n    FilePath: \(quoted(outC))\n")
        let reportedC = s.waitForLog("pc.yaml:5:11: flushers[0].Type: unknown flusher type", timeout: 5)
        let notStarted = s.stderr.contains("the pipeline is not started")
        s.writePipeline("pc", Pipelines.fileToFile(paths: [dirC + "/*.log"], output: outC))
        let startedC = waitForLines(outC, 1, timeout: 10, "C after the fix")
        sleepMs(settleMs)
        let rB2 = deliveryReport(expected: lb.contents(0..<800) + ["B-new-file"], delivered: outputContents(outB1) + outputContents(outB2))
        note("reload: B re-added: \(rB2); C broken at first reported: \(reportedC), not started: \(notStarted), started once fixed: \(startedC)")
        #expect(backB)
        #expect(rB2.ok, "\(rB2)")
        #expect(reportedC && notStarted)
        #expect(startedC)
        #expect(outputContents(outC) == ["C-0"])
        #expect(s.process?.stop() == 0)
    }
}
