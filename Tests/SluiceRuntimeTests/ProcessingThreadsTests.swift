import Foundation
import Glibc
import SluiceConfig
import SluiceRuntime
import SluiceTesting
import Testing

/// `process_thread_count` above 1: processors on several threads, each file's lines still in
/// order and once, and its checkpoint exact (a restart reads only what was appended).
@Suite(.serialized) struct ProcessingThreadsTests {
    func pipeline(_ logs: String, _ out: String) -> String {
        """
        inputs:
          - Type: input_file
            FilePaths: [\(quoted(logs + "/*.log"))]
        processors:
          - Type: processor_parse_regex_native
            SourceKey: content
            Regex: '(\\w+)-(\\d+) .*'
            Keys: [file, n]
        flushers:
          - Type: flusher_file
            FilePath: \(quoted(out))
        """
    }

    /// Per file, the numbers of its parsed lines in output order.
    func numbersByFile(_ out: String) -> [String: [Int]] {
        var by: [String: [Int]] = [:]
        for e in readJSONLines(out) {
            guard let f = e["file"] as? String, let n = (e["n"] as? String).flatMap({ Int($0) }) else {
                by["<unparsed>", default: []].append(-1)
                continue
            }
            by[f, default: []].append(n)
        }
        return by
    }

    @Test func fourThreadsKeepEachFilesOrderAndCheckpoint() async throws {
        let tmp = TempDir("sluice-proc-threads")
        defer { tmp.remove() }
        let logs = tmp.sub("logs"), out = tmp.sub("out") + "/out.jsonl"
        // Each file stays under 1 MiB: a file found bigger at the first scan is read from its last MiB.
        let files = 8, perFile = 10_000
        var h = InProcessPipeline(dataDir: tmp.sub("data"))
        h.globals.processThreadCount = 4
        // Small reads: each file comes in dozens of batches, so a thread that took a later batch
        // of a file before an earlier one was done would show.
        h.globals.maxReadBufferSize = 8192
        try await h.start(yaml: pipeline(logs, out))
        // Each file's first line alone: it is read while the file is shorter than its signature
        // (1 KiB), whose hash changes as it grows; the file's later batches must still follow it.
        let line = { (f: Int, n: Int) in "f\(f)-\(n) \(String(repeating: "x", count: 60))\n" }
        for f in 0..<files { appendFile(logs + "/f\(f).log", line(f, 0)) }
        #expect(await eventually(30) { countLines(out) >= files })
        // Then every file written in chunks, interleaved, so batches of all of them are in flight at once.
        for chunk in 0..<10 {
            for f in 0..<files {
                var text = ""
                for n in max(1, chunk * perFile / 10)..<((chunk + 1) * perFile / 10) { text += line(f, n) }
                appendFile(logs + "/f\(f).log", text)
            }
        }
        #expect(await eventually(60) { countLines(out) >= files * perFile })
        await h.stop()
        let by = numbersByFile(out)
        #expect(by["<unparsed>"] == nil)
        for f in 0..<files {
            let got = by["f\(f)"] ?? []
            let inOrder = got == Array(0..<perFile)
            #expect(inOrder, "f\(f): every line once, in order (\(got.count) lines, first out of place at \(got.indices.first { got[$0] != $0 }.map(String.init) ?? "-"))")
        }

        // The checkpoints are exact: after a restart only what is appended is read.
        h = InProcessPipeline(dataDir: tmp.path + "/data")
        h.globals.processThreadCount = 4
        try await h.start(yaml: pipeline(logs, out))
        for f in 0..<files { appendFile(logs + "/f\(f).log", "f\(f)-\(perFile) tail\n") }
        #expect(await eventually(20) { countLines(out) >= files * (perFile + 1) })
        try await Task.sleep(for: .milliseconds(300))
        await h.stop()
        let again = numbersByFile(out)
        for f in 0..<files {
            let got = again["f\(f)"] ?? []
            let once = got == Array(0...perFile)
            #expect(once, "f\(f): nothing read twice after the restart (\(got.count) lines)")
        }
    }
}
