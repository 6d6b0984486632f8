import Glibc
import Logging
import SluiceConfig
import SluiceCore
import SluiceFiles
@testable import SluiceRuntime
import SluiceSystem
import SluiceTesting
import Synchronization
import Testing

/// A pipeline's start racing the daemon's stop: a pipeline registered whose run never begins
/// (the job stream was already ended) must not keep the stop waiting.
@Suite struct StartStopRaceTests {
    final class Flag: Sendable { let value = Atomic<Bool>(false) }

    /// Whether `body` returned within `seconds`. A body that hangs is left behind (the test fails
    /// instead of hanging the run).
    func returns(within seconds: Double, _ body: @escaping @Sendable () async -> Void) async -> Bool {
        let done = Flag()
        Task { await body(); done.value.store(true, ordering: .releasing) }
        return await eventually(seconds) { done.value.load(ordering: .acquiring) }
    }

    @Test("A pipeline cancelled before its run began: stop and drain return at once, a late run does nothing")
    func cancelledBeforeRun() async throws {
        let tmp = TempDir("sluice-unstarted")
        defer { tmp.remove() }
        let logs = tmp.sub("logs")
        makeDirectories(logs)
        writeFile(logs + "/a.log", "one\n")
        let yaml = "inputs:\n  - Type: input_file\n    FilePaths: [\(quoted(logs + "/*.log"))]\nflushers:\n  - Type: flusher_file\n    FilePath: \(quoted(tmp.path + "/out.jsonl"))\n"
        func make() throws -> Pipeline {
            let doc = try PipelineLoader.parse(text: yaml, file: "p.yaml", catalog: PluginRegistry.standard.catalog)
            let validated = try PluginRegistry.standard.validate(doc, globals: GlobalParameters())
            var services = PluginServices()
            services.checkpoints = try CheckpointTable(dataDir: tmp.sub("data"), pipeline: "p")
            let env = PipelineEnvironment(logger: testLogger(), pipelineMetrics: PipelineMetrics(), globals: GlobalParameters(),
                                          hostname: "h", dataDirectory: tmp.sub("data"), services: services)
            return try Pipeline(validated, environment: env, queueBytes: 1 << 20, shutdownTimeoutSeconds: 5)
        }
        let p = try make()
        p.cancelUnstarted()
        #expect(await returns(within: 5) { await p.stop() }, "stop waited for a run that never began")
        #expect(await returns(within: 5) { await p.run() }, "a run after the cancel ran the pipeline")
        #expect(!Sys.exists(tmp.path + "/out.jsonl"), "nothing was read or written")

        let q = try make()
        q.cancelUnstarted()
        #expect(await returns(within: 5) { _ = await q.drain(timeoutSeconds: 30) }, "drain waited for a run that never began")

        // Once the run has begun, the cancel does nothing: stop waits for the run as before.
        let r = try make()
        let running = Task { await r.run() }
        #expect(await eventually(5) { readFileBytes(tmp.path + "/out.jsonl").count > 0 })
        r.cancelUnstarted()
        #expect(await returns(within: 10) { await r.stop() })
        await running.value
    }

    @Test("The daemon's task cancelled while its pipelines start (0-45 ms after it began, 16 times): it always ends")
    func cancelDuringStart() async throws {
        for i in 0..<16 {
            let tmp = TempDir("sluice-startrace")
            defer { tmp.remove() }
            let config = tmp.sub("config"), logs = tmp.sub("logs")
            makeDirectories(config)
            makeDirectories(logs)
            for k in 0..<4 {
                writeFile(config + "/p\(k).yaml", "inputs:\n  - Type: input_file\n    FilePaths: [\(quoted(logs + "/\(k).log"))]\nflushers:\n  - Type: flusher_file\n    FilePath: \(quoted(tmp.path + "/out\(k).jsonl"))\n")
            }
            var settings = DaemonSettings(globals: GlobalParameters())
            settings.configDirectory = config
            settings.dataDirectory = tmp.sub("data")
            settings.shutdownTimeoutSeconds = 5
            let m = PipelineManager(settings: settings, logger: testLogger())
            let task = Task { try await m.run() }
            await pause(Double(i % 10) * 0.005)
            task.cancel()
            #expect(await returns(within: 20) { _ = try? await task.value }, "cancel \(i): the daemon did not end")
        }
    }
}
