import Glibc
import Foundation
import SluiceTesting
import Testing

/// `global.PipelineMetaTagKey` with the real binary: the host's tags renamed, left out or added as
/// the incumbent's map says, per pipeline.
extension E2E {
    @Test("PipelineMetaTagKey: __hostname__ renamed or left out, __host_ip__ added from _node_ip_, per pipeline")
    func hostTagsFollowPipelineMetaTagKey() throws {
        let s = E2EScenario("hosttags")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let renamed = s.path("out/renamed.jsonl"), dropped = s.path("out/dropped.jsonl"), plain = s.path("out/plain.jsonl")
        s.writePipeline("renamed", "global:\n  PipelineMetaTagKey:\n    HOST_NAME: host\n    HOST_IP: __default__\n"
            + Pipelines.fileToFile(paths: [logs + "/a.log"], output: renamed))
        s.writePipeline("dropped", "global:\n  PipelineMetaTagKey: {HOST_NAME: \"\", HOST_IP: ip, HOST_ID: x}\n"
            + Pipelines.fileToFile(paths: [logs + "/a.log"], output: dropped))
        s.writePipeline("plain", Pipelines.fileToFile(paths: [logs + "/a.log"], output: plain))
        try s.startAndWait(pipelines: 3, environment: ["_node_ip_": "192.0.2.7"])
        writeFile(logs + "/a.log", "one\ntwo\n")
        for out in [renamed, dropped, plain] { #expect(waitForLines(out, 2)) }

        for r in readJSONLines(renamed) {
            #expect(r["host"] as? String == s.hostname && r["__host_ip__"] as? String == "192.0.2.7" && r["__hostname__"] == nil, "\(r)")
        }
        for r in readJSONLines(dropped) {
            #expect(r["ip"] as? String == "192.0.2.7" && r["__hostname__"] == nil && r["__host_ip__"] == nil, "\(r)")
            #expect(r["__path__"] as? String == logs + "/a.log")
        }
        // No map: the host name only (the incumbent would add __host_ip__ too; Sluice does not).
        for r in readJSONLines(plain) {
            #expect(r["__hostname__"] as? String == s.hostname && r["__host_ip__"] == nil, "\(r)")
        }
        // The enterprise-only key is a warning at its key; PipelineMetaTagKey itself is not "no effect".
        #expect(s.stderr.contains("HOST_ID: the incumbent's enterprise build only"))
        #expect(!s.stderr.contains("PipelineMetaTagKey: has no effect"))
    }
}
