import SluiceTesting
import SluiceSystem
import Glibc
import Foundation
import GRPCCore
import Logging
import SluiceContainers
import Testing

/// Runtimes that misbehave, played by Unix sockets of our own (no daemon, no root needed): one
/// that accepts and never answers, one that answers with bytes that are not HTTP/2.
@Suite("CRI faults without a daemon", .serialized)
struct CRIFaultTests {
    @Test func socketThatAcceptsAndHangs() async throws {
        let dir = try criMakeTempDir()
        defer { criRemoveTree(dir) }
        let server = try CRIFakeSocketServer(path: dir + "/hang.sock", mode: .hang)
        defer { server.stop() }

        // One call: fails by its deadline.
        let t0 = Sys.monotonicNanos()
        do {
            _ = try await CRIClient.with(CRIClientConfig(socketPath: server.path, callTimeout: .milliseconds(500))) {
                try await $0.version()
            }
            Issue.record("a hanging runtime answered")
        } catch let e as RPCError {
            print("    hanging socket: version() failed after \(criFormat(criMillis(Sys.monotonicNanos() - t0))) ms with \(e.code)")
            #expect(e.code == .deadlineExceeded || e.code == .unavailable)
        }
        #expect(criMillis(Sys.monotonicNanos() - t0) < 3000)

        // The source: keeps retrying with backoff, logs the error, never crashes, stops promptly.
        let logs = CRILogCapture()
        let source = CRISource(
            options: .init(socketPath: server.path, callTimeout: .milliseconds(300), backoffInitial: .milliseconds(100),
                           backoffMax: .milliseconds(400)),
            logger: logs.logger())
        let registry = ContainerRegistry(logger: Logger(label: "test.registry"))
        let task = Task { await source.run(registry: registry) }
        #expect(await eventually(8) { source.status.failures >= 3 })
        let status = source.status
        print("    hanging socket: \(status.sessions) sessions, \(status.failures) failures, \(server.accepted) connections accepted; last error: \(status.lastError ?? "-")")
        #expect(server.accepted >= 2)
        #expect(logs.count(.warning, containing: "CRI runtime at the socket failed") >= 2)
        #expect(registry.snapshot().isEmpty)
        let t1 = Sys.monotonicNanos()
        task.cancel()
        await task.value
        #expect(criMillis(Sys.monotonicNanos() - t1) < 2000)
    }

    @Test func socketSpeakingGarbage() async throws {
        let dir = try criMakeTempDir()
        defer { criRemoveTree(dir) }
        let server = try CRIFakeSocketServer(path: dir + "/garbage.sock", mode: .garbage)
        defer { server.stop() }

        let t0 = Sys.monotonicNanos()
        do {
            _ = try await CRIClient.with(CRIClientConfig(socketPath: server.path, callTimeout: .seconds(2))) {
                try await $0.listContainers()
            }
            Issue.record("garbage was taken for an answer")
        } catch {
            print("    garbage socket: listContainers() failed after \(criFormat(criMillis(Sys.monotonicNanos() - t0))) ms: \(error)")
        }

        let logs = CRILogCapture()
        let source = CRISource(
            options: .init(socketPath: server.path, callTimeout: .seconds(1), backoffInitial: .milliseconds(100),
                           backoffMax: .milliseconds(400)),
            logger: logs.logger())
        let registry = ContainerRegistry(logger: Logger(label: "test.registry"))
        let task = Task { await source.run(registry: registry) }
        #expect(await eventually(8) { source.status.failures >= 3 })
        print("    garbage socket: \(source.status.failures) failures, \(server.accepted) connections; last error: \(source.status.lastError ?? "-")")
        #expect(registry.snapshot().isEmpty)
        let t1 = Sys.monotonicNanos()
        task.cancel()
        await task.value
        #expect(criMillis(Sys.monotonicNanos() - t1) < 2000)
    }
}
