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

    @Test("input_container_stdio Tags and AppendingLogPositionMeta, serverless (a static container file): container tags renamed or left out, each record's offset")
    func containerTagKeysAndOffsets() throws {
        let s = E2EScenario("stdiotags")
        defer { s.cleanup() }
        let log = s.dir("pods/shop_web-1_uid-1/app") + "/0.log"
        writeFile(log, "")
        let info = s.path("containers.json")
        writeFile(info, """
        [{"ID": "c0ffee01", "Name": "/k8s_app_web-1_shop_uid-1_0", "IP": "10.0.0.7", "Image": "registry/web:1.0",
          "LogPath": "\(log)", "LogType": "containerd",
          "Labels": {"io.kubernetes.pod.name": "web-1", "io.kubernetes.pod.namespace": "shop",
                     "io.kubernetes.pod.uid": "uid-1", "io.kubernetes.container.name": "app"},
          "State": {"Status": "running", "Pid": 1}}]
        """)
        let out = s.path("out/stdio.jsonl")
        s.writePipeline("stdio", """
        enable: true
        inputs:
          - Type: input_container_stdio
            AppendingLogPositionMeta: true
            Tags: {K8sNamespaceTagKey: ns, ContainerIpTagKey: '', FilePathTagKey: log_path}
        flushers:
          - Type: flusher_file
            FilePath: \(out)
        """)
        try s.startAndWait(pipelines: 1, extraArguments: ["--static-container-info", info])
        let first = "2024-05-01T00:00:00.000000001Z stdout P part one "
        let second = "2024-05-01T00:00:00.000000002Z stdout F and two"
        let third = "2024-05-01T00:00:00.000000003Z stderr F alone"
        appendFile(log, Array([first, second, third].map { $0 + "\n" }.joined().utf8))
        #expect(waitForLines(out, 2))
        let rows = readJSONLines(out)
        let byContent = Dictionary(rows.map { (($0["content"] as? String) ?? "", $0) }, uniquingKeysWith: { a, _ in a })
        #expect(byContent["part one and two"]?["__file_offset__"] as? String == "0", "\(rows)")
        #expect(byContent["alone"]?["__file_offset__"] as? String == String(first.utf8.count + second.utf8.count + 2), "\(rows)")
        for r in rows {
            #expect(r["ns"] as? String == "shop" && r["_namespace_"] == nil && r["_container_ip_"] == nil, "\(r)")
            #expect(r["_pod_name_"] as? String == "web-1" && r["__inode__"] != nil && r["log_path"] as? String == log, "\(r)")
        }
    }
}
