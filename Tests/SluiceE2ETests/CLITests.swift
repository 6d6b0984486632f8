import Glibc
import Foundation
import SluiceTesting
import Testing

extension E2E {
    // MARK: 14. validate and version

    /// Runs a sluice command to its end: (exit code, stdout, stderr).
    func runSluice(_ args: [String], in dir: String) throws -> (code: Int32?, out: String, err: String) {
        let p = try SluiceProcess(arguments: args, workDir: dir)
        let code = p.wait(timeout: 20)
        return (code, String(decoding: p.stdout, as: UTF8.self), p.stderr)
    }

    @Test("14. sluice validate: ok → 0; FilePath → exact file:7:5 message, exit 1; unknown type lists known ones; sluice version")
    func validateAndVersion() throws {
        let s = E2EScenario("validate")
        defer { s.cleanup() }
        let dir = s.dir("configs")

        let good = dir + "/good.yaml"
        writeFile(good, Pipelines.fileToFile(paths: ["/var/log/*.log"], output: "/tmp/out.jsonl"))
        let v1 = try runSluice(["validate", good], in: s.root)
        note("validate good: exit \(v1.code.map { "\($0)" } ?? "none"), stdout \(v1.out.trimmingCharacters(in: .whitespacesAndNewlines))")
        #expect(v1.code == 0)
        #expect(v1.out.contains("good.yaml: ok"))

        // The JSON form of a pipeline is accepted too.
        let json = dir + "/json.json"
        writeFile(json, #"{"inputs":[{"Type":"input_file","FilePaths":["/var/log/*.log"]}],"flushers":[{"Type":"flusher_blackhole"}]}"#)
        let vj = try runSluice(["validate", json], in: s.root)
        #expect(vj.code == 0, "JSON pipeline: \(vj.err)")

        // `FilePath` (singular) at line 7, column 5.
        let app = dir + "/app.yaml"
        writeFile(app, """
        # Collect the application's logs.
        # (line 2)
        enable: true
        inputs:
          - Type: input_file
            MaxDirSearchDepth: 2
            FilePath: ["/var/log/app/*.log"]
        flushers:
          - Type: flusher_stdout

        """)
        let v2 = try runSluice(["validate", app], in: s.root)
        let errLines = v2.err.split(separator: "\n").map(String.init)
        note("validate FilePath: exit \(v2.code.map { "\($0)" } ?? "none"), stderr \(errLines)")
        #expect(v2.code == 1)
        #expect(errLines.contains("app.yaml:7:5: inputs[0].FilePath: unknown key (did you mean FilePaths?)"))

        // Unknown plugin types: the message lists the known ones.
        let bad = dir + "/types.yaml"
        writeFile(bad, """
        inputs:
          - Type: input_files
            FilePaths: ["/var/log/*.log"]
        flushers:
          - Type: flusher_kafka_v3

        """)
        let v3 = try runSluice(["validate", bad], in: s.root)
        let typeLines = v3.err.split(separator: "\n").map(String.init)
        note("validate unknown types: exit \(v3.code.map { "\($0)" } ?? "none"), stderr:\n" + typeLines.map { "    " + $0 }.joined(separator: "\n"))
        #expect(v3.code == 1)
        let inputLine = typeLines.first { $0.hasPrefix("types.yaml:2:") } ?? ""
        /// The types listed after "known: " in a message.
        func knownTypes(_ line: String) -> Set<String> {
            guard let r = line.range(of: "known: ") else { return [] }
            let rest = line[r.upperBound...].prefix { $0 != ")" }
            return Set(rest.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        }
        #expect(inputLine.contains("inputs[0].Type") && inputLine.contains("\"input_files\""))
        #expect(inputLine.contains("did you mean input_file?"))
        #expect(knownTypes(inputLine).contains("input_file"), "known input types listed: \(knownTypes(inputLine))")
        let flusherLine = typeLines.first { $0.hasPrefix("types.yaml:5:") } ?? ""
        #expect(flusherLine.contains("flushers[0].Type") && flusherLine.contains("\"flusher_kafka_v3\""))
        #expect(knownTypes(flusherLine).isSuperset(of: ["flusher_blackhole", "flusher_file", "flusher_stdout"]),
                "known flusher types listed: \(knownTypes(flusherLine))")

        // Several files: errors of every file, exit 1; a directory is read too.
        let v4 = try runSluice(["validate", dir], in: s.root)
        #expect(v4.code == 1)
        #expect(v4.out.contains("good.yaml: ok"))
        #expect(v4.err.contains("app.yaml:7:5:") && v4.err.contains("types.yaml:2:"))

        let v5 = try runSluice(["version"], in: s.root)
        note("version: exit \(v5.code.map { "\($0)" } ?? "none"), stdout \(v5.out.trimmingCharacters(in: .whitespacesAndNewlines))")
        #expect(v5.code == 0)
        #expect(v5.out.hasPrefix("sluice "))
        let version = v5.out.dropFirst("sluice ".count).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(version.split(separator: ".").count == 3 && version.split(separator: ".").allSatisfy { Int($0) != nil }, "x.y.z: \(version)")
        let v6 = try runSluice(["--version"], in: s.root)
        #expect(v6.code == 0 && v6.out.contains(version))
    }

    @Test("14b. exit codes as documented: validate 0 / 1 (errors, missing file, empty dir) / 64 (usage); run 64 on a bad flag or environment value")
    func documentedExitCodes() throws {
        let s = E2EScenario("exit-codes")
        defer { s.cleanup() }
        let dir = s.dir("configs")
        writeFile(dir + "/good.yaml", "inputs:\n  - Type: input_file\n    FilePaths: [/tmp/x/*.log]\nflushers:\n  - Type: flusher_stdout\n")
        writeFile(s.root + "/bad.yaml", "inputs: [\n")
        #expect(try runSluice(["validate", dir], in: s.root).code == 0)
        #expect(try runSluice(["validate", s.root + "/bad.yaml"], in: s.root).code == 1)
        #expect(try runSluice(["validate", s.root + "/missing.yaml"], in: s.root).code == 1)
        #expect(try runSluice(["validate", s.dir("empty")], in: s.root).code == 1)
        #expect(try runSluice(["validate", "--no-such-flag", dir], in: s.root).code == 64)
        #expect(try runSluice(["run", "--config-dir", dir, "--drain-timeout", "-1"], in: s.root).code == 64)
        let env = try SluiceProcess(arguments: ["run", "--config-dir", dir], environment: ["mem_usage_limit": "lots"], workDir: s.root)
        #expect(env.wait(timeout: 20) == 64)
        #expect(env.stderr.contains("mem_usage_limit"))
    }
}
