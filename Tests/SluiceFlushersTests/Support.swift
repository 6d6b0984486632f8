import Foundation
import SluiceConfig
import SluiceCore
import SluiceFlushers
@testable import SluiceRuntime
import SluiceTesting

/// A flusher of type `F` from its YAML options.
func makeFlusher<F: FlusherPlugin>(_ type: F.Type, _ yaml: String) throws -> F {
    let o = try F.options(from: try ConfigObject.parse(yaml: yaml, file: "t.yaml", fields: F.spec.fields), globals: GlobalParameters())
    return try F(options: o, context: testContext(kind: .flusher, type: F.spec.type))
}

/// The options of `F` from YAML, or the error's text.
func optionsError<F: FlusherPlugin>(_ type: F.Type, _ yaml: String) -> String? {
    do {
        _ = try F.options(from: try ConfigObject.parse(yaml: yaml, file: "t.yaml", fields: F.spec.fields), globals: GlobalParameters())
        return nil
    } catch { return "\(error)" }
}

/// Runs `f` under the real runner: starts it, queues `batches`, closes the queue and waits until
/// every request is finished (or `cancelAfter` seconds pass: the shutdown deadline).
@discardableResult
func drive<F: Flusher>(_ f: F, _ batches: [EventBatch], cancelAfter: Double? = nil) async -> PluginContext {
    let q = BatchQueue(highWatermark: 256 << 20)
    let ctx = testContext(kind: .flusher, type: "network")
    try? await f.start()
    let task = Task { await FlusherRunner(flusher: f, queue: q, context: ctx).run() }
    for b in batches { q.push(b) }
    q.close()
    if let c = cancelAfter {
        let deadline = Task {
            try? await Task.sleep(for: .milliseconds(Int(c * 1000)))
            task.cancel()
        }
        await task.value
        deadline.cancel()
    } else {
        await task.value
    }
    await f.stop()
    return ctx
}

/// `n` lines in batches of `per`, numbered `prefix-<i>`.
func numberedBatches(_ tb: TestBatches, _ n: Int, per: Int, prefix: String = "line", tags: [EventTag] = []) -> (batches: [EventBatch], lines: [String]) {
    let lines = (0..<n).map { "\(prefix)-\($0)" }
    let batches = stride(from: 0, to: n, by: per).enumerated().map { k, i in tb.batch(k, Array(lines[i..<min(n, i + per)]), tags: tags) }
    return (batches, lines)
}

/// One batch of unparsed lines (no acknowledgement).
func lineBatch(_ lines: [String], tags: [EventTag] = [], observedNanos: Int64) -> EventBatch {
    var arena: [UInt8] = []
    var events: [LogEvent] = []
    for l in lines {
        events.append(LogEvent(content: Span(arena.count, l.utf8.count)))
        arena += Array(l.utf8)
    }
    return EventBatch(arena: arena, events: events, tags: tags, observedNanos: observedNanos, inputBytes: arena.count)
}

/// The `content` of each JSON document (one per line) in `text`.
func contents(ofLines text: String) -> [String] {
    text.split(separator: "\n").compactMap { line in
        (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]).flatMap { doc in
            (doc["content"] as? String) ?? ((doc["contents"] as? [String: Any])?["content"] as? String)
        }
    }
}

/// Makes event `i` of `b` a parsed event with no fields left (every field removed by a
/// processor): flushers write nothing for it.
func removeAllFields(_ b: inout EventBatch, _ i: Int) {
    b.events[i].fieldStart = UInt32(b.fields.count)
    b.events[i].fieldCount = 0
    b.events[i].flags |= LogEvent.Flag.parsed
}
