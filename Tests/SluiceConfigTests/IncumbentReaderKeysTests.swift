import SluiceConfig
import SluiceContainers
import SluiceRuntime
import Testing

/// The incumbent's reader and discovery keys (LoongCollector FileReaderOptions and
/// FileDiscoveryOptions) load on both file inputs, so its configs run as they are: what Sluice
/// does as the incumbent's `true` loads silently, what it does not do loads with a warning.
@Suite struct IncumbentReaderKeysTests {
    static func warnings(_ type: String, _ keys: String) throws -> [String] {
        let doc = """
        inputs:
          - Type: \(type)
        \(keys)flushers:
          - Type: flusher_stdout
        """
        return try PluginRegistry.standard.validate(bytes: Array(doc.utf8), file: "p.yaml", globals: GlobalParameters()).warnings.map(\.description)
    }

    @Test func inputFileTakesTheIncumbentsReaderAndDiscoveryKeys() throws {
        let w = try Self.warnings("input_file", """
            FilePaths: [/*.log]
            AllowingCollectingFilesInRootDir: true
            AllowingIncludedByMultiConfigs: true
            TailingAllMatchedFiles: true
            CloseUnusedReaderIntervalSec: 30
            PreservedDirDepth: 2
            ReadDelaySkipThresholdBytes: 0
            ReadDelayAlertThresholdBytes: 1000
            CollectingContainersMeta: false

        """)
        #expect(w.count == 4, "\(w)")
        for key in ["PreservedDirDepth", "ReadDelaySkipThresholdBytes", "ReadDelayAlertThresholdBytes", "CollectingContainersMeta"] {
            #expect(w.contains { $0.contains("inputs[0].\(key)") }, "\(key): \(w)")
        }
    }

    @Test func inputContainerStdioTakesThemTooAndHonoursCloseUnusedReaderIntervalSec() throws {
        let w = try Self.warnings("input_container_stdio", """
            AllowingIncludedByMultiConfigs: true
            TailingAllMatchedFiles: true
            CloseUnusedReaderIntervalSec: 30
            RotatorQueueSize: 5

        """)
        #expect(w.count == 1 && w[0].contains("inputs[0].RotatorQueueSize"), "\(w)")
        let c = try ConfigObject.parse(yaml: "CloseUnusedReaderIntervalSec: 7.5", file: "t.yaml", fields: InputContainerStdio.spec.fields)
        #expect(try InputContainerStdio.options(from: c, globals: GlobalParameters()).files.closeUnusedReaderIntervalSec == 7.5)
    }
}
