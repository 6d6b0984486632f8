import SluiceConfig
import SluiceRuntime
import Testing

/// `input_file`'s `PathTagsRegex` is checked when the pipeline is validated.
@Suite struct PathTagsConfigTests {
    static func validate(_ regex: String) -> String? {
        let doc = """
        inputs:
          - Type: input_file
            FilePaths: [/mnt/shared/logs/*/*.log]
            PathTagsRegex: '\(regex)'
        flushers:
          - Type: flusher_stdout
        """
        do {
            _ = try PluginRegistry.standard.validate(bytes: Array(doc.utf8), file: "p.yaml", globals: GlobalParameters())
            return nil
        } catch { return "\(error)" }
    }

    @Test func theSubPathLayoutValidates() {
        #expect(Self.validate(#"/logs/(?<_namespace_>[^_/]+)_(?<_pod_name_>[^_/]+)_(?<_pod_ip_>[^_/]+)_(?<_node_ip_>[^_/]+)_(?<_node_name_>[^/]+)/"#) == nil)
    }

    @Test func aBadPatternIsAnErrorAtTheKeyWithPCRE2sMessage() throws {
        let e = try #require(Self.validate("/logs/(?<ns>[^_]+"))
        #expect(e.contains("p.yaml:4:"), "\(e)")
        #expect(e.contains("inputs[0].PathTagsRegex"), "\(e)")
        #expect(e.contains("missing closing parenthesis at offset"), "\(e)")
    }

    @Test func aPatternWithoutNamedGroupsIsAnError() throws {
        let e = try #require(Self.validate("/logs/([^_]+)_"))
        #expect(e.contains("inputs[0].PathTagsRegex"), "\(e)")
        #expect(e.contains("no named group"), "\(e)")
    }
}
