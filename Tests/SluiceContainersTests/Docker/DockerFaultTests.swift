// Fault cases against fake servers on Unix sockets (no daemon, no root needed): a socket that
// accepts and hangs, HTTP 500, malformed JSON, garbage in the /events stream, recovery.
import SluiceTesting
import SluiceSystem
import Glibc
import Foundation
import Logging
import Testing
@testable import SluiceContainers

private func dkFaultSource(_ path: String, _ logs: DKLogStore, requestTimeout: Duration = .seconds(2)) -> DockerSource {
    DockerSource(endpoint: .unix(path: path), resyncInterval: .seconds(300), requestTimeout: requestTimeout,
                 initialBackoff: .milliseconds(100), maxBackoff: .milliseconds(400), absentPollInterval: .milliseconds(100),
                 logger: logs.logger())
}

private let dkVersionJSON = #"{"Version":"20.10.99-fake","ApiVersion":"1.41","Os":"linux"}"#

/// A fake dockerd: /version, /containers/json listing `listed`, inspect for `inspect` (404 otherwise),
/// /events streaming `events` then holding the connection open.
private func dkFakeDocker(listed: [String], inspect: [String: String], events: [(delayMs: Int, text: String)] = [])
    -> @Sendable (String) -> DKReply
{
    let listJSON = "[" + listed.map { #"{"Id":"\#($0)","Names":["/x"],"State":"running"}"# }.joined(separator: ",") + "]"
    let inspect = inspect
    let events = events
    return { path in
        if path.hasPrefix("/version") { return .full(status: 200, body: dkVersionJSON) }
        if path.hasPrefix("/containers/json") { return .full(status: 200, body: listJSON) }
        if path.hasPrefix("/events") { return .stream(pieces: events, hold: true) }
        if path.hasPrefix("/containers/") {
            let id = path.dropFirst("/containers/".count).split(separator: "/").first.map(String.init) ?? ""
            if let body = inspect[id] { return .full(status: 200, body: body) }
            return .full(status: 404, body: #"{"message":"No such container: \#(id)"}"#)
        }
        return .full(status: 404, body: #"{"message":"page not found"}"#)
    }
}

private func dkEventLine(_ action: String, _ id: String) -> String {
    #"{"status":"\#(action)","id":"\#(id)","from":"img","Type":"container","Action":"\#(action)","Actor":{"ID":"\#(id)","Attributes":{"name":"x"}},"scope":"local","time":1,"timeNano":1000000000}"# + "\n"
}

@Suite("Docker: fault cases (fake servers)")
struct DockerFaultTests {
    @Test func socketThatAcceptsAndHangs() async throws {
        let dir = dkTempDir("hang")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try DKHangingServer(path: dir + "/docker.sock")
        defer { server.stop() }

        // The client gives up after its timeout.
        let client = DockerClient(endpoint: .unix(path: server.path), requestTimeout: .milliseconds(300))
        let t0 = Sys.monotonicNanos()
        await #expect(throws: DockerError.self) { _ = try await client.version() }
        let took = Double(Sys.monotonicNanos() - t0) / 1e9
        #expect(took >= 0.25 && took < 2, "took \(took) s")
        do { _ = try await client.listContainers() } catch let e as DockerError {
            guard case .timeout = e else { Issue.record("expected a timeout, got \(e)"); return }
        }
        try await client.shutdown()

        // The source keeps retrying with backoff, reports each timeout, never ends by itself.
        let logs = DKLogStore()
        let run = DKSourceRun(dkFaultSource(server.path, logs, requestTimeout: .milliseconds(300)), registry: ContainerRegistry(logger: Logger(label: "test")))
        try await Task.sleep(for: .milliseconds(2500))
        #expect(!run.isFinished)
        #expect(logs.count(.warning, containing: "timed out") >= 2, "\(logs.dump)")
        #expect(server.accepted >= 3)
        let stop = await run.stop()
        dkSay("hanging socket: \(server.accepted) connections accepted, \(logs.count(.warning, containing: "timed out")) timeouts logged, stopped in \(stop.map { dkFormat($0 * 1000) } ?? "-") ms")
        #expect(stop != nil && stop! < 1)
    }

    @Test func http500ThenRecovery() async throws {
        let dir = dkTempDir("h500")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try DKHTTPServer(path: dir + "/docker.sock") { _ in .full(status: 500, body: #"{"message":"boom"}"#) }
        defer { server.stop() }
        let logs = DKLogStore()
        let registry = ContainerRegistry(logger: Logger(label: "test"))
        let t0 = Sys.monotonicNanos()
        let run = DKSourceRun(dkFaultSource(server.path, logs), registry: registry)
        // Waits as long as a loaded machine needs (the backoff bounds the count below).
        #expect(await eventually(15) { logs.count(.warning, containing: "HTTP 500") >= 2 && server.count("/version") >= 2 })
        let elapsed = Double(Sys.monotonicNanos() - t0) / 1e9
        #expect(!run.isFinished)
        let errors = logs.count(.warning, containing: "HTTP 500")
        #expect(errors >= 2, "\(logs.dump)")
        #expect(logs.count(.warning, containing: "boom") >= 1)
        #expect(server.count("/version") >= 2)
        // Backoff: 100, 200, 400, 400 ms ...: never more than one attempt per 100 ms.
        #expect(server.count("/version") <= Int(elapsed / 0.1) + 3, "\(server.requests)")
        #expect(logs.count(.info, containing: "Docker not available") == 0)

        // The daemon heals: the next attempt lists and inspects.
        let id = dkFakeID(0x500)
        server.setHandler(dkFakeDocker(listed: [id], inspect: [id: dkInspectJSON(id: id, name: "healed")]))
        #expect(await eventually(5) { registry.lookup(id: id)?.name == "healed" })
        #expect(logs.count(.info, containing: "Docker connected") == 1)
        let stop = await run.stop()
        #expect(stop != nil && stop! < 1)
    }

    @Test func malformedRepliesAndEvents() async throws {
        let dir = dkTempDir("junk")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try DKHTTPServer(path: dir + "/docker.sock") { path in
            path.hasPrefix("/version") ? .full(status: 200, body: "{not json") : .full(status: 500, body: "")
        }
        defer { server.stop() }
        let logs = DKLogStore()
        let registry = ContainerRegistry(logger: Logger(label: "test"))
        let run = DKSourceRun(dkFaultSource(server.path, logs), registry: registry)
        #expect(await eventually(3) { logs.count(.warning, containing: "malformed Docker reply to GET /version") >= 2 }, "\(logs.dump)")

        // A truncated list.
        server.setHandler { path in
            if path.hasPrefix("/version") { return .full(status: 200, body: dkVersionJSON) }
            if path.hasPrefix("/events") { return .stream(pieces: [], hold: true) }
            return .full(status: 200, body: #"[{"Id":"abc","Na"#)
        }
        #expect(await eventually(3) { logs.count(.warning, containing: "malformed Docker reply to GET /containers/json") >= 1 }, "\(logs.dump)")
        #expect(!run.isFinished)

        // Garbage lines in the events stream, an event split across chunks, an event for a container
        // that no longer exists (404 on inspect), an HTML error page as a reply to an unrelated path.
        let good = dkFakeID(0x600), gone = dkFakeID(0x601)
        let line = dkEventLine("start", good)
        let half = line.index(line.startIndex, offsetBy: 40)
        server.setHandler(dkFakeDocker(listed: [], inspect: [good: dkInspectJSON(id: good, name: "good")], events: [
            (50, "this is not json\n"),
            (10, "{\"Type\":\"container\",\"Action\":\n"),
            (10, dkEventLine("start", gone)),
            (10, String(line[..<half])),
            (30, String(line[half...])),
        ]))
        #expect(await eventually(5) { registry.lookup(id: good)?.name == "good" }, "\(logs.dump)")
        #expect(registry.lookup(id: gone) == nil)
        #expect(logs.count(.warning, containing: "ignoring malformed Docker event") == 2, "\(logs.dump)")
        #expect(!run.isFinished)
        let stop = await run.stop()
        #expect(stop != nil && stop! < 1)
    }

    @Test func eventsStreamEndsThenReconnectsAndResyncs() async throws {
        let dir = dkTempDir("ends")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = dkFakeID(0x700), b = dkFakeID(0x701)
        // The stream ends right after one event: the source must reconnect and re-sync each time.
        let first = dkFakeDocker(listed: [a], inspect: [a: dkInspectJSON(id: a, name: "a")])
        let server = try DKHTTPServer(path: dir + "/docker.sock") { path in
            if path.hasPrefix("/events") { return .stream(pieces: [(20, dkEventLine("start", a))], hold: false) }
            return first(path)
        }
        defer { server.stop() }
        let logs = DKLogStore()
        let registry = ContainerRegistry(logger: Logger(label: "test"))
        let run = DKSourceRun(dkFaultSource(server.path, logs), registry: registry)
        #expect(await eventually(3) { registry.lookup(id: a) != nil })
        #expect(await eventually(3) { server.count("/containers/json") >= 2 && logs.count(.info, containing: "events stream ended") >= 1 },
                "\(server.requests)")
        // Now `a` is gone and `b` exists: a re-sync after reconnecting replaces them.
        let second = dkFakeDocker(listed: [b], inspect: [b: dkInspectJSON(id: b, name: "b")])
        server.setHandler(second)
        #expect(await eventually(5) { registry.lookup(id: b) != nil && registry.isRemoved(id: a) })
        let stop = await run.stop()
        #expect(stop != nil && stop! < 1)
    }

    @Test func missingSocketIsReportedOnce() async throws {
        let dir = dkTempDir("miss")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let logs = DKLogStore()
        let registry = ContainerRegistry(logger: Logger(label: "test"))
        let run = DKSourceRun(dkFaultSource(dir + "/docker.sock", logs), registry: registry)
        #expect(await eventually(15) { logs.count(.debug, containing: "still not available") >= 3 })
        #expect(!run.isFinished)
        #expect(logs.count(.info, containing: "Docker not available") == 1, "\(logs.dump)")
        #expect(logs.count(.debug, containing: "still not available") >= 3)
        #expect(logs.count(.warning, containing: "") == 0)

        // A stale socket file with nobody listening (connection refused) is "absent" too.
        let fd = try dkListen(dir + "/docker.sock")
        close(fd)  // the file stays, nobody listens
        try await Task.sleep(for: .milliseconds(500))
        #expect(logs.count(.info, containing: "Docker not available") == 1, "\(logs.dump)")
        #expect(logs.count(.warning, containing: "") == 0, "\(logs.dump)")

        // Docker appears.
        let id = dkFakeID(0x800)
        let server = try DKHTTPServer(path: dir + "/docker.sock", handler: dkFakeDocker(listed: [id], inspect: [id: dkInspectJSON(id: id, name: "up")]))
        defer { server.stop() }
        #expect(await eventually(5) { registry.lookup(id: id) != nil })
        let stop = await run.stop()
        #expect(stop != nil && stop! < 1)
    }
}
