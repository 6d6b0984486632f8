import SluiceConfig
import SluiceRuntime
import Testing
import Foundation

/// Container pipeline configs as the incumbent's docs write them load unchanged.
@Suite struct ContainerConfigTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test(arguments: ["stdout.yaml", "service-docker-stdout.yaml", "files-in-containers.yaml"])
    func examplesValidate(_ name: String) throws {
        let path = Self.root.appendingPathComponent("examples/containers/" + name).path
        let doc = try PluginRegistry.standard.validate(file: path, globals: GlobalParameters())
        #expect(doc.inputs.count == 1)
        #expect(doc.warnings.allSatisfy { !$0.message.contains("unknown") })
    }

    @Test func badFilterRegexIsAnErrorAtItsValue() throws {
        let dir = NSTemporaryDirectory() + "/sluice-cc-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let f = dir + "/bad.yaml"
        try """
        inputs:
          - Type: input_container_stdio
            ContainerFilters:
              K8sPodRegex: "([unclosed"
        flushers:
          - Type: flusher_stdout
        """.write(toFile: f, atomically: true, encoding: .utf8)
        #expect(throws: ConfigErrors.self) { try PluginRegistry.standard.validate(file: f, globals: GlobalParameters()) }
        do { _ = try PluginRegistry.standard.validate(file: f, globals: GlobalParameters()) } catch {
            #expect(error.errors.first?.description.hasPrefix("bad.yaml:4:") == true, "\(error)")
            #expect(error.errors.first?.keyPath == "inputs[0].ContainerFilters.K8sPodRegex")
        }
    }
}
