import SluiceConfig
import SluiceRuntime
import Testing

/// `input_file`'s `Tags` as users of the incumbent write them, checked when the pipeline is validated.
@Suite struct FileTagsConfigTests {
    static func validate(_ tags: String, extra: String = "") throws -> [String] {
        let doc = """
        inputs:
          - Type: input_file
            FilePaths: [/var/log/*.log]
            Tags: \(tags)
        \(extra)flushers:
          - Type: flusher_stdout
        """
        return try PluginRegistry.standard.validate(bytes: Array(doc.utf8), file: "p.yaml", globals: GlobalParameters()).warnings.map(\.description)
    }

    @Test func theIncumbentsKeysValidateWithoutWarnings() throws {
        #expect(try Self.validate("{FilePathTagKey: p, FileInodeTagKey: __default__, K8sNamespaceTagKey: '', ContainerImageNameTagKey: img}",
                                  extra: "    AppendingLogPositionMeta: true\n    FileOffsetKey: off\n").isEmpty)
    }

    /// The incumbent's docs name the image tag's key `ContainerImageTagKey`; its code reads
    /// `ContainerImageNameTagKey`. A config written from the docs loads, with a warning that says so.
    @Test func theDocsSpellingOfTheImageKeyLoadsWithAWarning() throws {
        let w = try Self.validate("{ContainerImageTagKey: img}")
        #expect(w.count == 1 && w[0].contains("inputs[0].Tags.ContainerImageTagKey") && w[0].contains("use ContainerImageNameTagKey"), "\(w)")
    }

    @Test func aWrongTypeIsAnErrorAtItsKey() {
        #expect(throws: ConfigErrors.self) { try Self.validate("[a, b]") }
    }
}
