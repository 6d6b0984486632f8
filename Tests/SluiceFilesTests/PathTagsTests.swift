import SluiceCore
import SluiceFiles
import SluiceTesting
import Synchronization
import Testing

/// The seed's "independent storage" layout: `SubPathExpr: logs/$(POD_NAMESPACE)_$(POD_NAME)_$(POD_IP)_$(NODE_IP)_$(NODE_NAME)`.
let subPathTagsRegex = #"/logs/(?<_namespace_>[^_/]+)_(?<_pod_name_>[^_/]+)_(?<_pod_ip_>[^_/]+)_(?<_node_ip_>[^_/]+)_(?<_node_name_>[^/]+)/"#

private func compiled(_ pattern: String) throws -> PathTagsRegex {
    switch PathTagsRegex.compile(pattern) {
    case .success(let r): return r
    case .failure(let e): throw e
    }
}

@Suite("PathTagsRegex")
struct PathTagsRegexTests {
    @Test func theSubPathLayoutGivesTheContainerTags() throws {
        let r = try compiled(subPathTagsRegex)
        let tags = r.tags(for: "/mnt/shared/logs/default_job-7-x2k9q_10.1.2.3_192.168.0.7_node-a/app/access.log")
        #expect(tags == [EventTag("_namespace_", "default"), EventTag("_pod_name_", "job-7-x2k9q"), EventTag("_pod_ip_", "10.1.2.3"),
                         EventTag("_node_ip_", "192.168.0.7"), EventTag("_node_name_", "node-a")])
    }

    @Test func aPathThatDoesNotMatchGetsNoTag() throws {
        let r = try compiled(subPathTagsRegex)
        #expect(r.tags(for: "/mnt/shared/other/default_pod/a.log").isEmpty)
        #expect(r.tags(for: "/mnt/shared/logs/too_few_parts/a.log").isEmpty)
    }

    @Test func anyNameAndEverySyntaxForNames() throws {
        let r = try compiled(#"/data/(?P<team>[a-z]+)/(?'service'[^/]+)/(?<day>\d{8})\.log$"#)
        #expect(r.tags(for: "/data/payments/api-gw/20240102.log") == [EventTag("team", "payments"), EventTag("service", "api-gw"), EventTag("day", "20240102")])
        // `$` is the very end (Go's RE2), not before a final newline.
        #expect(r.tags(for: "/data/payments/api-gw/20240102.log\n").isEmpty)
    }

    @Test func aGroupThatTookNoPartGivesNoTagAndUnnamedGroupsAreIgnored() throws {
        let r = try compiled(#"/(apps|jobs)/(?<app>[^/]+)/(?:(?<shard>\d+)/)?[^/]+$"#)
        #expect(r.tags(for: "/srv/apps/web/3/out.log") == [EventTag("app", "web"), EventTag("shard", "3")])
        #expect(r.tags(for: "/srv/jobs/etl/out.log") == [EventTag("app", "etl")])
    }

    @Test func searchIsUnanchoredUnlessThePatternAnchors() throws {
        #expect(try compiled(#"(?<ns>[a-z]+)_"#).tags(for: "/x/kube_y.log") == [EventTag("ns", "kube")])
        #expect(try compiled(#"^/x/(?<ns>[a-z]+)_"#).tags(for: "/var/x/kube_y.log").isEmpty)
    }

    @Test func badPatternsAreErrorsWithPCRE2sMessage() {
        guard case .failure(let e) = PathTagsRegex.compile("/logs/(?<ns>[^_]+") else { Issue.record("compiled"); return }
        #expect(e.description.contains("missing closing parenthesis"), "\(e)")
        #expect(e.description.contains("at offset"), "\(e)")
        guard case .failure(let n) = PathTagsRegex.compile("/logs/([^_]+)_") else { Issue.record("compiled"); return }
        #expect(n.description.contains("no named group"), "\(n)")
    }
}

/// A sink that records the tags of every batch with its events' contents.
private final class TagSink: BatchSink, Sendable {
    private let state = Mutex<[(tags: [EventTag], lines: [String])]>([])
    func send(_ b: EventBatch) -> Bool {
        let lines = b.events.indices.map { String(decoding: b.contentBytes($0), as: UTF8.self) }
        state.withLock { $0.append((b.tags, lines)) }
        b.ack?.expect(1)
        b.ack?.acknowledge()
        return true
    }
    /// Tags by line.
    var byLine: [String: [EventTag]] {
        state.withLock { s in
            var out: [String: [EventTag]] = [:]
            for (tags, lines) in s { for l in lines { out[l] = tags } }
            return out
        }
    }
}

@Suite("input_file PathTagsRegex")
struct PathTagsInputTests {
    @Test("files under the SubPathExpr layout carry the tags from their path; others only __path__ and __hostname__")
    func tagsFromThePathOfEachFile() async throws {
        let env = FIEnv()
        defer { env.remove() }
        let logs = env.inDir + "/logs"
        makeDirectories(logs + "/default_job-a-1_10.0.0.1_192.168.1.1_node-1")
        makeDirectories(logs + "/batch_job-b-2_10.0.0.2_192.168.1.2_node-2")
        makeDirectories(logs + "/unstructured")
        var o = env.options([logs + "/*/*.log"])
        o.pathTags = try compiled(subPathTagsRegex)
        o.extraTags = [EventTag("_pod_name_", "from-config"), EventTag("other", "kept")]
        let sink = TagSink()
        try await fiWithInput(try env.input(o, table: try env.table()), sink: sink) {
            writeFile(logs + "/default_job-a-1_10.0.0.1_192.168.1.1_node-1/app.log", "a-1\na-2\n")
            writeFile(logs + "/batch_job-b-2_10.0.0.2_192.168.1.2_node-2/app.log", "b-1\n")
            writeFile(logs + "/unstructured/app.log", "u-1\n")
            #expect(await eventually { sink.byLine.count >= 4 })
        }
        let by = sink.byLine
        let a = by["a-1"] ?? []
        #expect(a == [EventTag("__path__", logs + "/default_job-a-1_10.0.0.1_192.168.1.1_node-1/app.log"), EventTag("__hostname__", a.count > 1 ? a[1].value : ""),
                      EventTag("_namespace_", "default"), EventTag("_pod_name_", "job-a-1"), EventTag("_pod_ip_", "10.0.0.1"),
                      EventTag("_node_ip_", "192.168.1.1"), EventTag("_node_name_", "node-1"), EventTag("other", "kept")])
        #expect(by["a-2"] == a)
        let b = by["b-1"] ?? []
        #expect(b.first { $0.key == "_namespace_" }?.value == "batch")
        #expect(b.first { $0.key == "_pod_name_" }?.value == "job-b-2")
        #expect(b.first { $0.key == "_node_name_" }?.value == "node-2")
        // No match: the configured tags stay, no tag from the path.
        let u = by["u-1"] ?? []
        #expect(u.map(\.key) == ["__path__", "__hostname__", "_pod_name_", "other"])
        #expect(u.first { $0.key == "_pod_name_" }?.value == "from-config")
    }
}
