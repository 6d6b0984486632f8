import Glibc
import Foundation
import SluiceTesting
import Testing

/// `input_file`'s `Tags`, `AppendingLogPositionMeta` and `FileOffsetKey` with the real binary:
/// each line's file offset as a field, the inode as a tag, the path tag renamed, through a parser.
extension E2E {
    @Test("AppendingLogPositionMeta and Tags: each line's offset after its content, __inode__, the path tag renamed; kept through a parser")
    func fileOffsetsAndTagKeys() throws {
        let s = E2EScenario("filetags")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let raw = s.path("out/raw.jsonl"), parsed = s.path("out/parsed.jsonl")
        s.writePipeline("raw", Pipelines.fileToFile(paths: [logs + "/a.log"], output: raw,
                                                    inputExtra: ["AppendingLogPositionMeta: true", "Tags: {FilePathTagKey: file}"]))
        s.writePipeline("parsed", Pipelines.fileToFile(paths: [logs + "/a.log"], output: parsed, inputExtra: ["FileOffsetKey: off"])
            .replacingOccurrences(of: "flushers:", with: "processors:\n  - Type: processor_parse_regex_native\n    SourceKey: content\n    Regex: '(\\w+) (\\d+)'\n    Keys: [word, n]\nflushers:"))
        try s.startAndWait(pipelines: 2)
        writeFile(logs + "/a.log", "one 1\nthree 333\n")
        for out in [raw, parsed] { #expect(waitForLines(out, 2)) }
        var st = stat()
        #expect(stat(logs + "/a.log", &st) == 0)

        let rows = readJSONLines(raw)
        #expect(rows.map { $0["__file_offset__"] as? String } == ["0", "6"])
        for r in rows {
            #expect(r["__inode__"] as? String == String(st.st_ino) && r["file"] as? String == logs + "/a.log" && r["__path__"] == nil, "\(r)")
        }
        // The offset follows the content, before the tags, as the incumbent's splitter adds it.
        let text = String(decoding: readFileBytes(raw), as: UTF8.self)
        #expect(text.contains(#""content":"one 1","__file_offset__":"0","#), "\(text)")

        let p = readJSONLines(parsed)
        #expect(p.map { $0["off"] as? String } == ["0", "6"])
        #expect(p.map { $0["word"] as? String } == ["one", "three"] && p.allSatisfy { $0["__inode__"] == nil && $0["content"] == nil })
        #expect(!s.stderr.contains("AppendingLogPositionMeta: has no effect") && !s.stderr.contains("FileOffsetKey: has no effect"))
    }
}
