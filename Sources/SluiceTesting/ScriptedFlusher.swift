import Foundation
import SluiceConfig
import SluiceCore
import Synchronization

/// A flusher whose outcomes a test scripts, recording what it was sent. Each send asks `script`
/// (attempt number of this request, starting at 1; the request) what to answer; a delivered
/// request's lines are recorded in order of delivery. Optionally slow (`delay`), to test requests in
/// flight, and counting how many sends overlap.
public final class ScriptedFlusher: Flusher {
    public struct Request: FlushRequest {
        public var id: Int
        public var lines: [String]
        public var eventCount: Int { lines.count }
        public var byteCount: Int { lines.reduce(0) { $0 + $1.utf8.count } }
    }

    public typealias Script = @Sendable (_ attempt: Int, _ request: Request) -> SendOutcome<Request>

    public let delivery: DeliveryOptions
    let script: Script
    let delayMs: ClosedRange<Int>
    private struct State {
        var nextID = 0
        var attempts: [Int: Int] = [:]
        var delivered: [String] = []
        var sends = 0
        var concurrent = 0
        var maxConcurrent = 0
        var started = false
        var stopped = false
    }
    private let state = Mutex(State())

    /// `delayMs`: each send takes a random time in this range.
    public init(delivery: DeliveryOptions = DeliveryOptions(), delayMs: ClosedRange<Int> = 0...0,
                script: @escaping Script = { _, _ in .delivered }) {
        self.delivery = delivery
        self.delayMs = delayMs
        self.script = script
    }

    public func start() async throws { state.withLock { $0.started = true } }

    public func makeRequest(_ batches: [EventBatch]) async throws(FlushError) -> Request {
        var lines: [String] = []
        for b in batches {
            for i in b.events.indices { lines.append(String(decoding: b.contentBytes(i), as: UTF8.self)) }
        }
        let id = state.withLock { s in defer { s.nextID += 1 }; return s.nextID }
        return Request(id: id, lines: lines)
    }

    public func send(_ request: Request) async -> SendOutcome<Request> {
        let attempt = state.withLock { s -> Int in
            s.sends += 1
            s.concurrent += 1
            s.maxConcurrent = max(s.maxConcurrent, s.concurrent)
            s.attempts[request.id, default: 0] += 1
            return s.attempts[request.id]!
        }
        let d = Int.random(in: delayMs)
        if d > 0 { try? await Task.sleep(for: .milliseconds(d)) }
        let outcome = script(attempt, request)
        state.withLock { s in
            s.concurrent -= 1
            switch outcome {
            case .delivered: s.delivered += request.lines
            case .partial(let rest, _, _):
                // What is neither retried nor rejected was taken (see `partial`).
                let kept = Set(rest.lines)
                s.delivered += request.lines.filter { !kept.contains($0) && !ScriptedFlusher.isRejected($0) }
            default: break
            }
        }
        return outcome
    }

    public func stop() async { state.withLock { $0.stopped = true } }

    /// Lines a `partial` script rejects are those containing "reject" (so tests can tell).
    public static func isRejected(_ line: String) -> Bool { line.contains("reject") }

    /// A partial outcome that rejects the lines containing "reject", retries those containing
    /// "retry" and takes the others.
    public static func partial(_ r: Request) -> SendOutcome<Request> {
        let rejected = r.lines.filter(isRejected).count
        let retry = r.lines.filter { $0.contains("retry") && !isRejected($0) }
        return .partial(retry: Request(id: r.id, lines: retry), rejected: rejected, reason: "test rejects \(rejected)")
    }

    public var delivered: [String] { state.withLock { $0.delivered } }
    public var sends: Int { state.withLock { $0.sends } }
    public var maxConcurrent: Int { state.withLock { $0.maxConcurrent } }
    public var wasStarted: Bool { state.withLock { $0.started } }
    public var wasStopped: Bool { state.withLock { $0.stopped } }
}

/// Builds batches of lines for tests, each with an acknowledgement that records its status.
public final class TestBatches: Sendable {
    private let statuses = Mutex<[Int: [DeliveryStatus]]>([:])
    public init() {}

    /// A batch of `lines`, numbered `index` for `status(of:)`.
    public func batch(_ index: Int, _ lines: [String], tags: [EventTag] = []) -> EventBatch {
        var arena: [UInt8] = []
        var events: [LogEvent] = []
        for l in lines {
            let off = arena.count
            arena += Array(l.utf8)
            events.append(LogEvent(content: Span(off, l.utf8.count)))
        }
        let ack = AckToken(expected: 1) { [self] s in self.statuses.withLock { $0[index, default: []].append(s) } }
        return EventBatch(arena: arena, events: events, tags: tags, timeSeconds: 1_700_000_000, inputBytes: arena.count + lines.count, ack: ack)
    }

    /// Every status batch `index` was finished with (exactly one when all is well).
    public func statuses(of index: Int) -> [DeliveryStatus] { statuses.withLock { $0[index] ?? [] } }
    /// Indices finished so far.
    public var finished: Int { statuses.withLock { $0.count } }
}
