import Glibc
import Foundation
import SluiceTesting
import Testing

/// `PathTagsRegex` with the real binary: Jobs that write to a shared volume under
/// `SubPathExpr: logs/$(POD_NAMESPACE)_$(POD_NAME)_$(POD_IP)_$(NODE_IP)_$(NODE_NAME)` (seed 003's
/// "independent storage") get the tags of a discovered container from the path.
extension E2E {
    @Test("PathTagsRegex: files under the SubPathExpr layout carry _namespace_, _pod_name_, _pod_ip_, _node_ip_, _node_name_")
    func pathTagsFromTheSubPathLayout() throws {
        let s = E2EScenario("pathtags")
        defer { s.cleanup() }
        let shared = s.dir("shared")
        let out = s.path("out/out.jsonl")
        let regex = #"/logs/(?<_namespace_>[^_/]+)_(?<_pod_name_>[^_/]+)_(?<_pod_ip_>[^_/]+)_(?<_node_ip_>[^_/]+)_(?<_node_name_>[^/]+)/"#
        s.writePipeline("jobs", Pipelines.fileToFile(paths: [shared + "/logs/**/*.log"], output: out, maxDirSearchDepth: 3,
                                                     inputExtra: ["PathTagsRegex: '\(regex)'"]))
        try s.startAndWait()

        // Three Jobs appear while sluice runs, each writing into its own directory, plus one file
        // outside the layout.
        let jobs = [("default", "pi-job-1-abcde", "10.244.1.17", "192.168.49.2", "minikube"),
                    ("batch", "etl-28475-zzq8x", "10.244.2.5", "192.168.49.3", "worker-2"),
                    ("default", "pi-job-2-fghij", "10.244.1.18", "192.168.49.2", "minikube")]
        var expected: [String: (String, String, String, String, String)] = [:]
        for (i, j) in jobs.enumerated() {
            let dir = s.dir("shared/logs/\(j.0)_\(j.1)_\(j.2)_\(j.3)_\(j.4)/nginx")
            var text = ""
            for n in 0..<50 {
                let line = "job\(i)-line\(n)"
                expected[line] = j
                text += line + "\n"
            }
            writeFile(dir + "/access.log", text)
        }
        s.dir("shared/logs/misc")
        writeFile(shared + "/logs/misc/other.log", "misc-line\n")
        #expect(waitForLines(out, 151))
        sleepMs(500)

        let records = readJSONLines(out)
        #expect(records.count == 151)
        var checked = 0
        for r in records {
            let content = r["content"] as? String ?? ""
            if content == "misc-line" {
                #expect(r["_namespace_"] == nil && r["_pod_name_"] == nil, "no tag from a path outside the layout: \(r)")
                #expect(r["__path__"] as? String == shared + "/logs/misc/other.log")
                continue
            }
            guard let j = expected[content] else { Issue.record("unexpected line \(content)"); continue }
            let ok = r["_namespace_"] as? String == j.0 && r["_pod_name_"] as? String == j.1 && r["_pod_ip_"] as? String == j.2
                && r["_node_ip_"] as? String == j.3 && r["_node_name_"] as? String == j.4
                && r["__hostname__"] as? String == s.hostname
            #expect(ok, "tags of \(content): \(r)")
            if ok { checked += 1 }
        }
        #expect(checked == 150)
        note("pathtags: \(checked) events tagged from their path, 1 untagged")

        // A bad pattern is reported at its key; the running pipeline stays.
        s.writePipeline("jobs", Pipelines.fileToFile(paths: [shared + "/logs/**/*.log"], output: out, maxDirSearchDepth: 3,
                                                     inputExtra: ["PathTagsRegex: '/logs/(?<ns>[^_]+'"]))
        #expect(s.waitForLog("PathTagsRegex", timeout: 10))
        #expect(s.stderr.contains("missing closing parenthesis"))
        writeFile(shared + "/logs/misc/other.log", "after-bad-config\n", append: true)
        #expect(waitForLines(out, 152))
    }
}
