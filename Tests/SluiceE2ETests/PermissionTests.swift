import Glibc
import Foundation
import SluiceTesting
import Testing

extension E2E {
    // MARK: 9. Unreadable files and directories

    /// Runs sluice as nobody (root ignores permissions). The binary is copied into the scenario so
    /// that nobody can execute it wherever the build lives.
    @Test("9. unreadable file and directory (sluice as nobody): warning, keeps running, reads them once readable")
    func unreadableFilesAndDirectories() throws {
        let s = E2EScenario("perm")
        defer {
            AsNobody.restorePermissions(s)
            s.cleanup()
        }
        let nobody = try AsNobody(s)
        let outDir = nobody.outDir
        let out = outDir + "/out.jsonl"
        let logs = s.dir("logs")
        let sub = s.dir("logs/sub")
        writeFile(logs + "/a.log", "perm-a-0\nperm-a-1\n")
        writeFile(logs + "/b.log", "perm-b-0\nperm-b-1\n")
        writeFile(sub + "/c.log", "perm-c-0\nperm-c-1\n")
        chmod(logs + "/b.log", 0)
        chmod(sub, 0)

        s.writePipeline("perm", Pipelines.fileToFile(paths: [logs + "/**/*.log"], output: out, maxDirSearchDepth: 1))
        let p = try s.startAndWait(commandPrefix: AsNobody.prefix, binary: nobody.binary)
        let uid = procStatusField(pid: p.pid, "Uid") ?? "?"
        note("perm: sluice runs with Uid \(uid)")
        #expect(uid.hasPrefix("65534"))

        let gotA = waitForLines(out, 2)
        let warned = waitUntil(timeout: 5) {
            occurrences(of: "Permission denied", in: s.stderr) >= 2
        }
        let warnLines = s.stderr.split(separator: "\n").filter { $0.contains("Permission denied") }
        note("perm: warnings:\n" + warnLines.map { "    " + $0 }.joined(separator: "\n"))
        #expect(gotA)
        #expect(warned, "a permission-denied warning for the file and for the directory")
        #expect(warnLines.contains { $0.contains("b.log") }, "warning names b.log")
        #expect(warnLines.contains { $0.contains("/sub") && !$0.contains("c.log") }, "warning names the directory")
        sleepMs(500)
        #expect(p.isRunning)
        #expect(Set(outputContents(out)) == ["perm-a-0", "perm-a-1"])

        // Readable again: the lines arrive (from rescans or events), and collection continues.
        let t0 = monotonicSeconds()
        chmod(logs + "/b.log", 0o644)
        chmod(sub, 0o755)
        appendFile(logs + "/a.log", "perm-a-2\n")
        var tB = -1.0, tC = -1.0
        let gotAll = waitUntil(timeout: 20) {
            let c = outputContents(out)
            if tB < 0 && c.contains("perm-b-1") { tB = monotonicSeconds() - t0 }
            if tC < 0 && c.contains("perm-c-1") { tC = monotonicSeconds() - t0 }
            return c.count >= 7
        }
        sleepMs(settleMs)
        let r = deliveryReport(expected: ["perm-a-0", "perm-a-1", "perm-a-2", "perm-b-0", "perm-b-1", "perm-c-0", "perm-c-1"],
                               delivered: outputContents(out))
        note(String(format: "perm: after chmod, the file's lines arrived after %.2f s, the directory's after %.2f s", tB, tC))
        note("perm: \(r)")
        #expect(gotAll)
        #expect(r.ok, "\(r)")
        #expect(p.stop() == 0)
    }
}
