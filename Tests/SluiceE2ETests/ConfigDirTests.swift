import Glibc
import Foundation
import SluiceTesting
import Testing

extension E2E {
    // MARK: 18. The config directory

    @Test("18a. a pipeline file with an upper-case extension (app.YAML) is started once and keeps running")
    func upperCaseExtension() throws {
        let s = E2EScenario("upper")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let out = s.path("out/out.jsonl")
        s.writePipeline("app", Pipelines.fileToFile(paths: [logs + "/*.log"], output: out), ext: "YAML")
        try s.startAndWait()
        writeFile(logs + "/a.log", "upper-1\n")
        #expect(waitForLines(out, 1))
        // A reconcile that mistook the name would stop and start the pipeline again and again.
        sleepMs(3000)
        writeFile(logs + "/a.log", "upper-2\n", append: true)
        #expect(waitForLines(out, 2))
        let starts = occurrences(of: "Pipeline started.", in: s.stderr)
        note("upper-case extension: \(starts) \"Pipeline started.\" in 3 s")
        #expect(starts == 1)
        #expect(occurrences(of: "stopping the pipeline", in: s.stderr) == 0)
        #expect(outputContents(out) == ["upper-1", "upper-2"])
        #expect(s.process?.stop() == 0)
    }

    @Test("18b. a new pipeline file is started within a second (inotify on the config dir, not the 10 s fallback read)")
    func newPipelineFileIsSeenAtOnce() throws {
        let s = E2EScenario("cfgwatch")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        s.writePipeline("a", Pipelines.fileToFile(paths: [logs + "/a*.log"], output: s.path("out/a.jsonl")))
        try s.startAndWait()
        let t0 = monotonicSeconds()
        s.writePipeline("b", Pipelines.fileToFile(paths: [logs + "/b*.log"], output: s.path("out/b.jsonl")))
        let started = waitUntil(timeout: 5, pollMs: 5) { occurrences(of: "Pipeline started.", in: s.stderr) >= 2 }
        let ms = (monotonicSeconds() - t0) * 1000
        note(String(format: "config dir watch: new pipeline started %.0f ms after its file was written", ms))
        #expect(started)
        #expect(ms < 1000)
        s.removePipeline("b")
        #expect(s.waitForLog("Pipeline file removed; stopping the pipeline.", timeout: 2))
        #expect(s.process?.stop() == 0)
    }

    @Test("18c. an unreadable config dir or pipeline file (sluice as nobody) is reported; the running pipelines keep running")
    func unreadableConfigKeepsPipelines() throws {
        let s = E2EScenario("cfgperm")
        defer {
            AsNobody.restorePermissions(s)
            s.cleanup()
        }
        let nobody = try AsNobody(s)
        let outDir = nobody.outDir
        let logs = s.dir("logs")
        chmod(logs, 0o755)
        writeFile(logs + "/a.log", "")
        chmod(logs + "/a.log", 0o644)
        let out = outDir + "/out.jsonl"
        s.writePipeline("keep", Pipelines.fileToFile(paths: [logs + "/*.log"], output: out))
        chmod(s.configDir + "/keep.yaml", 0o644)
        try s.startAndWait(commandPrefix: AsNobody.prefix, binary: nobody.binary)

        // The directory becomes unreadable: reported, the pipeline goes on.
        chmod(s.configDir, 0)
        #expect(s.waitForLog("The config directory cannot be read; the running pipelines are kept.", timeout: 15))
        appendFile(logs + "/a.log", "while-dir-unreadable\n")
        #expect(waitForLines(out, 1))
        chmod(s.configDir, 0o755)
        #expect(s.waitForLog("The config directory can be read again.", timeout: 15))

        // The pipeline file becomes unreadable: reported, the running version kept.
        chmod(s.configDir + "/keep.yaml", 0)
        #expect(s.waitForLog("A pipeline file cannot be read; the running version is kept.", timeout: 15))
        appendFile(logs + "/a.log", "while-file-unreadable\n")
        #expect(waitForLines(out, 2))
        #expect(occurrences(of: "stopping the pipeline", in: s.stderr) == 0)
        #expect(occurrences(of: "Pipeline started.", in: s.stderr) == 1)
        #expect(outputContents(out) == ["while-dir-unreadable", "while-file-unreadable"])
        #expect(s.process?.stop() == 0)
    }

    @Test("18d. --config FILE alone (no --config-dir) runs that pipeline; SIGINT stops it with exit 0 and a restart goes on from the checkpoint")
    func configFileAndSIGINT() throws {
        let s = E2EScenario("cfgfile")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let out = s.path("out/out.jsonl")
        let file = s.root + "/extra.yaml"
        writeFile(file, Pipelines.fileToFile(paths: [logs + "/*.log"], output: out))
        let args = ["run", "--config", file, "--data-dir", s.dataDir, "--hostname", s.hostname]
        var p = try SluiceProcess(arguments: args, workDir: s.root)
        #expect(waitUntil(timeout: 15) { occurrences(of: "Input started.", in: p.stderr) >= 1 })
        writeFile(logs + "/a.log", "one\ntwo\n")
        #expect(waitForLines(out, 2))
        p.signal(SIGINT)
        #expect(p.wait(timeout: 30) == 0)
        appendFile(logs + "/a.log", "three\n")
        p = try SluiceProcess(arguments: args, workDir: s.root)
        #expect(waitForLines(out, 3))
        sleepMs(500)
        #expect(outputContents(out) == ["one", "two", "three"])
        p.signal(SIGINT)
        #expect(p.wait(timeout: 30) == 0)
    }

    @Test("18e. sluice explain --json: plain paths, discoveredAt as wall-clock time; an unreadable config dir is an error")
    func explainJSON() throws {
        let s = E2EScenario("explainjson")
        defer { s.cleanup() }
        let podLogs = s.dir("pods/ns1_pod-a_0123-uid/app")
        writeFile(podLogs + "/0.log", "")
        s.writePipeline("stdio", "inputs:\n  - Type: input_container_stdio\nflushers:\n  - Type: flusher_stdout\n")
        let p = try SluiceProcess(arguments: ["explain", "--json", "--config-dir", s.configDir, "--pod-log-dir", s.root + "/pods",
                                              "--docker-host", "unix://" + s.root + "/no.sock", "--cri-socket", s.root + "/no-cri.sock",
                                              "--host-root", "/"], workDir: s.root)
        #expect(p.wait(timeout: 30) == 0)
        let text = String(decoding: readFileBytes(p.stdoutPath), as: UTF8.self)
        note("explain --json: \(text.prefix(600))")
        #expect(!text.contains("\\/"), "paths are written plainly")
        #expect(text.contains(s.configDir + "/stdio.yaml"))
        let obj = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        let containers = obj?["containers"] as? [[String: Any]] ?? []
        #expect(!containers.isEmpty, "the pod log dir's container is listed")
        let at = containers.first?["discoveredAt"] as? String
        let year = Calendar(identifier: .gregorian).component(.year, from: Date())
        #expect(at?.hasPrefix("\(year)-") == true, "discoveredAt \(at ?? "nil") is a wall-clock time")

        let bad = try SluiceProcess(arguments: ["explain", "--json", "--config-dir", s.root + "/missing",
                                                "--docker-host", "unix://" + s.root + "/no.sock", "--cri-socket", s.root + "/no-cri.sock"], workDir: s.root)
        #expect(bad.wait(timeout: 30) != 0)
        #expect(bad.stderr.contains("cannot read the config directory"))
    }

    @Test("18f. sluice explain: each pipeline's files with their acknowledged positions and sizes, read without writing")
    func explainPositions() throws {
        let s = E2EScenario("explainpositions")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        s.writePipeline("app", Pipelines.fileToFile(paths: [logs + "/*.log"], output: s.root + "/out.jsonl"))
        appendFile(logs + "/a.log", "one\ntwo\n")
        appendFile(logs + "/b.log", "three\n")
        let p = try s.start()
        #expect(waitForLines(s.root + "/out.jsonl", 3))
        #expect(p.stop() == 0)
        appendFile(logs + "/a.log", "four\n")
        unlink(logs + "/b.log")
        func explain(_ dataDir: String) throws -> [[String: Any]] {
            let e = try SluiceProcess(arguments: ["explain", "--json", "--config-dir", s.configDir, "--data-dir", dataDir, "--wait", "0.2",
                                                  "--pod-log-dir", s.root + "/pods", "--docker-host", "unix://" + s.root + "/no.sock",
                                                  "--cri-socket", s.root + "/no-cri.sock"], workDir: s.root)
            #expect(e.wait(timeout: 30) == 0)
            let obj = try JSONSerialization.jsonObject(with: Data(readFileBytes(e.stdoutPath))) as? [String: Any]
            return obj?["positions"] as? [[String: Any]] ?? []
        }
        let positions = try explain(s.dataDir)
        #expect(positions.count == 1)
        #expect(positions.first?["patterns"] as? [String] == [logs + "/*.log"])
        let files = positions.first?["files"] as? [[String: Any]] ?? []
        let a = files.first { $0["path"] as? String == logs + "/a.log" }
        #expect(statValue(a ?? [:], "position") == 8 && statValue(a ?? [:], "size") == 13)
        #expect(a?["state"] as? String == "5 bytes not delivered yet")
        let b = files.first { $0["path"] as? String == logs + "/b.log" }
        #expect(statValue(b ?? [:], "position") == 6 && b?["size"] == nil)
        #expect((b?["state"] as? String)?.hasPrefix("gone") == true)
        // Read-only: a data dir without checkpoints stays empty.
        let empty = s.dir("empty-data")
        #expect((try explain(empty).first?["files"] as? [Any])?.isEmpty == true)
        #expect((try? FileManager.default.contentsOfDirectory(atPath: empty))?.isEmpty == true, "explain wrote into the data dir")
    }
}
