import Glibc
import Logging
import SluiceConfig
import SluiceCore
@testable import SluiceRuntime
import SluiceSystem
import SluiceTesting
import Synchronization
import Testing

/// The config directory reconcile, in process: files added, changed, broken, deleted, renamed
/// case, unreadable.
@Suite(.serialized) struct ReconcileTests {
    /// Keeps every log message.
    final class Messages: Sendable {
        let all = Mutex<[String]>([])
        func count(_ s: String) -> Int { all.withLock { $0.filter { $0.contains(s) }.count } }
        var logger: Logger {
            var l = Logger(label: "test") { _ in Handler(box: self) }
            l.logLevel = .info
            return l
        }
        struct Handler: LogHandler {
            let box: Messages
            var logLevel: Logger.Level = .info
            var metadata: Logger.Metadata = [:]
            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }
            func log(event: Logging.LogEvent) { box.all.withLock { $0.append(event.message.description) } }
        }
    }

    func pipeline(_ logs: String, out: String) -> String {
        "inputs:\n  - Type: input_file\n    FilePaths: [\(quoted(logs + "/*.log"))]\nflushers:\n  - Type: flusher_file\n    FilePath: \(quoted(out))\n"
    }

    func withManager(_ body: (String, PipelineManager, Messages) async throws -> Void) async throws {
        let tmp = TempDir("sluice-reconcile")
        defer { tmp.remove() }
        let config = tmp.sub("config")
        var settings = DaemonSettings(globals: GlobalParameters())
        settings.configDirectory = config
        settings.dataDirectory = tmp.sub("data")
        settings.reloadIntervalMs = 60_000  // only inotify can be the reason for a reconcile
        settings.shutdownTimeoutSeconds = 5
        let messages = Messages()
        let m = PipelineManager(settings: settings, logger: messages.logger)
        let task = Task { try await m.run() }
        try await body(tmp.path, m, messages)
        task.cancel()
        _ = try? await task.value
    }

    @Test func filesAddedChangedBrokenAndDeleted() async throws {
        try await withManager { root, m, msg in
            let logs = root + "/logs"
            makeDirectories(logs)
            writeFile(root + "/config/a.yaml", pipeline(logs, out: root + "/a1.jsonl"))
            #expect(await eventually(5) { m.runningPipelines == ["a"] })
            writeFile(logs + "/x.log", "one\n")
            #expect(await eventually(5) { countLines(root + "/a1.jsonl") == 1 })
            // Changed: restarted with the new flusher; the checkpoint carries over.
            writeFile(root + "/config/a.yaml", pipeline(logs, out: root + "/a2.jsonl"))
            #expect(await eventually(5) { msg.count("Pipeline file changed; restarting the pipeline.") == 1 })
            appendFile(logs + "/x.log", "two\n")
            #expect(await eventually(5) { outputContents(root + "/a2.jsonl") == ["two"] })
            // Broken: reported, the running version kept.
            writeFile(root + "/config/a.yaml", "inputs: [\n")
            #expect(await eventually(5) { msg.count("Pipeline file has errors; the previous version keeps running.") == 1 })
            #expect(m.runningPipelines == ["a"])
            // Deleted: stopped.
            unlink(root + "/config/a.yaml")
            #expect(await eventually(5) { m.runningPipelines.isEmpty })
        }
    }

    @Test func anUpperCaseExtensionIsOnePipelineStartedOnce() async throws {
        try await withManager { root, m, msg in
            writeFile(root + "/config/App.YML", pipeline(root + "/logs", out: root + "/o.jsonl"))
            #expect(await eventually(5) { m.runningPipelines == ["App"] })
            await pause(2.5)
            #expect(msg.count("Pipeline started.") == 1)
            #expect(msg.count("stopping the pipeline") == 0)
        }
    }

    @Test func editorsTemporaryFilesAreNotPipelines() async throws {
        try await withManager { root, m, _ in
            writeFile(root + "/config/.a.yaml.swp", "x")
            writeFile(root + "/config/a.yaml~", "x")
            writeFile(root + "/config/notes.txt", "x")
            writeFile(root + "/config/b.json", #"{"inputs":[{"Type":"input_file","FilePaths":["/tmp/none/*.log"]}],"flushers":[{"Type":"flusher_blackhole"}]}"#)
            #expect(await eventually(5) { m.runningPipelines == ["b"] })
        }
    }
}
